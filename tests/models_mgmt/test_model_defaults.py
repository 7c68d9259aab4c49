"""Per-model defaults: staff set them (API and admin, audited), and replies use them under the request's options
and the room's own settings; the context cap and keep-alive reach Ollama, and a hot slot's -1 still wins."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.services import create_api_token
from chat.streaming import start_completion
from compat.serializers import generation_options
from models_mgmt import selectors
from models_mgmt.models import ModelDefaults
from models_mgmt.providers import ChatTurn
from models_mgmt.registry import registry
from ops.models import AuditEvent
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.conftest import client_for
from tests.factories import RoomFactory, UserFactory

LLM = "fake-llm:latest"
QUALIFIED = f"ollama/{LLM}"
DEFAULTS = "/api/v1/chat/models/defaults"
STORED = {"context_length": 1024, "keep_alive": "7m", "temperature": 0.2, "top_k": 7,
          "system_prompt": "You are the model's default."}


@pytest.fixture(autouse=True)
def fresh_cache():
    selectors.DEFAULTS_CACHE.forget()
    yield
    selectors.DEFAULTS_CACHE.forget()


@pytest.mark.django_db
def test_staff_only_audited_set_list_and_delete(fake_ollama, staff_api, user, anon_client):
    assert anon_client.get(DEFAULTS).status_code == 401
    assert client_for(user).get(DEFAULTS).status_code == 403
    assert client_for(user).put(f"{DEFAULTS}/{LLM}", STORED, format="json").status_code == 403
    assert client_for(user).delete(f"{DEFAULTS}/{LLM}").status_code == 403
    assert not ModelDefaults.objects.exists()

    response = staff_api.put(f"{DEFAULTS}/{LLM}", STORED, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == QUALIFIED and body["created"] is True and body["updated_by"] == "boss"
    assert {key: body[key] for key in STORED} == STORED and body["top_p"] is None
    event = AuditEvent.objects.get(action="models.defaults.set")
    assert event.target == QUALIFIED and event.details["before"] is None
    assert event.details["after"]["temperature"] == 0.2 and event.details["after"]["keep_alive"] == "7m"

    replaced = staff_api.put(f"{DEFAULTS}/{QUALIFIED}", {"temperature": 0.4}, format="json").json()
    assert replaced["created"] is False and replaced["temperature"] == 0.4 and replaced["top_k"] is None
    second = AuditEvent.objects.filter(action="models.defaults.set").latest("pk")
    assert second.details["before"]["top_k"] == 7 and second.details["after"]["top_k"] is None
    assert [row["model"] for row in staff_api.get(DEFAULTS).json()] == [QUALIFIED]

    assert staff_api.delete(f"{DEFAULTS}/{LLM}").json() == {"model": QUALIFIED, "deleted": True}
    deleted = AuditEvent.objects.get(action="models.defaults.delete")
    assert deleted.details == {"before": {**deleted.details["before"], "temperature": 0.4}, "after": None}
    assert staff_api.delete(f"{DEFAULTS}/{LLM}").status_code == 404
    assert staff_api.get(DEFAULTS).json() == []


@pytest.mark.django_db
@pytest.mark.parametrize("body, field", [
    ({"temperature": 5}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"top_k": "many"}, "top_k"),
    ({"context_length": 10}, "context_length"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"keep_alive": "soon"}, "keep_alive"),
    ({"num_gpu": 1}, "num_gpu"),
])
def test_bad_values_are_400s(fake_ollama, staff_api, body, field):
    response = staff_api.put(f"{DEFAULTS}/{LLM}", body, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json()["error"])
    assert not ModelDefaults.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_unknown_model_and_bad_bodies_are_400s(fake_ollama, staff_api):
    missing = staff_api.put(f"{DEFAULTS}/no-such-model", {"temperature": 0.3}, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "model_not_found"
    assert staff_api.put(f"{DEFAULTS}/{LLM}", [1, 2], format="json").status_code == 400
    assert staff_api.put(f"{DEFAULTS}/{LLM}", "{nope", content_type="application/json").status_code == 400


@pytest.mark.django_db
def test_admin_edits_are_audited_and_seen_at_once(fake_ollama):
    boss = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    assert selectors.model_defaults(QUALIFIED) == selectors.NO_DEFAULTS
    response = client.post("/admin/models_mgmt/modeldefaults/add/",
                           {"model": QUALIFIED, "temperature": "0.3", "keep_alive": "1h", "system_prompt": ""})
    assert response.status_code == 302
    row = ModelDefaults.objects.get()
    assert row.updated_by == boss and AuditEvent.objects.filter(action="admin.models_mgmt.modeldefaults.add").exists()
    assert selectors.model_defaults(QUALIFIED).generation == {"temperature": 0.3}  # the cache was dropped
    bad = client.post("/admin/models_mgmt/modeldefaults/add/", {"model": "x", "keep_alive": "soon", "top_p": "3"})
    assert bad.status_code == 200 and ModelDefaults.objects.count() == 1
    client.post(f"/admin/models_mgmt/modeldefaults/{row.pk}/delete/", {"post": "yes"})
    assert not ModelDefaults.objects.exists()
    assert AuditEvent.objects.filter(action="admin.models_mgmt.modeldefaults.delete").exists()


@pytest.mark.django_db(transaction=True)  # the read runs on the database thread, outside the test's transaction
def test_a_start_reads_the_defaults_at_most_once_per_cache_period(fake_ollama, monkeypatch):
    ModelDefaults.objects.create(model=QUALIFIED, temperature=0.3)
    model = async_to_sync(registry.resolve)(LLM)
    with CaptureQueriesContext(connection) as first:
        assert async_to_sync(selectors.amodel_defaults)(model).generation == {"temperature": 0.3}
    with CaptureQueriesContext(connection) as cached:
        for _ in range(20):
            async_to_sync(selectors.amodel_defaults)(model)
    assert len(first) == 1 and len(cached) == 0
    monkeypatch.setattr(selectors, "MODEL_DEFAULTS_CACHE_SECONDS", 0.0)
    with CaptureQueriesContext(connection) as stale:
        async_to_sync(selectors.amodel_defaults)(model)
    assert len(stale) == 1


async def send(client: BearerClient, room_id, **body) -> dict:
    response = await client.post(f"/api/v1/chat/sessions/{room_id}/messages", {"content": "hi", **body},
                                 content_type="application/json")
    assert [name for name, _data in parse_sse(await read(response))][-1] == "done"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_precedence_request_over_room_over_model_defaults_over_server(fake_ollama):
    staff = await sync_to_async(UserFactory)(username="boss", is_staff=True)
    room = await sync_to_async(RoomFactory)(owner=staff, model=QUALIFIED)
    _token, raw = await sync_to_async(create_api_token)(user=staff, name="t")
    api = BearerClient(raw)

    await send(api, room.pk)
    sent = fake_ollama.stats.last_request
    assert sent["options"]["temperature"] == 0.7 and sent["options"]["top_k"] == 40  # the server's
    assert sent["options"]["num_ctx"] == 4096 and "keep_alive" not in sent
    assert sent["messages"][0]["role"] == "user"

    response = await api.put(f"{DEFAULTS}/{LLM}", STORED, content_type="application/json")
    assert response.status_code == 200, response.content
    await send(api, room.pk)
    sent = fake_ollama.stats.last_request
    assert (sent["options"]["temperature"], sent["options"]["top_k"]) == (0.2, 7)
    assert (sent["options"]["num_ctx"], sent["keep_alive"]) == (1024, "7m")  # the cap and keep-alive reach it
    assert sent["options"]["top_p"] == 0.9  # not set for the model: the server's
    assert sent["messages"][0] == {"role": "system", "content": "You are the model's default."}

    room.system_prompt, room.metadata = "The room's own.", {"generation": {"temperature": 0.5}}
    await sync_to_async(room.save)()
    await send(api, room.pk)
    sent = fake_ollama.stats.last_request
    assert (sent["options"]["temperature"], sent["options"]["top_k"]) == (0.5, 7)
    assert sent["messages"][0] == {"role": "system", "content": "The room's own."}

    await send(api, room.pk, temperature=1.1, top_k=3, system_prompt="Asked for.")
    sent = fake_ollama.stats.last_request
    assert (sent["options"]["temperature"], sent["options"]["top_k"]) == (1.1, 3)
    assert sent["messages"][0] == {"role": "system", "content": "Asked for."}
    assert (sent["options"]["num_ctx"], sent["keep_alive"]) == (1024, "7m")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_hot_slot_keeps_minus_one_over_the_models_keep_alive(fake_ollama):
    staff = await sync_to_async(UserFactory)(username="boss", is_staff=True)
    room = await sync_to_async(RoomFactory)(owner=staff, model=QUALIFIED)
    _token, raw = await sync_to_async(create_api_token)(user=staff, name="t")
    await sync_to_async(ModelDefaults.objects.create)(model=QUALIFIED, keep_alive="7m")
    ollama = registry.provider("ollama")
    saved = dict(ollama.keep_alive_overrides)
    ollama.keep_alive_overrides = {LLM: -1}
    try:
        await send(BearerClient(raw), room.pk)
    finally:
        ollama.keep_alive_overrides = saved
    assert fake_ollama.stats.last_request["keep_alive"] == -1


async def finish(reply) -> None:
    async for _event in reply.iter_events():
        pass


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_compatible_apis_take_the_defaults_for_what_they_leave_out(fake_ollama):
    user = await sync_to_async(UserFactory)()
    await sync_to_async(ModelDefaults.objects.create)(model=QUALIFIED, temperature=0.2, top_k=7, context_length=2048,
                                                      keep_alive="3m", system_prompt="Model default.")
    unset = dict(temperature=None, top_p=None, top_k=None, repeat_penalty=None, max_tokens=None, stop=None, seed=None)
    hello = [ChatTurn(role="user", content="hi")]
    await finish(await start_completion(user=user, turns=hello, model=LLM, options=generation_options(**unset)))
    sent = fake_ollama.stats.last_request
    assert (sent["options"]["temperature"], sent["options"]["top_k"], sent["options"]["num_ctx"]) == (0.2, 7, 2048)
    assert sent["keep_alive"] == "3m" and sent["messages"][0] == {"role": "system", "content": "Model default."}

    own = [ChatTurn(role="system", content="Mine."), *hello]
    options = generation_options(**{**unset, "temperature": 0.7})
    await finish(await start_completion(user=user, turns=own, model=LLM, options=options))
    sent = fake_ollama.stats.last_request
    assert (sent["options"]["temperature"], sent["options"]["top_k"]) == (0.7, 7)  # given equal to the server's
    assert [m["content"] for m in sent["messages"]] == ["Mine.", "hi"]
