"""`chat_messages_send` answers text/event-stream: start, token per delta, then done or error."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import Role
from accounts.services import create_api_token
from chat.models import Message, MessageStatus
from tests.factories import MembershipFactory, RoomFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def parse_sse(raw: str) -> list[tuple[str, dict]]:
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def _setup():
    user = await sync_to_async(UserFactory)()
    room = await sync_to_async(RoomFactory)(owner=user)
    _t, token = await sync_to_async(create_api_token)(user=user, name="sse")
    return user, room, BearerClient(token)


class BearerClient(AsyncClient):
    """AsyncClient that sends the Bearer token on every request."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def generic(self, *args, headers=None, **kwargs):
        return super().generic(*args, headers={**(headers or {}), "Authorization": f"Bearer {self.token}"}, **kwargs)


def team_room_with_tokens():
    """A team room, and Bearer tokens for its owner, a founder of the team (read-only) and a stranger."""
    team = TeamFactory()
    owner, founder, stranger = UserFactory(), UserFactory(), UserFactory()
    MembershipFactory(team=team, user=owner, role=Role.MEMBER)
    MembershipFactory(team=team, user=founder, role=Role.FOUNDER)
    room = RoomFactory(owner=owner, team=team)
    return room, {name: create_api_token(user=user, name="t")[1]
                  for name, user in (("owner", owner), ("founder", founder), ("stranger", stranger))}


async def read(response) -> str:
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


async def test_sse_streams_and_stores(fake_ollama):
    _user, room, client = await _setup()
    response = await client.post(
        f"/api/v1/chat/sessions/{room.pk}/messages",
        {"content": "hi", "temperature": 0.3, "top_k": 5, "system_prompt": "Be brief."},
        content_type="application/json",
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = parse_sse(await read(response))
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "token" in names
    start, done = events[0][1], events[-1][1]
    assert set(start) == {"stream_id", "message_id", "model"}
    seqs = [data["seq"] for name, data in events if name == "token"]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 20
    assert done["status"] == "complete" and done["usage"]["completion_tokens"] == 20
    assert set(done["timings"]) == {"time_to_first_token_ms", "tokens_per_second", "total_ms"}
    stored = await sync_to_async(Message.objects.get)(pk=start["message_id"])
    assert stored.content == "".join(data["delta"] for name, data in events if name == "token")
    sent = fake_ollama.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["options"]["temperature"] == 0.3 and sent["options"]["top_k"] == 5


async def test_sse_error_event_when_backend_dies(fake_ollama):
    fake_ollama.configure(die_after=2)
    _user, room, client = await _setup()
    response = await client.post(f"/api/v1/chat/sessions/{room.pk}/messages", {"content": "hi"},
                                 content_type="application/json")
    events = parse_sse(await read(response))
    names = [name for name, _ in events]
    assert names[0] == "start" and set(names[1:-1]) == {"token"} and names[-1] == "error"
    assert events[-1][1]["code"] == "backend_error"
    assert "".join(data["delta"] for name, data in events if name == "token") == "t0 t1 "
    stored = await sync_to_async(Message.objects.get)(pk=events[0][1]["message_id"])
    assert stored.status == MessageStatus.ERROR and stored.content == "t0 t1 "


async def test_sse_rejects_bad_input_with_json_errors(fake_ollama, settings):
    _user, room, client = await _setup()
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    empty = await client.post(url, {"content": ""}, content_type="application/json")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "validation_error"
    unknown = await client.post(url, {"content": "x", "model": "nope"}, content_type="application/json")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "model_not_found"
    hot = await client.post(url, {"content": "x", "temperature": 5}, content_type="application/json")
    assert hot.status_code == 400
    other_room = await sync_to_async(RoomFactory)()
    assert (await client.post(f"/api/v1/chat/sessions/{other_room.pk}/messages", {"content": "x"},
                              content_type="application/json")).status_code == 404
    assert not await sync_to_async(Message.objects.filter(room=room).exists)()


async def test_sixth_stream_gets_429_and_a_second_reply_in_a_room_409(fake_ollama, settings):
    settings.STREAMS_PER_USER = 1
    fake_ollama.configure(tokens=2000, delay_ms=5)
    user, room, client = await _setup()
    other_room = await sync_to_async(RoomFactory)(owner=user)
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    first = await client.post(url, {"content": "one"}, content_type="application/json")
    chunks = first.streaming_content.__aiter__()
    await chunks.__anext__()  # the job is running now
    same_room = await client.post(url, {"content": "two"}, content_type="application/json")
    assert same_room.status_code == 409 and same_room.json()["error"]["code"] == "reply_in_progress"
    second = await client.post(f"/api/v1/chat/sessions/{other_room.pk}/messages", {"content": "two"},
                               content_type="application/json")
    assert second.status_code == 429 and second.json()["error"]["code"] == "too_many_streams"
    assert int(second["Retry-After"]) > 0
    session = await client.post("/api/v1/session/", {"room_id": str(room.pk)}, content_type="application/json")
    stop_sent_at = time.monotonic()
    stop = await client.post(f"/api/v1/session/{session.json()['id']}/stop")
    assert stop.json() == {"stopped": 1}
    rest = b"".join([c async for c in chunks]).decode()
    assert '"status":"cancelled"' in rest
    for _ in range(50):
        if fake_ollama.stats.aborted:
            break
        await asyncio.sleep(0.02)
    assert fake_ollama.stats.aborted_at - stop_sent_at < 0.1  # session_stop reached the job within 100 ms


async def test_sse_needs_auth_and_respects_throttles(fake_ollama, settings):
    _user, room, client = await _setup()
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    anonymous = await AsyncClient().post(url, {"content": "x"}, content_type="application/json")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "user": "1/min"}
    settings.REST_FRAMEWORK = rest
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        await client.get("/api/v1/rooms/")  # uses up the one request a minute
        throttled = await client.post(url, {"content": "x"}, content_type="application/json")
        assert throttled.status_code == 429 and throttled.has_header("Retry-After")
    finally:
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert not await sync_to_async(Message.objects.filter(room=room).exists)()


async def test_sse_scope_holds_whether_or_not_a_model_is_named(fake_ollama):
    """Naming a model skips the separate room lookup: the start itself must then answer 404 and 403."""

    room, tokens = await sync_to_async(team_room_with_tokens)()
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    for body in ({"content": "x"}, {"content": "x", "model": "fake-llm:latest"}):
        founder = await BearerClient(tokens["founder"]).post(url, body, content_type="application/json")
        assert founder.status_code == 403
        stranger = await BearerClient(tokens["stranger"]).post(url, body, content_type="application/json")
        assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "not_found"
        bad_id = await BearerClient(tokens["owner"]).post("/api/v1/chat/sessions/nope/messages", body,
                                                          content_type="application/json")
        assert bad_id.status_code == 404
    assert not await sync_to_async(Message.objects.filter(room=room).exists)()
    owner = await BearerClient(tokens["owner"]).post(url, {"content": "x", "model": "fake-llm:latest"},
                                                     content_type="application/json")
    assert owner.status_code == 200 and '"status":"complete"' in await read(owner)


async def test_an_event_stream_client_gets_the_stream_and_json_errors(fake_ollama):
    """Asking for text/event-stream (as EventSource-style clients do) gets the stream; an error before the
    stream starts still comes as the JSON envelope."""
    _user, room, client = await _setup()
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    streamed = await client.post(url, {"content": "hi"}, content_type="application/json",
                                 headers={"Accept": "text/event-stream"})
    assert streamed.status_code == 200 and streamed["Content-Type"] == "text/event-stream"
    assert parse_sse(await read(streamed))[-1][0] == "done"
    refused = await client.post(url, {"content": ""}, content_type="application/json",
                                headers={"Accept": "text/event-stream"})
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "validation_error"
