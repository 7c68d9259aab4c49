"""The panic switch: stops every reply, tells every socket, refuses chat work with 423 until reset; the wipe;
the API, `manage.py panic` and the admin; every change audited."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services import create_api_token
from chat.broadcast import call_service
from chat.models import Message, MessageStatus, Project, Room, Stream
from chat.streaming import jobs
from chatproject.asgi import application
from ops import services
from ops.models import AuditEvent, PanicState
from ops.panic import CACHE_KEY, is_panicking
from tests.chat.wsutil import connect, frames_until, is_end, text_of
from tests.conftest import client_for
from tests.factories import PASSWORD, MessageFactory, ProjectFactory, RoomFactory, UserFactory


@pytest.fixture(autouse=True)
def _no_cached_switch():
    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


@pytest.fixture
async def drain_jobs():
    yield
    for job in list(jobs.JOBS.values()):
        job.request_stop()
        if job.task:
            await asyncio.wait_for(job.task, 5)


def staff_user(**kwargs) -> User:
    return UserFactory(is_staff=True, is_superuser=True, **kwargs)


# --- stopping, telling, refusing (one process, the in-memory layer) ---------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_panic_stops_every_reply_tells_every_socket_and_refuses_until_reset(fake_ollama, drain_jobs):
    fake_ollama.configure(tokens=2000, delay_ms=5)
    alice, bob, carol = [await database_sync_to_async(UserFactory)() for _ in range(3)]
    staff = await database_sync_to_async(staff_user)()
    rooms = [await database_sync_to_async(RoomFactory)(owner=owner) for owner in (alice, alice, bob)]
    idle_room = await database_sync_to_async(RoomFactory)(owner=carol)
    senders = []
    for room in rooms:
        ws = await connect(room.owner, room.pk)
        await ws.send_json_to({"type": "send_message", "content": "talk for a long time"})
        senders.append((ws, await frames_until(ws, lambda f: f["type"] == "token" and f["seq"] >= 3)))
    bystander = await connect(carol, idle_room.pk)

    triggered_at = time.monotonic()
    outcome = await call_service(services.trigger_panic, actor=staff, reason="leak")
    assert outcome.streams_stopped == 3

    for ws, seen in senders:
        rest = await frames_until(ws, is_end, timeout=2)
        assert time.monotonic() - triggered_at < 1.0
        assert rest[-1]["status"] == "cancelled"
        assert {"type": "panic", "active": True, "reason": "leak", "wiped": False} in rest
        reply = await database_sync_to_async(Message.objects.get)(pk=rest[-1]["message_id"])
        assert reply.status == MessageStatus.CANCELLED
        assert reply.content == text_of(seen + rest) and reply.content  # the partial text is kept
    assert (await bystander.receive_json_from(timeout=2))["type"] == "panic"

    # New chat work is refused over the WebSocket, with an error frame; the socket stays open.
    ws, _ = senders[0]
    await ws.send_json_to({"type": "send_message", "content": "again"})
    refused = await frames_until(ws, lambda f: f["type"] == "error")
    assert refused[-1]["code"] == "panic"
    await ws.send_json_to({"type": "ping"})
    assert (await frames_until(ws, lambda f: f["type"] == "pong"))[-1] == {"type": "pong"}

    await call_service(services.reset_panic, actor=staff)
    assert (await frames_until(ws, lambda f: f["type"] == "panic"))[-1]["active"] is False
    fake_ollama.configure(tokens=5, delay_ms=0)
    await ws.send_json_to({"type": "send_message", "content": "back to work"})
    assert (await frames_until(ws, is_end))[-1]["status"] == "complete"
    for ws, _ in senders:
        await ws.disconnect()
    await bystander.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_that_connects_during_panic_is_told_at_once(fake_ollama):
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    staff = await database_sync_to_async(staff_user)()
    await call_service(services.trigger_panic, actor=staff, reason="")
    _t, token = await database_sync_to_async(create_api_token)(user=user, name="ws")
    ws = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/?token={token}",
                               headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")])
    assert (await ws.connect())[0]
    assert await ws.receive_json_from(timeout=2) == {"type": "panic", "active": True}
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_rest_and_sse_chat_work_answer_423_while_reads_and_deletes_still_work(user, api, fake_ollama):
    room = RoomFactory(owner=user)
    services.trigger_panic(actor=staff_user(), reason="audit in progress")
    for path, body in [
        (f"/api/v1/chat/sessions/{room.pk}/messages", {"content": "hi"}),
        ("/api/v1/chat/sessions", {"title": "x"}),
        ("/api/v1/rooms/", {"name": "x"}),
        ("/api/v1/rooms/fresh", {}),
    ]:
        response = api.post(path, body, format="json")
        assert response.status_code == 423, path
        assert response.json()["error"]["code"] == "panic"
    assert api.get("/api/v1/rooms/").status_code == 200
    assert api.get(f"/api/v1/rooms/{room.pk}/history").status_code == 200
    assert api.delete(f"/api/v1/rooms/{room.pk}").status_code == 204
    assert api.get("/api/v1/chat/health").json()["panic"] is True


# --- the API, audit, wipe ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_trigger_status_and_reset_are_staff_only_and_audited(user, api):
    assert api.post("/api/v1/chat/panic/trigger", {"reason": "x"}, format="json").status_code == 403
    assert api.get("/api/v1/chat/panic/status").status_code == 403
    assert api.post("/api/v1/chat/panic/reset").status_code == 403
    assert not is_panicking() and not AuditEvent.objects.exists()

    boss = client_for(staff_user(username="boss"))
    answer = boss.post("/api/v1/chat/panic/trigger", {"reason": "model misbehaves"}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True and body["reason"] == "model misbehaves" and body["triggered_by"] == "boss"
    assert body["streams_stopped"] == 0 and body["deleted"] == {} and body["wiped"] is False
    assert boss.get("/api/v1/chat/panic/status").json()["active"] is True
    assert is_panicking()

    reset = boss.post("/api/v1/chat/panic/reset").json()
    assert reset["active"] is False and reset["reset_by"] == "boss"
    assert not is_panicking()
    trail = list(AuditEvent.objects.order_by("id").values("action", "actor_username", "details"))
    assert [event["action"] for event in trail] == ["panic.trigger", "panic.reset"]
    assert trail[0]["details"]["before"]["active"] is False and trail[0]["details"]["after"]["active"] is True
    assert trail[1]["details"]["before"]["reason"] == "model misbehaves"
    assert trail[1]["details"]["after"]["active"] is False


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_bad_trigger_input_is_a_400_and_changes_nothing():
    boss = client_for(staff_user())
    for body in ({"wipe_data": "maybe"}, {"reason": "x" * 501}, {"reason": 5}):
        response = boss.post("/api/v1/chat/panic/trigger", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"
    assert not is_panicking() and not PanicState.objects.filter(active=True).exists()


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_wipe_deletes_all_chat_data_and_keeps_users_tokens_and_the_trail(user):
    other = UserFactory()
    create_api_token(user=other, name="keep me")
    project = ProjectFactory(owner=user)
    rooms = [RoomFactory(owner=user, project=project), RoomFactory(owner=other)]
    for room in rooms:
        MessageFactory(room=room, content="secret")
        MessageFactory(room=room, content="more secret")
    record = services.record_audit_event(actor=None, action="user.update", target="earlier")

    boss = client_for(staff_user(username="boss"))
    body = boss.post("/api/v1/chat/panic/trigger", {"reason": "breach", "wipe_data": True}, format="json").json()

    assert body["wiped"] is True
    assert body["deleted"]["chat.Room"] == 2 and body["deleted"]["chat.Message"] == 4
    assert body["deleted"]["chat.Project"] == 1
    assert not Room.objects.exists() and not Message.objects.exists() and not Project.objects.exists()
    assert not Stream.objects.exists()
    assert User.objects.filter(pk__in=[user.pk, other.pk]).count() == 2
    assert ApiToken.objects.filter(user=other).exists()
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["user.update", "panic.trigger", "panic.wipe"] and AuditEvent.objects.filter(pk=record.pk)
    assert AuditEvent.objects.get(action="panic.wipe").details["deleted"]["chat.Message"] == 4
    assert boss.get("/api/v1/chat/panic/status").json()["wipe_counts"]["chat.Room"] == 2


# --- manage.py panic and the admin ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_manage_py_panic_trigger_status_reset(user):
    RoomFactory(owner=user)
    out = io.StringIO()
    call_command("panic", "trigger", "--reason", "ui down", stdout=out)
    assert "Panic is ON" in out.getvalue() and is_panicking()
    out = io.StringIO()
    call_command("panic", "status", stdout=out)
    assert '"active": true' in out.getvalue() and '"reason": "ui down"' in out.getvalue()
    call_command("panic", "reset", stdout=io.StringIO())
    assert not is_panicking()
    assert Room.objects.count() == 1  # no wipe was asked for
    events = AuditEvent.objects.order_by("id")
    assert [e.action for e in events] == ["panic.trigger", "panic.reset"]
    assert events[0].actor is None and events[0].actor_username.startswith("manage.py (")


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_manage_py_wipe_asks_before_deleting(user, monkeypatch):
    RoomFactory(owner=user)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(Exception, match="Not confirmed"):
        call_command("panic", "trigger", "--wipe-data", stdout=io.StringIO())
    assert Room.objects.count() == 1 and not is_panicking()
    call_command("panic", "trigger", "--wipe-data", "--yes", stdout=io.StringIO())
    assert Room.objects.count() == 0 and is_panicking()


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_admin_switches_panic_only_through_audited_actions():
    boss = staff_user(username="root")
    browser = Client()
    assert browser.login(username="root", password=PASSWORD)
    assert browser.get("/admin/ops/panicstate/").status_code == 200
    assert browser.get("/admin/ops/panicstate/add/").status_code == 403
    response = browser.post("/admin/ops/panicstate/", {"action": "switch_on", "_selected_action": ["1"]})
    assert response.status_code == 302 and is_panicking()
    browser.post("/admin/ops/panicstate/", {"action": "switch_off", "_selected_action": ["1"]})
    assert not is_panicking()
    assert [e.actor_id for e in AuditEvent.objects.order_by("id")] == [boss.pk, boss.pk]


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_every_page_shows_the_banner_while_panic_is_on(user):
    browser = Client()
    browser.force_login(user)
    assert 'id="panic-banner" role="alert" hidden' in browser.get("/chat/").content.decode()
    services.trigger_panic(actor=None, actor_name="test", reason="")
    assert 'id="panic-banner" role="alert">' in browser.get("/chat/").content.decode()
    assert 'id="panic-banner" role="alert">' in Client().get("/signin/").content.decode()


@pytest.mark.django_db(transaction=True)  # the switch reaches the cache on commit
def test_trigger_can_unload_the_models(fake_ollama):
    httpx.post(f"{fake_ollama.url}/api/generate", json={"model": "fake-llm:latest"})  # Ollama's own preload
    assert list(fake_ollama.loaded) == ["fake-llm:latest"]
    boss = client_for(staff_user())
    body = boss.post("/api/v1/chat/panic/trigger", {"reason": "memory", "unload_models": True}, format="json").json()
    assert body["unloaded"] == [f"ollama: {fake_ollama.url} fake-llm:latest"]
    assert fake_ollama.loaded == {} and fake_ollama.stats.unloads == 1
    assert AuditEvent.objects.get(action="panic.unload_models").details == {"unloaded": body["unloaded"]}
    assert boss.post("/api/v1/chat/panic/trigger", {"reason": "again"}, format="json").json()["unloaded"] == []
