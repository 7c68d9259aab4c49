"""Two workers (Daphne, and again Uvicorn) on one PostgreSQL and Redis: a watcher on one sees a stream running
on the other, and a stop sent to one ends the stream on the other, whether the stream was started over the
WebSocket or over SSE. Runs for real when REDIS_URL and PostgreSQL are set (the second pass of .ci/run);
skipped on the zero-service default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings
from django.db import connection

from accounts.services import create_api_token
from chat.models import Message, MessageStatus
from tests.factories import RoomFactory, UserFactory
from tests.procs import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="needs REDIS_URL and PostgreSQL (the second pass of .ci/run sets both)",
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


SERVERS = {
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                            "chatproject.asgi:application"],
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                             "--no-access-log", "--log-level", "warning", "--ws-per-message-deflate", "false",
                             "chatproject.asgi:application"],  # as the README runs it
}


@contextlib.contextmanager
def running_workers(server: str, ollama_url: str):
    """Two worker processes of one ASGI server sharing the test database, Redis and the fake Ollama."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "OLLAMA_URLS": ollama_url,
        "LOCAL_MODELS_ENABLED": "false",
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
    }
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(SERVERS[server](port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_for_http(f"http://127.0.0.1:{port}/", process, timeout=120)  # each loads the embedding model first
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


@pytest.fixture(params=sorted(SERVERS))
def workers(request, fake_ollama, transactional_db):
    with running_workers(request.param, fake_ollama.url) as ports:
        yield ports


async def frames_until(ws, predicate, timeout=15.0) -> list[dict]:
    """Frames from a real WebSocket until one satisfies `predicate` (inclusive)."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


def test_watch_and_stop_across_workers(workers, fake_ollama):
    fake_ollama.configure(tokens=1000, delay_ms=5)
    user = UserFactory()
    room = RoomFactory(owner=user)
    _t, token = create_api_token(user=user, name="scale-out")
    port_a, port_b = workers

    async def scenario():
        origin = {"Origin": "http://127.0.0.1:8000"}
        url = "ws://127.0.0.1:{port}/ws/chat/{room}/?token={token}"
        async with websockets.connect(url.format(port=port_a, room=room.pk, token=token),
                                      additional_headers=origin) as sender, \
                websockets.connect(url.format(port=port_b, room=room.pk, token=token),
                                   additional_headers=origin) as watcher:
            await frames_until(watcher, lambda f: f["type"] == "presence")
            # The client offered permessage-deflate; neither server, run as the README runs it, compresses
            # (token frames are tiny: compressing each was CPU for nothing, docs/benchmarks.md).
            assert sender.response.headers.get("Sec-WebSocket-Extensions") is None
            await sender.send(json.dumps({"type": "send_message", "content": "across workers"}))
            seen = await frames_until(watcher, lambda f: f["type"] == "token" and f["seq"] >= 5)
            stream_id = next(f["stream_id"] for f in seen if f["type"] == "stream_start")
            sent_at = time.monotonic()
            await watcher.send(json.dumps({"type": "stop", "stream_id": stream_id}))
            rest = await frames_until(watcher, lambda f: f["type"] == "stream_end")
            stop_latency = time.monotonic() - sent_at
            sender_frames = await frames_until(sender, lambda f: f["type"] == "stream_end")
            return seen + rest, sender_frames, stop_latency, sent_at

    watcher_frames, sender_frames, stop_latency, stop_sent_at = asyncio.run(scenario())
    assert watcher_frames[-1]["status"] == "cancelled" and sender_frames[-1]["status"] == "cancelled"
    watcher_tokens = [f for f in watcher_frames if f["type"] == "token"]
    sender_tokens = [f for f in sender_frames if f["type"] == "token"]
    assert watcher_tokens == sender_tokens  # the same stream, seen from the other worker
    assert stop_latency < 1.0, stop_latency
    reply = Message.objects.get(pk=watcher_frames[-1]["message_id"])
    assert reply.status == MessageStatus.CANCELLED
    assert reply.content == "".join(f["delta"] for f in sender_tokens)
    assert len(sender_tokens) < 1000
    deadline = time.monotonic() + 5
    while fake_ollama.stats.aborted < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_ollama.stats.aborted == 1  # the worker running the job freed the backend
    # The stop reached the job on the other worker and closed its upstream request within 100 ms (the fake
    # sees the hang-up at its next token, at most 5 ms later).
    assert fake_ollama.stats.aborted_at - stop_sent_at < 0.1, fake_ollama.stats.aborted_at - stop_sent_at


def test_an_sse_reply_is_watched_and_stopped_from_the_other_worker(workers, fake_ollama):
    """Started over SSE (the fast path) on one worker; watched over the WebSocket and stopped with
    `session_stop` on the other."""
    fake_ollama.configure(tokens=1000, delay_ms=5)
    user = UserFactory()
    room = RoomFactory(owner=user)
    _t, token = create_api_token(user=user, name="scale-out")
    port_a, port_b = workers
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario():
        url = f"ws://127.0.0.1:{port_b}/ws/chat/{room.pk}/?token={token}"
        async with websockets.connect(url, additional_headers={"Origin": "http://127.0.0.1:8000"}) as watcher, \
                httpx.AsyncClient(headers=auth, timeout=15) as client:
            await frames_until(watcher, lambda f: f["type"] == "presence")
            body = {"content": "over sse", "model": "fake-llm:latest"}
            async with client.stream("POST", f"http://127.0.0.1:{port_a}/api/v1/chat/sessions/{room.pk}/messages",
                                     json=body) as response:
                assert response.status_code == 200
                chunks = response.aiter_text()
                received = await anext(chunks)
                seen = await frames_until(watcher, lambda f: f["type"] == "token" and f["seq"] >= 5)
                session = await client.post(f"http://127.0.0.1:{port_b}/api/v1/session/",
                                            json={"room_id": str(room.pk)})
                sent_at = time.monotonic()
                stop = await client.post(f"http://127.0.0.1:{port_b}/api/v1/session/{session.json()['id']}/stop")
                assert stop.json() == {"stopped": 1}
                rest = await frames_until(watcher, lambda f: f["type"] == "stream_end")
                async for chunk in chunks:
                    received += chunk
            return seen + rest, received, sent_at

    watcher_frames, sse_text, stop_sent_at = asyncio.run(scenario())
    assert watcher_frames[-1]["status"] == "cancelled"
    events = [block.split("\n", 1) for block in sse_text.strip().split("\n\n")]
    assert events[0][0] == "event: start" and events[-1][0] == "event: done"
    assert json.loads(events[-1][1].removeprefix("data: "))["status"] == "cancelled"
    sse_text_tokens = "".join(json.loads(data.removeprefix("data: "))["delta"]
                              for name, data in events if name == "event: token")
    reply = Message.objects.get(pk=watcher_frames[-1]["message_id"])
    assert reply.status == MessageStatus.CANCELLED and reply.content == sse_text_tokens
    deadline = time.monotonic() + 5
    while fake_ollama.stats.aborted < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_ollama.stats.aborted == 1
    assert fake_ollama.stats.aborted_at - stop_sent_at < 0.1, fake_ollama.stats.aborted_at - stop_sent_at
