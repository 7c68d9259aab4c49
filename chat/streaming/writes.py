"""The rows a reply writes: its start (turns, placeholder, stream row), its partial text, its end, recovery."""

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
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from accounts.models import User
from chat import selectors
from chat.broadcast import broadcast_after_commit, group_send_after_commit, room_group
from chat.models import FinishReason, Message, MessageRole, MessageStatus, Project, Room, Stream
from chat.services import PREVIEW_CHARS, room_event_fields, validate_message_content
from chatproject.errors import ApiError
from models_mgmt.providers import ChatTurn, Usage
from ops import performance
from search import hooks as search_hooks

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
            "finish_reason": message.finish_reason,
        },
    }


@dataclass
class StartedReply:
    """What the job needs to run and report a new reply, decided in the transaction that began it."""

    stream: Stream
    assistant: Message
    user_message: Message | None
    turns: list[ChatTurn]


def _preview(text: str) -> str:
    return " ".join(text.split())[:PREVIEW_CHARS]


def _ensure_room_idle_and_capacity(room: Room | None, user: User) -> None:
    """One reply at a time per room (a second would interleave with the first on the same branch), and at most
    STREAMS_PER_USER running per user; dead workers' replies are reaped before refusing. One query.

    With no room (a stateless completion) only the per-user limit applies."""
    if connection.features.has_select_for_update:
        User.objects.select_for_update().filter(pk=user.pk).exists()  # serialises one user's starts
    mine = Q(user_id=user.pk) if room is None else Q(room_id=room.pk) | Q(user_id=user.pk)
    for attempt in range(2):
        running = list(Stream.objects.filter(mine, finished_at__isnull=True).values_list("room_id", "user_id"))
        busy = room is not None and any(room_id == room.pk for room_id, _ in running)
        full = sum(user_id == user.pk for _, user_id in running) >= settings.STREAMS_PER_USER
        if not (busy or full):
            return
        if attempt == 0:
            recover_interrupted_streams()
    if busy:
        raise ApiError(
            "A reply is still being generated in this chat; wait for it to finish or stop it.",
            code="reply_in_progress",
            status_code=409,
        )
    raise ApiError(
        f"You already have {settings.STREAMS_PER_USER} replies generating; wait or stop one.",
        code="too_many_streams",
        status_code=429,
        details={"limit": settings.STREAMS_PER_USER, "retry_after": 5},
    )


def _lock_room(room_id: uuid.UUID, user: User) -> Room:
    """Re-read the room inside the transaction (its active leaf may have moved) and check ownership."""
    room = (Room.objects.select_for_update().filter(pk=room_id, owner=user, is_deleted=False)
            .only("id", "owner_id", "project_id", "active_leaf_id", "system_prompt", "model").first())
    if room is None:
        selectors.get_room_for_write(user=user, room_id=room_id)  # raises the 404, or 403 for a founder
        raise ApiError("Room not found.", code="not_found", status_code=404)
    _ensure_room_idle_and_capacity(room, user)
    return room


def _new_user_message(*, room: Room, user: User, parent_id, content: str, edited: bool = False,
                      metadata: dict | None = None) -> Message:
    now = timezone.now()
    return Message(
        room=room, parent_id=parent_id, role=MessageRole.USER, content=content, author=user, created_at=now,
        edited_at=now if edited else None, metadata=metadata or {},
    )


def _begin(
    *, room: Room, user: User, parent: Message, model: str, control_channel: str, system_prompt: str,
    new_user_message: Message | None = None, max_turns: int | None = None, remember_model: str = "",
) -> StartedReply:
    """The assistant placeholder, its stream row, the room's summary and the prompt, in one transaction.

    `remember_model` is the model the request chose by name: the room keeps it, so the chat reopens on it.
    """
    now = timezone.now()
    assistant = Message(
        room=room, parent_id=parent.pk, role=MessageRole.ASSISTANT, model=model, status=MessageStatus.STREAMING,
        created_at=now + timedelta(microseconds=1),  # sorts after its question
    )
    created = [m for m in (new_user_message, assistant) if m is not None]
    Message.objects.bulk_create(created)
    stream = Stream.objects.create(
        room=room, message=assistant, user=user, model=model, worker=WORKER_ID, control_channel=control_channel,
        started_at=now, heartbeat_at=now,
    )
    model_changed = bool(remember_model) and remember_model != room.model
    Room.objects.filter(pk=room.pk).update(
        active_leaf=assistant, message_count=F("message_count") + len(created),
        last_message_preview=_preview(parent.content), last_activity=now,
        **({"model": remember_model} if model_changed else {}),
    )
    if model_changed:  # other tabs of the room follow the choice, as after a change in the picker
        broadcast_after_commit(room, {"type": "room.updated", "room": room_event_fields(Room.objects.get(pk=room.pk))})
    if room.project_id:
        Project.objects.filter(pk=room.project_id).update(last_chat_at=now)
    for message in created:
        broadcast_after_commit(room, message_event("created", message))
    if new_user_message is not None:
        search_hooks.message_saved(new_user_message.pk)
    turns = branch_turns(room_id=room.pk, parent_id=parent.pk, system_prompt=system_prompt or room.system_prompt,
                         max_turns=max_turns)
    return StartedReply(stream=stream, assistant=assistant, user_message=new_user_message, turns=turns)


@transaction.atomic
def send_user_message(
    *, room_id: uuid.UUID, user: User, content: str, model: str, control_channel: str = "", system_prompt: str = "",
    max_turns: int | None = None, files: list[uuid.UUID] | None = None, search_all_rooms: bool = False,
    remember_model: str = "",
) -> StartedReply:
    """A new user turn on the active branch, and the assistant reply that will stream under it.

    `files` are ids of the room's uploaded files the message is about (404 for any other), and
    `search_all_rooms` asks for passages of the user's other rooms too; both shape its replies' sources.
    """
    validate_message_content(content)
    room = _lock_room(room_id, user)
    metadata = search_hooks.retrieval_metadata(room_id=room.pk, file_ids=files or [],
                                               search_all_rooms=search_all_rooms)
    user_message = _new_user_message(room=room, user=user, parent_id=room.active_leaf_id, content=content,
                                     metadata=metadata)
    return _begin(room=room, user=user, parent=user_message, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=user_message, max_turns=max_turns,
                  remember_model=remember_model)


@transaction.atomic
def edit_user_message(
    *, room_id: uuid.UUID, user: User, message: Message, content: str, model: str, control_channel: str = "",
    system_prompt: str = "", max_turns: int | None = None, remember_model: str = "",
) -> StartedReply:
    """An edit is a sibling of the original turn (the original stays reachable), then a fresh reply."""
    if message.role != MessageRole.USER:
        raise ApiError("Only your own messages can be edited.", code="not_editable", status_code=400)
    validate_message_content(content)
    room = _lock_room(room_id, user)
    kept = {key: value for key, value in (message.metadata or {}).items() if key in search_hooks.RETRIEVAL_KEYS}
    edited = _new_user_message(room=room, user=user, parent_id=message.parent_id, content=content, edited=True,
                               metadata=kept)
    return _begin(room=room, user=user, parent=edited, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=edited, max_turns=max_turns,
                  remember_model=remember_model)


@transaction.atomic
def regenerate_reply(
    *, room_id: uuid.UUID, user: User, message: Message | None, model: str, control_channel: str = "",
    system_prompt: str = "", max_turns: int | None = None, remember_model: str = "",
) -> StartedReply:
    """A new assistant sibling for an assistant turn (default: the active leaf), or a reply to a user turn."""
    room = _lock_room(room_id, user)
    target = message or (Message.objects.filter(pk=room.active_leaf_id).first() if room.active_leaf_id else None)
    if target is None:
        raise ApiError("There is nothing to regenerate yet.", code="nothing_to_regenerate", status_code=409)
    parent = target.parent if target.role == MessageRole.ASSISTANT else target
    if parent is None or parent.role != MessageRole.USER:
        raise ApiError("A reply needs a user message to answer.", code="nothing_to_regenerate", status_code=409)
    return _begin(room=room, user=user, parent=parent, model=model or target.model, control_channel=control_channel,
                  system_prompt=system_prompt, max_turns=max_turns, remember_model=remember_model)


@transaction.atomic
def start_completion(*, user: User, model: str, control_channel: str = "") -> Stream:
    """The stream row of a stateless completion: no room and no message are written, but it counts against the
    user's running replies (429 beyond the limit) and can be stopped and recovered like any other."""
    _ensure_room_idle_and_capacity(None, user)
    now = timezone.now()
    return Stream.objects.create(
        user=user, model=model, worker=WORKER_ID, control_channel=control_channel, started_at=now, heartbeat_at=now,
    )


def branch_turns(*, room_id, parent_id, system_prompt: str, max_turns: int | None = None) -> list[ChatTurn]:
    """System prompt plus the branch ending at `parent_id` (the turn being answered), oldest first.

    The room's parent links are read first (small rows), then the text of at most `max_turns` live turns of
    the branch: no more can fit in the model's window, and other branches' text is never read.
    """
    turns = [ChatTurn(role="system", content=system_prompt)] if system_prompt else []
    if not parent_id:
        return turns
    rows = Message.objects.filter(room_id=room_id).values_list("id", "parent_id", "is_deleted")
    links = {pk: parent for pk, parent, _ in rows}
    deleted = {pk for pk, _, is_deleted in rows if is_deleted}
    limit = max_turns if max_turns is not None else len(links)
    chain: list[uuid.UUID] = []
    cursor, seen = parent_id, set()
    while cursor is not None and cursor in links and cursor not in seen and len(chain) < limit:
        seen.add(cursor)
        if cursor not in deleted:  # deleted turns keep the chain, and count for nothing
            chain.append(cursor)
        cursor = links[cursor]
    texts = {pk: (role, content) for pk, role, content in
             Message.objects.filter(pk__in=chain).values_list("id", "role", "content")}
    turns.extend(ChatTurn(role=texts[pk][0], content=texts[pk][1]) for pk in reversed(chain) if texts[pk][1])
    return turns


def save_partial(*, message_id, stream_id, text: str) -> None:
    """Periodic flush so a crash loses at most one flush interval; doubles as the job's heartbeat."""
    Message.objects.filter(pk=message_id).update(content=text)
    Stream.objects.filter(pk=stream_id).update(heartbeat_at=timezone.now())


def stop_requested(*, stream_id) -> bool:
    """Whether a stop for this stream was recorded in the database (by any worker)."""
    return Stream.objects.filter(pk=stream_id, cancel_requested=True).exists()


def heartbeat(*, stream_id) -> bool:
    """Mark the job alive; returns whether a stop was requested through the database."""
    Stream.objects.filter(pk=stream_id).update(heartbeat_at=timezone.now())
    return stop_requested(stream_id=stream_id)


def stored_finish_reason(status: str, finish_reason: str) -> str:
    """Only a completed reply has a reason to keep, and only one the UI knows (a backend may say `load`)."""
    return finish_reason if status == MessageStatus.COMPLETE and finish_reason in FinishReason.values else ""


@transaction.atomic
def finish_stream(
    *, stream_id, message_id, room_id, text: str, status: str, usage: Usage, ttft_ms: float | None,
    tokens_per_second: float | None, error: str = "", sample: performance.ReplyOutcome | None = None,
    finish_reason: str = "",
) -> None:
    """Write the final text, status, counts and timings; the room's sidebar fields follow.

    The message count did not change since the start counted this reply, so only the preview (when this reply
    is still the active leaf) and the activity time move. A stateless completion (no message, no room) only
    marks its stream finished. The reply's performance `sample` is stored in the same trip to the database:
    when many replies end at once (the panic switch), each costs one database call, not two.
    """
    now = timezone.now()
    Stream.objects.filter(pk=stream_id).update(finished_at=now)
    if sample is not None:
        performance.store_reply_sample(outcome=sample)
    if not message_id or not room_id:
        return
    Message.objects.filter(pk=message_id).update(
        content=text, status=status, error=error, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, time_to_first_token_ms=ttft_ms,
        tokens_per_second=tokens_per_second, finish_reason=stored_finish_reason(status, finish_reason),
    )
    search_hooks.message_saved(message_id)
    room = Room.objects.filter(pk=room_id, is_deleted=False)
    room.update(
        last_activity=now,
        last_message_preview=Case(When(active_leaf_id=message_id, then=Value(_preview(text))),
                                  default=F("last_message_preview")),
    )
    Project.objects.filter(pk__in=room.values("project_id")).update(last_chat_at=now)


def _worker_is_dead(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid_text = rest.split(":", 1)[0]
    if worker == WORKER_ID or host != HOSTNAME or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not psutil.pid_exists(pid)


@transaction.atomic
def recover_interrupted_streams() -> int:
    """Replies left `streaming` by a dead process become `interrupted`, keeping the text they had.

    Watchers of those rooms are told, so an open page stops showing the reply as generating.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.STREAM_HEARTBEAT_TIMEOUT_SECONDS)
    running = Stream.objects.filter(finished_at__isnull=True).exclude(worker=WORKER_ID)
    dead = [s for s in running if s.heartbeat_at < stale_before or _worker_is_dead(s.worker)]
    if not dead:
        return 0
    now = timezone.now()
    ids = [stream.pk for stream in dead]
    Message.objects.filter(stream__pk__in=ids, status=MessageStatus.STREAMING).update(
        status=MessageStatus.INTERRUPTED
    )
    Stream.objects.filter(pk__in=ids).update(finished_at=now)
    for stream in dead:
        if stream.room_id is not None:  # a stateless completion has no watchers
            group_send_after_commit(room_group(stream.room_id), interrupted_event(stream))
    return len(dead)


def interrupted_event(stream: Stream) -> dict:
    """The end of a reply whose worker died: watchers learn it ended, with the text it had."""
    return {
        "type": "stream.end", "stream_id": str(stream.pk), "message_id": str(stream.message_id), "seq": None,
        "status": MessageStatus.INTERRUPTED, "finish_reason": "",
        "usage": {"prompt_tokens": None, "completion_tokens": None},
        "timings": {"time_to_first_token_ms": None, "tokens_per_second": None, "total_ms": None},
    }


def recover_at_startup() -> None:
    """Run once when a worker boots; a database that is not ready yet must not stop the worker."""
    try:
        recovered = recover_interrupted_streams()
    except Exception as exc:  # noqa: BLE001 - e.g. not migrated yet, or no database access (tests)
        logger.debug("stream recovery skipped: %s", exc)
        return
    if recovered:
        logger.warning("marked %d interrupted replies from a dead worker", recovered)
