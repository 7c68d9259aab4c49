"""The ASGI worker's start-up: garbage-collector tuning for serving."""

from __future__ import annotations

import gc

import httpx
import pytest
from django.conf import settings


def test_worker_freezes_startup_objects_and_collects_young_objects_less_often():
    import chatproject.asgi  # noqa: F401 - importing it is what starts a worker

    assert settings.GC_TUNING
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == settings.GC_GEN0_THRESHOLD


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fast_path", [True, False])
async def test_sse_starts_take_the_fast_path_or_the_shared_thread_handler_and_stream(fake_ollama, settings, fast_path):
    from asgiref.sync import sync_to_async

    from accounts.services import create_api_token
    from chatproject import asgi
    from tests.factories import RoomFactory, UserFactory

    user = await sync_to_async(UserFactory)()
    room = await sync_to_async(RoomFactory)(owner=user)
    _token, raw = await sync_to_async(create_api_token)(user=user, name="asgi")
    settings.SSE_FAST_PATH = fast_path
    seen = []
    real = asgi.sse_django_app.handle

    async def spy(scope, receive, send):
        seen.append(scope["path"])
        return await real(scope, receive, send)

    asgi.sse_django_app.handle = spy
    try:
        transport = httpx.ASGITransport(app=asgi.application)
        headers = {"Authorization": f"Bearer {raw}", "Host": "127.0.0.1"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            response = await client.post(f"/api/v1/chat/sessions/{room.pk}/messages",
                                         json={"content": "hi", "model": "fake-llm:latest"})
            assert response.status_code == 200 and "event: done" in response.text
            assert (await client.get("/api/v1/chat/models")).status_code == 200  # the usual handler
            assert (await client.get(f"/api/v1/chat/sessions/{room.pk}/messages")).status_code == 405
    finally:
        asgi.sse_django_app.handle = real
    # The fast path takes a Bearer start itself; without it, Django's handler with the shared thread does.
    assert seen == ([] if fast_path else [f"/api/v1/chat/sessions/{room.pk}/messages"])
