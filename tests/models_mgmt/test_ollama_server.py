"""Ollama server control: a stand-in `ollama` binary (tests/fakes/ollama-serve, the fake server honouring
OLLAMA_HOST) started, restarted and shut down through the API, with its state shared through the run directory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from models_mgmt import keeper, ollama_server
from ops.models import AuditEvent
from tests.conftest import client_for
from tests.fakes.ollama import FOREVER

pytestmark = pytest.mark.django_db

LLM = "fake-llm:latest"
STATUS = "/api/v1/chat/ollama/server/status"


def reachable(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/version", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def loaded_on(url: str) -> dict[str, str]:
    return {item["name"]: item["expires_at"] for item in httpx.get(f"{url}/api/ps", timeout=2).json()["models"]}


def test_nothing_configured_answers_409_and_status_still_probes_the_servers(fake_ollama, staff_api, anon_client,
                                                                           settings):
    settings.OLLAMA_BINARY = ""
    for action in ("start", "shutdown", "restart"):
        response = staff_api.post(f"/api/v1/chat/ollama/server/{action}", {}, format="json")
        assert response.status_code == 409, response.content
        error = response.json()["error"]
        assert error["code"] == "not_configured" and "OLLAMA_BINARY" in error["message"]
        assert error["details"] == {"servers": ["ollama-1"]}
    body = anon_client.get(STATUS).json()
    assert body["managed"] is False and body["state"] == "unmanaged" and body["pid"] is None
    assert body["servers"] == [{"server": "ollama-1", "url": None, "managed": False, "reachable": True,
                                "version": "0.0.0-fake", "error": "", "elapsed_ms": body["servers"][0]["elapsed_ms"]}]
    assert staff_api.get(STATUS).json()["servers"][0]["url"] == fake_ollama.url
    assert not AuditEvent.objects.exists()


def test_start_status_and_shutdown(managed, staff_api, anon_client, user):
    before = anon_client.get(STATUS).json()
    assert before["state"] == "stopped" and before["servers"][0]["reachable"] is False
    assert before["servers"][0]["error"] == "connection refused"
    assert anon_client.post("/api/v1/chat/ollama/server/start").status_code == 401
    assert client_for(user).post("/api/v1/chat/ollama/server/start").status_code == 403

    response = staff_api.post("/api/v1/chat/ollama/server/start", {"reason": "morning"}, format="json")
    assert response.status_code == 200, response.content
    result = response.json()
    status = result["status"]
    assert result["action"] == "start" and result["reason"] == "morning" and result["previous_pid"] is None
    assert status["state"] == "running" and status["version"] == "0.0.0-fake" and status["uptime_seconds"] >= 0
    pid = status["pid"]
    assert psutil.Process(pid).cmdline()[-2:] == ["tests.fakes.ollama", "serve"] and reachable(managed)
    assert os.getpgid(pid) == pid  # a session of its own, detached from the worker
    assert status["environment"] == {} and any("fake ollama on" in line for line in status["log_tail"])
    assert Path(status["log_file"]).parent == Path(ollama_server.run_dir())
    listing = staff_api.get("/api/v1/chat/models").json()["results"]
    assert any(row["name"] == LLM for row in listing)  # the catalogue sees it
    public = anon_client.get(STATUS).json()
    assert public["state"] == "running" and public["pid"] is None and public["log_tail"] == []
    assert public["url"] is None and public["servers"][0]["reachable"] is True

    again = staff_api.post("/api/v1/chat/ollama/server/start")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_running"

    stopped = staff_api.post("/api/v1/chat/ollama/server/shutdown")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["previous_pid"] == pid and stopped.json()["status"]["state"] == "stopped"
    assert stopped.json()["status"]["last_exit"] == {**stopped.json()["status"]["last_exit"], "code": 0,
                                                     "reason": "shutdown: Manual shutdown", "killed": False}
    assert not reachable(managed) and not psutil.pid_exists(pid)
    assert staff_api.post("/api/v1/chat/ollama/server/shutdown").json()["error"]["code"] == "not_running"
    events = list(AuditEvent.objects.order_by("id").values_list("action", "details"))
    assert events == [
        ("ollama.server.start", {"before": {"state": "stopped", "pid": None, "version": None, "reason": "morning"},
                                 "after": {"state": "running", "pid": pid, "version": "0.0.0-fake"}}),
        ("ollama.server.shutdown", {"before": {"state": "running", "pid": pid, "version": "0.0.0-fake",
                                               "reason": "Manual shutdown"},
                                    "after": {"state": "stopped", "pid": None, "version": None}}),
    ]


# The keeper reads the hot slots as a worker does (from its own thread), so the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_restart_gives_a_new_process_and_the_hot_slots_are_warm_again_within_30_s(managed, staff_api, settings):
    assert staff_api.post("/api/v1/chat/ollama/server/start").status_code == 200
    assigned = staff_api.post("/api/v1/chat/models/hot-slots/1", {"model": LLM}, format="json")
    assert assigned.status_code == 200, assigned.content
    assert loaded_on(managed) == {LLM: FOREVER}
    old_pid = ollama_server.read_state()["pid"]
    settings.HOT_SLOT_CHECK_SECONDS = 5
    try:
        response = staff_api.post("/api/v1/chat/ollama/server/restart", {}, format="json")
        assert response.status_code == 200, response.content
        restarted_at = time.monotonic()
        body = response.json()
        assert body["reason"] == "Manual restart" and body["previous_pid"] == old_pid
        assert body["status"]["pid"] != old_pid and not psutil.pid_exists(old_pid)
        keeper.ensure_started()
        while loaded_on(managed) != {LLM: FOREVER}:
            assert time.monotonic() - restarted_at < 30, "the hot-slotted model was not warmed again"
            time.sleep(0.2)
    finally:
        settings.HOT_SLOT_CHECK_SECONDS = 0
    event = AuditEvent.objects.get(action="ollama.server.restart")
    assert event.details["before"]["pid"] == old_pid and event.details["before"]["reason"] == "Manual restart"
    assert event.details["after"]["pid"] == body["status"]["pid"]


def test_a_server_that_fails_to_start_reports_its_log(managed, staff_api, monkeypatch):
    monkeypatch.setenv("FAKE_OLLAMA_FAIL_START", "listen tcp: address already in use")
    response = staff_api.post("/api/v1/chat/ollama/server/start")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "start_failed" and error["details"]["exit_code"] == 1
    assert any("address already in use" in line for line in error["details"]["log"])
    status = staff_api.get(STATUS).json()
    assert status["state"] == "stopped" and status["last_exit"]["code"] == 1
    assert status["last_exit"]["reason"].startswith("failed to start")
    event = AuditEvent.objects.get(action="ollama.server.start")
    assert event.details["after"] == {"state": "stopped", "pid": None, "version": None, "error": "start_failed"}


def test_a_server_ignoring_sigterm_is_killed(managed, staff_api, monkeypatch, settings):
    monkeypatch.setenv("FAKE_OLLAMA_IGNORE_SIGTERM", "1")
    settings.OLLAMA_STOP_TIMEOUT_SECONDS = 1
    assert staff_api.post("/api/v1/chat/ollama/server/start").status_code == 200
    stopped = staff_api.post("/api/v1/chat/ollama/server/shutdown", {"reason": "hung"}, format="json").json()
    assert stopped["status"]["last_exit"] == {**stopped["status"]["last_exit"], "code": -signal.SIGKILL,
                                              "reason": "shutdown: hung", "killed": True}
    assert not reachable(managed)


def test_another_worker_can_stop_it_and_a_crash_is_recorded(managed, staff_api):
    """The pid and start time are in the run directory, so a worker that did not start the server stops it; one
    that dies on its own is seen by the worker that started it."""
    pid = staff_api.post("/api/v1/chat/ollama/server/start").json()["status"]["pid"]
    popen = ollama_server._children.pop(pid)  # as if another worker had started it
    try:
        stopped = staff_api.post("/api/v1/chat/ollama/server/shutdown").json()["status"]
        assert stopped["state"] == "stopped" and stopped["last_exit"]["code"] is None and not reachable(managed)
    finally:
        popen.wait(5)
    pid = staff_api.post("/api/v1/chat/ollama/server/start").json()["status"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (status := staff_api.get(STATUS).json())["last_exit"]["reason"] != "exited on its own":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["state"] == "stopped" and status["last_exit"]["code"] == -signal.SIGKILL


def test_one_operation_at_a_time_and_an_outside_server_is_left_alone(managed, staff_api, fake_ollama, settings):
    with ollama_server.control_lock():  # another worker is starting or stopping it
        busy = staff_api.post("/api/v1/chat/ollama/server/start")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "operation_in_progress"
    settings.OLLAMA_URLS = [fake_ollama.url]  # an Ollama this app did not start answers at the managed address
    assert staff_api.get(STATUS).json()["state"] == "external"
    start = staff_api.post("/api/v1/chat/ollama/server/start")
    assert start.status_code == 409 and start.json()["error"] == {**start.json()["error"], "code": "already_running",
                                                                   "details": {"external": True}}
    assert staff_api.post("/api/v1/chat/ollama/server/shutdown").json()["error"]["code"] == "not_managed"
    assert reachable(fake_ollama.url)


def test_bad_input(managed, staff_api):
    for body in ({"reason": 5}, {"reason": "x" * 501}):
        response = staff_api.post("/api/v1/chat/ollama/server/restart", body, format="json")
        assert response.status_code == 400 and "reason" in response.json()["error"]["details"]
    assert staff_api.get("/api/v1/chat/ollama/server/start").status_code == 405
    assert not reachable(managed)
