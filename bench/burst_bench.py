"""Repeated bursts of replies on the same open WebSockets (or keep-alive SSE connections): for judging a
change to how a worker starts replies, in alternating rounds against another checkout.

    .venv/bin/python bench/burst_bench.py [--kind ws|sse] [--streams 50] [--bursts 12] [--tokens 1]
                                          [--gap-ms 0] [--server uvicorn|daphne] [--py-spy OUT.txt]

`stream_bench.py` opens new rooms and sockets for every burst; here they are opened once, three bursts
warm the server up, and then each burst sends one message on every socket at once. Reports the median
over the bursts of each burst's TTFT p50, and the server's CPU per reply (its CPU time over a burst divided
by the replies; the kernel counts in 10 ms ticks, so with 50 replies it moves in steps of 0.2 ms). With
one-token replies a burst is nearly all start work. The server (one worker) is pinned to the last CPU and
this client and the fake Ollama to the others, as in `stream_bench.py`. `--py-spy` records the server
during the measured bursts (`--nonblocking --gil`: py-spy's default mode stops the process for every sample
and made bursts ten times slower). To compare two checkouts, run this file from each (it benchmarks the
checkout it lives in).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench.stream_bench as stream_bench  # noqa: E402
from bench.lean_http import Connection  # noqa: E402
from tests.procs import free_port, wait_for_http  # noqa: E402

WARM_UP_BURSTS = 3


async def ws_burst(sockets, go: asyncio.Event) -> list[float]:
    async def one(ws) -> float:
        await go.wait()
        start, first = time.perf_counter(), None
        await ws.send(json.dumps({"type": "send_message", "content": "bench", "model": "fake-llm:latest"}))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "token" and first is None:
                first = time.perf_counter()
            elif frame["type"] == "stream_end":
                return (first - start) * 1000

    return await asyncio.gather(*(one(ws) for ws in sockets))


async def sse_burst(server, rooms, connections, go: asyncio.Event) -> list[float]:
    async def one(room, conn) -> float:
        await go.wait()
        start, first = time.perf_counter(), None
        body = json.dumps({"content": "bench", "model": "fake-llm:latest"}).encode()
        async for piece in conn.stream("POST", f"/api/v1/chat/sessions/{room}/messages", body, server.headers()):
            if first is None and b"event: token" in piece:
                first = time.perf_counter()
        return (first - start) * 1000

    return await asyncio.gather(*(one(room, conn) for room, conn in zip(rooms, connections, strict=True)))


async def run(args) -> dict:
    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.ollama", "--port", str(fake_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_for_http(f"{fake_url}/api/tags", fake)
    stream_bench.Server.kind = args.server
    spy = None
    try:
        with stream_bench.Server({"OLLAMA_URLS": fake_url, "LOCAL_MODELS_ENABLED": "false"}) as server:
            pin = stream_bench.pinning("auto", 1)
            if pin is not None:
                for process in server.ps.processes:
                    stream_bench.pin_process(process, pin[0])
                for process in (psutil.Process(), psutil.Process(fake.pid)):
                    stream_bench.pin_process(process, pin[1])
            rooms = await server.new_rooms(args.streams)
            if args.kind == "ws":
                sockets = await asyncio.gather(*(stream_bench.open_ws(server, room) for room in rooms))
            else:
                connections = await asyncio.gather(*(Connection.open("127.0.0.1", server.port) for _ in rooms))
            stream_bench.configure_fake(fake_url, args.gap_ms, tokens=args.tokens)
            ttfts, cpu_per_reply = [], []
            for burst in range(WARM_UP_BURSTS + args.bursts):
                measured = burst >= WARM_UP_BURSTS
                if burst == WARM_UP_BURSTS and args.py_spy:
                    spy = subprocess.Popen(
                        [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--gil", "-r", "500",
                         "-p", str(server.process.pid), "-f", "raw", "-o", args.py_spy],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    await asyncio.sleep(1.0)
                await stream_bench.quiesce(server)
                go = asyncio.Event()
                before = server.ps.cpu_times()
                burst_task = asyncio.ensure_future(
                    ws_burst(sockets, go) if args.kind == "ws" else sse_burst(server, rooms, connections, go))
                go.set()
                results = await burst_task
                after = server.ps.cpu_times()
                if measured:
                    ttfts.append(statistics.median(results))
                    used = after.user + after.system - before.user - before.system
                    cpu_per_reply.append(used * 1000 / args.streams)
                await asyncio.sleep(0.2)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
    finally:
        fake.terminate()
        fake.wait(10)
    return {
        "kind": args.kind, "streams": args.streams, "tokens": args.tokens, "gap_ms": args.gap_ms,
        "server": args.server, "ttft_p50_ms": round(statistics.median(ttfts), 1),
        "ttft_p50_ms_each": [round(value, 1) for value in ttfts],
        "server_cpu_ms_per_reply": round(statistics.median(cpu_per_reply), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("ws", "sse"), default="ws")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--bursts", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=1, help="tokens per reply")
    parser.add_argument("--gap-ms", type=float, default=0)
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    parser.add_argument("--py-spy", metavar="OUT", help="record the server with py-spy into this raw file")
    args = parser.parse_args()
    os.chdir(ROOT)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
