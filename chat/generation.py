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
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from chat.broadcast import broadcast_after_commit
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


def _running_streams_of(user: User):
    return Stream.objects.filter(user=user, finished_at__isnull=True)


def _ensure_stream_capacity(user: User) -> None:
    """At most STREAMS_PER_USER running; dead workers' jobs are reaped before refusing."""
    if connection.features.has_select_for_update:  # SQLite's BEGIN IMMEDIATE already serialises writers
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
    if _running_streams_of(user).count() >= settings.STREAMS_PER_USER:
        recover_interrupted_streams()
        if _running_streams_of(user).count() >= settings.STREAMS_PER_USER:
            raise ApiError(
                f"You already have {settings.STREAMS_PER_USER} replies generating; wait or stop one.",
                code="too_many_streams",
                status_code=429,
                details={"limit": settings.STREAMS_PER_USER},
            )


def _lock_room(room: Room, user: User) -> Room:
    """Re-read the room inside the transaction (its active leaf may have moved) and check ownership."""
    fresh = Room.objects.select_for_update().filter(pk=room.pk, is_deleted=False).first()
    if fresh is None:
        raise ApiError("Room not found.", code="not_found", status_code=404)
    if fresh.owner_id != user.pk:
        raise ApiError("Only the room's owner can post in it.", code="read_only", status_code=403)
    _ensure_stream_capacity(user)
    return fresh


def _begin(
    *, room: Room, user: User, parent: Message, model: str, control_channel: str, system_prompt: str,
    new_user_message: Message | None = None,
) -> StartedGeneration:
    """The assistant placeholder, its Stream row, the room's summary and the prompt, in one transaction."""
    assistant = Message.objects.create(
        room=room, parent=parent, role=MessageRole.ASSISTANT, content="", model=model, status=MessageStatus.STREAMING
    )
    stream = Stream.objects.create(
        room=room, message=assistant, user=user, model=model, worker=WORKER_ID, control_channel=control_channel
    )
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(
        active_leaf=assistant,
        message_count=F("message_count") + (2 if new_user_message else 1),
        last_message_preview=" ".join(parent.content.split())[:PREVIEW_CHARS],
        last_activity=now,
    )
    room.active_leaf = assistant
    if room.project_id:
        Project.objects.filter(pk=room.project_id).update(last_chat_at=now)
    if new_user_message is not None:
        broadcast_after_commit(room, message_event("created", new_user_message))
    broadcast_after_commit(room, message_event("created", assistant))
    turns = prompt_turns(room=room, parent_id=parent.pk, system_prompt=system_prompt)
    return StartedGeneration(stream=stream, assistant=assistant, user_message=new_user_message, turns=turns)


@transaction.atomic
def send_user_message(
    *, room: Room, user: User, content: str, model: str, control_channel: str = "", system_prompt: str = ""
) -> StartedGeneration:
    """A new user turn on the active branch, and the assistant reply that will stream under it."""
    validate_message_content(content)
    room = _lock_room(room, user)
    user_message = Message.objects.create(
        room=room, parent_id=room.active_leaf_id, role=MessageRole.USER, content=content, author=user
    )
    return _begin(room=room, user=user, parent=user_message, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=user_message)


@transaction.atomic
def edit_user_message(
    *, room: Room, user: User, message: Message, content: str, model: str, control_channel: str = "",
    system_prompt: str = "",
) -> StartedGeneration:
    """An edit is a sibling of the original turn (the original stays reachable), then a fresh reply."""
    if message.role != MessageRole.USER:
        raise ApiError("Only your own messages can be edited.", code="not_editable", status_code=400)
    validate_message_content(content)
    room = _lock_room(room, user)
    edited = Message.objects.create(
        room=room, parent_id=message.parent_id, role=MessageRole.USER, content=content, author=user,
        edited_at=timezone.now(),
    )
    return _begin(room=room, user=user, parent=edited, model=model, control_channel=control_channel,
                  system_prompt=system_prompt, new_user_message=edited)


@transaction.atomic
def regenerate_reply(
    *, room: Room, user: User, message: Message | None, model: str, control_channel: str = "",
    system_prompt: str = "",
) -> StartedGeneration:
    """A new assistant sibling for an assistant turn (default: the active leaf), or a reply to a user turn."""
    room = _lock_room(room, user)
    target = message or (Message.objects.filter(pk=room.active_leaf_id).first() if room.active_leaf_id else None)
    if target is None:
        raise ApiError("There is nothing to regenerate yet.", code="nothing_to_regenerate", status_code=409)
    parent = target.parent if target.role == MessageRole.ASSISTANT else target
    if parent is None or parent.role != MessageRole.USER:
        raise ApiError("A reply needs a user message to answer.", code="nothing_to_regenerate", status_code=409)
    return _begin(room=room, user=user, parent=parent, model=model or target.model, control_channel=control_channel,
                  system_prompt=system_prompt)


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
    fields = ("id", "parent_id", "role", "content", "is_deleted")
    by_id = {m["id"]: m for m in Message.objects.filter(room_id=room.pk).values(*fields)}
    chain: list[dict] = []
    cursor = by_id.get(parent_id)
    while cursor is not None:
        if not cursor["is_deleted"] and cursor["content"]:
            chain.append(cursor)
        cursor = by_id.get(cursor["parent_id"])
    chain.reverse()
    turns = []
    system = system_prompt or room.system_prompt
    if system:
        turns.append(ChatTurn(role="system", content=system))
    turns.extend(ChatTurn(role=m["role"], content=m["content"]) for m in chain)
    return turns


def save_partial(*, message_id, stream_id, text: str) -> None:
    """Periodic flush so a crash loses at most one flush interval; doubles as the job's heartbeat."""
    now = timezone.now()
    Message.objects.filter(pk=message_id).update(content=text)
    Stream.objects.filter(pk=stream_id).update(heartbeat_at=now)


def heartbeat(*, stream_id) -> bool:
    """Mark the job alive; returns whether a stop was requested through the database."""
    Stream.objects.filter(pk=stream_id).update(heartbeat_at=timezone.now())
    return Stream.objects.filter(pk=stream_id, cancel_requested=True).exists()


@transaction.atomic
def finish_stream(
    *,
    stream_id,
    message_id,
    text: str,
    status: str,
    usage: Usage,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    error: str = "",
) -> Message:
    """Write the final text, status, counts and timings; the room's sidebar fields follow."""
    message = Message.objects.select_related("room").get(pk=message_id)
    message.content = text
    message.status = status
    message.error = error
    message.prompt_tokens = usage.prompt_tokens
    message.completion_tokens = usage.completion_tokens
    message.time_to_first_token_ms = ttft_ms
    message.tokens_per_second = tokens_per_second
    message.save(
        update_fields=[
            "content", "status", "error", "prompt_tokens", "completion_tokens", "time_to_first_token_ms",
            "tokens_per_second",
        ]
    )
    Stream.objects.filter(pk=stream_id).update(finished_at=timezone.now())
    room = message.room
    if not room.is_deleted:
        refresh_room_summary(room)
    return message


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
