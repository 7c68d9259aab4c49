"""One pooled httpx client per event loop (a client cannot be shared across loops), on the lean transport,
and `stream`, which sends the providers' streamed requests to plain-HTTP backends past httpx's objects."""

from __future__ import annotations

import asyncio
import contextlib
import json as json_module
import weakref
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from models_mgmt.providers.transport import LeanTransport

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=30.0)
# Idle connections to a backend are kept 30 s (httpx's default is 5 s): reconnecting cost a TCP handshake
# and a new h11 connection per reply after any pause longer than that.
LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30.0)


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing a response sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class BackendClient(httpx.AsyncClient):
    """httpx's client without a cookie jar.

    One client serves every user of a worker, so a cookie that one backend response set would go out with
    everyone's later requests to that host; model backends authenticate with headers. Reading cookies out
    of every streamed response was also about an eighth of the CPU of a reply's upstream request.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        """Read-only: setting a jar on this client is refused."""
        return self._cookies


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None or existing.is_closed:
        transport = LeanTransport(limits=LIMITS, fallback=httpx.AsyncHTTPTransport(limits=LIMITS))
        existing = BackendClient(timeout=TIMEOUT, limits=LIMITS, transport=transport)
        _clients[loop] = existing
    return existing


_CLOSED = httpx.ByteStream(b"")


@contextlib.asynccontextmanager
async def stream(method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None
                 ) -> AsyncIterator[httpx.Response | LeanResponse]:
    """A streamed request to a backend: `status_code`, `aread()` and `aiter_bytes()` on what it yields.

    A plain-HTTP URL with no proxy goes straight to the lean transport's pool (`LeanTransport.open`): no
    httpx request, response, URL or header objects, which cost a start about a fifth of a millisecond of
    CPU (building the request, then the client's send, auth, redirect and body layers). Anything else
    (HTTPS, a proxy from the environment, credentials in the URL) goes through httpx as before.
    """
    backend = client()
    target = _direct_target(url)
    transport = backend._transport
    direct = target is not None and isinstance(transport, LeanTransport)
    if direct and backend._transport_for_url(target.url) is transport:  # no proxy mounted for it
        payload = _request_bytes(method, target, json, headers)
        status, head, body = await transport.open(target.key, payload, TIMEOUTS, method=method)
        try:
            yield LeanResponse(status, head, body)
        finally:
            await body.aclose()
        return
    # httpx links a streamed response and its stream both ways, a reference cycle that kept every upstream
    # request and response (headers, URL, ~20 objects per reply) for the cyclic garbage collector: once
    # httpx has closed the response, it lets go of its body stream.
    response = None
    try:
        async with backend.stream(method, url, json=json, headers=headers) as response:
            yield response
    finally:
        if response is not None:
            response.stream = _CLOSED


TIMEOUTS = TIMEOUT.as_dict()
USER_AGENT = "llm-chat"


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    key: tuple[str, int]  # host, port
    head: bytes  # everything of the request head up to its variable headers: request line, Host, fixed ones


@lru_cache(maxsize=256)
def _direct_target(url: str) -> _Target | None:
    """A plain-HTTP URL, parsed once (backends are a handful of base URLs), or None for httpx's way."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or parsed.userinfo or not parsed.host:
        return None
    head = (f"{parsed.raw_path.decode('ascii')} HTTP/1.1\r\nHost: {parsed.netloc.decode('ascii')}\r\n"
            f"Accept: */*\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\nUser-Agent: {USER_AGENT}\r\n")
    return _Target(url=parsed, key=(parsed.host, parsed.port or 80), head=head.encode("ascii"))


def _request_bytes(method: str, target: _Target, body: Any, headers: dict[str, str] | None) -> bytes:
    """The whole request: JSON encoded as httpx encodes it (compact, UTF-8, no NaN)."""
    content = b"" if body is None else json_module.dumps(
        body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")
    extra = []
    if body is not None:
        extra.append(f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n")
    elif method not in ("GET", "HEAD"):
        extra.append("Content-Length: 0\r\n")
    for name, value in (headers or {}).items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise httpx.LocalProtocolError(f"Invalid header {name!r}.")  # never let a value add a header
        extra.append(f"{name}: {value}\r\n")
    return method.encode("ascii") + b" " + target.head + "".join(extra).encode("latin-1") + b"\r\n" + content


class LeanResponse:
    """A response read straight off a pooled connection: what the providers use of httpx's Response."""

    __slots__ = ("status_code", "_raw_headers", "_body", "_decoder")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body) -> None:
        self.status_code = status_code
        self._raw_headers = headers
        self._body = body
        # Identity was asked for; a server that compresses anyway is still understood (gzip, deflate).
        encoding = next((value for name, value in headers if name.lower() == b"content-encoding"), b"identity")
        encoding = encoding.decode("latin-1").strip().lower()
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        else:
            raise httpx.DecodingError(f"Unsupported Content-Encoding {encoding!r}.")

    @property
    def headers(self) -> httpx.Headers:
        """Built only when asked for: the providers read the status and the body."""
        return httpx.Headers(self._raw_headers)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._body.__aiter__() if self._decoder is None else self._decoded()

    async def _decoded(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._body:
                if data := self._decoder.decompress(piece):
                    yield data
            if data := self._decoder.flush():
                yield data
        except zlib.error as exc:
            raise httpx.DecodingError(f"A malformed compressed body: {exc}") from exc

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


TransportError = httpx.TransportError
HTTPStatusError = httpx.HTTPStatusError


async def iter_lines(response: httpx.Response):
    """Lines of a streamed body, split from the (content-decoded) bytes: httpx's text layers cost more."""
    buffer = b""
    async for data in response.aiter_bytes():
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


async def drain(lines, timeout: float = 1.0) -> None:
    """Read what is left of a body after its last event, so the connection goes back to the pool.

    A response closed before its final (empty) chunk is read cannot be reused: every reply would then pay a
    new TCP connection to the backend. A server that keeps the body open is cut off after `timeout`.
    """
    try:
        async with asyncio.timeout(timeout):
            async for _ in lines:
                pass
    except TimeoutError:
        pass
