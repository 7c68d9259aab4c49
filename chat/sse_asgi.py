"""`chat_messages_send` for API clients, served straight from ASGI: one database hop and no framework layers.

An SSE start through Django and DRF cost about 0.9 ms of CPU more than the same start over a WebSocket
(building the request, the handler's tasks, middleware, DRF's request and negotiation, and an
authentication hop to the database thread of its own), which decided the time to first token when fifty
replies start at once. This app takes the common request, `Authorization: Bearer` with a plainly valid JSON
body naming a model, and authenticates, throttles and begins the reply in one service call, batched on the
database thread with every other start (as a WebSocket send is). Whatever it does not take (a session
cookie, a form body, anything DRF would word an error for, a token that does not authenticate, a throttled
client) goes to the DRF view with its body untouched, before anything is counted or written, and gets the
DRF view's answer. `SSE_FAST_PATH=false` sends everything there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from accounts.authentication import user_for_raw_token
from chat import generation, selectors
from chat.serializers import MessageSendSerializer, plainly_valid
from chat.sse import MessageSendApi, begin_stream, relay
from chatproject.errors import api_exception_handler, error_body
from models_mgmt.providers import ProviderError
from models_mgmt.registry import registry

logger = logging.getLogger(__name__)

START_PATH = re.compile(r"^/api/v1/chat/sessions/(?P<chat_id>[^/]+)/messages$")
JSON_TYPE = re.compile(rb"^application/json\s*(;\s*charset\s*=\s*\"?utf-8\"?\s*)?$", re.IGNORECASE)
ACCEPTED = {b"", b"*/*", b"text/event-stream", b"application/json"}
STREAM = "text/event-stream"
# Bodies above this go to the view as they come: the path buffers before it authenticates, so it holds
# little for anyone. The longest valid start (a 32,000-character message and a 20,000-character system
# prompt, every character escaped) is about a third of it.
MAX_BODY = 1 << 20


class HandOver(Exception):  # noqa: N818 - not an error: the DRF view takes the request
    """This request is the DRF view's to answer; nothing has been counted or written for it."""


class ClientAddress:
    """What the DRF throttles read of a request besides the user: the peer's address and X-Forwarded-For."""

    def __init__(self, remote_addr: str, forwarded_for: str | None):
        self.META = {"REMOTE_ADDR": remote_addr}
        self.headers = {} if forwarded_for is None else {"x-forwarded-for": forwarded_for}
        self.user = None


@transaction.atomic
def send_as_token_holder(*, raw_token: str, client: ClientAddress, **send) -> generation.StartedGeneration:
    """Authenticate, throttle and send in one call on the database thread, as the DRF view would in three;
    one atomic block (a savepoint in a batch) around all of it."""
    resolved = user_for_raw_token(raw_token)
    if resolved is None:
        raise HandOver
    user = client.user = resolved[0]
    throttles = [throttle() for throttle in MessageSendApi.throttle_classes]
    if not all(throttle.would_allow(client, None) for throttle in throttles):
        raise HandOver
    for throttle in throttles:
        throttle.record()
    return generation.send_user_message_in_caller_atomic(user=user, **send)


def _header_values(scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name, repeated ones joined as HTTP allows."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers[name] = headers[name] + b"," + value if name in headers else value
    return headers


class _SchemeOnly:
    """All that Django's security and clickjacking middleware read of a request to set response headers."""

    def __init__(self, secure: bool):
        self.secure = secure

    def is_secure(self) -> bool:
        return self.secure


def _middleware_headers(content_type: str, secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers the DRF view's responses get from the view and from Django's own middleware (its code, not
    a copy: HSTS, nosniff, referrer and opener policies, X-Frame-Options), for responses of this kind."""
    response = HttpResponse(content_type=content_type)
    response["Vary"] = "Accept"  # DRF's, on every response of an APIView
    response["Allow"] = ", ".join(MessageSendApi().allowed_methods)
    request = _SchemeOnly(secure)
    for middleware in (SecurityMiddleware, XFrameOptionsMiddleware):  # only their process_response is called
        response = middleware(get_response=_never_called).process_response(request, response)
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]


def _never_called(request):  # pragma: no cover - middleware needs a get_response; nothing calls it here
    raise AssertionError


def _is_secure(scope, headers: dict[bytes, bytes]) -> bool:
    """HTTPS or not, as Django decides it (`SECURE_PROXY_SSL_HEADER` first, then the connection)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = headers.get(header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1"))
        if value is not None:
            return value.decode("latin-1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") == "https"


class FastSSEStart:
    """An ASGI app for `POST .../messages` that hands anything it does not take to `fallback` (Django)."""

    def __init__(self, fallback):
        self.fallback = fallback
        self._headers: dict[tuple[str, bool], list[tuple[bytes, bytes]]] = {}

    def headers_for(self, content_type: str, secure: bool) -> list[tuple[bytes, bytes]]:
        """Response headers, worked out once per kind (Django's middleware reads its settings once too)."""
        key = (content_type, secure)
        if key not in self._headers:
            extra = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")] if content_type == STREAM else []
            self._headers[key] = _middleware_headers(content_type, secure) + extra
        return self._headers[key]

    async def __call__(self, scope, receive, send) -> None:
        match = START_PATH.match(scope["path"]) if scope["method"] == "POST" else None
        if match is None or not settings.SSE_FAST_PATH:
            return await self.fallback(scope, receive, send)
        messages, body = [], b""
        while True:  # the body, kept to hand over as it came
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > MAX_BODY:
                break
        headers = _header_values(scope)
        secure = _is_secure(scope, headers)
        try:
            job, queue = await self._begin(scope, headers, match["chat_id"], messages, body)
        except HandOver:
            return await self.fallback(scope, _replaying(messages, receive), send)
        except Exception as exc:  # noqa: BLE001 - answered in the API's error envelope, as the view does
            return await _send_error(send, exc, self.headers_for("application/json", secure))
        await _stream(receive, send, job, queue, self.headers_for(STREAM, secure))

    async def _begin(self, scope, headers: dict[bytes, bytes], chat_id: str, messages: list[dict], body: bytes):
        if messages[-1]["type"] != "http.request" or messages[-1].get("more_body") or len(body) > MAX_BODY:
            raise HandOver  # gone already, or a body too large for this path
        authorization = headers.get(b"authorization", b"").split()
        if len(authorization) != 2 or authorization[0].lower() != b"bearer":
            raise HandOver
        if not JSON_TYPE.match(headers.get(b"content-type", b"")) or headers.get(b"accept", b"") not in ACCEPTED:
            raise HandOver
        host, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        if not host or not validate_host(host, settings.ALLOWED_HOSTS):
            raise HandOver
        if settings.SECURE_SSL_REDIRECT and not _is_secure(scope, headers):
            raise HandOver  # Django's security middleware redirects it
        try:
            raw_token = authorization[1].decode("ascii")
            values = plainly_valid(MessageSendSerializer, json.loads(body.decode("utf-8"), parse_constant=_refuse))
            room_id = selectors.room_id_or_404(chat_id)
        except Exception as exc:  # noqa: BLE001 - the view words these errors
            raise HandOver from exc
        if values is None or not values["model"]:
            raise HandOver  # the view runs the serializer, or looks up the room's own model first
        try:  # not authenticated yet: a name the cached list lacks must not make it ask the backends
            model = await registry.resolve(values["model"], ask_backends_on_miss=False)
        except ProviderError as exc:
            raise HandOver from exc
        forwarded_for = headers.get(b"x-forwarded-for")
        client = ClientAddress(scope["client"][0] if scope.get("client") else "",
                               None if forwarded_for is None else forwarded_for.decode("latin-1"))
        return await begin_stream(start=send_as_token_holder, model=model, values=values, raw_token=raw_token,
                                  client=client, room=room_id)


def _refuse(constant: str):
    """NaN and Infinity are not JSON; DRF's strict parser refuses them, so this path leaves them to it."""
    raise ValueError(constant)


def _replaying(messages: list[dict], receive):
    """`receive` for the fallback: the messages already read, then the connection's own."""
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


async def _send_error(send, exc: Exception, headers: list[tuple[bytes, bytes]]) -> None:
    """The DRF view's error answer for an exception raised after the request was counted."""
    response = api_exception_handler(exc, {})
    if response is None:
        logger.error("Stream start failed", exc_info=exc)
        status, data, extra = 500, error_body("server_error", "Internal server error."), []
    else:
        status, data = response.status_code, response.data
        extra = [(name.lower().encode(), str(value).encode()) for name, value in response.items()
                 if name.lower() not in ("content-type", "vary", "allow")]
    content = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [*headers, (b"content-length", str(len(content)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _stream(receive, send, job, queue, headers: list[tuple[bytes, bytes]]) -> None:
    """Relay the reply; a client that goes away ends the relay, never the job."""
    events = relay(job, queue)

    async def write() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for frame in events:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    writer = asyncio.ensure_future(write())
    listener = asyncio.ensure_future(until_disconnect())
    try:
        await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, listener):
            task.cancel()
        await asyncio.gather(writer, listener, return_exceptions=True)
        await events.aclose()
    if not writer.cancelled() and writer.exception() is not None:
        logger.error("Relaying a stream failed", exc_info=writer.exception())
