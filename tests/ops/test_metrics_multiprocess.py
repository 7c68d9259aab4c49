"""Multiprocess mode: with PROMETHEUS_MULTIPROC_DIR, a scrape adds up every worker's values.

Real processes: two Uvicorn workers on one port, and plain Python processes recording through ops.metrics.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ops.metrics_util import Scrape
from tests.procs import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.slow

SETUP = "import django; django.setup(); from ops import metrics; "


@pytest.fixture
def multiproc_env(tmp_path) -> dict[str, str]:
    """An empty metrics directory (as the README says to start) and a migrated database of its own."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LOCAL_MODELS_ENABLED": "false",
        "OLLAMA_URLS": "",
        "OPENAI_BASE_URL": "",
        "REDIS_URL": "",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    return env


def run_python(env: dict[str, str], code: str) -> str:
    done = subprocess.run([sys.executable, "-c", SETUP + code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextlib.contextmanager
def two_uvicorn_workers(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """Two workers on one port, as the README runs them; yields the port and how many requests reached them,
    sent until each worker has served some (a new connection per request: whichever accepts first gets it)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--lifespan", "off", "--no-access-log", "--log-level", "warning", "chatproject.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        sent = 1  # wait_for_http's own probe
        deadline = time.monotonic() + 60
        while len(list(metrics_dir.glob("histogram_*.db"))) < 2 or sent < 20:
            assert time.monotonic() < deadline, "one worker served every request"
            with httpx.Client() as client:
                assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            sent += 1
        yield port, sent
    finally:
        server.terminate()
        server.wait(20)


def test_two_uvicorn_workers_are_counted_together(multiproc_env):
    metrics_dir = Path(multiproc_env["PROMETHEUS_MULTIPROC_DIR"])
    with two_uvicorn_workers(multiproc_env) as (port, sent):
        scrapes = []
        for _ in range(4):  # whichever worker answers, the sum is the same
            with httpx.Client() as client:
                response = client.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            scrapes.append(Scrape(response.text))
        healthz = [s.value("http_server_request_duration_seconds_count", http_route="healthz",
                           http_response_status_code="200") for s in scrapes]
        assert healthz == [sent] * 4
        assert all(s.value("chat_panic_active") == 0 and "chat_panic_active" in s.families for s in scrapes)
        assert all(s.value("chat_active_streams") == 0 for s in scrapes)
    # The next scrape (here from another process) drops the ended workers' live gauges; their counts stay.
    workers = {path.stem.rpartition("_")[2] for path in metrics_dir.glob("histogram_*.db")}
    assert len(workers) == 2 and all((metrics_dir / f"gauge_livesum_{pid}.db").exists() for pid in workers)
    after = Scrape(run_python(multiproc_env, "print(metrics.exposition()[0].decode())"))
    assert not any((metrics_dir / f"gauge_livesum_{pid}.db").exists() for pid in workers)
    assert after.value("http_server_request_duration_seconds_count", http_route="healthz") == sent


def test_two_workers_take_one_system_sample_per_interval(multiproc_env):
    """Without Redis each worker has its own cache, so only the newest stored sample keeps them apart."""
    database = multiproc_env["DATABASE_URL"].removeprefix("sqlite:///")
    with two_uvicorn_workers({**multiproc_env, "SYSTEM_SAMPLE_SECONDS": "1"}):
        started = time.monotonic()
        time.sleep(5)
        with sqlite3.connect(database) as db:
            times = [row[0] for row in db.execute("SELECT created_at FROM ops_systemsample ORDER BY created_at")]
        elapsed = time.monotonic() - started + 1  # the samplers started during the requests before `started`
    # Both samplers wake every second: unshared, they would write about two samples a second.
    assert 3 <= len(times) <= elapsed / 0.9 + 2, times


def holding_sockets(env: dict[str, str], count: int) -> subprocess.Popen:
    """A process with `count` sockets open, waiting for a line on stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", SETUP + f"[metrics.websocket_opened() for _ in range({count})]; "
         "print('ready', flush=True); input()"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def test_live_gauges_drop_ended_processes_and_counters_keep_them(multiproc_env):
    run_python(multiproc_env, "metrics.websocket_opened(); metrics.websocket_opened()")  # ends with 2 open
    killed = holding_sockets(multiproc_env, 4)
    killed.kill()  # a crashed worker runs no clean-up of its own
    killed.wait(10)
    alive = holding_sockets(multiproc_env, 1)
    try:
        reply = ("metrics.reply_started(); metrics.reply_finished(model='m', provider='local', status='complete', "
                 "duration_s=1.0, ttft_s=0.2, time_per_output_token_s=0.05, prompt_tokens=5, completion_tokens=9)")
        run_python(multiproc_env, reply)
        run_python(multiproc_env, reply)
        scrape = Scrape(run_python(multiproc_env, "print(metrics.exposition()[0].decode())"))
    finally:
        alive.communicate("\n", timeout=20)
    assert scrape.value("chat_websocket_connections_open") == 1  # only the process still running
    assert scrape.value("chat_websocket_connections_total") == 7
    assert scrape.value("chat_replies_total", gen_ai_request_model="m", status="complete") == 2
    assert scrape.value("gen_ai_server_token_usage_total", gen_ai_token_type="output") == 18
    assert scrape.value("gen_ai_server_time_to_first_token_seconds_count") == 2
    assert scrape.value("gen_ai_server_time_to_first_token_seconds_bucket", le="0.25") == 2
    assert scrape.value("gen_ai_server_time_to_first_token_seconds_bucket", le="0.1") == 0
    assert scrape.value("chat_active_streams") == 0
