"""A reply's events as server-sent events: `start`, `token` per delta, then `done` or `error`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from chat.streaming.replies import Reply

SSE_NAMES = {"stream.start": "start", "stream.token": "token", "stream.end": "done", "stream.error": "error"}


def sse_frame(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_frame(event: dict) -> bytes | None:
    """One job event as an SSE frame (None: nothing to send; an errored reply's `error` frame ends it)."""
    name = SSE_NAMES.get(event["type"])
    if name == "start":
        return sse_frame(name, {k: event[k] for k in ("stream_id", "message_id", "model")})
    if name == "token":
        return sse_frame(name, {"seq": event["seq"], "delta": event["delta"]})
    if name == "error":
        return sse_frame(name, {"code": event["code"], "message": event["message"]})
    if name == "done" and event["status"] != "error":
        return sse_frame(name, {"finish_reason": event.get("finish_reason", ""),
                                **{k: event[k] for k in ("status", "usage", "timings")}})
    return None


async def sse_stream(reply: Reply) -> AsyncIterator[bytes]:
    """Relay one reply's events; a client that goes away stops the relay, never the job."""
    async for event in reply.iter_events():
        frame = event_frame(event)
        if frame is not None:
            yield frame
