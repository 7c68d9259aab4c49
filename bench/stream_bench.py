"""Streaming benchmark: SSE, WebSocket and OpenAI-compatible relay against the fake Ollama, compared with calling
it directly, and the bundled model through the WebSocket compared with llama.cpp called directly.

    .venv/bin/python bench/stream_bench.py [--quick] [--out docs/bench-results.json]

Starts its own processes on loopback (the fake Ollama, one Daphne worker on a throw-away SQLite database)
and stops them at the end; BENCH_SERVER_STDERR=1 shows the worker's stderr, `--server uvicorn` runs Uvicorn
instead (as the README does, without WebSocket compression; BENCH_UVICORN_ARGS adds arguments), and the
server's environment is this process's.
`--workers N` runs N Daphne workers on one listening socket as the README's scale-out does, on PostgreSQL
(a throw-away database on BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432) and the Redis channel
layer (BENCH_REDIS_URL, default redis://127.0.0.1:6379/0); `--postgres-redis` runs one worker that way.
With one worker on a machine of two or more CPUs, the server is pinned to the last CPU and the benchmark
client and the fake to the others (`--pin auto`, the default; `--pin off` lets them share every CPU;
`--pin 3/0-2` names them): the client and the fake are the
measuring apparatus, and on two shared cores they took the server's core from under it mid-burst.
Each scenario runs as `--bursts` bursts (5) on the same server; every figure reported is the median over them,
and `ttft_p50_ms_each` lists each burst's TTFT p50. Reports per scenario: time to first token p50/p99,
inter-token gap p99, relayed tokens per second, and the servers' CPU and peak RSS (summed over workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
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
from bench.lean_http import Connection  # noqa: E402
from tests.procs import free_port, wait_for_http  # noqa: E402

# The checkout whose server is measured (--project): another commit's tree, to compare in the same run.
PROJECT = ROOT
TOKENS = 200
PASSWORD = "bench-passphrase-long-enough"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class _Workers:
    """The worker processes as one: CPU times and memory summed (the psutil.Process calls used here)."""

    def __init__(self, processes: list[psutil.Process]):
        self.processes = processes

    def cpu_times(self):
        times = [process.cpu_times() for process in self.processes]
        return type("cpu", (), {"user": sum(t.user for t in times), "system": sum(t.system for t in times)})

    def memory_info(self):
        return type("mem", (), {"rss": sum(process.memory_info().rss for process in self.processes)})


class Server:
    """Daphne workers (one by default, on its own SQLite file), started fresh for a backend configuration."""

    kind = "daphne"
    workers = 1
    scale_out = False  # PostgreSQL and Redis (always with several workers)

    def __init__(self, env_overrides: dict[str, str]):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.database = None
        if self.workers > 1 or self.scale_out:  # several processes: PostgreSQL and the Redis layer, as in production
            self.database = f"chatbench_{os.getpid()}"
            postgres = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
            database_url = f"{postgres}/{self.database}"
            subprocess.run(["psql", f"{postgres}/postgres", "-qc", f"CREATE DATABASE {self.database}"], check=True)
        else:
            database_url = f"sqlite:///{self.tmp.name}/bench.sqlite3"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
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
        if self.database:
            self.env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

    def __enter__(self) -> Server:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT, env=self.env, check=True)
        stderr = None if os.environ.get("BENCH_SERVER_STDERR") else subprocess.DEVNULL
        if Server.kind == "uvicorn":
            command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
                       "--no-access-log", "--log-level", "warning", "--ws-per-message-deflate", "false",  # README
                       "--workers", str(self.workers), *os.environ.get("BENCH_UVICORN_ARGS", "").split(),
                       "chatproject.asgi:application"]
            self.processes = [subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=stderr)]
        elif self.workers == 1:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                       "chatproject.asgi:application"]
            self.processes = [subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=stderr)]
        else:  # one listening socket shared by every worker; the kernel hands each connection to one of them
            self.listener = socket.create_server(("127.0.0.1", self.port), backlog=1024)
            fd = self.listener.fileno()
            command = [sys.executable, "-m", "daphne", "--fd", str(fd), "chatproject.asgi:application"]
            self.processes = [subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=stderr, pass_fds=(fd,)) for _ in range(self.workers)]
        self.process = self.processes[0]
        for process in self.processes:
            wait_for_http(f"{self.base}/", process)
        if Server.kind == "uvicorn" and self.workers > 1:  # the supervisor's worker processes serve
            time.sleep(2)
            self.ps = _Workers(psutil.Process(self.process.pid).children(recursive=True))
        else:
            self.ps = _Workers([psutil.Process(process.pid) for process in self.processes])
        register = httpx.post(f"{self.base}/api/v1/auth/register",
                              json={"username": "bench", "email": "bench@example.com", "password": PASSWORD})
        register.raise_for_status()
        self.token = register.json()["token"]
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)
        if self.database:
            postgres = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
            subprocess.run(["psql", f"{postgres}/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.database}"],
                           check=False)
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


async def one_direct(conn: Connection) -> tuple[float, list[float], int]:
    start = time.perf_counter()
    arrivals, buffer = [], b""
    body = json.dumps({"model": "fake-llm:latest", "messages": [{"role": "user", "content": "bench"}],
                       "stream": True}).encode()
    async for piece in conn.stream("POST", "/api/chat", body):
        *lines, buffer = (buffer + piece).split(b"\n")
        now = time.perf_counter()
        arrivals += [now for line in lines if line and not json.loads(line).get("done")]
    return start, arrivals, len(arrivals)


async def one_sse(server: Server, room: str, conn: Connection) -> tuple[float, list[float], int]:
    start = time.perf_counter()
    arrivals, seq, buffer = [], 0, b""
    body = json.dumps({"content": "bench", "model": "fake-llm:latest"}).encode()
    async for piece in conn.stream("POST", f"/api/v1/chat/sessions/{room}/messages", body, server.headers()):
        *events, buffer = (buffer + piece).split(b"\n\n")
        now = time.perf_counter()
        for event in events:
            if event.startswith(b"event: token\n"):
                arrivals.append(now)
                data = event.split(b"\ndata: ", 1)[1]
                seq = json.loads(data)["seq"]  # seq counts tokens; a frame may carry several
    return start, arrivals, seq


async def one_openai(server: Server, conn: Connection) -> tuple[float, list[float], int]:
    """One streamed `/v1/chat/completions` call (stateless: no room); its usage chunk counts the tokens."""
    start = time.perf_counter()
    arrivals, tokens, buffer = [], 0, b""
    body = json.dumps({"model": "fake-llm:latest", "messages": [{"role": "user", "content": "bench"}],
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    async for piece in conn.stream("POST", "/v1/chat/completions", body, server.headers()):
        *events, buffer = (buffer + piece).split(b"\n\n")
        now = time.perf_counter()
        for event in events:
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                continue
            chunk = json.loads(data)
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(now)
            elif chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return start, arrivals, tokens


async def open_ws(server: Server, room: str):
    url = f"ws://127.0.0.1:{server.port}/ws/chat/{room}/?token={server.token}"
    ws = await websockets.connect(url, additional_headers={"Origin": server.base}, max_queue=None)
    await ws.recv()  # presence
    return ws


async def one_ws(server: Server, room: str, model: str = "fake-llm:latest", options: dict | None = None,
                 ws=None, go: asyncio.Event | None = None, content: str = "bench"):
    """One reply over a WebSocket; with `go`, the socket is already open and the send waits for the signal."""
    ws = ws or await open_ws(server, room)
    try:
        if go is not None:
            await go.wait()
        start = time.perf_counter()
        arrivals, seq = [], 0
        await ws.send(json.dumps({"type": "send_message", "content": content, "model": model,
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


async def run_scenario(kind: str, concurrency: int, fake_url: str, server: Server | None,
                       others: dict[str, psutil.Process] | None = None) -> dict:
    rooms = await server.new_rooms(concurrency) if server and kind in ("sse", "ws") else []
    rss_peak = [server.ps.memory_info().rss if server else 0]

    async def sample_rss():
        while True:
            rss_peak[0] = max(rss_peak[0], server.ps.memory_info().rss)
            await asyncio.sleep(0.1)

    # Connections and sockets are opened first (a browser already holds its keep-alive connection or its
    # socket), so the clock covers the replies, not the connection storm.
    connections, sockets = [], []
    if kind == "direct":
        host, port = fake_url.removeprefix("http://").split(":")
        connections = await asyncio.gather(*(Connection.open(host, int(port)) for _ in range(concurrency)))
    elif kind in ("sse", "openai"):
        connections = await asyncio.gather(*(Connection.open("127.0.0.1", server.port) for _ in range(concurrency)))
        await asyncio.gather(*(conn.request("GET", "/api/v1/auth/me", headers=server.headers())
                               for conn in connections))
    else:
        sockets = await asyncio.gather(*(open_ws(server, room) for room in rooms))
    # The setup's requests leave work behind on the server (a request's thread and connection are closed
    # after its response went out): the clock starts once the server is idle, as a user's send finds it.
    settled = await quiesce(server) if server else 0.0
    go = asyncio.Event()
    if kind == "direct":
        runs = [one_direct(conn) for conn in connections]
    elif kind == "sse":
        runs = [one_sse(server, room, conn) for room, conn in zip(rooms, connections, strict=True)]
    elif kind == "openai":
        runs = [one_openai(server, conn) for conn in connections]
    else:
        runs = [one_ws(server, room, ws=ws, go=go) for room, ws in zip(rooms, sockets, strict=True)]
    sampler = asyncio.create_task(sample_rss()) if server else None
    cpu_before = server.ps.cpu_times() if server else None
    others_before = cpu_of(others)
    start = time.perf_counter()
    go.set()
    results = await asyncio.gather(*runs)
    wall = time.perf_counter() - start
    others_after = cpu_of(others)
    for conn in connections:
        conn.close()
    if sampler:
        sampler.cancel()
    if server:
        cpu_after = server.ps.cpu_times()
        cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100
        row = summarise(results, wall, cpu, rss_peak[0] / 2**20)
        row["settle_ms"] = round(settled * 1000, 1)
    else:
        row = summarise(results, wall)
    # The client and the fake share the machine with the server: their CPU is CPU the server did not get.
    for name, used in others_after.items():
        row[f"{name}_cpu_pct"] = round((used - others_before[name]) / wall * 100, 1)
    return row


async def quiesce(server: Server, window: float = 0.02, idle_share: float = 0.05, limit: float = 2.0) -> float:
    """Wait until the server has finished the work the connections' setup left behind; return the wait.

    Idle means at most `idle_share` of a core used over `window` seconds."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        before = server.ps.cpu_times()
        await asyncio.sleep(window)
        after = server.ps.cpu_times()
        if after.user + after.system - before.user - before.system <= window * idle_share:
            break
    return time.perf_counter() - began


def cpu_of(processes: dict[str, psutil.Process] | None) -> dict[str, float]:
    """User plus system seconds of each named process."""
    times = {name: process.cpu_times() for name, process in (processes or {}).items()}
    return {name: t.user + t.system for name, t in times.items()}


def parse_cpus(text: str) -> list[int]:
    """A `--pin` CPU list: "0-2+5" means [0, 1, 2, 5]."""
    cpus: list[int] = []
    for part in text.split("+"):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def pinning(spec: str, workers: int) -> tuple[list[int], list[int]] | None:
    """(server CPUs, client and fake CPUs) for `--pin`, or None to let every process use every CPU."""
    if spec == "off":
        return None
    if spec == "auto":
        available = sorted(os.sched_getaffinity(0))
        if workers != 1 or len(available) < 2:
            return None
        return available[-1:], available[:-1]
    server, _, apparatus = spec.partition("/")
    return parse_cpus(server), parse_cpus(apparatus)


def pin_process(process: psutil.Process, cpus: list[int]) -> None:
    """Every thread of the process (Linux sets affinity per thread; threads started later inherit it)."""
    for thread in process.threads():
        os.sched_setaffinity(thread.id, cpus)


def configure_fake(fake_url: str, delay_ms: float, tokens: int = TOKENS) -> None:
    httpx.post(f"{fake_url}/_control", json={"tokens": tokens, "delay_ms": delay_ms, "reset_stats": True})


def combine(runs: list[dict]) -> dict:
    """One row for repeated bursts of a scenario: each figure's median, and every burst's TTFT p50.

    On a shared machine one burst's median moves by a third from one burst to the next; the median of
    several is what a change or a target can be judged by.
    """
    row = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        integral = all(isinstance(value, int) for value in values)  # counts stay counts
        row[key] = statistics.median_low(values) if integral else round(statistics.median(values), 2)
    row["bursts"] = len(runs)
    row["ttft_p50_ms_each"] = [run["ttft_p50_ms"] for run in runs]
    return row


async def relay_benchmarks(quick: bool, only: set[str] | None = None, bursts: int = 5,
                           pin: tuple[list[int], list[int]] | None = None) -> list[dict]:
    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.ollama", "--port", str(fake_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_for_http(f"{fake_url}/api/tags", fake)
    others = {"client": psutil.Process(), "fake": psutil.Process(fake.pid)}
    all_cpus = sorted(os.sched_getaffinity(0))
    rows = []
    try:
        with Server({"OLLAMA_URLS": fake_url, "LOCAL_MODELS_ENABLED": "false"}) as server:
            if pin is not None:
                for process in server.ps.processes:
                    pin_process(process, pin[0])
                for process in others.values():
                    pin_process(process, pin[1])
            # Warm up as a server that has been running a while: code paths run once, and a pool of keep-alive
            # connections to the backend as large as the largest burst (short replies; results dropped).
            configure_fake(fake_url, 0, tokens=5)
            for kind in ("sse", "ws", "openai"):
                await run_scenario(kind, 10 if quick else 50, fake_url, server)
            for delay in (0, 20):
                configure_fake(fake_url, delay)
                for concurrency in ((1, 10) if quick else (1, 10, 50)):
                    for kind in ("direct", "sse", "ws", "openai"):
                        if only and f"{kind}:{delay}:{concurrency}" not in only:
                            continue
                        runs = []
                        for _ in range(bursts):
                            runs.append(await run_scenario(kind, concurrency, fake_url,
                                                           None if kind == "direct" else server, others))
                            await asyncio.sleep(0.2)  # the last burst's final writes land before the next
                        row = combine(runs)
                        row.update(kind=kind, gap_ms=delay, concurrency=concurrency)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        fake.terminate()
        fake.wait(10)
        if pin is not None:
            pin_process(others["client"], all_cpus)
    return rows


MODEL_PROMPT = "Write a short story about a robot who learns to paint."  # a long answer: more tokens timed


def _llama_run(llama, max_tokens: int) -> dict:
    arrivals = []
    start = time.perf_counter()
    for chunk in llama.create_chat_completion(
        messages=[{"role": "user", "content": MODEL_PROMPT}], stream=True, max_tokens=max_tokens, temperature=0.0,
        top_p=0.9, top_k=40, repeat_penalty=1.1,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            arrivals.append(time.perf_counter())
    tps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return {"tokens": len(arrivals), "tokens_per_s": round(tps, 1), "ttft_ms": round((arrivals[0] - start) * 1000, 1)}


async def _ws_run(server: Server, max_tokens: int) -> dict:
    room = (await server.new_rooms(1))[0]
    start, arrivals, n = await one_ws(server, room, model="smollm2-135m-instruct", content=MODEL_PROMPT,
                                      options={"max_tokens": max_tokens, "temperature": 0.0})
    tps = (n - 1) / (arrivals[-1] - arrivals[0])  # same measure as _llama_run: one token per frame here
    return {"tokens": n, "tokens_per_s": round(tps, 1), "ttft_ms": round((arrivals[0] - start) * 1000, 1)}


async def model_comparison(max_tokens: int, rounds: int = 7) -> dict:
    """llama.cpp called directly and through a worker's WebSocket, alternating, same prompt and options.

    The machine's own speed drifts by 10-20% over a minute, so the two are measured turn about (direct,
    then WebSocket, `rounds` times). Each pair ran within seconds of each other; the result (`ratio`) is
    the median of the pair ratios, with the ratio of the two medians beside it.
    """
    from llama_cpp import Llama

    from models_mgmt.providers.local import bundled_model_path

    llama = Llama(model_path=str(bundled_model_path()), n_ctx=2048, verbose=False)
    direct, through = [], []
    try:
        with Server({"LOCAL_MODELS_ENABLED": "true", "OLLAMA_URLS": ""}) as server:
            _llama_run(llama, 8)  # warm both up
            await _ws_run(server, 8)
            for _ in range(rounds):
                direct.append(_llama_run(llama, max_tokens))
                through.append(await _ws_run(server, max_tokens))
                print("llama direct", json.dumps(direct[-1]), "via websocket", json.dumps(through[-1]), flush=True)
    finally:
        llama.close()
    d = statistics.median(r["tokens_per_s"] for r in direct)
    w = statistics.median(r["tokens_per_s"] for r in through)
    pairs = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(direct, through, strict=True)]
    return {"direct": direct, "websocket": through, "direct_median_tps": d, "websocket_median_tps": w,
            "ratio": round(statistics.median(pairs), 3), "pair_ratios": [round(r, 3) for r in pairs],
            "ratio_of_medians": round(w / d, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 50-stream scenarios")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench-results.json"))
    parser.add_argument("--model-tokens", type=int, default=128)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--workers", type=int, default=1,
                        help="workers (Daphne: one socket; Uvicorn: --workers); more than one: PostgreSQL and Redis")
    parser.add_argument("--postgres-redis", action="store_true",
                        help="PostgreSQL and the Redis layer even for one worker")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--bursts", type=int, default=5,
                        help="bursts per scenario; each figure reported is the median over them")
    parser.add_argument("--only", nargs="*", metavar="KIND:GAP:STREAMS",
                        help="run only these relay scenarios (direct, sse, ws, openai), e.g. ws:20:50 openai:0:50 "
                        "(implies --skip-model)")
    parser.add_argument("--project", default=str(ROOT),
                        help="the checkout whose server is measured, e.g. another commit's tree")
    parser.add_argument("--pin", default="auto", metavar="auto|off|SERVER/CLIENT",
                        help="CPUs for the server and for the client and fake, e.g. 1/0 (default: auto)")
    args = parser.parse_args()
    global PROJECT
    PROJECT = Path(args.project).resolve()
    Server.kind = args.server
    Server.workers = args.workers
    Server.scale_out = args.postgres_redis
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    pin = pinning(args.pin, args.workers)
    relay = asyncio.run(relay_benchmarks(args.quick, set(args.only or ()), args.bursts, pin))
    pinned = {"server": pin[0], "client_and_fake": pin[1]} if pin else None
    if args.skip_model or args.only:
        Path(args.out).write_text(json.dumps({"server": args.server, "workers": args.workers, "pinned": pinned,
                                              "relay": relay}, indent=2) + "\n")
        return
    model = asyncio.run(model_comparison(args.model_tokens))
    print("bundled model: median of pair ratios", model["ratio"], "ratio of medians", model["ratio_of_medians"],
          flush=True)
    result = {
        "server": args.server,
        "workers": args.workers,
        "pinned": pinned,
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
