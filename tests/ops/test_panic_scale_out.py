"""The panic switch across two Uvicorn workers on PostgreSQL and Redis: 20 replies streaming on both, panic
triggered on one; every reply ends `cancelled` within a second with no text lost, new work is refused with 423
on both workers, and a reset lets it through again. Runs in the second pass of .ci/run (PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from accounts.services import create_api_token
from chat.models import Message, MessageStatus
from tests.factories import RoomFactory, UserFactory
from tests.test_scale_out import frames_until, pytestmark, running_workers  # noqa: F401 - the same skip rule

REPLIES = 20
USERS = 4  # five replies each: the per-user limit


@pytest.fixture
def workers(fake_ollama, transactional_db):
    with running_workers("uvicorn", fake_ollama.url) as ports:
        yield ports


def test_panic_on_one_worker_stops_every_reply_on_both(workers, fake_ollama):
    fake_ollama.configure(tokens=5000, delay_ms=50)  # a reply (512 tokens at most) lasts 25 s: none ends first
    users = [UserFactory() for _ in range(USERS)]
    tokens = {user.pk: create_api_token(user=user, name="panic")[1] for user in users}
    rooms = [RoomFactory(owner=users[i % USERS]) for i in range(REPLIES)]
    staff = UserFactory(is_staff=True, is_superuser=True)
    staff_token = create_api_token(user=staff, name="ops")[1]
    ports = workers
    origin = {"Origin": "http://127.0.0.1:8000"}

    async def scenario():
        sockets = []
        for index, room in enumerate(rooms):  # alternate workers: half the replies run on each
            url = f"ws://127.0.0.1:{ports[index % 2]}/ws/chat/{room.pk}/?token={tokens[room.owner_id]}"
            ws = await websockets.connect(url, additional_headers=origin)
            await frames_until(ws, lambda f: f["type"] == "presence")
            await ws.send(json.dumps({"type": "send_message", "content": f"reply {index}"}))
            sockets.append(ws)
        seen = [await frames_until(ws, lambda f: f["type"] == "token") for ws in sockets]
        async with httpx.AsyncClient(timeout=15) as client:
            staff_auth = {"Authorization": f"Bearer {staff_token}"}
            sent_at = time.monotonic()
            trigger = await client.post(f"http://127.0.0.1:{ports[0]}/api/v1/chat/panic/trigger",
                                        json={"reason": "drill"}, headers=staff_auth)
            assert trigger.status_code == 200, trigger.text
            ends = await asyncio.gather(*(frames_until(ws, lambda f: f["type"] == "stream_end") for ws in sockets))
            ended_within = time.monotonic() - sent_at
            refused = []
            for port in ports:
                user = users[0]
                response = await client.post(
                    f"http://127.0.0.1:{port}/api/v1/chat/sessions/{rooms[0].pk}/messages",
                    json={"content": "during panic"}, headers={"Authorization": f"Bearer {tokens[user.pk]}"},
                )
                refused.append((response.status_code, response.json()["error"]["code"]))
            reset = await client.post(f"http://127.0.0.1:{ports[1]}/api/v1/chat/panic/reset", headers=staff_auth)
            assert reset.status_code == 200
            fake_ollama.configure(tokens=3, delay_ms=0)
            after = []
            for port, room in zip(ports, rooms[:2], strict=True):
                response = await client.post(
                    f"http://127.0.0.1:{port}/api/v1/chat/sessions/{room.pk}/messages",
                    json={"content": "after reset"}, headers={"Authorization": f"Bearer {tokens[room.owner_id]}"},
                )
                after.append((response.status_code, response.text))
        for ws in sockets:
            await ws.close()
        return trigger.json(), [a + b for a, b in zip(seen, ends, strict=True)], ended_within, refused, after

    trigger, frames, ended_within, refused, after = asyncio.run(scenario())
    assert trigger["streams_stopped"] == REPLIES
    assert ended_within < 1.0, ended_within
    for room_frames in frames:
        end = room_frames[-1]
        assert end["status"] == "cancelled"
        assert any(f["type"] == "panic" and f["active"] for f in room_frames)
        reply = Message.objects.get(pk=end["message_id"])
        streamed = "".join(f["delta"] for f in room_frames if f["type"] == "token")
        assert reply.status == MessageStatus.CANCELLED and reply.content == streamed and streamed
    assert refused == [(423, "panic"), (423, "panic")]
    for status, body in after:
        assert status == 200 and "event: done" in body and '"status": "complete"' in body.replace('":"', '": "')
