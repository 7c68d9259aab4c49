"""Writes around a generation: the turns that start one, the rows a job updates, recovery after a crash."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

import psutil
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from chat import selectors, sql
from chat.broadcast import broadcast_after_commit, room_group
from chat.models import Message, MessageRole, MessageStatus, Project, Room, Stream
from chat.services import PREVIEW_CHARS, refresh_room_summary, validate_message_content
from chatproject.errors import ApiError
from models_mgmt.providers import ChatTurn, Usage

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()
WORKER_ID = f"{HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def message_event(kind: str, message: Message) -> dict:
    """The channel-layer event for a created/updated message; consumers turn it into a frame."""
    return {
        "type": f"message.{kind}",
        "message": {
            "id": str(message.pk),
            "room": str(message.room_id),
            "parent": str(message.parent_id) if message.parent_id else None,
            "role": message.role,
            "content": message.content,
            "model": message.model,
            "status": message.status,
            "author": message.author.username if message.author_id else None,
            "created_at": message.created_at.isoformat(),
            "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        },
    }


@dataclass
class StartedGeneration:
    """What a transport needs to run and report a new job, decided in the transaction that began it."""

    stream: Stream
    assistant: Message
    user_message: Message | None
    turns: list[ChatTurn]


def _running_count(user_id: int) -> int:
    return sql.fetchone(
        f"SELECT COUNT(*) FROM {sql.table(Stream)} WHERE {sql.column(Stream, 'user')} = %s "
        f"AND {sql.column(Stream, 'finished_at')} IS NULL",
        [user_id],
    )[0]


def _ensure_stream_capacity(user: User) -> None:
    """At most STREAMS_PER_USER running; dead workers' jobs are reaped before refusing."""
    if connection.features.has_select_for_update:  # SQLite's BEGIN IMMEDIATE already serialises writers
        sql.fetchone(f"SELECT {sql.q(User._meta.pk.column)} FROM {sql.table(User)} WHERE "
                     f"{sql.q(User._meta.pk.column)} = %s FOR UPDATE", [user.pk])
    if _running_count(user.pk) >= settings.STREAMS_PER_USER:
        recover_interrupted_streams()
        if _running_count(user.pk) >= settings.STREAMS_PER_USER:
            raise ApiError(
                f"You already have {settings.STREAMS_PER_USER} replies generating; wait or stop one.",
                code="too_many_streams",
                status_code=429,
                details={"limit": settings.STREAMS_PER_USER},
            )


@dataclass
class LockedRoom:
    """The room's row as the start transaction sees it, locked until commit."""

    id: uuid.UUID
    active_leaf_id: uuid.UUID | None
    project_id: uuid.UUID | None
    system_prompt: str

    @property
    def group_name(self) -> str:
        return room_group(self.id)


def _lock_room(room: Room | uuid.UUID, user: User) -> LockedRoom:
    """Re-read the room inside the transaction (its active leaf may have moved) and check ownership.

    `room` may be just an id: a room that is not the user's gets exactly the scoped selectors' answer
    (404, or 403 for a team founder who may only read it), so callers need not look it up first.
    """
    room_id = room.pk if isinstance(room, Room) else room
    row = sql.fetchone(
        f"SELECT {sql.column(Room, 'owner')}, {sql.column(Room, 'active_leaf')}, {sql.column(Room, 'project')}, "
        f"{sql.column(Room, 'system_prompt')} FROM {sql.table(Room)} "
        f"WHERE {sql.column(Room, 'id')} = %s AND NOT {sql.column(Room, 'is_deleted')}{sql.for_update()}",
        [sql.prep(Room, "id", room_id)],
    )
    if row is None or row[0] != user.pk:
        selectors.get_room_for_write(user=user, room_id=room_id)  # raises the 404 or 403
        raise ApiError("Room not found.", code="not_found", status_code=404)
    _ensure_stream_capacity(user)
    return LockedRoom(id=room_id, active_leaf_id=sql.as_uuid(row[1]), project_id=sql.as_uuid(row[2]),
                      system_prompt=row[3])


def _begin(
    *, room: LockedRoom, user: User, parent: Message, model: str, control_channel: str, system_prompt: str,
    new_user_message: Message | None = None, max_turns: int | None = None,
) -> StartedGeneration:
    """The assistant placeholder, its Stream row, the room's summary and the prompt, in one transaction.

    Plain SQL (chat/sql.py): this runs once per reply and the ORM made it the costliest step of a start.
    """
    now = timezone.now()
    assistant = sql.new(
        Message, id=uuid.uuid4(), room_id=room.id, parent_id=parent.pk, role=MessageRole.ASSISTANT, model=model,
        status=MessageStatus.STREAMING, created_at=now + timedelta(microseconds=1),  # sorts after its question
    )
    sql.insert(Message, [m for m in (new_user_message, assistant) if m is not None])
    stream = sql.new(
        Stream, id=uuid.uuid4(), room_id=room.id, message_id=assistant.pk, user_id=user.pk, model=model,
        worker=WORKER_ID, control_channel=control_channel, started_at=now, heartbeat_at=now,
    )
    sql.insert(Stream, [stream])
    sql.execute(
        f"UPDATE {sql.table(Room)} SET {sql.column(Room, 'active_leaf')} = %s, "
        f"{sql.column(Room, 'message_count')} = {sql.column(Room, 'message_count')} + %s, "
        f"{sql.column(Room, 'last_message_preview')} = %s, {sql.column(Room, 'last_activity')} = %s "
        f"WHERE {sql.column(Room, 'id')} = %s",
        [sql.prep(Room, "active_leaf", assistant.pk), 2 if new_user_message else 1,
         " ".join(parent.content.split())[:PREVIEW_CHARS], sql.prep(Room, "last_activity", now),
         sql.prep(Room, "id", room.id)],
    )
    if room.project_id:
        sql.execute(
            f"UPDATE {sql.table(Project)} SET {sql.column(Project, 'last_chat_at')} = %s "
            f"WHERE {sql.column(Project, 'id')} = %s",
            [sql.prep(Project, "last_chat_at", now), sql.prep(Project, "id", room.project_id)],
        )
    for message in (new_user_message, assistant):
        if message is not None:
            broadcast_after_commit(room, message_event("created", message))
    turns = _branch_turns(room_id=room.id, parent_id=parent.pk, system_prompt=system_prompt or room.system_prompt,
                          max_turns=max_turns)
    return StartedGeneration(stream=stream, assistant=assistant, user_message=new_user_message, turns=turns)


def _new_user_message(*, room: LockedRoom, user: User, parent_id, content: str, edited: bool = False) -> Message:
    now = timezone.now()
    message = sql.new(
        Message, id=uuid.uuid4(), room_id=room.id, parent_id=parent_id, role=MessageRole.USER, content=content,
        author_id=user.pk, created_at=now, edited_at=now if edited else None,
    )
    message.author = user  # cached, so events can name the author without a query
    return message


@transaction.atomic
def send_user_message(
    *, room: Room | uuid.UUID, user: User, content: str, model: str, control_channel: str = "", system_prompt: str = "",
    max_turns: int | None = None,
) -> StartedGeneration:
    """A new user turn on the active branch, and the assistant reply that will stream under it."""
    return send_user_message_in_caller_atomic(
        room=room, user=user, content=content, model=model, control_channel=control_channel,
        system_prompt=system_prompt, max_turns=max_turns,
    )


def send_user_message_in_caller_atomic(
    *, room: Room | uuid.UUID, user: User, content: str, model: str, control_channel: str = "", system_prompt: str = "",
    max_turns: int | None = None,
) -> StartedGeneration:
    """`send_user_message` for a caller whose own atomic block covers it: one savepoint in a batch, not two
    (each costs two statements)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("send_user_message_in_caller_atomic must run inside an atomic block.")
    validate_message_content(content)
    locked = _lock_room(room, user)
    user_message = _new_user_message(room=locked, user=user, parent_id=locked.active_leaf_id, content=content)
    return _begin(room=locked, user=user, parent=user_message, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=user_message, max_turns=max_turns)


@transaction.atomic
def edit_user_message(
    *, room: Room, user: User, message: Message, content: str, model: str, control_channel: str = "",
    system_prompt: str = "", max_turns: int | None = None,
) -> StartedGeneration:
    """An edit is a sibling of the original turn (the original stays reachable), then a fresh reply."""
    if message.role != MessageRole.USER:
        raise ApiError("Only your own messages can be edited.", code="not_editable", status_code=400)
    validate_message_content(content)
    locked = _lock_room(room, user)
    edited = _new_user_message(room=locked, user=user, parent_id=message.parent_id, content=content, edited=True)
    return _begin(room=locked, user=user, parent=edited, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=edited, max_turns=max_turns)


@transaction.atomic
def regenerate_reply(
    *, room: Room, user: User, message: Message | None, model: str, control_channel: str = "",
    system_prompt: str = "", max_turns: int | None = None,
) -> StartedGeneration:
    """A new assistant sibling for an assistant turn (default: the active leaf), or a reply to a user turn."""
    locked = _lock_room(room, user)
    target = message or (Message.objects.filter(pk=locked.active_leaf_id).first() if locked.active_leaf_id else None)
    if target is None:
        raise ApiError("There is nothing to regenerate yet.", code="nothing_to_regenerate", status_code=409)
    parent = target.parent if target.role == MessageRole.ASSISTANT else target
    if parent is None or parent.role != MessageRole.USER:
        raise ApiError("A reply needs a user message to answer.", code="nothing_to_regenerate", status_code=409)
    return _begin(room=locked, user=user, parent=parent, model=model or target.model, control_channel=control_channel,
                  system_prompt=system_prompt, max_turns=max_turns)


@transaction.atomic
def delete_message(*, room: Room, message: Message) -> Message:
    """Soft-delete a turn; if it was on the active branch end, the branch ends at its parent."""
    room = Room.objects.select_for_update().get(pk=room.pk)
    message.is_deleted = True
    message.save(update_fields=["is_deleted"])
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


def prompt_turns(*, room: Room, parent_id, system_prompt: str = "") -> list[ChatTurn]:
    """System prompt plus the branch ending at `parent_id` (the turn being answered), oldest first."""
    return _branch_turns(room_id=room.pk, parent_id=parent_id, system_prompt=system_prompt or room.system_prompt)


def _branch_turns(*, room_id, parent_id, system_prompt: str, max_turns: int | None = None) -> list[ChatTurn]:
    """The active branch up to `parent_id`, oldest first, read by walking parent links in the database.

    Only the branch is read (not the room's other branches), and with `max_turns` only that many of its
    newest live turns: no more can fit in the model's window (fit_to_context trims the rest).
    """
    if not parent_id:
        return [ChatTurn(role="system", content=system_prompt)] if system_prompt else []
    c = {name: sql.column(Message, name) for name in ("id", "parent", "role", "content", "is_deleted", "room")}
    columns = f"m.{c['id']}, m.{c['parent']}, m.{c['role']}, m.{c['content']}, m.{c['is_deleted']}"
    live = f"CASE WHEN m.{c['is_deleted']} THEN 0 ELSE 1 END"  # deleted turns keep the chain, count for nothing
    rows = sql.fetchall(
        f"WITH RECURSIVE branch(id, parent_id, role, content, is_deleted, depth, live) AS ("
        f" SELECT {columns}, 0, {live} FROM {sql.table(Message)} m WHERE m.{c['id']} = %s AND m.{c['room']} = %s"
        f" UNION ALL"
        f" SELECT {columns}, b.depth + 1, b.live + {live}"
        f" FROM {sql.table(Message)} m JOIN branch b ON m.{c['id']} = b.parent_id WHERE b.live < %s"
        f") SELECT role, content, is_deleted FROM branch ORDER BY depth DESC",
        [sql.prep(Message, "id", parent_id), sql.prep(Message, "room", room_id),
         max_turns if max_turns is not None else 2**31 - 1],
    )
    turns = [ChatTurn(role="system", content=system_prompt)] if system_prompt else []
    turns.extend(ChatTurn(role=role, content=content) for role, content, deleted in rows if not deleted and content)
    return turns


@transaction.atomic
def save_partial(*, message_id, stream_id, text: str) -> None:
    """Periodic flush so a crash loses at most one flush interval; doubles as the job's heartbeat."""
    sql.execute(
        f"UPDATE {sql.table(Message)} SET {sql.column(Message, 'content')} = %s WHERE {sql.column(Message, 'id')} = %s",
        [text, sql.prep(Message, "id", message_id)],
    )
    sql.execute(
        f"UPDATE {sql.table(Stream)} SET {sql.column(Stream, 'heartbeat_at')} = %s "
        f"WHERE {sql.column(Stream, 'id')} = %s",
        [sql.prep(Stream, "heartbeat_at", timezone.now()), sql.prep(Stream, "id", stream_id)],
    )


def stop_requested(*, stream_id) -> bool:
    """Whether a stop for this stream was recorded in the database (by any worker)."""
    return Stream.objects.filter(pk=stream_id, cancel_requested=True).exists()


def heartbeat(*, stream_id) -> bool:
    """Mark the job alive; returns whether a stop was requested through the database."""
    Stream.objects.filter(pk=stream_id).update(heartbeat_at=timezone.now())
    return Stream.objects.filter(pk=stream_id, cancel_requested=True).exists()


@transaction.atomic
def finish_stream(
    *,
    stream_id,
    message_id,
    room_id,
    text: str,
    status: str,
    usage: Usage,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> None:
    """Write the final text, status, counts and timings; the room's sidebar fields follow.

    Plain SQL, like the start: the message count did not change since the start counted this reply, so only
    the preview (when this reply is still the active leaf) and the activity time move.
    """
    now = timezone.now()
    sql.execute(
        f"UPDATE {sql.table(Message)} SET {sql.column(Message, 'content')} = %s, {sql.column(Message, 'status')} = %s, "
        f"{sql.column(Message, 'error')} = %s, {sql.column(Message, 'prompt_tokens')} = %s, "
        f"{sql.column(Message, 'completion_tokens')} = %s, {sql.column(Message, 'time_to_first_token_ms')} = %s, "
        f"{sql.column(Message, 'tokens_per_second')} = %s WHERE {sql.column(Message, 'id')} = %s",
        [text, status, error, usage.prompt_tokens, usage.completion_tokens, ttft_ms, tokens_per_second,
         sql.prep(Message, "id", message_id)],
    )
    sql.execute(
        f"UPDATE {sql.table(Stream)} SET {sql.column(Stream, 'finished_at')} = %s "
        f"WHERE {sql.column(Stream, 'id')} = %s",
        [sql.prep(Stream, "finished_at", now), sql.prep(Stream, "id", stream_id)],
    )
    leaf, room_key = sql.column(Room, "active_leaf"), sql.prep(Room, "id", room_id)
    preview = sql.column(Room, "last_message_preview")
    sql.execute(
        f"UPDATE {sql.table(Room)} SET {sql.column(Room, 'last_activity')} = %s, "
        f"{preview} = CASE WHEN {leaf} = %s THEN %s ELSE {preview} END "
        f"WHERE {sql.column(Room, 'id')} = %s AND NOT {sql.column(Room, 'is_deleted')}",
        [sql.prep(Room, "last_activity", now), sql.prep(Room, "active_leaf", message_id),
         " ".join(text.split())[:PREVIEW_CHARS], room_key],
    )
    sql.execute(
        f"UPDATE {sql.table(Project)} SET {sql.column(Project, 'last_chat_at')} = %s WHERE {sql.column(Project, 'id')} "
        f"IN (SELECT {sql.column(Room, 'project')} FROM {sql.table(Room)} WHERE {sql.column(Room, 'id')} = %s "
        f"AND NOT {sql.column(Room, 'is_deleted')})",
        [sql.prep(Project, "last_chat_at", now), room_key],
    )


def _worker_is_dead(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid_text = rest.split(":", 1)[0]
    if worker == WORKER_ID or host != HOSTNAME or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not psutil.pid_exists(pid)


@transaction.atomic
def recover_interrupted_streams() -> int:
    """Replies left `streaming` by a dead process become `interrupted`, keeping the text they had."""
    stale_before = timezone.now() - timedelta(seconds=settings.STREAM_HEARTBEAT_TIMEOUT_SECONDS)
    running = Stream.objects.filter(finished_at__isnull=True).exclude(worker=WORKER_ID)
    dead = [s.pk for s in running if s.heartbeat_at < stale_before or _worker_is_dead(s.worker)]
    if not dead:
        return 0
    now = timezone.now()
    Message.objects.filter(stream__pk__in=dead, status=MessageStatus.STREAMING).update(
        status=MessageStatus.INTERRUPTED
    )
    Stream.objects.filter(pk__in=dead).update(finished_at=now)
    return len(dead)


def recover_at_startup() -> None:
    """Run once when a worker boots; a database that is not ready yet must not stop the worker."""
    try:
        recovered = recover_interrupted_streams()
    except Exception as exc:  # noqa: BLE001 - e.g. not migrated yet, or no database access (tests)
        logger.debug("stream recovery skipped: %s", exc)
        return
    if recovered:
        logger.warning("marked %d interrupted replies from a dead worker", recovered)
