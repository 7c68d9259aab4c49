"""The lean HTTP/1.1 transport against a scripted server: framing, keep-alive, early close, errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from models_mgmt.providers.transport import LeanTransport
from tests.procs import free_port

pytestmark = pytest.mark.asyncio

LIMITS = httpx.Limits(max_keepalive_connections=10, keepalive_expiry=30)


class Scripted:
    """A server that answers each request with the next scripted reply (a list of byte pieces to write)."""

    def __init__(self, replies, *, close_after_each: bool = False):
        self.replies = list(replies)
        self.close_after_each = close_after_each
        self.connections = 0
        self.requests: list[bytes] = []
        self.hung_up = asyncio.Event()

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.replies.pop(0):
                    if piece == "pause":
                        await asyncio.sleep(0.02)
                    elif piece == "wait-hangup":
                        if await reader.read(1) == b"":
                            self.hung_up.set()
                        return
                    else:
                        writer.write(piece)
                        await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self):
        self.port = free_port()
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def client() -> httpx.AsyncClient:
    transport = LeanTransport(limits=LIMITS, fallback=httpx.AsyncHTTPTransport())
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0))


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


OK_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n"


async def test_chunked_body_survives_any_split_and_keeps_the_connection():
    body = chunked(b'{"a":1}\n', b'{"b":2}\n', b"x" * 300)
    awkward = [OK_CHUNKED] + [body[i:i + 3] for i in range(0, len(body), 3)]  # sizes, data and CRLFs torn apart
    with_extras = OK_CHUNKED + b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    async with Scripted([awkward, [with_extras], [OK_CHUNKED, chunked(b"end")]]) as server, client() as http:
        async with http.stream("POST", f"{server.url}/api/chat", json={"q": 1}) as response:
            assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
            assert await response.aread() == b'{"a":1}\n{"b":2}\n' + b"x" * 300
        assert (await http.get(f"{server.url}/two")).content == b"hello"
        assert (await http.get(f"{server.url}/three")).text == "end"
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /api/chat HTTP/1.1\r\n") and first.endswith(b'{"q":1}')
    assert b"host: 127.0.0.1" in first.lower()


async def test_pieces_are_yielded_as_they_arrive():
    reply = [OK_CHUNKED, chunked(b"one")[:-5], "pause", b"3\r\ntwo\r\n", "pause", b"0\r\n\r\n"]
    async with Scripted([reply]) as server, client() as http:
        async with http.stream("GET", server.url) as response:
            assert [piece async for piece in response.aiter_raw()] == [b"one", b"two"]


async def test_content_length_and_until_close_bodies():
    fixed = [b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello", "pause", b" world"]
    async with Scripted([fixed, fixed]) as server, client() as http:
        assert (await http.get(server.url)).text == "hello world"
        assert (await http.get(server.url)).text == "hello world"
    assert server.connections == 1
    until_close = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one ", "pause", b"part two"]
    async with Scripted([until_close, fixed], close_after_each=True) as server, client() as http:
        assert (await http.get(server.url)).text == "part one part two"
        assert (await http.get(server.url)).text == "hello world"
    assert server.connections == 2


async def test_no_body_responses_and_interim_responses():
    replies = [[b"HTTP/1.1 204 No Content\r\n\r\n"],
               [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]]
    async with Scripted(replies) as server, client() as http:
        empty = await http.delete(server.url)
        assert empty.status_code == 204 and empty.content == b""
        assert (await http.get(server.url)).text == "ok"
    assert server.connections == 1


async def test_a_stale_idle_connection_is_replaced():
    reply = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    async with Scripted([reply, reply], close_after_each=True) as server, client() as http:
        assert (await http.get(server.url)).text == "ok"
        await asyncio.sleep(0.05)  # the server has closed the kept connection meanwhile
        assert (await http.get(server.url)).text == "ok"
    assert server.connections == 2


async def test_closing_a_body_early_hangs_up_on_the_server():
    reply = [OK_CHUNKED, b"3\r\none\r\n", "wait-hangup"]
    async with Scripted([reply]) as server, client() as http:
        async with http.stream("POST", server.url, json={}) as response:
            async for piece in response.aiter_raw():
                assert piece == b"one"
                break
        await asyncio.wait_for(server.hung_up.wait(), 2)


async def test_errors_are_httpx_errors():
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")
    cases = [
        ([OK_CHUNKED, b"zz\r\n"], httpx.RemoteProtocolError),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], httpx.RemoteProtocolError),
        ([b"NOT HTTP\r\n\r\n"], httpx.RemoteProtocolError),
        ([OK_CHUNKED, b"3\r\none\r\n", "wait-hangup"], httpx.ReadTimeout),
    ]
    for reply, error in cases:
        async with Scripted([reply], close_after_each=True) as server:
            transport = LeanTransport(limits=LIMITS, fallback=httpx.AsyncHTTPTransport())
            async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0, read=0.2)) as http:
                with pytest.raises(error):
                    await http.get(server.url)


async def test_other_schemes_go_to_the_fallback():
    seen = []

    class Fallback(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            seen.append(str(request.url))
            return httpx.Response(200, content=b"fallback")

    async with httpx.AsyncClient(transport=LeanTransport(limits=LIMITS, fallback=Fallback())) as http:
        assert (await http.get("https://example.invalid/v1/models")).text == "fallback"
    assert seen == ["https://example.invalid/v1/models"]


async def test_max_connections_is_a_limit_on_open_exchanges():
    reply = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with Scripted([reply, reply, reply]) as server:
        transport = LeanTransport(limits=limits, fallback=httpx.AsyncHTTPTransport())
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0, pool=0.1)) as http:
            async with http.stream("GET", server.url) as first:
                with pytest.raises(httpx.PoolTimeout):  # the only slot is held until the first body closes
                    await http.get(server.url)
                assert await first.aread() == b"ok"
            assert (await http.get(server.url)).text == "ok"  # released: the next one goes through
