"""The staff Models page in Debian's Chromium against a real Daphne server: the fake Ollama as one server, and the
stand-in `ollama` binary (tests/fakes/ollama-serve) as the managed second one. A screenshot goes to
docs/screenshots/ops-models-light-desktop.png."""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest

from tests.procs import daphne_on_fresh_database, free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a-long-models-passphrase"
LLM, CODER = "ollama/fake-llm:latest", "ollama/fake-coder:7b"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(fake):
    """Daphne on its own SQLite file; every `ollama serve` it starts is gone after the module."""
    managed_port = free_port()
    with tempfile.TemporaryDirectory() as run_folder:
        run_dir = Path(run_folder) / "ollama"
        extra = {
            "OLLAMA_URLS": f"{fake.url},http://127.0.0.1:{managed_port}",
            "OLLAMA_MANAGED_URL": f"http://127.0.0.1:{managed_port}",
            "OLLAMA_BINARY": str(ROOT / "tests" / "fakes" / "ollama-serve"),
            "OLLAMA_RUN_DIR": str(run_dir), "LOCAL_MODELS_ENABLED": "false", "HOT_SLOT_CHECK_SECONDS": "2",
        }
        try:
            with daphne_on_fresh_database(fake.url, extra_env=extra) as (base, _folder):
                for username in ("owner", "member"):
                    httpx.post(f"{base}/api/v1/auth/register", json={
                        "username": username, "email": f"{username}@example.com", "password": PASSWORD,
                    }).raise_for_status()
                yield base
        finally:
            try:
                state = json.loads((run_dir / "serve.json").read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("pid") and psutil.pid_exists(state["pid"]):
                os.killpg(state["pid"], signal.SIGKILL)


def sign_in(page, server: str, username: str) -> None:
    page.goto(f"{server}/signin/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f-]+/$"))


def catalogue_row(page, name: str):
    return page.locator("#catalogue-body tr", has=page.get_by_text(name, exact=True))


def test_members_get_403(server, new_page):
    page = new_page()
    sign_in(page, server, "member")
    assert page.goto(f"{server}/ops/models/").status == 403


def test_models_page_warms_pins_evicts_controls_the_server_and_sets_the_mode(server, new_page, fake):
    fake.reset_stats()
    page = new_page()
    console: list[str] = []
    page.on("console", lambda message: message.type == "error" and console.append(message.text))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server, "owner")
    page.get_by_role("navigation", name="Operations").get_by_role("link", name="Models").click()
    page.wait_for_url(f"{server}/ops/models/")
    expect(page.get_by_role("link", name="Models")).to_have_attribute("aria-current", "page")
    llm = catalogue_row(page, LLM)
    expect(llm.locator(".dot")).to_have_attribute("data-state", "idle")
    expect(page.locator("#server-state")).to_have_text("stopped")
    expect(page.locator("#servers-body tr").first).to_contain_text("reachable")

    # Warm loads it with the default keep-alive: the dot turns on and the unload countdown runs.
    page.get_by_role("button", name=f"Warm {LLM}").click()
    expect(page.locator("#ops-status")).to_contain_text(f"{LLM} is loaded")
    expect(llm.locator(".dot")).to_have_attribute("data-state", "loaded")
    expect(llm.locator(".countdown")).to_have_text(re.compile(r"^in [45]:\d\d$"))
    # Pin puts it in the first free slot, kept forever.
    page.get_by_role("button", name=f"Pin {LLM}").click()
    expect(page.locator("#slots-body tr").first).to_contain_text(LLM)
    expect(llm.locator(".countdown")).to_have_text("never")
    assert fake.loaded["fake-llm:latest"].startswith("2318")
    # Evict frees a model outside the slots.
    page.get_by_role("button", name=f"Warm {CODER}").click()
    coder = catalogue_row(page, CODER)
    expect(coder.locator(".dot")).to_have_attribute("data-state", "loaded")
    page.get_by_role("button", name=f"Evict {CODER}").click()
    expect(coder.locator(".dot")).to_have_attribute("data-state", "idle")
    assert "fake-coder:7b" not in fake.loaded

    # The managed server: start, a mode that waits for a restart, restart, stop.
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator("#server-state")).to_have_text("running")
    first_pid = page.locator("#server-pid").inner_text()
    assert re.fullmatch(r"pid \d+", first_pid)
    page.get_by_label("Mode", exact=True).select_option("efficiency")
    expect(page.locator("#mode-description")).to_contain_text("one model at a time")
    page.get_by_role("button", name="Apply mode").click()
    expect(page.locator("#ops-status")).to_contain_text("Mode set to efficiency")
    expect(page.locator("#ops-status")).to_contain_text("restart")
    expect(page.locator("#mode-num-ctx")).to_have_text("2048 tokens")
    expect(page.locator("#mode-current")).to_have_text("efficiency")
    page.get_by_role("button", name="Restart…").click()
    expect(page.locator("#ops-status")).to_contain_text("Ollama server restart: now running")
    expect(page.locator("#server-pid")).not_to_have_text(first_pid)
    expect(page.locator("#mode-applies")).to_have_text("The running server was started with them.")
    page.locator("#server-log-box summary").click()
    expect(page.locator("#server-log")).to_contain_text("OLLAMA_NUM_PARALLEL': '1'")
    page.get_by_role("button", name="Auto-detect").click()
    expect(page.locator("#ops-status")).to_contain_text("Auto-detect picked")
    expect(page.locator("#mode-detection")).to_contain_text("CPU cores")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ops-models-light-desktop.png"), animations="disabled", full_page=True)
    page.get_by_role("button", name="Stop…").click()
    expect(page.locator("#server-state")).to_have_text("stopped")
    expect(page.locator("#server-exit")).to_contain_text("shutdown: Manual shutdown, code 0")
    # Removing the slot hands the model back to the default keep-alive.
    page.get_by_role("button", name="Remove from hot slot 1").click()
    expect(page.locator("#slots-body tr").first).to_contain_text("empty")
    expect(llm.locator(".countdown")).to_have_text(re.compile(r"^in \d+:\d\d$"))
    assert page.errors == [] and console == []
