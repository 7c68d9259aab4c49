"""A minimal HTTP/1.1 keep-alive client for the benchmark's measuring side.

The benchmark client shares the machine's two cores with the server it measures. httpx cost the client
nearly a core at 50 SSE streams (per-chunk async generators, line decoding), CPU the server then did not
get, and it stamped arrivals late when its own loop was busy. This client does one write per request and
two buffered reads per chunk; it speaks only what the benchmark needs (Content-Length request bodies,
chunked or Content-Length responses, keep-alive).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class HTTPError(Exception):
    """The server answered with a status other than 200."""


class Connection:
    """One keep-alive connection; requests on it run one after another."""

    def __init__(self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.host, self.port = host, port
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        return cls(host, port, reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def stream(self, method: str, path: str, body: bytes = b"",
                     headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
        """Send a request and yield the response body piece by piece, as the pieces arrive."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                response_headers[name.strip().lower()] = value.strip()
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            pieces = self._chunked()
        else:
            pieces = self._sized(int(response_headers.get("content-length", "0")))
        if status != 200:
            text = b"".join([piece async for piece in pieces])
            raise HTTPError(f"{status}: {text[:300]!r}")
        async for piece in pieces:
            yield piece

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        return b"".join([piece async for piece in self.stream(method, path, body, headers)])

    async def _chunked(self) -> AsyncIterator[bytes]:
        reader = self.reader
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent: just the final CRLF
                return
            yield (await reader.readexactly(size + 2))[:-2]

    async def _sized(self, length: int) -> AsyncIterator[bytes]:
        if length:
            yield await self.reader.readexactly(length)
