"""The shared backend client: one per event loop, on the lean transport, and no cookie jar."""

from __future__ import annotations

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
