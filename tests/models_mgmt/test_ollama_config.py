"""Ollama configuration modes: per-request values reach the backend at once, server variables wait for the managed
server's next start, auto-detect explains its pick; staff only and audited."""

from __future__ import annotations

import psutil
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from accounts.services import create_api_token
from models_mgmt import keeper
from models_mgmt.memory import GpuMemory
from models_mgmt.models import OllamaConfig
from models_mgmt.modes import GIB, MODES, detect_mode
from models_mgmt.registry import registry
from ops.models import AuditEvent
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.conftest import client_for
from tests.factories import RoomFactory, UserFactory

CONFIG = "/api/v1/chat/ollama/config"
LLM = "fake-llm:latest"


@pytest.mark.django_db
def test_no_mode_means_the_environment_values(fake_ollama, staff_api, user, anon_client):
    assert anon_client.get(CONFIG).status_code == 401
    assert client_for(user).get(CONFIG).status_code == 403
    assert client_for(user).post(f"{CONFIG}/mode", {"mode": "balanced"}, format="json").status_code == 403
    assert client_for(user).post(f"{CONFIG}/auto-detect", {}, format="json").status_code == 403
    body = staff_api.get(CONFIG).json()
    assert body["mode"] is None and body["values"] is None and body["detection"] is None
    assert body["per_request"] == {"keep_alive": None, "num_ctx": 4096} and body["server_environment"] == {}
    assert body["server"] == {"managed": False, "state": "unmanaged", "restart_required": False,
                              "applies": "outside", "message": "No server variables are set."}
    assert body["modes"]["performance"] == {**body["modes"]["performance"], "num_parallel": 4,
                                            "max_loaded_models": 4, "num_ctx": 8192, "keep_alive": "30m"}
    assert not OllamaConfig.objects.exists()


async def send(client: BearerClient, room_id) -> None:
    response = await client.post(f"/api/v1/chat/sessions/{room_id}/messages", {"content": "hi"},
                                 content_type="application/json")
    assert [name for name, _data in parse_sse(await read(response))][-1] == "done"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_mode_reaches_the_next_chat_request_at_once(fake_ollama):
    staff = await sync_to_async(UserFactory)(username="boss", is_staff=True)
    room = await sync_to_async(RoomFactory)(owner=staff, model=f"ollama/{LLM}")
    _token, raw = await sync_to_async(create_api_token)(user=staff, name="t")
    staff_client = BearerClient(raw)
    await send(staff_client, room.pk)
    assert fake_ollama.stats.last_request["options"]["num_ctx"] == 4096
    assert "keep_alive" not in fake_ollama.stats.last_request  # the server's default

    for mode, num_ctx, keep_alive in (("efficiency", 2048, "2m"), ("performance", 8192, "30m")):
        response = await staff_client.post(f"{CONFIG}/mode", {"mode": mode}, content_type="application/json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["mode"] == mode and body["per_request"] == {"keep_alive": keep_alive, "num_ctx": num_ctx}
        assert body["server"]["applies"] == "outside" and "environment of `ollama serve`" in body["server"]["message"]
        assert body["server_environment"]["OLLAMA_NUM_PARALLEL"] == str(MODES[mode].num_parallel)
        await send(staff_client, room.pk)
        sent = fake_ollama.stats.last_request
        assert (sent["options"]["num_ctx"], sent["keep_alive"]) == (num_ctx, keep_alive), mode
        assert fake_ollama.loaded_ctx[LLM] == num_ctx
    row = next(r for r in (await staff_client.get("/api/v1/chat/models")).json()["results"] if r["name"] == LLM)
    assert row["context_length"] == 8192
    events = await sync_to_async(list)(AuditEvent.objects.filter(action="ollama.config.mode").order_by("id")
                                       .values_list("details", flat=True))
    assert [(e["before"]["mode"], e["after"]["mode"], e["source"]) for e in events] == [
        (None, "efficiency", "manual"), ("efficiency", "performance", "manual")]
    assert events[1]["after"] == {"mode": "performance", "keep_alive": "30m", "num_ctx": 8192,
                                  **MODES["performance"].server_environment()}


@pytest.mark.django_db(transaction=True)
def test_other_workers_take_the_mode_at_their_keeper_check(fake_ollama):
    OllamaConfig.objects.create(pk=1, mode="efficiency")  # stored by another worker
    assert registry.provider("ollama").num_ctx == 4096
    async_to_sync(keeper.check_once)()
    provider = registry.provider("ollama")
    assert (provider.num_ctx, provider.keep_alive) == (2048, "2m")
    assert async_to_sync(registry.resolve)(LLM).context_length == 2048


@pytest.mark.django_db
def test_server_variables_wait_for_the_managed_servers_next_start(managed, staff_api):
    assert staff_api.get(CONFIG).json()["server"]["applies"] == "next_start"
    assert staff_api.post("/api/v1/chat/ollama/server/start").status_code == 200
    assert staff_api.get(CONFIG).json()["server"]["applies"] == "in_effect"  # no mode: nothing to pass
    changed = staff_api.post(f"{CONFIG}/mode", {"mode": "balanced"}, format="json").json()
    assert changed["server"] == {**changed["server"], "state": "running", "restart_required": True,
                                 "applies": "restart"}
    assert "chat_ollama_restart" in changed["server"]["message"]
    restarted = staff_api.post("/api/v1/chat/ollama/server/restart", {"reason": "balanced mode"}, format="json")
    assert restarted.status_code == 200, restarted.content
    status = restarted.json()["status"]
    assert status["environment"] == MODES["balanced"].server_environment()
    seen = [line for line in status["log_tail"] if line.startswith("server config env=")][-1]  # this start's
    assert "'OLLAMA_NUM_PARALLEL': '2'" in seen and "'OLLAMA_MAX_LOADED_MODELS': '2'" in seen
    assert staff_api.get(CONFIG).json()["server"] == {**changed["server"], "restart_required": False,
                                                      "applies": "in_effect",
                                                      "message": "The running server was started with them."}


def test_detection_rules():
    cases = [
        (4 * GIB, 4, [], "efficiency", "under 8 GiB"),
        (16 * GIB, 2, [], "efficiency", "2 cores or fewer"),
        (16 * GIB, 8, [], "balanced", "enough for two models"),
        (64 * GIB, 16, [], "performance", "32 GiB of RAM"),
        (8 * GIB, 4, [GpuMemory(0, "RTX 4090", 24 * GIB, 0, 24 * GIB)], "performance", "GPU with 16 GiB"),
    ]
    for ram, cpus, gpus, mode, why in cases:
        picked = detect_mode(ram_bytes=ram, cpus=cpus, gpus=gpus)
        assert picked["mode"] == mode and why in picked["explanation"], (ram, cpus, picked)
        assert f"{cpus} CPU cores" in picked["reasons"]
    assert "GPU RTX 4090 with 24.0 GiB" in detect_mode(ram_bytes=8 * GIB, cpus=4, gpus=cases[-1][2])["explanation"]


@pytest.mark.django_db
def test_auto_detect_explains_and_applies(fake_ollama, staff_api):
    preview = staff_api.post(f"{CONFIG}/auto-detect", {"apply": False}, format="json").json()
    facts = preview["detection"]["facts"]
    assert facts["ram_bytes"] == psutil.virtual_memory().total and facts["cpus"] == psutil.cpu_count()
    assert preview["applied"] is False and preview["config"]["mode"] is None and not AuditEvent.objects.exists()
    assert preview["detection"]["explanation"].startswith(preview["detection"]["mode"].capitalize() + ":")
    applied = staff_api.post(f"{CONFIG}/auto-detect", format="json").json()
    mode = applied["detection"]["mode"]
    assert applied["applied"] is True and applied["config"]["mode"] == mode
    assert staff_api.get(CONFIG).json()["detection"]["mode"] == mode
    event = AuditEvent.objects.get(action="ollama.config.mode")
    assert event.details["source"] == "auto-detect" and event.details["after"]["mode"] == mode


@pytest.mark.django_db
def test_bad_input(fake_ollama, staff_api):
    for body in ({"mode": "turbo"}, {}, {"mode": 1}):
        response = staff_api.post(f"{CONFIG}/mode", body, format="json")
        assert response.status_code == 400 and "mode" in response.json()["error"]["details"], body
    bad = staff_api.post(f"{CONFIG}/auto-detect", {"apply": "yes"}, format="json")
    assert bad.status_code == 400 and "apply" in bad.json()["error"]["details"]
    assert staff_api.get(f"{CONFIG}/mode").status_code == 405
    assert not OllamaConfig.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_admin_edits_the_one_row_audited(fake_ollama):
    boss = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    response = client.post("/admin/models_mgmt/ollamaconfig/add/", {"mode": "efficiency"})
    assert response.status_code == 302 and OllamaConfig.objects.get().mode == "efficiency"
    assert OllamaConfig.objects.get().pk == 1 and OllamaConfig.objects.get().updated_by == boss
    assert AuditEvent.objects.filter(action="admin.models_mgmt.ollamaconfig.add").exists()
    assert registry.provider("ollama").num_ctx == 2048  # this worker at once
    assert client.get("/admin/models_mgmt/ollamaconfig/add/").status_code == 403  # one row only
    assert client.post("/admin/models_mgmt/ollamaconfig/1/change/", {"mode": "turbo"}).status_code == 200
    assert OllamaConfig.objects.get().mode == "efficiency"
