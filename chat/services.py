"""Writes for rooms, messages, projects and sessions; limits are enforced here, once."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions

from accounts.models import Membership
from accounts.selectors import preferences_of
from chat.broadcast import broadcast_after_commit, send_to_channels_after_commit
from chat.models import ChatSession, Message, MessageRole, MessageStatus, Project, Room, RoomTag, Stream
from chat.selectors import room_is_empty
from chatproject.errors import Conflict
from search import hooks as search_hooks

PREVIEW_CHARS = 200
UNSET: Any = object()


# --- validation shared by every entry point --------------------------------------------------------


def validate_room_name(name: str) -> str:
    name = (name or "").strip() or "New Chat"
    if len(name) > settings.ROOM_NAME_MAX_CHARS:
        raise exceptions.ValidationError(
            {"name": [f"Room name is {len(name)} characters; the limit is {settings.ROOM_NAME_MAX_CHARS}."]}
        )
    return name


def validate_metadata(metadata: Any) -> dict:
    if not isinstance(metadata, dict):
        raise exceptions.ValidationError({"metadata": ["Metadata must be a JSON object."]})
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > settings.ROOM_METADATA_MAX_BYTES:
        raise exceptions.ValidationError(
            {"metadata": [f"Metadata is {size} bytes of JSON; the limit is {settings.ROOM_METADATA_MAX_BYTES}."]}
        )
    return metadata


def validate_message_content(content: str, field: str = "content") -> str:
    if len(content) > settings.MESSAGE_MAX_CHARS:
        raise exceptions.ValidationError(
            {field: [f"Message is {len(content)} characters; the limit is {settings.MESSAGE_MAX_CHARS}."]}
        )
    return content


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, trimmed, unique tags in their given order."""
    seen: list[str] = []
    for tag in tags:
        cleaned = tag.strip().lower()
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
    return seen


def _ensure_room_quota(owner) -> None:
    active = Room.objects.filter(owner=owner, is_deleted=False, archived=False).count()
    if active >= settings.ROOMS_PER_USER:
        raise Conflict(
            f"You have {active} active rooms; the limit is {settings.ROOMS_PER_USER}. "
            "Archive or delete some rooms first.",
            code="room_limit_reached",
            details={"limit": settings.ROOMS_PER_USER},
        )


def _resolve_team(owner, team_id: int | None):
    if team_id is None:
        return owner.primary_team()
    membership = Membership.objects.select_related("team").filter(user=owner, team_id=team_id).first()
    if membership is None:
        raise exceptions.ValidationError({"team": ["You are not a member of that team."]})
    return membership.team


def _set_tags(room: Room, tags: list[str]) -> None:
    RoomTag.objects.filter(room=room).delete()
    RoomTag.objects.bulk_create([RoomTag(room=room, name=tag) for tag in normalise_tags(tags)])


# --- rooms -----------------------------------------------------------------------------------------


@transaction.atomic
def create_room(
    *,
    owner,
    name: str = "New Chat",
    metadata: dict | None = None,
    tags: list[str] | None = None,
    project: Project | None = None,
    model: str = "",
    agent: str = "",
    system_prompt: str = "",
    team_id: int | None = None,
) -> Room:
    """Create a room inside the owner's quota, in their primary team unless another is named."""
    _ensure_room_quota(owner)
    model = model or preferences_of(owner)["default_model"]  # the owner's default model from the settings page
    room = Room.objects.create(
        owner=owner,
        team=_resolve_team(owner, team_id),
        project=project,
        name=validate_room_name(name),
        metadata=validate_metadata(metadata or {}),
        model=model,
        agent=agent,
        system_prompt=system_prompt,
    )
    if tags:
        _set_tags(room, tags)
    return room


@transaction.atomic
def update_room(*, room: Room, changes: dict) -> Room:
    """Apply a partial update; un-archiving counts against the quota again."""
    fields: list[str] = []
    if "name" in changes:
        room.name = validate_room_name(changes["name"])
        fields.append("name")
    if "metadata" in changes:
        room.metadata = validate_metadata(changes["metadata"])
        fields.append("metadata")
    if changes.get("archived") is False and room.archived:
        _ensure_room_quota(room.owner)
    for simple in ("pinned", "archived", "model", "agent", "system_prompt", "project"):
        if simple in changes:
            setattr(room, simple, changes[simple])
            fields.append(simple)
    if fields:
        room.save(update_fields=fields)
    if "tags" in changes:
        _set_tags(room, changes["tags"])
    broadcast_after_commit(room, {"type": "room.updated", "room": room_event_fields(room)})
    return room


def room_event_fields(room: Room) -> dict:
    """What watchers of a room need to follow changes made elsewhere (another tab, the REST API)."""
    return {
        "id": str(room.pk), "name": room.name, "model": room.model, "agent": room.agent,
        "system_prompt": room.system_prompt, "pinned": room.pinned, "archived": room.archived,
        "metadata": room.metadata,
    }


@transaction.atomic
def soft_delete_room(*, room: Room) -> None:
    """Hide the room and its messages; rows stay for audit and undo by an operator."""
    now = timezone.now()
    Message.objects.filter(room=room).update(is_deleted=True)
    Room.objects.filter(pk=room.pk).update(is_deleted=True, deleted_at=now)
    search_hooks.room_removed(room.pk)
    _stop_running_streams(room)
    ChatSession.objects.filter(room=room).delete()
    broadcast_after_commit(room, {"type": "room.deleted", "room_id": str(room.pk)})


@transaction.atomic
def clear_room_messages(*, room: Room) -> int:
    """Remove every message from the conversation (soft) and start the tree afresh."""
    _stop_running_streams(room)
    cleared = Message.objects.filter(room=room, is_deleted=False).update(is_deleted=True)
    search_hooks.room_messages_cleared(room.pk)
    room.active_leaf = None
    room.message_count = 0
    room.last_message_preview = ""
    room.last_activity = timezone.now()
    room.save(update_fields=["active_leaf", "message_count", "last_message_preview", "last_activity"])
    return cleared


@transaction.atomic
def get_or_create_fresh_room(*, owner, model: str = "") -> tuple[Room, bool]:
    """Reuse the newest empty room instead of piling up blank chats; create one if there is none."""
    for room in Room.objects.filter(owner=owner, is_deleted=False, archived=False, message_count=0).order_by(
        "-created_at"
    )[:5]:
        if room_is_empty(room):
            wanted = preferences_of(owner)["default_model"]
            if wanted and not room.model:  # a blank chat made before the owner chose a default model takes it
                room.model = wanted
                room.save(update_fields=["model"])
            return room, False
    return create_room(owner=owner, model=model), True


_WS = re.compile(r"\s+")
_MARKDOWN_NOISE = re.compile(r"[`*_#>\[\]()~|]")


def title_from_text(text: str, max_chars: int = 50) -> str:
    """A short title from the opening words of a message, cut at a word boundary."""
    cleaned = _WS.sub(" ", _MARKDOWN_NOISE.sub(" ", text)).strip()
    if not cleaned:
        return "New Chat"
    first_sentence = re.split(r"(?<=[.!?])\s", cleaned, maxsplit=1)[0].rstrip(".!? ")
    title = first_sentence or cleaned
    if len(title) > max_chars:
        title = title[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") or title[:max_chars]
        title += "…"
    return title[0].upper() + title[1:]


@transaction.atomic
def generate_room_title(*, room: Room, branch: list[Message]) -> Room:
    """Name the room after the first user turn of its active branch."""
    first_user = next((message for message in branch if message.role == MessageRole.USER), None)
    if first_user is None:
        raise Conflict("The room has no message to take a title from yet.", code="nothing_to_title")
    room.name = title_from_text(first_user.content, max_chars=min(50, settings.ROOM_NAME_MAX_CHARS))
    room.save(update_fields=["name"])
    broadcast_after_commit(room, {"type": "room.updated", "room": room_event_fields(room)})
    return room


@transaction.atomic
def cleanup_empty_rooms(*, owner=None, older_than: timedelta | None = None, keep_newest: bool = True) -> int:
    """Soft-delete rooms that never got a message; the newest empty one survives for reuse."""
    qs = Room.objects.filter(is_deleted=False, message_count=0, pinned=False)
    if owner is not None:
        qs = qs.filter(owner=owner)
    if older_than is not None:
        qs = qs.filter(last_activity__lt=timezone.now() - older_than)
    empty = [room for room in qs.order_by("owner_id", "-created_at") if room_is_empty(room)]
    keep: set = set()
    if keep_newest:
        newest_per_owner: dict[int, Room] = {}
        for room in empty:
            newest_per_owner.setdefault(room.owner_id, room)
        keep = {room.pk for room in newest_per_owner.values()}
    doomed = [room.pk for room in empty if room.pk not in keep]
    Room.objects.filter(pk__in=doomed).update(is_deleted=True, deleted_at=timezone.now())
    return len(doomed)


# --- messages --------------------------------------------------------------------------------------


def refresh_room_summary(room: Room, *, touch: bool = True) -> None:
    """Keep the sidebar fields (count, preview, activity) in step with the message tree."""
    room.message_count = Message.objects.filter(room=room, is_deleted=False).count()
    leaf = Message.objects.filter(pk=room.active_leaf_id).only("content").first() if room.active_leaf_id else None
    room.last_message_preview = _WS.sub(" ", leaf.content).strip()[:PREVIEW_CHARS] if leaf else ""
    fields = ["message_count", "last_message_preview", "active_leaf"]
    if touch:
        room.last_activity = timezone.now()
        fields.append("last_activity")
    room.save(update_fields=fields)
    if touch and room.project_id:
        Project.objects.filter(pk=room.project_id).update(last_chat_at=room.last_activity)


@transaction.atomic
def append_message(
    *,
    room: Room,
    role: str,
    content: str,
    author=None,
    parent: Message | None | Any = UNSET,
    model: str = "",
    status: str = MessageStatus.COMPLETE,
) -> Message:
    """Add a turn under `parent` (default: the active leaf) and make it the new active leaf."""
    validate_message_content(content)
    if parent is UNSET:
        parent = room.active_leaf
    message = Message.objects.create(
        room=room, role=role, content=content, author=author, parent=parent, model=model, status=status
    )
    room.active_leaf = message
    refresh_room_summary(room)
    search_hooks.message_saved(message.pk)
    return message


# --- streams ---------------------------------------------------------------------------------------


def _stop_running_streams(room: Room | None, stream_id=None) -> int:
    """Flag running jobs in the database and tell each one on its control channel, from any worker.

    With no room: every running job of the instance (the panic switch).
    """
    qs = Stream.objects.filter(finished_at__isnull=True)
    if room is not None:
        qs = qs.filter(room=room)
    if stream_id is not None:
        qs = qs.filter(pk=stream_id)
    rows = list(qs.values_list("pk", "control_channel"))
    if not rows:
        return 0
    Stream.objects.filter(pk__in=[pk for pk, _ in rows]).update(cancel_requested=True)
    send_to_channels_after_commit(
        [(channel, {"type": "stream.stop", "stream_id": str(pk)}) for pk, channel in rows if channel]
    )
    return len(rows)


@transaction.atomic
def request_stop(*, room: Room, stream_id=None) -> int:
    """Ask the room's running generation(s) to stop; returns how many were asked."""
    return _stop_running_streams(room, stream_id)


@transaction.atomic
def stop_every_stream() -> int:
    """Ask every running generation on every worker to stop; returns how many were asked."""
    return _stop_running_streams(None)


@transaction.atomic
def wipe_chat_data() -> dict[str, int]:
    """Delete every room, message, project and live stream of every user, irrecoverably; users stay.

    Deleting through the ORM runs each model's delete signals, so whatever keeps files or index entries for
    these rows goes with them. Returns the number deleted per model.
    """
    counts: dict[str, int] = {}
    for queryset in (Stream.objects.all(), Room.objects.all(), Project.objects.all()):
        _, per_model = queryset.delete()
        for label, count in per_model.items():
            counts[label] = counts.get(label, 0) + count
    return {label: count for label, count in sorted(counts.items()) if count}


# --- projects --------------------------------------------------------------------------------------


@transaction.atomic
def create_project(*, owner, name: str, description: str = "") -> Project:
    return Project.objects.create(owner=owner, team=owner.primary_team(), name=name, description=description)


@transaction.atomic
def update_project(*, project: Project, changes: dict) -> Project:
    fields = [key for key in ("name", "description") if key in changes]
    for key in fields:
        setattr(project, key, changes[key])
    if fields:
        project.save(update_fields=fields)
    return project


@transaction.atomic
def delete_project(*, project: Project) -> None:
    """Deleting a folder keeps its rooms; they just leave the folder."""
    Room.objects.filter(project=project).update(project=None)
    project.delete()


# --- sessions --------------------------------------------------------------------------------------


@transaction.atomic
def create_session(*, user, room: Room) -> ChatSession:
    return ChatSession.objects.create(user=user, room=room)


@transaction.atomic
def touch_session(*, session: ChatSession) -> ChatSession:
    """Record activity so the idle clock restarts."""
    session.last_seen_at = timezone.now()
    session.save(update_fields=["last_seen_at"])
    return session


@transaction.atomic
def reset_session(*, session: ChatSession, agent: str = "") -> ChatSession:
    """Forget one agent's state, or all of it."""
    if agent:
        session.agent_state.pop(agent, None)
    else:
        session.agent_state = {}
    session.last_seen_at = timezone.now()
    session.save(update_fields=["agent_state", "last_seen_at"])
    return session


@transaction.atomic
def delete_expired_sessions() -> int:
    """Purge sessions past their lifetime or idle deadline."""
    now = timezone.now()
    hard = now - timedelta(seconds=settings.SESSION_TTL_SECONDS)
    idle = now - timedelta(seconds=settings.SESSION_IDLE_SECONDS)
    deleted, _ = ChatSession.objects.filter(created_at__lte=hard).delete()
    more, _ = ChatSession.objects.filter(last_seen_at__lte=idle).delete()
    return deleted + more



@transaction.atomic
def rate_message(*, message: Message, rating: int) -> Message:
    """Thumbs up (1), down (-1) or cleared (0) on an assistant reply; kept for the learning log."""
    if message.role != MessageRole.ASSISTANT:
        raise exceptions.ValidationError({"rating": ["Only assistant replies can be rated."]})
    message.rating = rating or None
    message.save(update_fields=["rating"])
    return message


# --- branches --------------------------------------------------------------------------------------


@transaction.atomic
def delete_message(*, room: Room, message: Message) -> Message:
    """Soft-delete a turn (a reply still writing it is stopped); if it ended the active branch, its parent does."""
    room = Room.objects.select_for_update().get(pk=room.pk)
    running = Stream.objects.filter(message=message, finished_at__isnull=True).values_list("pk", flat=True).first()
    if running is not None:
        _stop_running_streams(room, running)
    message.is_deleted = True
    message.save(update_fields=["is_deleted"])
    search_hooks.messages_removed([message.pk])
    if room.active_leaf_id == message.pk:
        room.active_leaf = message.parent
    refresh_room_summary(room, touch=False)
    broadcast_after_commit(room, {"type": "message.deleted", "message_id": str(message.pk)})
    return message


@transaction.atomic
def switch_branch(*, room: Room, message: Message) -> Message:
    """Make the newest leaf under `message` the active one (the ‹ 2/3 › arrows)."""
    room = Room.objects.select_for_update().get(pk=room.pk)
    leaf = message
    while True:
        child = Message.objects.filter(parent=leaf, is_deleted=False).order_by("-created_at").first()
        if child is None:
            break
        leaf = child
    room.active_leaf = leaf
    refresh_room_summary(room, touch=False)
    broadcast_after_commit(room, {"type": "room.branch", "active_leaf": str(leaf.pk)})
    return leaf
