"""The ASGI worker: garbage-collector tuning, and every HTTP request (the SSE start too) through Django's stack."""

from __future__ import annotations

import gc

import httpx
import pytest
from django.conf import settings

SEEN: list[str] = []


def recording_middleware(get_response):
    """A middleware added later, as an operator might: it must see the SSE start like any request."""

    def middleware(request):
        SEEN.append(request.path)
        return get_response(request)

    return middleware


def test_worker_freezes_startup_objects_and_collects_young_objects_less_often():
    import chatproject.asgi  # noqa: F401 - importing it is what starts a worker

    assert settings.GC_TUNING
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == settings.GC_GEN0_THRESHOLD


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sse_start_runs_through_django_middleware(fake_ollama, settings):
    from asgiref.sync import sync_to_async
    from channels.routing import ProtocolTypeRouter
    from django.core.asgi import get_asgi_application

    from accounts.services import create_api_token
    from tests.factories import RoomFactory, UserFactory

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_asgi.recording_middleware"]
    application = ProtocolTypeRouter({"http": get_asgi_application()})
    user = await sync_to_async(UserFactory)()
    room = await sync_to_async(RoomFactory)(owner=user)
    _token, raw = await sync_to_async(create_api_token)(user=user, name="asgi")
    SEEN.clear()
    transport = httpx.ASGITransport(app=application)
    headers = {"Authorization": f"Bearer {raw}", "Host": "127.0.0.1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
        url = f"/api/v1/chat/sessions/{room.pk}/messages"
        response = await client.post(url, json={"content": "hi", "model": "fake-llm:latest"})
        assert response.status_code == 200 and "event: done" in response.text
        assert response.headers["x-content-type-options"] == "nosniff"  # Django's SecurityMiddleware
        assert response.headers["x-frame-options"] == "DENY"
        assert (await client.get(url)).status_code == 405
    assert SEEN == [url, url]
