"""The catalogue: enriched rows from /api/show and GGUF headers, per-server time-outs, the last good list served
while a refresh runs, down servers named, and the context length used for prompt trimming."""

from __future__ import annotations

import socket
import time

import pytest
from asgiref.sync import async_to_sync

from chat.streaming.jobs import fit_to_context
from models_mgmt.gguf import metadata_for
from models_mgmt.providers import ChatTurn, GenerationOptions
from models_mgmt.providers.local import bundled_model_path
from models_mgmt.registry import registry
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.django_db


def closed_port_url() -> str:
    """An address nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def staff_api(db):
    return client_for(UserFactory(username="boss", is_staff=True))


def test_list_has_show_and_ps_facts_and_marks_orchestrator_models(fake_ollama, anon_client):
    fake_ollama.configure(models=["fake-llm:latest", "fake-coder:7b", "fake-base:1b", "nomic-embed-text:latest"])
    rows = {row["name"]: row for row in anon_client.get("/api/v1/chat/models").json()["results"]}
    llm = rows["fake-llm:latest"]
    assert llm["max_context_length"] == 8192 and llm["context_length"] == 4096  # OLLAMA_NUM_CTX caps the window
    assert llm["parameter_size"] == "1M" and llm["quantization"] == "Q4_0" and llm["instruct"] is True
    assert llm["server"] == "ollama-1" and llm["server_url"] is None and llm["loaded"] is False
    assert rows["fake-coder:7b"]["capabilities"] == ["chat", "tools", "orchestrator"]
    assert rows["fake-base:1b"]["instruct"] is False and "orchestrator" not in rows["fake-base:1b"]["capabilities"]
    assert rows["nomic-embed-text:latest"]["capabilities"] == ["embed"]
    assert rows["nomic-embed-text:latest"]["context_length"] == 512  # the model's own window is smaller
    orchestrators = anon_client.get("/api/v1/chat/models/orchestrator-suitable").json()["results"]
    assert [row["name"] for row in orchestrators] == ["fake-llm:latest", "fake-coder:7b"]


def test_staff_see_server_addresses(fake_ollama, staff_api):
    row = staff_api.get("/api/v1/chat/models").json()["results"][0]
    assert row["server_url"] == fake_ollama.url
    server = staff_api.get("/api/v1/chat/models/status").json()["servers"][0]
    assert server == {**server, "url": fake_ollama.url, "server": "ollama-1", "ok": True, "models": 2}


def test_loaded_state_comes_from_api_ps(fake_ollama, anon_client):
    fake_ollama.configure(gpu=True)
    fake_ollama.loaded["fake-coder:7b"] = "2318-01-01T00:00:00Z"
    fake_ollama.loaded_ctx["fake-coder:7b"] = 8192
    rows = {row["name"]: row for row in anon_client.get("/api/v1/chat/models").json()["results"]}
    coder = rows["fake-coder:7b"]
    assert coder["loaded"] is True and coder["loaded_on"] == ["ollama-1"]
    assert coder["memory_bytes"] == coder["vram_bytes"] == 1_000_000 + 8192 * 1000
    assert coder["expires_at"].startswith("2318-01-01")
    status = anon_client.get("/api/v1/chat/models/status").json()
    assert [(m["model"], m["context_length"]) for m in status["loaded"]] == [("ollama/fake-coder:7b", 8192)]
    assert status["memory"]["used_bytes"] == coder["memory_bytes"] and status["memory"]["budget_bytes"] > 0


def test_local_models_carry_their_gguf_metadata(settings, anon_client, tmp_path):
    settings.LOCAL_MODELS_ENABLED, settings.OLLAMA_URLS, settings.OPENAI_BASE_URL = True, [], ""
    settings.MODELS_DIR = tmp_path
    (tmp_path / "Broken.Q8_0.gguf").write_bytes(b"GGUF\x03\x00")  # a damaged header lists with defaults
    rows = {row["name"]: row for row in anon_client.get("/api/v1/chat/models").json()["results"]}
    bundled = rows["smollm2-135m-instruct"]
    assert bundled["max_context_length"] == 8192 and bundled["context_length"] == settings.LOCAL_N_CTX
    assert (bundled["family"], bundled["parameter_size"], bundled["quantization"]) == ("llama", "135M", "Q4_1")
    assert bundled["instruct"] is True and bundled["server"] == "local"
    assert rows["broken"]["max_context_length"] is None and rows["broken"]["quantization"] == "Q8_0"
    assert metadata_for(bundled_model_path()).chat_template.count("<|im_start|>") >= 1


def test_dead_and_hung_servers_are_named_and_do_not_slow_the_list(fake_ollama, settings, staff_api):
    hung = FakeOllama().start_in_thread()
    hung.configure(list_delay_ms=10_000)
    dead = closed_port_url()
    settings.OLLAMA_URLS = [fake_ollama.url, dead, hung.url]
    settings.MODEL_SERVER_TIMEOUT_SECONDS = 0.5
    try:
        staff_api.get("/healthz")  # URL map and apps loaded before the clock starts
        started = time.monotonic()
        listing = staff_api.get("/api/v1/chat/models").json()
        first = time.monotonic() - started
        assert [row["name"] for row in listing["results"]] == ["fake-llm:latest", "fake-coder:7b"]
        assert first < 1.5  # the hung server was given 0.5 s, not its 10
        servers = {s["url"]: s for s in listing["servers"]}  # the list itself says which servers are down
        assert servers == {s["url"]: s for s in staff_api.get("/api/v1/chat/models/status").json()["servers"]}
        assert servers[fake_ollama.url]["ok"] is True
        assert servers[dead] == {**servers[dead], "ok": False, "error": "connection refused", "server": "ollama-2"}
        assert servers[hung.url] == {**servers[hung.url], "ok": False, "error": "no answer within 0.5 s"}
    finally:
        hung.stop()


def test_an_old_list_is_served_at_once_while_a_refresh_runs(fake_ollama, settings, anon_client):
    settings.MODEL_LIST_TTL_SECONDS = 1
    assert len(anon_client.get("/api/v1/chat/models").json()["results"]) == 2
    fake_ollama.configure(list_delay_ms=800, models=["fake-llm:latest", "fake-coder:7b", "new-model:1b"])
    time.sleep(1.1)
    started = time.monotonic()
    status = anon_client.get("/api/v1/chat/models/status").json()
    rows = anon_client.get("/api/v1/chat/models").json()["results"]
    assert time.monotonic() - started < 0.5  # neither waited for the slow server
    assert status["refreshing"] is True and status["age_seconds"] >= 1 and len(rows) == 2
    for _ in range(50):  # the background refresh lands
        if registry.find("new-model:1b") is not None:
            break
        time.sleep(0.1)
    assert [row["name"] for row in anon_client.get("/api/v1/chat/models").json()["results"]][-1] == "new-model:1b"


def test_the_model_context_from_api_show_is_what_prompts_are_trimmed_to(fake_ollama):
    fake_ollama.configure(profiles={"fake-llm:latest": {"context_length": 1024}})
    model = async_to_sync(registry.resolve)("fake-llm:latest")
    assert model.context_length == 1024
    turns = [ChatTurn("user" if i % 2 == 0 else "assistant", "word " * 100) for i in range(20)]
    kept = async_to_sync(fit_to_context)(turns, model, GenerationOptions(max_tokens=256))
    assert 1 < len(kept) < len(turns) and kept[-1] is turns[-1]
    assert sum(len(turn.content) // 4 + 4 for turn in kept) <= 1024 - 256
