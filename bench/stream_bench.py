"""Streaming benchmark: SSE and WebSocket relay against the fake Ollama, compared with calling it directly,
and the bundled model through the WebSocket compared with llama.cpp called directly.

    .venv/bin/python bench/stream_bench.py [--quick] [--out docs/bench-results.json]

Starts its own processes on loopback (the fake Ollama, one Daphne worker on a throw-away SQLite database)
and stops them at the end; BENCH_SERVER_STDERR=1 shows the worker's stderr. Reports per scenario: time
to first token p50/p99, inter-token gap p99, relayed tokens per second, and the server's CPU and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.procs import free_port, wait_for_http  # noqa: E402

TOKENS = 200
PASSWORD = "bench-passphrase-long-enough"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Server:
    """One Daphne worker with its own SQLite file, started fresh for a backend configuration."""

    kind = "daphne"

    def __init__(self, env_overrides: dict[str, str]):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.tmp.name}/bench.sqlite3",
            "DJANGO_SETTINGS_MODULE": "chatproject.settings",
            "STREAMS_PER_USER": "1000",
            "ROOMS_PER_USER": "100000",
            "THROTTLE_IP_RATE": "1000000/min",
            "THROTTLE_USER_RATE": "1000000/min",
            "THROTTLE_AUTH_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
            **env_overrides,
        }
        self.env.pop("REDIS_URL", None)

    def __enter__(self) -> Server:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        if Server.kind == "uvicorn":
            command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
                       "--no-access-log", "--log-level", "warning", "chatproject.asgi:application"]
        else:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                       "chatproject.asgi:application"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=None if os.environ.get("BENCH_SERVER_STDERR") else subprocess.DEVNULL)
        wait_for_http(f"{self.base}/", self.process)
        self.ps = psutil.Process(self.process.pid)
        register = httpx.post(f"{self.base}/api/v1/auth/register",
                              json={"username": "bench", "email": "bench@example.com", "password": PASSWORD})
        register.raise_for_status()
        self.token = register.json()["token"]
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.tmp.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def new_rooms(self, n: int) -> list[str]:
        async with httpx.AsyncClient(headers=self.headers()) as client:
            rooms = [await client.post(f"{self.base}/api/v1/rooms/", json={}) for _ in range(n)]
        return [r.json()["id"] for r in rooms]


async def one_direct(fake_url: str, client: httpx.AsyncClient) -> tuple[float, list[float], int]:
    start = time.perf_counter()
    arrivals = []
    body = {"model": "fake-llm:latest", "messages": [{"role": "user", "content": "bench"}], "stream": True}
    async with client.stream("POST", f"{fake_url}/api/chat", json=body) as response:
        async for line in response.aiter_lines():
            if line and not json.loads(line).get("done"):
                arrivals.append(time.perf_counter())
    return start, arrivals, len(arrivals)


async def one_sse(server: Server, room: str, client: httpx.AsyncClient) -> tuple[float, list[float], int]:
    start = time.perf_counter()
    arrivals, seq, token_event = [], 0, False
    async with client.stream("POST", f"{server.base}/api/v1/chat/sessions/{room}/messages",
                             json={"content": "bench", "model": "fake-llm:latest"},
                             headers=server.headers()) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                token_event = line == "event: token"
            elif token_event and line.startswith("data: "):
                arrivals.append(time.perf_counter())
                seq = json.loads(line[6:])["seq"]  # seq counts tokens; a frame may carry several
    return start, arrivals, seq


async def open_ws(server: Server, room: str):
    url = f"ws://127.0.0.1:{server.port}/ws/chat/{room}/?token={server.token}"
    ws = await websockets.connect(url, additional_headers={"Origin": server.base}, max_queue=None)
    await ws.recv()  # presence
    return ws


async def one_ws(server: Server, room: str, model: str = "fake-llm:latest", options: dict | None = None,
                 ws=None, go: asyncio.Event | None = None):
    """One reply over a WebSocket; with `go`, the socket is already open and the send waits for the signal."""
    ws = ws or await open_ws(server, room)
    try:
        if go is not None:
            await go.wait()
        start = time.perf_counter()
        arrivals, seq = [], 0
        await ws.send(json.dumps({"type": "send_message", "content": "bench", "model": model,
                                  "options": options or {}}))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "token":
                arrivals.append(time.perf_counter())
                seq = frame["seq"]  # seq counts tokens; a frame may carry several
            elif frame["type"] == "stream_end":
                return start, arrivals, seq
    finally:
        await ws.close()


def summarise(results, wall: float, cpu: float | None = None, rss: float | None = None) -> dict:
    ttfts = [(arrivals[0] - start) * 1000 for start, arrivals, _ in results if arrivals]
    gaps = [(b - a) * 1000 for _s, arrivals, _ in results for a, b in zip(arrivals, arrivals[1:], strict=False)]
    frames = sum(len(arrivals) for _s, arrivals, _ in results)
    tokens = sum(n for *_x, n in results)
    out = {
        "streams": len(results),
        "tokens": tokens,
        "frames": frames,
        "ttft_p50_ms": round(pct(ttfts, 50), 2),
        "ttft_p99_ms": round(pct(ttfts, 99), 2),
        "gap_p99_ms": round(pct(gaps, 99), 2),
        "tokens_per_s": round(tokens / wall, 1),
        "wall_s": round(wall, 3),
    }
    if cpu is not None:
        out["server_cpu_pct"] = round(cpu, 1)
        out["server_rss_mb"] = round(rss, 1)
    return out


async def run_scenario(kind: str, concurrency: int, fake_url: str, server: Server | None) -> dict:
    limits = httpx.Limits(max_connections=concurrency + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        rooms = await server.new_rooms(concurrency) if server else []
        cpu_before = server.ps.cpu_times() if server else None
        rss_peak = [server.ps.memory_info().rss if server else 0]

        async def sample_rss():
            while True:
                rss_peak[0] = max(rss_peak[0], server.ps.memory_info().rss)
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample_rss()) if server else None
        start = time.perf_counter()
        if kind == "direct":
            results = await asyncio.gather(*(one_direct(fake_url, client) for _ in range(concurrency)))
        elif kind == "sse":
            # Open the keep-alive connections first, as the WebSocket clients open their sockets first (and as
            # a browser already holds one): the clock then covers the replies, not TCP and TLS-less setup.
            await asyncio.gather(*(client.get(f"{server.base}/api/v1/auth/me", headers=server.headers())
                                   for _ in rooms))
            cpu_before = server.ps.cpu_times()
            start = time.perf_counter()
            results = await asyncio.gather(*(one_sse(server, room, client) for room in rooms))
        else:
            sockets = await asyncio.gather(*(open_ws(server, room) for room in rooms))
            go = asyncio.Event()
            runs = [asyncio.create_task(one_ws(server, room, ws=ws, go=go)) for room, ws in zip(rooms, sockets,
                                                                                                   strict=True)]
            cpu_before = server.ps.cpu_times()
            start = time.perf_counter()  # all sockets are open: the clock covers the replies only
            go.set()
            results = await asyncio.gather(*runs)
        wall = time.perf_counter() - start
        if sampler:
            sampler.cancel()
        if server:
            cpu_after = server.ps.cpu_times()
            cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100
            return summarise(results, wall, cpu, rss_peak[0] / 2**20)
        return summarise(results, wall)


def configure_fake(fake_url: str, delay_ms: float) -> None:
    httpx.post(f"{fake_url}/_control", json={"tokens": TOKENS, "delay_ms": delay_ms, "reset_stats": True})


async def relay_benchmarks(quick: bool) -> list[dict]:
    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.ollama", "--port", str(fake_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_for_http(f"{fake_url}/api/tags", fake)
    rows = []
    try:
        with Server({"OLLAMA_URLS": fake_url, "LOCAL_MODELS_ENABLED": "false"}) as server:
            await run_scenario("ws", 2, fake_url, server)  # warm up
            for delay in (0, 20):
                configure_fake(fake_url, delay)
                for concurrency in ((1, 10) if quick else (1, 10, 50)):
                    for kind in ("direct", "sse", "ws"):
                        row = await run_scenario(kind, concurrency, fake_url, None if kind == "direct" else server)
                        row.update(kind=kind, gap_ms=delay, concurrency=concurrency)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        fake.terminate()
        fake.wait(10)
    return rows


def llama_direct(max_tokens: int) -> dict:
    """Tokens per second from llama.cpp itself, same prompt and options as through the WebSocket."""
    from llama_cpp import Llama

    from models_mgmt.providers.local import bundled_model_path

    llama = Llama(model_path=str(bundled_model_path()), n_ctx=2048, verbose=False)
    best = None
    for _ in range(3):
        arrivals = []
        start = time.perf_counter()
        for chunk in llama.create_chat_completion(
            messages=[{"role": "user", "content": "bench"}], stream=True, max_tokens=max_tokens, temperature=0.0,
            top_p=0.9, top_k=40, repeat_penalty=1.1,
        ):
            if chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter())
        tps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        ttft = round((arrivals[0] - start) * 1000, 1)
        row = {"tokens": len(arrivals), "tokens_per_s": round(tps, 1), "ttft_ms": ttft}
        best = row if best is None or tps > best["tokens_per_s"] else best
    llama.close()
    return best


async def model_through_ws(max_tokens: int) -> dict:
    with Server({"LOCAL_MODELS_ENABLED": "true", "OLLAMA_URLS": ""}) as server:
        best = None
        for _ in range(3):
            room = (await server.new_rooms(1))[0]
            start, arrivals, n = await one_ws(server, room, model="smollm2-135m-instruct",
                                              options={"max_tokens": max_tokens, "temperature": 0.0})
            tps = (n - 1) / (arrivals[-1] - arrivals[0])  # same measure as llama_direct: one token per frame here
            row = {"tokens": n, "tokens_per_s": round(tps, 1), "ttft_ms": round((arrivals[0] - start) * 1000, 1)}
            best = row if best is None or tps > best["tokens_per_s"] else best
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 50-stream scenarios")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench-results.json"))
    parser.add_argument("--model-tokens", type=int, default=128)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    Server.kind = args.server
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    relay = asyncio.run(relay_benchmarks(args.quick))
    if args.skip_model:
        Path(args.out).write_text(json.dumps({"server": args.server, "relay": relay}, indent=2) + "\n")
        return
    direct = llama_direct(args.model_tokens)
    print("llama direct", json.dumps(direct), flush=True)
    through = asyncio.run(model_through_ws(args.model_tokens))
    print("llama via websocket", json.dumps(through), flush=True)
    model = {"direct": direct, "websocket": through,
             "ratio": round(through["tokens_per_s"] / direct["tokens_per_s"], 3)}
    result = {
        "server": args.server,
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "tokens_per_reply": TOKENS,
        "relay": relay,
        "bundled_model": model,
        "median_ttft_ms_ws_1": statistics.median(
            [r["ttft_p50_ms"] for r in relay if r["kind"] == "ws" and r["concurrency"] == 1]
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
