"""A small OpenAI-compatible server on the test's loop: /v1/models and streamed /v1/chat/completions (SSE).

It records each request (head and JSON body) and, like the fake Ollama, notices a client that hangs up
mid-stream, so a test can check that a stopped reply closed its upstream request.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Seen:
    heads: list[str] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    aborted_at: float | None = None
    completed: int = 0


class FakeOpenAI:
    def __init__(self, *, tokens: int = 5, delay: float = 0.0, status: int = 200) -> None:
        self.tokens = tokens
        self.delay = delay
        self.status = status
        self.seen = Seen()
        self.server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                pairs = (line.split(":", 1) for line in lines if ":" in line)
                headers = {key.strip().lower(): value.strip() for key, value in pairs}
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                self.seen.heads.append(head)
                self.seen.bodies.append(json.loads(body) if body else {})
                method, path, _ = request_line.split(" ", 2)
                if method == "GET" and path == "/v1/models":
                    await self._json(writer, 200, {"object": "list", "data": [
                        {"id": "fake-gpt", "object": "model", "created": 1, "owned_by": "tests",
                         "meta": {"n_ctx_train": 8192}}]})
                elif method == "POST" and path == "/v1/chat/completions":
                    if self.status != 200:
                        await self._json(writer, self.status, {"error": {"message": "no such model at 10.0.0.7"}})
                    elif not await self._stream(reader, writer, self.seen.bodies[-1]):
                        return
                else:
                    await self._json(writer, 404, {"error": {"message": "not found"}})
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:  # the test's loop is closing: a handler that ends quietly logs nothing
            pass
        finally:
            writer.close()

    async def _json(self, writer: asyncio.StreamWriter, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                     .encode() + data)
        await writer.drain()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        count = min(self.tokens, request.get("max_tokens") or self.tokens)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": request["model"]}
        events = [{**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
                  for i in range(count)]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        events.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": count,
                                                        "total_tokens": 3 + count}})
        for event in [*(json.dumps(e) for e in events), "[DONE]"]:
            if reader.at_eof():  # the client hung up
                self.seen.aborted_at = time.monotonic()
                return False
            data = f"data: {event}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            await asyncio.sleep(self.delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.seen.completed += 1
        return True
