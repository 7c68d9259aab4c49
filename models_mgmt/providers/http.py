"""One pooled httpx client per event loop (a client cannot be shared across loops)."""

from __future__ import annotations

import asyncio
import weakref

import httpx

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=30.0)
LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100)


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None or existing.is_closed:
        existing = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)
        _clients[loop] = existing
    return existing


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
