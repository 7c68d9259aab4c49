"""WebSocket protocol of spec §4 at /ws/chat/<room_id>/: thin handlers over the streaming seam and services."""

from __future__ import annotations

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework import exceptions

from chat import frames, selectors, services, streaming
from chat.broadcast import EVERYONE_GROUP, call_service, user_group
from chatproject.logs import bind_request_id
from ops import metrics
from ops.panic import ais_panicking

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404

SNAPSHOT_WAIT_SECONDS = 3.0
# Tokens of a stream a client was never shown the start of (it joined mid-stream) wait this long for the
# `resume` a client sends right after connecting, which then covers them instead of doubling them.
RESUME_GRACE_SECONDS = 0.5

LAYER_EVENT_PREFIXES = ("stream.", "message.", "room.", "auth.")
WRITE_TYPES = {"send_message", "edit_message", "delete_message", "regenerate", "stop"}
FRAME_SERIALIZERS = {
    "send_message": frames.SendFrameSerializer,
    "edit_message": frames.EditFrameSerializer,
    "regenerate": frames.RegenerateFrameSerializer,
    "delete_message": frames.DeleteFrameSerializer,
    "stop": frames.StopFrameSerializer,
    "resume": frames.ResumeFrameSerializer,
    "typing": frames.TypingFrameSerializer,
}


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


def _validated(frame: dict) -> dict:
    serializer_class = FRAME_SERIALIZERS.get(frame["type"])
    if serializer_class is None:
        return frame
    serializer = serializer_class(data=frame)
    if not serializer.is_valid():
        raise ProtocolError("validation_error", _first_error(serializer.errors))
    return serializer.validated_data


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """Everyone watching a room joins its group and sees the same stream; writes need ownership."""

    async def connect(self) -> None:
        metrics.websocket_opened()
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        try:
            self.room = await database_sync_to_async(selectors.get_room_for_read)(
                user=self.user, room_id=self.scope["url_route"]["kwargs"]["room_id"]
            )
        except exceptions.NotFound:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        self.group = self.room.group_name
        self.can_write = self.room.owner_id == self.user.pk
        self.token_id = self.scope.get("auth_token_id")
        session = self.scope.get("session")
        self.session_key = None if self.token_id else getattr(session, "session_key", None)
        self.sent: dict[str, list[int]] = {}  # stream id -> [seq, characters] this client has
        self.pending_resume: dict[str, list[dict]] = {}
        self.raw: set[str] = set()  # streams passed on as they come: no start was seen and no resume came
        self.filling: set[str] = set()  # streams whose lost events are being fetched from a remote job
        self.waits: set[asyncio.Task] = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        await self.channel_layer.group_add(EVERYONE_GROUP, self.channel_name)
        await self.accept()
        if await ais_panicking():
            await self.send_json({"type": "panic", "active": True})
        await self.channel_layer.group_send(
            self.group, {"type": "room.presence", "user": self.user.username, "online": True}
        )

    async def refuse(self, code: int) -> None:
        """Accept, then close with `code`: a handshake refused outright reaches a browser as 1006 with no reason,
        and the page could not tell "sign in again" (4401) from "no such chat" (4404)."""
        await self.accept()
        await self.close(code=code)

    async def dispatch(self, message: dict) -> None:
        """Channel-layer events skip Channels' stale-connection check, a database-thread hop per event per watcher:
        these handlers reach the database only through database_sync_to_async, which does that check itself."""
        if message["type"].startswith(LAYER_EVENT_PREFIXES):
            await getattr(self, message["type"].replace(".", "_"))(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        metrics.websocket_closed()
        for task in list(getattr(self, "waits", ())):
            task.cancel()
        if getattr(self, "group", None):
            await self.channel_layer.group_send(self.group, streaming.typing_event(self.user, False))
            await self.channel_layer.group_send(
                self.group, {"type": "room.presence", "user": self.user.username, "online": False}
            )
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
            await self.channel_layer.group_discard(EVERYONE_GROUP, self.channel_name)

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return json.loads(text_data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError("invalid_json", "Frame is not valid JSON.") from exc

    # --- client → server ---------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Malformed frames get an `error` frame; the connection stays open."""
        bind_request_id()  # each frame is a request of its own in the logs, and so is the reply it starts
        try:
            if text_data is None:
                raise ProtocolError("invalid_frame", "Send JSON text frames.")
            frame = await self.decode_json(text_data)
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise ProtocolError("invalid_frame", "A frame is a JSON object with a string `type`.")
            handler = getattr(self, f"on_{frame['type']}", None)
            if handler is None:
                raise ProtocolError("unknown_type", "Unknown frame type.")
            if frame["type"] in WRITE_TYPES and not self.can_write:
                raise ProtocolError("read_only", "You can watch this room but not change it.")
            await handler(_validated(frame))
        except ProtocolError as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
        except exceptions.APIException as exc:
            code = getattr(exc, "error_code", None) or exc.get_codes()
            code = code if isinstance(code, str) else "validation_error"
            await self.send_json({"type": "error", "code": code, "message": _first_error(exc.detail)})
        except Exception:  # noqa: BLE001 - one bad frame must not end the connection
            logger.exception("websocket frame failed")
            await self.send_json({"type": "error", "code": "server_error", "message": "Something went wrong."})

    async def _message(self, message_id):
        message = await database_sync_to_async(selectors.get_message_for_write)(user=self.user, message_id=message_id)
        if message.room_id != self.room.pk:
            raise exceptions.NotFound("Message not found.")
        return message

    async def _start(self, frame: dict, **kwargs) -> None:
        options = dict(frame["options"])
        system_prompt = options.pop("system_prompt", "")
        await streaming.start_reply(user=self.user, room=self.room, model=frame["model"], options=options,
                                    system_prompt=system_prompt, **kwargs)

    async def on_send_message(self, frame: dict) -> None:
        await self._start(frame, action="send", content=frame["content"], files=frame["files"],
                          search_all_rooms=frame["search_all_rooms"])

    async def on_edit_message(self, frame: dict) -> None:
        message = await self._message(frame["message_id"])
        await self._start(frame, action="edit", message=message, content=frame["content"])

    async def on_regenerate(self, frame: dict) -> None:
        message = await self._message(frame["message_id"]) if frame["message_id"] else None
        await self._start(frame, action="regenerate", message=message)

    async def on_delete_message(self, frame: dict) -> None:
        message = await self._message(frame["message_id"])
        await call_service(services.delete_message, room=self.room, message=message)

    async def on_stop(self, frame: dict) -> None:
        await streaming.stop_replies(room=self.room, stream_id=frame["stream_id"])

    async def on_typing(self, frame: dict) -> None:
        if self.can_write:  # someone who may only watch cannot be about to send anything
            await self.channel_layer.group_send(self.group, streaming.typing_event(self.user, frame["is_typing"]))

    async def on_ping(self, frame: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_resume(self, frame: dict) -> None:
        """Text so far (after `last_seq` of `stream_id` if given), then live tokens: nothing lost or doubled.

        A named stream that already ended (its worker restarted, say) gets its `stream_end` with the stored
        text, so the page stops showing it as generating.
        """
        last_seq = frame["last_seq"] or 0
        wanted = str(frame["stream_id"]) if frame["stream_id"] else None
        streams = await streaming.running_streams(self.room.pk)
        for stream in streams:
            since = last_seq if wanted in (None, stream.stream_id) and (wanted or len(streams) == 1) else 0
            snapshot = streaming.local_snapshot(stream.stream_id, since)
            if snapshot is not None:
                await self._send_catchup(snapshot)
            elif stream.control_channel:
                self.pending_resume.setdefault(stream.stream_id, [])
                await self._ask_for_snapshot(stream.stream_id, stream.control_channel, since)
        if wanted and wanted not in {stream.stream_id for stream in streams}:
            ended = await streaming.ended_stream(room_id=self.room.pk, stream_id=wanted)
            if ended is not None:
                await self.send_json(ended)
        await self.send_json({"type": "resumed", "streams": [stream.stream_id for stream in streams]})

    async def _send_catchup(self, snapshot: dict, *, resumed: bool = True) -> None:
        """The text after what the client has, then whatever was held back meanwhile.

        `resumed`: a catch-up the client asked for (`resume`); otherwise a gap filled after a lost event.
        """
        stream_id = snapshot["stream_id"]
        self.filling.discard(stream_id)
        if resumed:
            await self.send_json({"type": "stream_start", "stream_id": stream_id, "message_id": snapshot["message_id"],
                                  "model": snapshot["model"], "resumed": True})
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
        snapshot = streaming.local_snapshot(stream_id, self.sent[stream_id][0])
        if snapshot is not None:
            await self._send_catchup(snapshot, resumed=False)
            return
        running = {stream.stream_id: stream for stream in await streaming.running_streams(self.room.pk)}
        control_channel = running[stream_id].control_channel if stream_id in running else ""
        if not control_channel:  # the job is already gone: pass on what came, as it came
            await self._release_held(stream_id)
            return
        self.filling.add(stream_id)
        await self._ask_for_snapshot(stream_id, control_channel, self.sent[stream_id][0])

    async def _ask_for_snapshot(self, stream_id: str, control_channel: str, last_seq: int) -> None:
        """Ask a job on another worker for its text; if no answer comes (a lost message, a dead worker),
        the held events are passed on after SNAPSHOT_WAIT_SECONDS rather than held forever."""
        await streaming.request_snapshot(control_channel=control_channel, reply_channel=self.channel_name,
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
            if sent is not None and (event.get("seq") or 0) > sent[0]:  # the last tokens' events were lost
                tail = (await streaming.stored_text(event["message_id"]))[sent[1]:]  # saved before the end
                if tail:
                    await self.send_json({"type": "token", "stream_id": stream_id, "seq": event["seq"],
                                          "delta": tail})
            await self.send_json(
                {"type": "stream_end", **{k: event[k] for k in ("stream_id", "message_id", "status", "usage",
                                                               "timings")},
                 "finish_reason": event.get("finish_reason", "")}  # a worker of an older release sends none
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
        if event.get("user_id") != self.user.pk:  # never your own typing, not even from your other tabs
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
        """The panic switch went on (or off); with a wipe this room is gone, and the socket closes after."""
        await self.send_json({"type": "panic", "active": event["active"], "reason": event["reason"],
                              "wiped": event["wiped"]})
        if event["active"] and event["wiped"]:
            await self.close(code=CLOSE_NOT_FOUND)

    async def auth_ended(self, event: dict) -> None:
        """This login ended (signed out, token revoked, account deactivated or deleted): close the socket."""
        token_id, session_key = event.get("token_id"), event.get("session_key")
        everything = token_id is None and session_key is None
        if everything or (token_id is not None and token_id == self.token_id) or (
            session_key is not None and session_key == self.session_key
        ):
            await self.close(code=CLOSE_UNAUTHENTICATED)
