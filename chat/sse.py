"""`chat_messages_send`: post a message and stream the reply as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from chat import generation, jobs, selectors
from chat.broadcast import call_service
from chat.serializers import MessageSendSerializer, plainly_valid
from chatproject.errors import ApiError
from models_mgmt.providers import ModelInfo, ProviderError
from models_mgmt.registry import registry

SSE_NAMES = {"stream.start": "start", "stream.token": "token", "stream.end": "done", "stream.error": "error"}


def sse_frame(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _event_frame(event: dict) -> tuple[bytes | None, bool]:
    """One job event as an SSE frame (None: nothing to send), and whether it ends the stream."""
    name = SSE_NAMES.get(event["type"])
    if name == "start":
        return sse_frame(name, {k: event[k] for k in ("stream_id", "message_id", "model")}), False
    if name == "token":
        return sse_frame(name, {"seq": event["seq"], "delta": event["delta"]}), False
    if name == "error":
        return sse_frame(name, {"code": event["code"], "message": event["message"]}), False
    if name == "done":
        if event["status"] != "error":
            return sse_frame(name, {k: event[k] for k in ("status", "usage", "timings")}), True
        return None, True
    return None, False


async def relay(job: jobs.GenerationJob, queue) -> AsyncIterator[bytes]:
    """Relay one job's events (`queue` subscribed before it started); a client that goes away stops the
    relay, never the job. Events already waiting go out as one chunk (a start and its first token always
    are), one socket write instead of several."""
    try:
        while True:
            frames, ended = [], False
            event = await queue.get()
            while True:
                frame, ended = _event_frame(event)
                if frame is not None:
                    frames.append(frame)
                if ended or queue.empty():
                    break
                event = queue.get_nowait()
            if frames:
                yield b"".join(frames)
            if ended:
                return
    finally:
        job.unsubscribe(queue)


async def begin_stream(*, start: Callable[..., generation.StartedGeneration], model: ModelInfo, values: dict,
                       **identity) -> tuple[jobs.GenerationJob, asyncio.Queue]:
    """Begin a reply through `start` (a send service; `identity` names the room and who sends) and subscribe
    to it. As over the WebSocket, the start slot is held until the first token (or briefly), so the first
    replies of a burst are not held back by the last ones; the token waits in the queue for the relay."""
    async with jobs.start_slot():
        started = await call_service(
            start, content=values["content"], model=model.name, control_channel=jobs.new_control_channel(),
            system_prompt=values["system_prompt"], max_turns=jobs.max_prompt_turns(model), **identity,
        )
        job = jobs.create(started=started, model=model, options=jobs.parse_options(values))
        queue = job.subscribe()
        job.start()
        await jobs.until_first_token(job)
    return job, queue


class EventStreamNegotiation(DefaultContentNegotiation):
    """Clients of an event stream ask for `text/event-stream` (EventSource-style libraries always do): the
    stream is the answer to that, and an error before the stream starts is JSON, as for every other client.
    DRF alone would refuse such a request with 406, having no renderer of that type."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if "text/event-stream" in request.META.get("HTTP_ACCEPT", ""):
            renderer = next(renderer for renderer in renderers if renderer.media_type == "application/json")
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)


@extend_schema(tags=["chat"])
class MessageSendApi(APIView):
    """An async DRF view: auth, permissions and throttles run in one hop to the database thread, and the
    stream starts from the event loop. DRF's own dispatch is sync, which kept the whole request (and Django's
    single sync thread, shared with every other start and flush) busy for the start of each stream."""

    content_negotiation_class = EventStreamNegotiation

    async def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        # Django gives each ASGI request its own sync thread, and with it a new database connection (they
        # are per thread): opening one cost more than the rest of a start. This view's database work goes to
        # the worker's shared database thread instead, where the WebSocket consumers and the jobs run on a
        # persistent connection.
        per_request_thread = SyncToAsync.thread_sensitive_context.set(None)
        try:
            await database_sync_to_async(self.initial)(request, *args, **kwargs)
            method = request.method.lower()
            if method == "post":
                response = await self.post(request, *args, **kwargs)
            elif method == "options":
                response = self.options(request, *args, **kwargs)
            else:
                raise exceptions.MethodNotAllowed(request.method)
        except Exception as exc:  # noqa: BLE001 - DRF's handler turns it into the error envelope
            response = self.handle_exception(exc)
        finally:
            SyncToAsync.thread_sensitive_context.reset(per_request_thread)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        # DRF's request and this view point at each other (parser_context): a reference cycle that kept every
        # start's request for the cyclic garbage collector. Nothing parses the body after this.
        request.parser_context = {}
        return self.response

    @extend_schema(
        operation_id="chat_messages_send",
        request=MessageSendSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="`event: start` {stream_id, message_id, model}, `event: token` {seq, delta} per "
                "token, then `event: done` {status, usage, timings} or `event: error` {code, message}.",
            )
        },
    )
    async def post(self, request: Request, chat_id: str) -> StreamingHttpResponse:
        values = plainly_valid(MessageSendSerializer, request.data)
        if values is None:  # not plainly valid: DRF decides, and words any error
            data = MessageSendSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
        try:
            if values["model"]:  # the start itself checks the room (404 for anyone but its owner)
                room = selectors.room_id_or_404(chat_id)
                model = await registry.resolve(values["model"])
            else:  # the room's own model is the default: look the room up first
                room = await database_sync_to_async(selectors.get_room_for_write)(user=request.user, room_id=chat_id)
                model = await registry.resolve(room.model or None)
        except ProviderError as exc:
            raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
        job, queue = await begin_stream(
            start=generation.send_user_message, model=model, values=values, room=room, user=request.user
        )
        response = StreamingHttpResponse(relay(job, queue), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
