"""The chat page's model picker marks the models loaded now, and reads them again when it is opened (Debian's
Chromium against Daphne, with the fake Ollama as the only backend)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.procs import free_port, wait_for_http

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "a-long-picker-passphrase"
LLM, CODER = "ollama/fake-llm:latest", "ollama/fake-coder:7b"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def chat_server(fake):
    """Daphne on a SQLite file of its own; the catalogue is listed again a second after each listing. A second
    Ollama server is configured on a port nobody listens on."""
    with tempfile.TemporaryDirectory() as folder:
        port, dead = free_port(), free_port()
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder}/picker.sqlite3",
               "OLLAMA_URLS": f"{fake.url},http://127.0.0.1:{dead}",
               "LOCAL_MODELS_ENABLED": "false", "MODEL_LIST_TTL_SECONDS": "1", "LOG_LEVEL": "WARNING",
               "THROTTLE_IP_RATE": "100000/min", "THROTTLE_USER_RATE": "100000/min",
               "THROTTLE_AUTH_RATE": "100000/min", "ALLOWED_HOSTS": "127.0.0.1,localhost",
               "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}"}
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/signin/", process)
            httpx.post(f"{base}/api/v1/auth/register", json={
                "username": "picker", "email": "picker@example.com", "password": PASSWORD,
            }).raise_for_status()
            yield base
        finally:
            process.terminate()
            process.wait(10)


def sign_in(page, server: str) -> None:
    page.goto(f"{server}/signin/")
    page.get_by_label("Username or email").fill("picker")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f-]+/$"))


def option(page, name: str):
    return page.locator(f'#model-picker option[value="{name}"]')


def test_the_picker_marks_a_preloaded_model_as_loaded(chat_server, new_page, fake):
    fake.reset_stats()
    page = new_page()
    sign_in(page, chat_server)
    expect(option(page, CODER)).to_have_attribute("data-loaded", "false")
    expect(option(page, CODER)).to_have_text("fake-coder:7b (ollama)")

    # Loaded on the server behind the page's back, as a preload from elsewhere would.
    httpx.post(f"{fake.url}/api/generate", json={"model": "fake-coder:7b", "keep_alive": "5m"}).raise_for_status()
    picker = page.locator("#model-picker")
    deadline = time.monotonic() + 15
    while option(page, CODER).get_attribute("data-loaded") != "true" and time.monotonic() < deadline:
        page.get_by_role("button", name=re.compile("send", re.I)).first.focus()  # close, then open it again
        picker.focus()
        page.wait_for_timeout(300)
    expect(option(page, CODER)).to_have_attribute("data-loaded", "true")
    expect(option(page, CODER)).to_have_text("● fake-coder:7b (ollama)")
    expect(option(page, CODER)).to_have_attribute("aria-label", "fake-coder:7b (ollama), loaded")
    expect(option(page, LLM)).to_have_attribute("data-loaded", "false")
    assert page.errors == []


def test_the_picker_names_a_server_that_is_down(chat_server, new_page, fake):
    page = new_page()
    sign_in(page, chat_server)
    down = page.locator("#model-picker option[data-down]")
    expect(down).to_have_text("ollama-2 is unreachable: connection refused")
    expect(down).to_be_disabled()
    expect(page.locator("#model-picker")).to_have_value(LLM)  # the default still chosen, not the notice
    assert page.errors == []


def test_the_phone_layout_fits_the_screen_with_a_down_server_in_the_picker(chat_server, new_page, fake):
    page = new_page(viewport={"width": 390, "height": 844})
    sign_in(page, chat_server)
    expect(page.locator("#model-picker option[data-down]")).to_have_count(1)  # the longest entry
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for control in (page.get_by_label("Model", exact=True), page.get_by_label("Search other chats"),
                    page.get_by_role("button", name="Send")):
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    page.get_by_role("button", name="Chat settings").click()
    dialog = page.locator("dialog[open]")
    for control in (dialog.get_by_label("Max tokens"), dialog.get_by_role("button", name="Save")):
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, control
    assert page.errors == []
