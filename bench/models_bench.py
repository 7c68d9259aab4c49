"""`chat_models_list` latency with three Ollama servers: all up, one dead (connection refused), one hung.

Three fake Ollama servers run in this process's threads (a dead one is an address nothing listens on; a hung
one takes 10 s to answer). Requests go through Django's full stack with its test client, on a fresh SQLite
file, with MODEL_LIST_TTL_SECONDS=1 so background refreshes run all through the measurement. Run from the
repository root:

    .venv/bin/python bench/models_bench.py [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
_tmp = tempfile.TemporaryDirectory()
os.environ.update({
    "DATABASE_URL": f"sqlite:///{_tmp.name}/bench.sqlite3",
    "DJANGO_SETTINGS_MODULE": "chatproject.settings",
    "LOG_LEVEL": "CRITICAL",
    "LOCAL_MODELS_ENABLED": "false",
    "OPENAI_BASE_URL": "",
    "MODEL_LIST_TTL_SECONDS": "1",
    "HOT_SLOT_CHECK_SECONDS": "0",
    "SYSTEM_SAMPLE_SECONDS": "0",
    "THROTTLE_IP_RATE": "1000000/min",
})
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from tests.fakes.ollama import FakeOllama  # noqa: E402


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(urls: list[str], requests: int) -> dict:
    client = Client()
    with override_settings(OLLAMA_URLS=urls):
        first_started = time.perf_counter()
        assert client.get("/api/v1/chat/models").status_code == 200
        first = (time.perf_counter() - first_started) * 1000
        times, models = [], 0
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get("/api/v1/chat/models")
            times.append((time.perf_counter() - started) * 1000)
            models = len(response.json())
            time.sleep(0.01)  # spread over several list lifetimes, so background refreshes overlap requests
        down = [s["server"] for s in client.get("/api/v1/chat/models/status").json()["servers"] if not s["ok"]]
    return {"first_ms": round(first, 1), "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(percentile(times, 0.95), 2), "max_ms": round(max(times), 1), "models": models,
            "down": down}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    servers = [FakeOllama().start_in_thread() for _ in range(3)]
    servers[2].configure(list_delay_ms=10_000)
    up = [server.url for server in servers[:2]]
    spare = FakeOllama().start_in_thread()
    cases = {
        "three up": [*up, spare.url],
        "one of three dead": [*up, closed_port_url()],
        "one of three hung": [*up, servers[2].url],
    }
    for name, urls in cases.items():
        print(f"{name:>18}: {measure(urls, args.requests)}", flush=True)
    for server in [*servers, spare]:
        server.stop()


if __name__ == "__main__":
    main()
