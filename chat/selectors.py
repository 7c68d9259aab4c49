"""Reads for rooms, messages, projects and sessions; every query is scoped to the asking user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from rest_framework import exceptions

from accounts.models import Membership, Role
from chat.models import ChatSession, Message, Project, Room
from chatproject.errors import ApiError
from chatproject.validation import validated_id

ROOM_SORTS = {
    "last_activity": "last_activity",
    "-last_activity": "-last_activity",
    "created_at": "created_at",
    "-created_at": "-created_at",
    "name": "name",
    "-name": "-name",
}


def founder_team_ids(user) -> QuerySet:
    """Teams whose every room this user may read."""
    return Membership.objects.filter(user=user, role=Role.FOUNDER).values("team_id")


def rooms_readable_by(user) -> QuerySet[Room]:
    """Own rooms plus, with founder rights, every room of the founded teams."""
    return Room.objects.filter(is_deleted=False).filter(Q(owner=user) | Q(team_id__in=founder_team_ids(user)))


def readable_room_parts(user) -> tuple[QuerySet[Room], QuerySet[Room]]:
    """The rooms of `rooms_readable_by` as two sets, own and founded teams': a query that uses each as its own
    subquery lets the database estimate and index each part, where one OR inside a subquery hides both."""
    live = Room.objects.filter(is_deleted=False)
    return live.filter(owner=user), live.filter(team_id__in=founder_team_ids(user))


def _parse_uuid(value) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError) as exc:
        raise exceptions.NotFound("Not found.") from exc


def room_id_or_404(value) -> uuid.UUID:
    """A room id from a URL, or 404 (a malformed id names no room anyone can see)."""
    return _parse_uuid(value)


def get_room_for_read(*, user, room_id) -> Room:
    """A room the user may read, else 404 (never reveal that it exists)."""
    room = rooms_readable_by(user).filter(pk=_parse_uuid(room_id)).first()
    if room is None:
        raise exceptions.NotFound("Room not found.")
    return room


def get_room_for_write(*, user, room_id) -> Room:
    """A room the user owns; founders who can only read it get 403, everyone else 404."""
    owned = Room.objects.filter(pk=_parse_uuid(room_id), owner=user, is_deleted=False).first()
    if owned is not None:  # the common case, without the founder subquery (this runs before every send)
        return owned
    room = get_room_for_read(user=user, room_id=room_id)
    if room.owner_id != user.pk:
        raise exceptions.PermissionDenied("Founder rights are read-only; only the owner can change this room.")
    return room


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def rooms_list(*, user, params) -> QuerySet[Room]:
    """Own rooms (or a founded team's with `team=`), filtered and sorted for the sidebar."""
    team = params.get("team")
    if team not in (None, ""):
        team_id = validated_id(team, "team")
        if not founder_team_ids(user).filter(team_id=team_id).exists():
            raise exceptions.NotFound("Team not found.")
        qs = Room.objects.filter(is_deleted=False, team_id=team_id)
    else:
        qs = Room.objects.filter(is_deleted=False, owner=user)
    archived = (params.get("archived") or "false").strip().lower()
    if archived != "all":
        qs = qs.filter(archived=_truthy(archived))
    if params.get("pinned") not in (None, ""):
        qs = qs.filter(pinned=_truthy(params["pinned"]))
    if params.get("tag"):
        qs = qs.filter(tag_rows__name=params["tag"].strip().lower())
    project = params.get("project")
    if project == "none":
        qs = qs.filter(project__isnull=True)
    elif project:
        qs = qs.filter(project_id=_parse_uuid(project))
    q = (params.get("q") or "").strip()
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(last_message_preview__icontains=q))
    sort = params.get("sort") or "-last_activity"
    if sort not in ROOM_SORTS:
        raise ApiError(f"sort must be one of: {', '.join(ROOM_SORTS)}.", code="invalid_sort")
    return qs.order_by(ROOM_SORTS[sort], "-created_at").prefetch_related("tag_rows").distinct()


@dataclass
class BranchView:
    """The active branch of a room, with each message's siblings for the ‹ 2/3 › switcher."""

    messages: list[Message]
    siblings: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)


def active_branch(room: Room) -> BranchView:
    """Walk from the active leaf to the root; deleted turns are skipped but keep the chain intact."""
    all_messages = list(Message.objects.filter(room=room).order_by("created_at", "id"))
    by_id = {message.pk: message for message in all_messages}
    children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for message in all_messages:
        if not message.is_deleted:
            children.setdefault(message.parent_id, []).append(message.pk)
    chain: list[Message] = []
    cursor = by_id.get(room.active_leaf_id)
    seen: set[uuid.UUID] = set()
    while cursor is not None and cursor.pk not in seen:
        seen.add(cursor.pk)
        chain.append(cursor)
        cursor = by_id.get(cursor.parent_id)
    chain.reverse()
    visible = [message for message in chain if not message.is_deleted]
    siblings = {message.pk: children.get(message.parent_id, [message.pk]) for message in visible}
    return BranchView(messages=visible, siblings=siblings)


def message_tree(room: Room) -> QuerySet[Message]:
    """Every live message of the room in creation order, parents before children."""
    return Message.objects.filter(room=room, is_deleted=False).order_by("created_at", "id")


def get_message_for_write(*, user, message_id) -> Message:
    """A message in a room the user owns, else 404."""
    message = (
        Message.objects.select_related("room")
        .filter(pk=_parse_uuid(message_id), room__owner=user, room__is_deleted=False, is_deleted=False)
        .first()
    )
    if message is None:
        raise exceptions.NotFound("Message not found.")
    return message


def projects_of(user) -> QuerySet[Project]:
    return Project.objects.filter(owner=user).order_by("-last_chat_at", "-created_at")


def get_project(*, user, project_id) -> Project:
    project = projects_of(user).filter(pk=_parse_uuid(project_id)).first()
    if project is None:
        raise exceptions.NotFound("Project not found.")
    return project


def get_live_session(*, user, session_id) -> ChatSession:
    """The user's session if it has not expired; an expired one is gone (404 session_expired)."""
    session = (
        ChatSession.objects.select_related("room")
        .filter(pk=_parse_uuid(session_id), user=user, room__is_deleted=False)
        .first()
    )
    if session is None:
        raise exceptions.NotFound("Session not found.")
    if session.is_expired:
        session.delete()
        raise ApiError("This session has expired; create a new one.", code="session_expired", status_code=404)
    return session


def room_is_empty(room: Room) -> bool:
    return not Message.objects.filter(room=room, is_deleted=False).exists()


def get_message_in_room(*, room: Room, message_id) -> Message:
    message = Message.objects.filter(room=room, pk=_parse_uuid(message_id), is_deleted=False).first()
    if message is None:
        raise exceptions.NotFound("Message not found.")
    return message
