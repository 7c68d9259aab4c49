"""Starting, stopping and resuming replies: the calls transports make into the streaming seam."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from accounts.models import User
from chat import selectors, services
from chat.broadcast import call_service, room_group
from chat.models import Message, Room, Stream
from chat.streaming import writes
from chat.streaming.jobs import JOBS, GenerationJob, max_prompt_turns, new_control_channel
from chat.streaming.priority import starting
from chat.streaming.user_defaults import reply_defaults
from chatproject.errors import ApiError
from chatproject.logs import request_id
from models_mgmt.providers import GenerationOptions, ProviderError
from models_mgmt.registry import registry
from models_mgmt.selectors import amodel_defaults
from ops.panic import ais_panicking, arefuse_during_panic

# A start counts as under way (running replies yield to it) until its first token, or this long at most.
FIRST_TOKEN_PRIORITY_SECONDS = 0.05

START_SERVICES = {
    "send": writes.send_user_message,
    "edit": writes.edit_user_message,
    "regenerate": writes.regenerate_reply,
}


def parse_options(raw: dict | None, *, keep_alive: str | int | None = None) -> GenerationOptions:
    """Sampling options from a validated request, over whatever defaults were merged into it."""
    raw = raw or {}
    return GenerationOptions(
        temperature=float(raw.get("temperature", 0.7)),
        top_p=float(raw.get("top_p", 0.9)),
        top_k=int(raw.get("top_k", 40)),
        repeat_penalty=float(raw.get("repeat_penalty", 1.1)),
        max_tokens=int(raw.get("max_tokens") or settings.DEFAULT_MAX_TOKENS),
        keep_alive=keep_alive,
    )


def typing_event(user: User, is_typing: bool) -> dict:
    """The room event for someone's typing indicator; watchers never show their own user's."""
    return {"type": "room.typing", "user": user.username, "user_id": user.pk, "is_typing": is_typing}


@dataclass
class Reply:
    """A started reply: its job, and (when asked for) the queue of its events for the caller to relay."""

    job: GenerationJob
    events: asyncio.Queue | None = None

    async def iter_events(self) -> AsyncIterator[dict]:
        """The job's events until its end; leaving early stops the relay, never the job."""
        assert self.events is not None, "start_reply(subscribe=True) gives a reply its events"
        try:
            while True:
                event = await self.events.get()
                yield event
                if event["type"] == "stream.end":
                    return
        finally:
            self.job.unsubscribe(self.events)


async def start_reply(
    *, user: User, room: Room | uuid.UUID, action: str = "send", content: str = "", message: Message | None = None,
    model: str | None = None, options: dict | None = None, system_prompt: str = "", subscribe: bool = False,
    files: list[uuid.UUID] | None = None, search_all_rooms: bool = False,
) -> Reply:
    """Begin a reply (`send` a new user turn, `edit` one, or `regenerate` an answer) and run it detached.

    The room is checked in the start transaction (404 for anyone but its owner, 409 while another reply in it
    is generating, 429 beyond the per-user limit); with `subscribe` the caller gets every event from the start.
    """
    await arefuse_during_panic()
    with starting():
        name = model or (message.model if action == "regenerate" and message is not None else "")
        if not name:
            if not isinstance(room, Room):
                room = await database_sync_to_async(selectors.get_room_for_write)(user=user, room_id=room)
            name = room.model
        # The room's stored settings and the user's settings-page defaults, under whatever the request names.
        defaults = await database_sync_to_async(reply_defaults)(
            user_id=user.pk, room_id=room.pk if isinstance(room, Room) else room
        )
        name, options = name or defaults.model, defaults.apply(options)
        system_prompt = system_prompt or defaults.system_prompt
        try:
            resolved = await registry.resolve(name or None)
        except ProviderError as exc:
            raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
        # Staff's defaults for the model come under the request's options, the room's and its user's.
        model_defaults = await amodel_defaults(resolved)
        resolved, options = model_defaults.capped(resolved), model_defaults.apply(options)
        system_prompt = system_prompt or model_defaults.system_prompt
        room_id = room.pk if isinstance(room, Room) else room
        extra = {"content": content} if action in ("send", "edit") else {}
        if model:  # a model the request names becomes the room's, so the chat reopens on it
            extra["remember_model"] = resolved.qualified_name
        if action == "send":  # what the new message asks its replies to draw on (an edit keeps the original's)
            extra.update(files=files or [], search_all_rooms=search_all_rooms)
        if action in ("edit", "regenerate"):
            extra["message"] = message
        started = await call_service(
            START_SERVICES[action], room_id=room_id, user=user, model=resolved.name, system_prompt=system_prompt,
            control_channel=new_control_channel(), max_turns=max_prompt_turns(resolved), **extra,
        )
        stream = started.stream
        job = GenerationJob(
            stream_id=str(stream.pk), message_id=str(started.assistant.pk), room_id=str(stream.room_id),
            model=resolved, options=parse_options(options, keep_alive=model_defaults.keep_alive),
            turns=started.turns,
            control_channel=stream.control_channel, request_id=request_id.get(),
        )
        reply = Reply(job=job, events=job.subscribe() if subscribe else None)
        job.start()
        if await ais_panicking():  # the switch went on while this start was committing: it stops at once
            job.request_stop()
        await get_channel_layer().group_send(room_group(stream.room_id), typing_event(user, False))  # done typing
        with contextlib.suppress(TimeoutError):  # counted as starting until its first token, but never long
            await asyncio.wait_for(job.first_token.wait(), FIRST_TOKEN_PRIORITY_SECONDS)
    return reply


async def stop_replies(*, room: Room, stream_id: uuid.UUID | None = None) -> int:
    """Stop the room's running reply (or the one named): at once when it runs here, else through its worker."""
    for job in list(JOBS.values()):
        if job.room_id == str(room.pk) and (stream_id is None or job.stream_id == str(stream_id)):
            job.request_stop()
    return await call_service(services.request_stop, room=room, stream_id=stream_id)


@dataclass
class RunningStream:
    stream_id: str
    message_id: str
    control_channel: str


def _running_streams(room_id) -> list[RunningStream]:
    rows = Stream.objects.filter(room_id=room_id, finished_at__isnull=True).order_by("started_at")
    return [RunningStream(str(s.pk), str(s.message_id), s.control_channel) for s in rows]


async def running_streams(room_id) -> list[RunningStream]:
    """The room's replies still generating, oldest first, on any worker."""
    return await database_sync_to_async(_running_streams)(room_id)


def local_snapshot(stream_id: str, last_seq: int) -> dict | None:
    """The text after `last_seq` of a reply running in this process, or None when it runs elsewhere."""
    job = JOBS.get(stream_id)
    return job.snapshot(last_seq) if job is not None else None


async def request_snapshot(*, control_channel: str, reply_channel: str, last_seq: int) -> None:
    """Ask a reply running on another worker for its text; the answer arrives as a `stream.snapshot` event."""
    await get_channel_layer().send(
        control_channel, {"type": "stream.snapshot", "reply_channel": reply_channel, "last_seq": last_seq}
    )


def _stored_text(message_id) -> str:
    return Message.objects.filter(pk=message_id).values_list("content", flat=True).first() or ""


async def stored_text(message_id) -> str:
    """A reply's text as last saved (at its end, everything it had)."""
    return await database_sync_to_async(_stored_text)(message_id)


def _ended_stream(room_id, stream_id) -> dict | None:
    stream = Stream.objects.select_related("message").filter(
        pk=stream_id, room_id=room_id, finished_at__isnull=False
    ).first()
    if stream is None:
        return None
    return {
        "type": "stream_end", "stream_id": str(stream.pk), "message_id": str(stream.message_id),
        "status": stream.message.status,
        "finish_reason": stream.message.finish_reason,
        "usage": {"prompt_tokens": stream.message.prompt_tokens,
                  "completion_tokens": stream.message.completion_tokens},
        "timings": {"time_to_first_token_ms": stream.message.time_to_first_token_ms,
                    "tokens_per_second": stream.message.tokens_per_second, "total_ms": None},
        "content": stream.message.content,
    }


async def ended_stream(*, room_id, stream_id) -> dict | None:
    """How a reply of this room ended, for a client that reconnects after it did (None: still running)."""
    return await database_sync_to_async(_ended_stream)(room_id, stream_id)
