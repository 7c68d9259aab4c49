"""WebSocket protocol of spec §4 at /ws/chat/<room_id>/: thin handlers over services and jobs."""

from __future__ import annotations

import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework import exceptions

from chat import generation, jobs, selectors, services
from chat.broadcast import call_service
from chat.models import Message, Stream
from chat.serializers import GenerationOptionsSerializer, plainly_valid
from chatproject.consumers import InboxConsumerMixin
from models_mgmt.providers import ProviderError
from models_mgmt.registry import registry

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404

SNAPSHOT_WAIT_SECONDS = 3.0
# Tokens of a stream a client was never shown the start of (it joined mid-stream) wait this long for the
# `resume` a client sends right after connecting, which then covers them instead of doubling them.
RESUME_GRACE_SECONDS = 0.5

WRITE_TYPES = {"send_message", "edit_message", "delete_message", "regenerate", "stop"}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _first_error(detail) -> str:
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        return f"{key}: {_first_error(value)}"
    if isinstance(detail, list):
        return _first_error(detail[0]) if detail else "Invalid input."
    return str(detail)


@database_sync_to_async
def _load_room(user, room_id):
    return selectors.get_room_for_read(user=user, room_id=room_id)


@database_sync_to_async
def _running_streams(room_id) -> list[tuple[str, str, str, str]]:
    rows = Stream.objects.filter(room_id=room_id, finished_at__isnull=True).order_by("started_at")
    return [(str(s.pk), str(s.message_id), s.model, s.control_channel) for s in rows]


class ChatConsumer(InboxConsumerMixin, AsyncJsonWebsocketConsumer):
    """Everyone watching a room joins its group and sees the same stream; writes need ownership."""

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.room = await _load_room(self.user, self.scope["url_route"]["kwargs"]["room_id"])
        except exceptions.NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = self.room.group_name
        self.can_write = self.room.owner_id == self.user.pk
        self.sent: dict[str, list[int]] = {}  # stream id -> [seq, characters] this client has
        self.pending_resume: dict[str, list[dict]] = {}
        self.raw: set[str] = set()  # streams passed on as they come: no start was seen and no resume came
        self.filling: set[str] = set()  # streams whose lost events are being fetched from a remote job
        self.waits: set[asyncio.Task] = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.channel_layer.group_send(
            self.group, {"type": "room.presence", "user": self.user.username, "online": True}
        )

    async def dispatch(self, message: dict) -> None:
        """Skip Channels' per-message `aclose_old_connections()`: it is a hop to the database thread for
        every token sent to every watcher. Every database access here goes through database_sync_to_async,
        which closes stale connections around each call itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        for task in list(getattr(self, "waits", ())):
            task.cancel()
        if getattr(self, "group", None):
            await self.channel_layer.group_send(
                self.group, {"type": "room.presence", "user": self.user.username, "online": False}
            )
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # --- client → server ---------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Malformed frames get an `error` frame; the connection stays open."""
        try:
            if text_data is None:
                raise ProtocolError("invalid_frame", "Send JSON text frames.")
            try:
                frame = json.loads(text_data)
            except ValueError as exc:
                raise ProtocolError("invalid_json", "Frame is not valid JSON.") from exc
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise ProtocolError("invalid_frame", "A frame is a JSON object with a string `type`.")
            handler = getattr(self, f"on_{frame['type']}", None)
            if handler is None:
                raise ProtocolError("unknown_type", f"Unknown frame type {frame['type']!r}.")
            if frame["type"] in WRITE_TYPES and not self.can_write:
                raise ProtocolError("read_only", "You can watch this room but not change it.")
            await handler(frame)
        except ProtocolError as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
        except exceptions.APIException as exc:
            code = getattr(exc, "error_code", None) or exc.get_codes()
            code = code if isinstance(code, str) else "validation_error"
            await self.send_json({"type": "error", "code": code, "message": _first_error(exc.detail)})
        except ProviderError as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
        except Exception:  # noqa: BLE001 - one bad frame must not end the connection
            logger.exception("websocket frame failed")
            await self.send_json({"type": "error", "code": "server_error", "message": "Something went wrong."})

    async def _options(self, frame: dict):
        raw = frame.get("options") or {}
        if not isinstance(raw, dict):
            raise ProtocolError("validation_error", "options must be an object.")
        if not raw:
            return jobs.parse_options({}), ""
        values = plainly_valid(GenerationOptionsSerializer, raw)
        if values is None:
            options = GenerationOptionsSerializer(data=raw)
            if not options.is_valid():
                raise ProtocolError("validation_error", _first_error(options.errors))
            values = options.validated_data
        return jobs.parse_options(values), str(raw.get("system_prompt") or "")

    async def _room_and_model(self, name):
        """The cached room (kept current by room.updated events; services re-read it) and the model to use."""
        if name is not None and not isinstance(name, str):
            raise ProtocolError("validation_error", "model must be a string.")
        return self.room, await registry.resolve(name or self.room.model)

    async def _message(self, message_id):
        if not isinstance(message_id, str):
            raise ProtocolError("validation_error", "message_id is required.")
        message = await database_sync_to_async(selectors.get_message_for_write)(
            user=self.user, message_id=message_id
        )
        if message.room_id != self.room.pk:
            raise exceptions.NotFound("Message not found.")
        return message

    async def _content(self, frame: dict) -> str:
        """The message text: a non-blank string within MESSAGE_MAX_CHARS (checked without a serializer,
        which costs more than the rest of a send on the hot path)."""
        content = frame.get("content")
        if not isinstance(content, str):
            raise ProtocolError("validation_error", "content: This field is required.")
        if not content.strip():
            raise ProtocolError("validation_error", "content: Message is empty.")
        try:
            return services.validate_message_content(content)
        except exceptions.ValidationError as exc:
            raise ProtocolError("validation_error", _first_error(exc.detail)) from exc

    async def _start(self, service, *, model, options, system_prompt: str, **kwargs) -> None:
        """Begin a reply with `service` in a start slot, held until the reply's first token (or briefly)."""
        async with jobs.start_slot():
            started = await call_service(service, user=self.user, model=model.name, system_prompt=system_prompt,
                                         control_channel=jobs.new_control_channel(),
                                         max_turns=jobs.max_prompt_turns(model), **kwargs)
            await jobs.until_first_token(jobs.launch(started=started, model=model, options=options))

    async def on_send_message(self, frame: dict) -> None:
        content = await self._content(frame)
        options, system_prompt = await self._options(frame)
        room, model = await self._room_and_model(frame.get("model"))
        await self._start(generation.send_user_message, model=model, options=options, system_prompt=system_prompt,
                          room=room, content=content)

    async def on_edit_message(self, frame: dict) -> None:
        content = await self._content(frame)
        message = await self._message(frame.get("message_id"))
        options, system_prompt = await self._options(frame)
        room, model = await self._room_and_model(frame.get("model"))
        await self._start(generation.edit_user_message, model=model, options=options, system_prompt=system_prompt,
                          room=room, message=message, content=content)

    async def on_regenerate(self, frame: dict) -> None:
        message = await self._message(frame["message_id"]) if frame.get("message_id") is not None else None
        options, system_prompt = await self._options(frame)
        room, model = await self._room_and_model(frame.get("model") or (message.model if message else "") or None)
        await self._start(generation.regenerate_reply, model=model, options=options, system_prompt=system_prompt,
                          room=room, message=message)

    async def on_delete_message(self, frame: dict) -> None:
        message = await self._message(frame.get("message_id"))
        local = next((job for job in jobs.JOBS.values() if job.message_id == str(message.pk)), None)
        if local is not None:
            local.request_stop()
        await call_service(generation.delete_message, room=self.room, message=message)

    async def on_stop(self, frame: dict) -> None:
        stream_id = frame.get("stream_id")
        if stream_id is not None and not isinstance(stream_id, str):
            raise ProtocolError("validation_error", "stream_id must be a string.")
        for job in list(jobs.JOBS.values()):  # fast path: the job runs in this process
            if job.room_id == str(self.room.pk) and stream_id in (None, job.stream_id):
                job.request_stop()
        await call_service(services.request_stop, room=self.room, stream_id=stream_id)

    async def on_typing(self, frame: dict) -> None:
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "room.typing",
                "user": self.user.username,
                "is_typing": bool(frame.get("is_typing")),
                "sender": self.channel_name,
            },
        )

    async def on_ping(self, frame: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_resume(self, frame: dict) -> None:
        """Text so far (after `last_seq` of `stream_id` if given), then live tokens: nothing lost or doubled."""
        last_seq = frame.get("last_seq") or 0
        if not isinstance(last_seq, int) or last_seq < 0:
            raise ProtocolError("validation_error", "last_seq must be a non-negative integer.")
        wanted = frame.get("stream_id")
        streams = await _running_streams(self.room.pk)
        for stream_id, _message_id, _model, control_channel in streams:
            since = last_seq if wanted in (None, stream_id) and (wanted or len(streams) == 1) else 0
            local = jobs.JOBS.get(stream_id)
            if local is not None:
                await self._send_catchup(local.snapshot(since))
            elif control_channel:
                self.pending_resume.setdefault(stream_id, [])
                await self._ask_for_snapshot(stream_id, control_channel, since)
        await self.send_json({"type": "resumed", "streams": [row[0] for row in streams]})

    async def _send_catchup(self, snapshot: dict, *, resumed: bool = True) -> None:
        """The text after what the client has, then whatever was held back meanwhile.

        `resumed`: a catch-up the client asked for (`resume`); otherwise a gap filled after a lost event.
        """
        stream_id = snapshot["stream_id"]
        self.filling.discard(stream_id)
        if resumed:
            await self.send_json(
                {
                    "type": "stream_start",
                    "stream_id": stream_id,
                    "message_id": snapshot["message_id"],
                    "model": snapshot["model"],
                    "resumed": True,
                }
            )
        frame = {"type": "token", "stream_id": stream_id, "seq": snapshot["seq"], "delta": snapshot["delta"]}
        if resumed:
            frame["resumed"] = True
        if resumed or snapshot["seq"] > self.sent.get(stream_id, [0, 0])[0]:
            await self.send_json(frame)
        self.sent[stream_id] = [snapshot["seq"], snapshot.get("offset", 0) + len(snapshot["delta"])]
        self.raw.discard(stream_id)
        for event in self.pending_resume.pop(stream_id, []):
            await self._forward(event)

    async def _fill_gap(self, event: dict) -> None:
        """An earlier event of this stream never arrived (channel layers deliver at most once): send the
        missing text from the job, then carry on. Nothing lost, nothing doubled."""
        stream_id = event["stream_id"]
        self.pending_resume[stream_id] = [event]
        local = jobs.JOBS.get(stream_id)
        if local is not None:
            await self._send_catchup(local.snapshot(self.sent[stream_id][0]), resumed=False)
            return
        control_channel = next((row[3] for row in await _running_streams(self.room.pk) if row[0] == stream_id), "")
        if not control_channel:  # the job is already gone: pass on what came, as it came
            await self._release_held(stream_id)
            return
        self.filling.add(stream_id)
        await self._ask_for_snapshot(stream_id, control_channel, self.sent[stream_id][0])

    async def _ask_for_snapshot(self, stream_id: str, control_channel: str, last_seq: int) -> None:
        """Ask a job on another worker for its text; if no answer comes (a lost message, a dead worker),
        the held events are passed on after SNAPSHOT_WAIT_SECONDS rather than held forever."""
        await jobs.request_snapshot(control_channel=control_channel, reply_channel=self.channel_name,
                                    last_seq=last_seq)
        self._release_later(stream_id, SNAPSHOT_WAIT_SECONDS)

    def _release_later(self, stream_id: str, seconds: float) -> None:
        """Pass on the events held for `stream_id` if nothing has taken them within `seconds`."""
        held = self.pending_resume.get(stream_id)

        async def give_up() -> None:
            await asyncio.sleep(seconds)
            if self.pending_resume.get(stream_id) is held:
                await self._release_held(stream_id)

        self.waits.add(task := asyncio.create_task(give_up()))
        task.add_done_callback(self.waits.discard)

    async def _release_held(self, stream_id: str) -> None:
        self.sent.pop(stream_id, None)
        self.filling.discard(stream_id)
        self.raw.add(stream_id)
        for held in self.pending_resume.pop(stream_id, []):
            await self._forward(held)

    async def _stored_tail(self, message_id: str, chars: int) -> str:
        content = await database_sync_to_async(
            lambda: Message.objects.filter(pk=message_id).values_list("content", flat=True).first()
        )()
        return (content or "")[chars:]

    # --- server → client (channel-layer events) ------------------------------------------------------

    async def _forward(self, event: dict) -> None:
        kind = event["type"]
        stream_id = event.get("stream_id")
        if stream_id in self.pending_resume:  # a catch-up is on its way: these follow it
            self.pending_resume[stream_id].append(event)
            return
        sent = self.sent.get(stream_id)  # [seq, characters] the client has; None: not following this stream
        if kind == "stream.token" and sent is None and stream_id not in self.raw:
            self.pending_resume[stream_id] = [event]  # joined mid-stream: give a `resume` the chance to cover it
            self._release_later(stream_id, RESUME_GRACE_SECONDS)
            return
        if kind == "stream.token":
            if sent is not None:
                if event["seq"] <= sent[0]:
                    return  # already covered by a catch-up
                if event.get("from_seq", sent[0]) > sent[0]:
                    await self._fill_gap(event)
                    return
                sent[0], sent[1] = event["seq"], sent[1] + len(event["delta"])
            await self.send_json({"type": "token", "stream_id": stream_id, "seq": event["seq"],
                                  "delta": event["delta"]})
        elif kind == "stream.end":
            self.sent.pop(stream_id, None)
            self.raw.discard(stream_id)
            if sent is not None and event.get("seq", 0) > sent[0]:  # the last tokens' events were lost
                tail = await self._stored_tail(event["message_id"], sent[1])  # saved before the end is sent
                if tail:
                    await self.send_json({"type": "token", "stream_id": stream_id, "seq": event["seq"],
                                          "delta": tail})
            await self.send_json(
                {"type": "stream_end", **{k: event[k] for k in ("stream_id", "message_id", "status", "usage",
                                                               "timings")}}
            )

    async def stream_start(self, event: dict) -> None:
        self.sent[event["stream_id"]] = [0, 0]
        await self.send_json({"type": "stream_start", "stream_id": event["stream_id"],
                              "message_id": event["message_id"], "model": event["model"]})

    async def stream_token(self, event: dict) -> None:
        await self._forward(event)

    async def stream_end(self, event: dict) -> None:
        await self._forward(event)

    async def stream_error(self, event: dict) -> None:
        await self.send_json(
            {"type": "error", "code": event["code"], "message": event["message"], "stream_id": event["stream_id"]}
        )

    async def stream_snapshot(self, event: dict) -> None:
        if event["stream_id"] in self.pending_resume:
            await self._send_catchup(event, resumed=event["stream_id"] not in self.filling)

    async def message_created(self, event: dict) -> None:
        await self.send_json({"type": "message_created", "message": event["message"]})

    async def message_updated(self, event: dict) -> None:
        await self.send_json({"type": "message_updated", "message": event["message"]})

    async def message_deleted(self, event: dict) -> None:
        await self.send_json({"type": "message_deleted", "message_id": event["message_id"]})

    async def room_typing(self, event: dict) -> None:
        if event.get("sender") != self.channel_name:
            await self.send_json({"type": "typing", "user": event["user"], "is_typing": event["is_typing"]})

    async def room_presence(self, event: dict) -> None:
        await self.send_json({"type": "presence", "user": event["user"], "online": event["online"]})

    async def room_updated(self, event: dict) -> None:
        for key in ("name", "model", "agent", "system_prompt", "pinned", "archived"):
            setattr(self.room, key, event["room"][key])
        await self.send_json({"type": "room_updated", "room": event["room"]})

    async def room_branch(self, event: dict) -> None:
        await self.send_json({"type": "branch_switched", "active_leaf": event["active_leaf"]})

    async def room_deleted(self, event: dict) -> None:
        await self.send_json({"type": "room_deleted", "room_id": event["room_id"]})
        await self.close(code=CLOSE_NOT_FOUND)

    async def room_panic(self, event: dict) -> None:
        await self.send_json({"type": "panic", "reason": event.get("reason", "")})

