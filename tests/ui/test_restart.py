"""A worker dies mid-reply and comes back: the open page learns the reply was interrupted, without a reload."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from tests.procs import free_port, wait_for_http
from tests.ui.test_browser import CHROMIUM, FAKE, PASSWORD, ROOT, expect, last_reply, send, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


class Worker:
    """One Daphne worker on a fixed port and database file, which the test can kill and start again."""

    def __init__(self, fake_url: str):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "DATABASE_URL": f"sqlite:///{self.tmp.name}/restart.sqlite3", "OLLAMA_URLS": fake_url,
            "LOCAL_MODELS_ENABLED": "false", "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": self.base, "THROTTLE_IP_RATE": "100000/min", "THROTTLE_USER_RATE": "100000/min",
            "THROTTLE_AUTH_RATE": "100000/min",
        }
        self.env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "chatproject.asgi:application"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_http(f"{self.base}/signin/", self.process)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.tmp.cleanup()


@pytest.fixture
def worker(fake):
    worker = Worker(fake.url)
    worker.start()
    yield worker
    worker.close()


def test_a_reply_cut_by_a_restart_shows_as_interrupted(worker, new_page, fake):
    fake.configure(tokens=600, delay_ms=40, text=None)
    httpx.post(f"{worker.base}/api/v1/auth/register",
               json={"username": "phoenix", "email": "phoenix@example.com", "password": PASSWORD}).raise_for_status()
    page = new_page()
    sign_in(page, worker.base, "phoenix")
    send(page, "Keep going.", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t20 ", timeout=15_000)
    expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    # Partial text is saved every STREAM_FLUSH_SECONDS: kill once a save holds "t20 ", so the test does not race it.
    room_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    def stored_reply() -> str:
        history = page.request.get(f"{worker.base}/api/v1/rooms/{room_id}/history").json()["results"]
        return history[-1]["content"] if history and history[-1]["role"] == "assistant" else ""

    deadline = time.monotonic() + 10
    while "t20 " not in stored_reply() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill()
    worker.start()
    expect(last_reply(page)).to_have_attribute("data-status", "interrupted", timeout=20_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.get_by_role("button", name="Stop generating")).to_be_hidden()
    assert re.search(r"t20 ", last_reply(page).locator(".content").inner_text())  # the partial text stays
