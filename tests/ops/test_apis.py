"""Probes: alive without the database, ready only when the database, channel layer and a backend answer."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.procs import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_answers_without_touching_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = APIClient().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_with_a_backend(fake_ollama):
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready" and body["failed"] == []
    assert [p["name"] for p in body["checks"]["model_backend"]["providers"]] == ["ollama"]


def test_readyz_names_a_dead_backend(fake_ollama, settings):
    settings.OLLAMA_URLS = [f"http://127.0.0.1:{free_port()}"]  # nothing listens there
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["model_backend"]


def test_readyz_names_an_unreachable_channel_layer(fake_ollama, settings):
    settings.PROBE_TIMEOUT_SECONDS = 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["channel_layer"]


def test_probes_are_never_throttled(fake_ollama, settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"ip": "2/min", "user": "2/min", "auth": "2/min"}
    settings.REST_FRAMEWORK = rest
    client = APIClient()
    assert [client.get("/healthz").status_code for _ in range(5)] == [200] * 5


def test_health_summary(fake_ollama, user):
    from chat.models import Message, Stream
    from tests.factories import RoomFactory

    room = RoomFactory(owner=user)
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    Stream.objects.create(room=room, message=reply, user=user, worker="elsewhere:1:x")
    body = APIClient().get("/api/v1/chat/health").json()
    assert body["status"] == "ok" and body["version"] and body["panic"] is False
    assert body["active_streams"] == 1
    assert body["providers"] == [{"name": "ollama", "ok": True, "models": body["providers"][0]["models"]}]
    assert body["providers"][0]["models"] > 0


def test_health_summary_is_degraded_without_a_backend(fake_ollama, settings):
    settings.OLLAMA_URLS = [f"http://127.0.0.1:{free_port()}"]
    assert APIClient().get("/api/v1/chat/health").json()["status"] == "degraded"


def test_readyz_names_an_unreachable_database_and_healthz_stays_up(fake_ollama):
    """A worker whose PostgreSQL is gone: alive (200), not ready (503 naming the database)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    from tests.procs import wait_for_http

    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
           "OLLAMA_URLS": fake_ollama.url, "LOCAL_MODELS_ENABLED": "false", "PROBE_TIMEOUT_SECONDS": "1",
           "DB_POOL_TIMEOUT": "1",
           "DJANGO_SETTINGS_MODULE": "chatproject.settings"}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "chatproject.asgi:application"],
        cwd=Path(__file__).resolve().parents[2], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["database"]
        assert ready.json()["checks"]["database"]["ok"] is False
    finally:
        process.terminate()
        process.wait(10)
