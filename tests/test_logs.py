"""Structured logs from a real Uvicorn worker: JSON lines, the request id on the request's and the reply's
lines (and on the response), and no credential in any line, the access log's WebSocket URLs included."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import websockets

from tests.procs import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a-long-and-secret-passphrase-91"

pytestmark = pytest.mark.slow


@pytest.fixture
def json_logging_worker(fake_ollama_server):
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ, "DATABASE_URL": f"sqlite:///{tmp}/logs.sqlite3", "OLLAMA_URLS": fake_ollama_server.url,
            "LOCAL_MODELS_ENABLED": "false", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
            "ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        }
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        stderr = open(Path(tmp) / "stderr.log", "w+b")  # noqa: SIM115 - read after the process ends
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
             "chatproject.asgi:application"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,  # stdout: the console mail backend
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
            yield f"127.0.0.1:{port}", lambda: (process.terminate(), process.wait(10), stderr.seek(0),
                                                stderr.read().decode())[-1]
        finally:
            if process.poll() is None:
                process.kill()
            stderr.close()


def test_json_lines_carry_request_ids_and_never_a_credential(json_logging_worker, fake_ollama_server):
    host, stop_and_read = json_logging_worker
    fake_ollama_server.configure(tokens=50, delay_ms=1, die_after=3)
    base = f"http://{host}"
    registered = httpx.post(f"{base}/api/v1/auth/register",
                            json={"username": "logan", "email": "logan@example.com", "password": PASSWORD})
    assert registered.status_code == 201
    token = registered.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    room = httpx.post(f"{base}/api/v1/rooms/", json={"name": "logs"}, headers=auth).json()
    assert re.fullmatch(r"[0-9a-f]{32}", registered.headers["X-Request-ID"])  # one is made when none is sent

    reply = httpx.post(f"{base}/api/v1/chat/sessions/{room['id']}/messages", json={"content": "hi"},
                       headers={**auth, "X-Request-ID": "trace-abc-123"}, timeout=15)
    assert reply.headers["X-Request-ID"] == "trace-abc-123" and "event: error" in reply.text
    odd = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "bad id {with} spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-ID"])  # an odd id is replaced, never logged

    async def websocket_with_token_in_url():
        async with websockets.connect(f"ws://{host}/ws/chat/{room['id']}/?token={token}",
                                      additional_headers={"Origin": f"http://{host}"}) as ws:
            await ws.recv()

    asyncio.run(websocket_with_token_in_url())
    output = stop_and_read()

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "request_id", "message"} <= line.keys() for line in lines)
    backend_failure = [line for line in lines if line["logger"] == "models_mgmt.providers.ollama"]
    assert backend_failure and backend_failure[0]["request_id"] == "trace-abc-123"  # logged by the reply's job
    handshakes = [line["message"] for line in lines if "WebSocket /ws/chat/" in line["message"]]
    assert handshakes and all("token=[redacted]" in message for message in handshakes), handshakes
    assert token not in output and PASSWORD not in output
