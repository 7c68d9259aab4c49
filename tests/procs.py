"""Helpers for tests that start real processes on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Poll `url` until it answers; fail early with the process's stderr if it died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
                process.kill()
                raise RuntimeError(f"{process.args[:4]} did not come up at {url}: {stderr}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def daphne_on_fresh_database(ollama_urls: str, *, extra_env: dict | None = None):
    """A real Daphne worker on its own migrated SQLite file, independent of the test database, with rate limits
    out of the way; yields its base URL and its folder (the server's log is `server.log` there)."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {
            **os.environ, "DATABASE_URL": f"sqlite:///{folder}/server.sqlite3", "OLLAMA_URLS": ollama_urls,
            "LOCAL_MODELS_ENABLED": "true", "THROTTLE_IP_RATE": "100000/min", "THROTTLE_USER_RATE": "100000/min",
            "THROTTLE_AUTH_RATE": "100000/min", "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}", **(extra_env or {}),
        }
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
        with open(Path(folder) / "server.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/signin/", process, timeout=120)  # it loads the embedding model before serving
            yield base, Path(folder)
        finally:
            process.terminate()
            process.wait(10)
