"""Drive an ASGI app the way Daphne does, for tests that must go through `chatproject.asgi.application`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class AsgiResponse:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def asgi_request(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                       hang_up_after: bytes | None = None, client: tuple[str, int] = ("127.0.0.1", 50000),
                       chunk_size: int | None = None) -> AsgiResponse:
    """One HTTP request through an ASGI app, sending `http.disconnect` once the response is complete, as
    Daphne does, or as soon as a body chunk contains `hang_up_after`. With `chunk_size` the request body
    arrives in pieces of that size. Header names come back lower-cased."""
    all_headers = {"host": "127.0.0.1", "content-length": str(len(body)), **(headers or {})}
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": client, "server": ("127.0.0.1", 8000),
    }
    inbox: asyncio.Queue = asyncio.Queue()
    size = chunk_size or max(len(body), 1)
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    for index, piece in enumerate(pieces):
        inbox.put_nowait({"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1})
    response, gone = AsgiResponse(), False

    async def send(message):
        nonlocal gone
        if gone:
            return
        if message["type"] == "http.response.start":
            response.status = message["status"]
            for name, value in message.get("headers", []):
                key = name.decode("latin-1").lower()
                value = value.decode("latin-1")
                response.headers[key] = f"{response.headers[key]}, {value}" if key in response.headers else value
        elif message["type"] == "http.response.body":
            response.chunks.append(message.get("body", b""))
            finished = not message.get("more_body")
            if finished or (hang_up_after is not None and hang_up_after in response.chunks[-1]):
                gone = not finished
                inbox.put_nowait({"type": "http.disconnect"})

    await app(scope, inbox.get, send)
    return response
