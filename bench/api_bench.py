"""Ordinary API requests through a worker, by how many request threads it keeps (REQUEST_THREADS).

    .venv/bin/python bench/api_bench.py [--threads 0 8 32] [--rounds 3] [--server uvicorn]

For each setting in turn (alternating, `--rounds` times), starts one worker on a throw-away SQLite database
(bench/stream_bench.py's Server), then measures `GET /api/v1/auth/me` one after another on one keep-alive
connection (latency p50 and the worker's CPU per request) and bursts of 50 concurrent `GET /api/v1/rooms/`
on 50 connections (time until the last answer, median of 8 bursts). 0 is Django's own behaviour: a new
sync thread, and on it a new database connection, for every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import stream_bench  # noqa: E402
from bench.lean_http import Connection  # noqa: E402

SEQUENTIAL = 400
BURST = 50


async def measure(threads: int) -> dict:
    with stream_bench.Server({"LOCAL_MODELS_ENABLED": "false", "REQUEST_THREADS": str(threads)}) as server:
        headers = server.headers()
        conn = await Connection.open("127.0.0.1", server.port)
        for _ in range(50):  # code paths run once, the token's use recorded
            await conn.request("GET", "/api/v1/auth/me", headers=headers)
        latencies = []
        before = server.ps.cpu_times()
        for _ in range(SEQUENTIAL):
            began = time.perf_counter()
            await conn.request("GET", "/api/v1/auth/me", headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
        after = server.ps.cpu_times()
        conn.close()
        cpu_ms = (after.user + after.system - before.user - before.system) * 1000 / SEQUENTIAL
        connections = await asyncio.gather(*(Connection.open("127.0.0.1", server.port) for _ in range(BURST)))
        walls = []
        for _ in range(8):
            began = time.perf_counter()
            await asyncio.gather(*(c.request("GET", "/api/v1/rooms/", headers=headers) for c in connections))
            walls.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.3)  # the burst's leftovers (closing throw-away threads) finish
        for c in connections:
            c.close()
        return {
            "request_threads": threads,
            "me_p50_ms": round(statistics.median(latencies), 2),
            "me_server_cpu_ms": round(cpu_ms, 2),
            "burst_of_50_ms": round(statistics.median(walls), 1),
            "server_rss_mb": round(server.ps.memory_info().rss / 2**20, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="uvicorn")
    args = parser.parse_args()
    stream_bench.Server.kind = args.server
    for _ in range(args.rounds):
        for threads in args.threads:
            print(json.dumps(asyncio.run(measure(threads))), flush=True)


if __name__ == "__main__":
    main()
