"""Stream starts as the worker serves them (the SSE fast path, and Django's ASGI handler with the DRF view): a
finished request is freed at once, and a client that goes away mid-stream still ends the relay (never the job)."""

from __future__ import annotations

import asyncio
import collections
import gc
import json

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.services import create_api_token
from chat import jobs
from chat.models import Message, MessageStatus
from tests.asgi_driver import asgi_request
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(params=[True, False], ids=["sse-fast-path", "django-handler"])
def start_path(request, settings):
    """Both ways a stream start is served: chat/sse_asgi.py, and Django's handler with the DRF view."""
    settings.SSE_FAST_PATH = request.param
    return request.param


async def daphne_like(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                      hang_up_after: bytes | None = None) -> tuple[int | None, bytes]:
    response = await asgi_request(app, method, path, body, headers, hang_up_after)
    return response.status, response.body


async def _room_and_headers():
    user = await sync_to_async(UserFactory)()
    room = await sync_to_async(RoomFactory)(owner=user)
    _token, raw = await sync_to_async(create_api_token)(user=user, name="handler")
    return room, {"authorization": f"Bearer {raw}", "content-type": "application/json"}


async def _jobs_finished() -> None:
    """Every generation job of this loop ran to its end (none is stopped)."""
    for job in list(jobs.JOBS.values()):
        if job.task:
            await asyncio.wait_for(job.task, 5)


async def test_a_finished_stream_start_leaves_nothing_for_the_cyclic_garbage_collector(fake_ollama, start_path):
    from chatproject.asgi import application

    room, headers = await _room_and_headers()
    path, body = f"/api/v1/chat/sessions/{room.pk}/messages", b'{"content": "hi", "model": "fake-llm:latest"}'
    assert (await daphne_like(application, "POST", path, body, headers))[0] == 200  # code paths run once
    await asyncio.sleep(0.1)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage, not freed
    try:
        for _ in range(3):
            status, raw = await daphne_like(application, "POST", path, body, headers)
            assert status == 200 and raw.endswith(b"\n\n") and b"event: done" in raw
        await asyncio.sleep(0.1)  # the jobs' final writes
        gc.collect()
        per_request = (ASGIRequest, Request, APIView, HttpResponseBase, httpx.Request, httpx.Response)
        held = collections.Counter(type(o).__name__ for o in gc.garbage if isinstance(o, per_request))
        found = len(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    # Before: each request, its response, DRF's request and view, and the upstream httpx request and response
    # were in reference cycles, left for the collector (10-20 ms pauses under load on a slow machine).
    assert held == {}, f"{found} unreachable objects, among them {dict(held)}"


async def test_a_client_that_goes_away_mid_stream_ends_the_relay_not_the_job(fake_ollama, start_path):
    from chatproject.asgi import application

    fake_ollama.behaviour.tokens, fake_ollama.behaviour.delay_ms = 30, 20
    room, headers = await _room_and_headers()
    path, body = f"/api/v1/chat/sessions/{room.pk}/messages", b'{"content": "hi", "model": "fake-llm:latest"}'
    status, raw = await asyncio.wait_for(
        daphne_like(application, "POST", path, body, headers, hang_up_after=b"event: token"), timeout=5
    )
    assert status == 200
    # The handler returned at the hang-up, long before the reply's 30 tokens (600 ms) were all sent.
    assert b"event: done" not in raw and raw.count(b"event: token") < 10
    start = json.loads(raw.split(b"event: start\ndata: ", 1)[1].split(b"\n", 1)[0])
    await _jobs_finished()
    stored = await sync_to_async(Message.objects.get)(pk=start["message_id"])
    assert stored.status == MessageStatus.COMPLETE and stored.content.split() == [f"t{i}" for i in range(30)]
    # The job wrote its reply after the request had finished (and closed its connection), so the shared
    # database thread holds a connection again: a worker keeps it, a test database must not.
    await database_sync_to_async(connections.close_all)()


async def test_the_sse_handler_shares_the_returning_disconnect_listener_and_keeps_no_request_threads():
    """The SSE start's handler runs Django on the shared database thread: it must neither make a pool of
    request threads of its own nor fall back to Django's raising listener (the reference cycle)."""
    from chatproject.handlers import ChatASGIHandler, RequestThreads, SharedThreadASGIHandler

    pools_before = len(RequestThreads.every)
    handler = SharedThreadASGIHandler()
    assert not hasattr(handler, "request_threads")
    assert len(RequestThreads.every) == pools_before
    assert SharedThreadASGIHandler.listen_for_disconnect is ChatASGIHandler.listen_for_disconnect

    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "http.disconnect"})
    assert await handler.listen_for_disconnect(inbox.get) is None  # returns, never raises RequestAborted
