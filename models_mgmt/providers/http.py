"""One pooled httpx client per event loop (a client cannot be shared across loops), on the lean transport."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

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
async def stream(method: str, url: str, **kwargs) -> AsyncIterator[httpx.Response]:
    """`client().stream(...)`; once httpx has closed the response, it lets go of its body stream.

    httpx links a streamed response and its stream both ways, a reference cycle that kept every upstream
    request and response (headers, URL, ~20 objects per reply) for the cyclic garbage collector.
    """
    response = None
    try:
        async with client().stream(method, url, **kwargs) as response:
            yield response
    finally:
        if response is not None:
            response.stream = _CLOSED


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
