"""Preload, unload, hot slots (kept with keep_alive -1, re-warmed after a restart), the memory budget, and
system memory: against the fake Ollama, and the bundled model for local loading."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from models_mgmt import keeper
from models_mgmt.models import HotSlot
from models_mgmt.providers import ChatTurn, GenerationOptions
from models_mgmt.registry import registry
from ops.models import AuditEvent, PanicState
from ops.panic import CACHE_KEY
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.fakes.ollama import FOREVER

pytestmark = pytest.mark.django_db

LLM = "fake-llm:latest"


@pytest.fixture
def staff(db):
    return UserFactory(username="boss", is_staff=True)


@pytest.fixture
def staff_api(staff):
    return client_for(staff)


def test_preload_loads_with_the_chat_context_and_is_audited(fake_ollama, staff_api, staff):
    response = staff_api.post("/api/v1/chat/models/preload", {"model": LLM, "keep_alive": "10m"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {**response.json(), "model": f"ollama/{LLM}", "loaded": True, "servers": ["ollama-1"],
                               "keep_alive": "10m"}
    assert list(fake_ollama.loaded) == [LLM] and fake_ollama.loaded_ctx[LLM] == 4096
    assert fake_ollama.stats.last_request["keep_alive"] == "10m" and "prompt" not in fake_ollama.stats.last_request
    row = next(r for r in staff_api.get("/api/v1/chat/models").json()["results"] if r["name"] == LLM)
    assert row["loaded"] is True and row["memory_bytes"] > 0
    event = AuditEvent.objects.get(action="models.preload")
    assert event.actor == staff and event.details == {"before": {"loaded": []}, "after": {"loaded": [f"ollama/{LLM}"]}}
    # A reply on the preloaded model asks for the same context, so Ollama does not load it a second time.
    model = async_to_sync(registry.resolve)(LLM)
    collect(model)
    assert fake_ollama.stats.loads == 1


def collect(model) -> str:
    async def run() -> str:
        provider = registry.provider(model.provider)
        parts = [chunk.delta async for chunk in provider.stream_chat(
            model=model, messages=[ChatTurn("user", "hi")], options=GenerationOptions(max_tokens=3))]
        return "".join(parts)

    return async_to_sync(run)()


def test_unload_frees_the_model_and_is_audited(fake_ollama, staff_api):
    staff_api.post("/api/v1/chat/models/preload", {"model": LLM}, format="json")
    response = staff_api.post(f"/api/v1/chat/models/unload/{LLM}")
    assert response.status_code == 200 and response.json() == {"model": f"ollama/{LLM}", "unloaded": True,
                                                                "servers": ["ollama-1"]}
    assert fake_ollama.loaded == {} and fake_ollama.stats.unloads == 1
    assert AuditEvent.objects.get(action="models.unload").details["after"] == {"loaded": []}
    again = staff_api.post(f"/api/v1/chat/models/unload/{LLM}")
    assert again.status_code == 200 and again.json()["unloaded"] is False
    staff_api.post("/api/v1/chat/models/preload", {"model": LLM}, format="json")
    qualified = staff_api.post(f"/api/v1/chat/models/unload/ollama/{LLM}")  # the name the catalogue gives
    assert qualified.status_code == 200 and qualified.json()["unloaded"] is True and fake_ollama.loaded == {}


def test_bad_input_and_who_may(fake_ollama, staff_api, user, anon_client):
    assert anon_client.post("/api/v1/chat/models/preload", {"model": LLM}).status_code == 401
    assert client_for(user).post("/api/v1/chat/models/preload", {"model": LLM}).status_code == 403
    assert client_for(user).get("/api/v1/chat/system/memory").status_code == 403
    unknown = staff_api.post("/api/v1/chat/models/preload", {"model": "nope"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "model_not_found"
    bad = staff_api.post("/api/v1/chat/models/preload", {"model": LLM, "keep_alive": "soon"}, format="json")
    assert bad.status_code == 400 and "keep_alive" in bad.json()["error"]["details"]
    assert staff_api.post("/api/v1/chat/models/preload", {}, format="json").status_code == 400
    missing = staff_api.post("/api/v1/chat/models/unload/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert staff_api.post("/api/v1/chat/models/hot-slots/5", {"model": LLM}).status_code == 400
    assert staff_api.delete("/api/v1/chat/models/hot-slots/2").status_code == 404
    assert fake_ollama.loaded == {}


def test_panic_refuses_loads_but_allows_unloads(fake_ollama, staff_api, settings):
    staff_api.post("/api/v1/chat/models/preload", {"model": LLM}, format="json")
    PanicState.objects.update_or_create(pk=1, defaults={"active": True})
    from django.core.cache import cache

    cache.delete(CACHE_KEY)
    refused = staff_api.post("/api/v1/chat/models/preload", {"model": "fake-coder:7b"}, format="json")
    assert refused.status_code == 423 and "fake-coder:7b" not in fake_ollama.loaded
    assert staff_api.post("/api/v1/chat/models/hot-slots/1", {"model": LLM}, format="json").status_code == 423
    assert staff_api.post(f"/api/v1/chat/models/unload/{LLM}").status_code == 200 and fake_ollama.loaded == {}


def test_memory_budget_refuses_a_load_naming_what_to_unload(fake_ollama, staff_api, settings):
    staff_api.post("/api/v1/chat/models/preload", {"model": LLM}, format="json")
    used = fake_ollama._ps_entry(LLM)["size"]
    settings.MODEL_MEMORY_BUDGET = str(used + 500_000)  # room for less than another 1 MB model
    response = staff_api.post("/api/v1/chat/models/preload", {"model": "fake-coder:7b"}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "memory_budget" and f"ollama/{LLM}" in error["message"]
    assert error["details"] == {**error["details"], "unload": [f"ollama/{LLM}"], "used_bytes": used,
                                "fits_after_unloading": True}
    assert "fake-coder:7b" not in fake_ollama.loaded
    settings.MODEL_MEMORY_BUDGET = "100%"
    assert staff_api.post("/api/v1/chat/models/preload", {"model": "fake-coder:7b"}, format="json").status_code == 200


def test_hot_slot_keeps_its_model_loaded_through_replies_and_lets_go_on_removal(fake_ollama, staff_api, anon_client):
    response = staff_api.post("/api/v1/chat/models/hot-slots/1", {"model": LLM}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"slot": 1, "model": f"ollama/{LLM}", "replaced": None, "loaded": True,
                               "servers": ["ollama-1"]}
    assert fake_ollama.loaded[LLM] == FOREVER
    collect(async_to_sync(registry.resolve)(LLM))  # a reply sets keep_alive again: still forever
    assert fake_ollama.stats.last_request["keep_alive"] == -1 and fake_ollama.loaded[LLM] == FOREVER
    slots = anon_client.get("/api/v1/chat/models/hot-slots").json()
    assert [(s["slot"], s["model"], s["loaded"]) for s in slots] == [
        (1, f"ollama/{LLM}", True), (2, None, False), (3, None, False), (4, None, False)]
    assert slots[0]["assigned_by"] is None  # names of staff are for staff
    assert staff_api.get("/api/v1/chat/models/hot-slots").json()[0]["assigned_by"] == "boss"
    twice = staff_api.post("/api/v1/chat/models/hot-slots/2", {"model": LLM}, format="json")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_in_slot"
    pinned = staff_api.post(f"/api/v1/chat/models/unload/{LLM}")
    assert pinned.status_code == 409 and pinned.json()["error"]["code"] == "in_hot_slot"
    removed = staff_api.delete("/api/v1/chat/models/hot-slots/1")
    assert removed.status_code == 200 and removed.json() == {"slot": 1, "model": f"ollama/{LLM}", "removed": True}
    assert fake_ollama.loaded[LLM] != FOREVER and not HotSlot.objects.exists()
    collect(async_to_sync(registry.resolve)(LLM))
    assert fake_ollama.stats.last_request.get("keep_alive") is None
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "details"))
    assert actions == [("models.hot_slot.assign", {"before": {"model": None}, "after": {"model": f"ollama/{LLM}"}}),
                       ("models.hot_slot.remove", {"before": {"model": f"ollama/{LLM}"}, "after": {"model": None}})]


# The keeper reads the slots as a worker does (database_sync_to_async), so the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_load_hot_slots_and_the_keeper_warm_slotted_models_after_a_restart(fake_ollama, staff_api, staff):
    HotSlot.objects.create(slot=2, model=f"ollama/{LLM}", assigned_by=staff)
    HotSlot.objects.create(slot=3, model="ollama/gone:1b", assigned_by=staff)
    response = staff_api.post("/api/v1/chat/models/load-hot-slots")
    assert response.status_code == 200
    assert [(r["slot"], r["ok"]) for r in response.json()["slots"]] == [(2, True), (3, False)]
    assert fake_ollama.loaded[LLM] == FOREVER
    fake_ollama.restart()  # a restarted Ollama holds nothing
    assert async_to_sync(keeper.check_once)() == [f"ollama/{LLM}"]
    assert fake_ollama.loaded[LLM] == FOREVER
    assert async_to_sync(keeper.check_once)() == []  # nothing missing, nothing loaded again
    assert fake_ollama.stats.loads == 2


# The keeper reads the slots as a worker does (database_sync_to_async), so the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_keeper_loop_warms_within_its_interval(fake_ollama, staff, settings):
    """The running keeper (on the registry's background loop) reloads a slotted model soon after a restart."""
    HotSlot.objects.create(slot=1, model=f"ollama/{LLM}", assigned_by=staff)
    settings.HOT_SLOT_CHECK_SECONDS = 1
    fake_ollama.restart()

    async def wait_for_warm() -> bool:
        keeper.ensure_started()
        for _ in range(60):
            if fake_ollama.loaded.get(LLM) == FOREVER:
                return True
            await asyncio.sleep(0.1)
        return False

    try:
        assert async_to_sync(wait_for_warm)()
    finally:
        settings.HOT_SLOT_CHECK_SECONDS = 0


@pytest.mark.django_db(transaction=True)
def test_keeper_started_by_a_finished_request_keeps_working(fake_ollama, staff, settings):
    """A worker's keeper starts inside some request's call; its checks go on long after that call has ended."""
    HotSlot.objects.create(slot=1, model=f"ollama/{LLM}", assigned_by=staff)
    settings.HOT_SLOT_CHECK_SECONDS = 1

    async def start() -> None:
        keeper.ensure_started()

    try:
        async_to_sync(start)()  # returns at once: the call that started the keeper is over
        deadline = time.monotonic() + 10
        while fake_ollama.loaded.get(LLM) != FOREVER and time.monotonic() < deadline:
            time.sleep(0.1)
        fake_ollama.restart()  # after the first check: only a later one can warm it again
        deadline = time.monotonic() + 10
        while fake_ollama.loaded.get(LLM) != FOREVER and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake_ollama.loaded.get(LLM) == FOREVER
    finally:
        settings.HOT_SLOT_CHECK_SECONDS = 0
        time.sleep(1.2)  # the keeper sees the 0 and stops before the next test


def test_system_memory(fake_ollama, staff_api):
    staff_api.post("/api/v1/chat/models/preload", {"model": LLM}, format="json")
    body = staff_api.get("/api/v1/chat/system/memory").json()
    assert body["process"]["rss_bytes"] > 10_000_000 and body["system"]["total_bytes"] > body["process"]["rss_bytes"]
    assert body["swap"]["total_bytes"] >= 0 and isinstance(body["gpus"], list)
    assert [(m["model"], m["size"]) for m in body["models"]] == [(f"ollama/{LLM}", 1_000_000 + 4096 * 1000)]
    assert body["models_total_bytes"] == 1_000_000 + 4096 * 1000 and body["budget_bytes"] > 0


def test_local_preload_and_unload_with_the_bundled_model(settings, staff_api):
    settings.LOCAL_MODELS_ENABLED, settings.OLLAMA_URLS, settings.OPENAI_BASE_URL = True, [], ""
    name = "smollm2-135m-instruct"
    loaded = staff_api.post("/api/v1/chat/models/preload", {"model": name}, format="json")
    assert loaded.status_code == 200 and loaded.json()["servers"] == ["local"]
    row = next(r for r in staff_api.get("/api/v1/chat/models").json()["results"] if r["name"] == name)
    assert row["loaded"] is True and row["memory_bytes"] == row["size"]
    assert collect(async_to_sync(registry.resolve)(name))  # it answers from the loaded instance
    unloaded = staff_api.post(f"/api/v1/chat/models/unload/{name}")
    assert unloaded.status_code == 200 and unloaded.json()["unloaded"] is True
    assert staff_api.get("/api/v1/chat/models/status").json()["loaded"] == []


def test_admin_edits_of_hot_slots_are_audited(fake_ollama, db):
    from django.test import Client

    boss = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    response = client.post("/admin/models_mgmt/hotslot/add/", {"slot": 4, "model": f"ollama/{LLM}"})
    assert response.status_code == 302 and HotSlot.objects.get(slot=4).model == f"ollama/{LLM}"
    assert AuditEvent.objects.filter(action="admin.models_mgmt.hotslot.add").exists()
    bad = client.post("/admin/models_mgmt/hotslot/add/", {"slot": 9, "model": "x"})
    assert bad.status_code == 200 and not HotSlot.objects.filter(slot=9).exists()
