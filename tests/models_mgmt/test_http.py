"""The shared backend client: one per event loop, on the lean transport, and no cookie jar."""

from __future__ import annotations

import gzip

import httpx
import pytest

from models_mgmt.providers import http
from models_mgmt.providers.transport import LeanTransport
from tests.models_mgmt.test_transport import Scripted

pytestmark = pytest.mark.asyncio

SETS_A_COOKIE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: session=alice-secret; Path=/\r\n"
                 b"Content-Type: application/json\r\n\r\n{}")
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def test_one_client_per_loop_on_the_lean_transport():
    first = http.client()
    assert first is http.client()
    assert isinstance(first._transport, LeanTransport)


async def test_a_cookie_one_response_sets_is_not_sent_with_later_requests():
    """The client is shared by every user of the worker: a backend's cookie must not follow anyone."""
    async with Scripted([[SETS_A_COOKIE], [PLAIN]]) as server:
        shared = http.client()
        first = await shared.post(f"{server.url}/api/chat", json={})
        assert first.cookies["session"] == "alice-secret"  # the response still shows what it set
        async with http.stream("POST", f"{server.url}/api/chat", json={}) as streamed:
            await streamed.aread()
        assert not shared.cookies
    later = server.requests[1]
    assert b"alice-secret" not in later and b"cookie:" not in later.lower()


async def test_setting_a_jar_on_the_client_is_refused():
    client = http.BackendClient()
    with pytest.raises(AttributeError):
        client.cookies = {"session": "x"}
    await client.aclose()


CHUNKED_NDJSON = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n"
                  b"6\r\n{\"a\":1\r\n2\r\n}\n\r\n0\r\n\r\n")


async def test_a_plain_http_stream_skips_httpx_and_keeps_its_connection():
    async with Scripted([[CHUNKED_NDJSON], [CHUNKED_NDJSON]]) as server:
        for _ in range(2):
            async with http.stream("POST", f"{server.url}/api/chat", json={"text": "é", "n": [1, 2]},
                                   headers={"Authorization": "Bearer k"}) as response:
                assert isinstance(response, http.LeanResponse)
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/x-ndjson"
                assert [line async for line in http.iter_lines(response)] == ['{"a":1}']
    assert server.connections == 1  # read to its end, the connection went back to the pool
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/chat HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Authorization: Bearer k" in lines and b"Content-Type: application/json" in lines
    assert body == '{"text":"é","n":[1,2]}'.encode()  # as httpx encodes JSON
    assert f"Content-Length: {len(body)}".encode() in lines


async def test_a_header_cannot_smuggle_another():
    async with Scripted([[PLAIN]]) as server:
        with pytest.raises(httpx.LocalProtocolError):
            async with http.stream("POST", f"{server.url}/v1/chat/completions", json={},
                                   headers={"Authorization": "Bearer k\r\nX-Admin: 1"}):
                pass
    assert server.requests == []


async def test_a_compressed_reply_is_still_read():
    body = gzip.compress(b'{"ok":true}\n')
    reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with Scripted([[reply]]) as server:
        async with http.stream("POST", f"{server.url}/api/chat", json={}) as response:
            assert await response.aread() == b'{"ok":true}\n'
    assert b"Accept-Encoding: identity" in server.requests[0]


async def test_credentials_in_the_url_and_proxies_go_through_httpx(monkeypatch):
    async with Scripted([[PLAIN]]) as server:
        url = f"http://user:secret@127.0.0.1:{server.port}/api/chat"
        async with http.stream("POST", url, json={}) as response:
            assert isinstance(response, httpx.Response)
            await response.aread()
    assert b"authorization: basic " in server.requests[0].lower()

    class Proxy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            return httpx.Response(200, content=b"via proxy")

    proxied = http.BackendClient(transport=http.client()._transport, mounts={"http://10.1.2.3": Proxy()})
    monkeypatch.setattr(http, "client", lambda: proxied)
    async with http.stream("POST", "http://10.1.2.3:11434/api/chat", json={}) as response:
        assert isinstance(response, httpx.Response) and await response.aread() == b"via proxy"
    await proxied.aclose()
