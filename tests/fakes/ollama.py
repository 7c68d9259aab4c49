"""A small protocol-faithful fake Ollama server for tests and benchmarks.

Speaks HTTP/1.1 with chunked NDJSON like the real one: GET /api/tags, GET /api/ps, POST /api/show,
POST /api/chat and /api/generate (streaming or not). Like Ollama, a request loads its model (listed by /api/ps
with its size, size_vram, expires_at and context_length); one with no prompt only loads it, and its
`keep_alive` sets when it unloads: a duration ("5m", seconds as a number), negative for never, 0 at once; a
request without one resets it to five minutes, as Ollama's default. `options.num_ctx` is the context the model
is loaded with, and a different one reloads it. /api/show answers `details`, `model_info` with
`<architecture>.context_length`, `capabilities` and `template` like the real API.
Behaviour is controlled with POST /_control {tokens, delay_ms, die_after, first_delay_ms, list_delay_ms, ...}
({"restart": true} forgets every loaded model, as a restarted server would), and counters are read from
GET /_stats, so a test can check that a stopped stream really closed its upstream request.

Run standalone: python -m tests.fakes.ollama --port 11555 [--tokens 200 --delay-ms 20]; or as `ollama serve`
does: `python -m tests.fakes.ollama serve` listens on OLLAMA_HOST, logs each request, and exits 0 on SIGTERM
(tests/fakes/ollama-serve is a stand-in `ollama` binary that runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Behaviour:
    tokens: int = 20
    delay_ms: float = 0.0
    first_delay_ms: float = 0.0
    die_after: int | None = None  # drop the connection after this many tokens
    text: str | None = None  # reply with this text (split into word tokens) instead of "t0 t1 ..."
    models: list[str] = field(default_factory=lambda: ["fake-llm:latest", "fake-coder:7b"])
    list_delay_ms: float = 0.0  # how long /api/tags, /api/ps and /api/show take (a slow or hung server)
    gpu: bool = False  # loaded models report all their memory as VRAM
    # Per model: architecture, context_length, capabilities, template, parameter_size, quantization, size.
    profiles: dict[str, dict] = field(default_factory=dict)


DEFAULT_KEEP_ALIVE = timedelta(minutes=5)
FOREVER = "2318-01-01T00:00:00Z"  # what Ollama reports for keep_alive < 0
DEFAULT_NUM_CTX = 4096
CHAT_TEMPLATE = "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>"


def profile_for(name: str, overrides: dict | None = None) -> dict:
    """What /api/show reports for a model: embedders are small BERTs, coders long-context instruct models."""
    base = name.split(":")[0]
    if "embed" in base:
        profile = {"architecture": "bert", "context_length": 512, "capabilities": ["embedding"], "template": "",
                   "parameter_size": "23M", "quantization": "F16", "size": 45_000_000}
    elif "coder" in base:
        profile = {"architecture": "qwen2", "context_length": 32768, "capabilities": ["completion", "tools"],
                   "template": CHAT_TEMPLATE, "parameter_size": "7.6B", "quantization": "Q4_K_M", "size": 1_000_000}
    elif "base" in base:
        profile = {"architecture": "llama", "context_length": 4096, "capabilities": ["completion"],
                   "template": "{{ .Prompt }}", "parameter_size": "1B", "quantization": "Q8_0", "size": 1_000_000}
    else:
        profile = {"architecture": "llama", "context_length": 8192, "capabilities": ["completion"],
                   "template": CHAT_TEMPLATE, "parameter_size": "1M", "quantization": "Q4_0", "size": 1_000_000}
    return {**profile, **(overrides or {})}


def expiry_for(keep_alive) -> str | None:
    """Ollama's keep_alive: None = the default, negative = forever, 0 = now (None returned), else a duration."""
    if keep_alive is None or keep_alive == "":
        seconds = DEFAULT_KEEP_ALIVE.total_seconds()
    elif isinstance(keep_alive, (int, float)):
        seconds = float(keep_alive)
    else:
        match = re.fullmatch(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?", str(keep_alive).strip())
        if not match:
            raise ValueError(f"invalid keep_alive {keep_alive!r}")
        unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
        seconds = float(match.group(1)) * unit
    if seconds < 0:
        return FOREVER
    if seconds == 0:
        return None
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Stats:
    started: int = 0
    completed: int = 0
    aborted: int = 0  # the client went away mid-stream
    aborted_at: float | None = None  # time.monotonic() when the last abort was seen (at the next token's turn)
    died: int = 0  # we dropped the connection on purpose
    active: int = 0
    connections: int = 0  # TCP connections accepted (keep-alive reuses one for many requests)
    tags: int = 0  # model lists served (GET /api/tags)
    unloads: int = 0  # models unloaded with keep_alive 0
    loads: int = 0  # models loaded into memory (a request for a model not loaded, or with another num_ctx)
    restarts: int = 0
    shows: int = 0
    last_request: dict = field(default_factory=dict)


class FakeOllama:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, behaviour: Behaviour | None = None):
        self.host = host
        self.port = port
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self.loaded: dict[str, str] = {}  # model -> expires_at, as /api/ps shows it
        self.loaded_ctx: dict[str, int] = {}  # model -> the num_ctx it was loaded with
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.log_requests = False  # one line per request on stdout, as `ollama serve` logs them

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- running -----------------------------------------------------------------------------------

    async def serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def start_in_thread(self) -> FakeOllama:
        """Run on a private loop in a daemon thread, so any test loop can talk to it."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-ollama", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            loop = self._loop

            async def shutdown() -> None:
                self._server.close()
                tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                loop.stop()

            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def configure(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.behaviour, key, value)

    def reset_stats(self) -> None:
        """Counters back to zero and nothing loaded: each test starts from a freshly started server."""
        self.stats = Stats()
        self.loaded.clear()
        self.loaded_ctx.clear()

    def restart(self) -> None:
        """What a restarted server looks like to clients: nothing loaded any more."""
        self.loaded.clear()
        self.loaded_ctx.clear()
        self.stats.restarts += 1

    # --- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                pairs = (line.split(":", 1) for line in lines[1:] if ":" in line)
                headers = {key.strip().lower(): value.strip() for key, value in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep_alive = await self._route(method, path, body, reader, writer)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down; Python 3.11's stream callback would log a cancelled handler
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _json(self, writer: asyncio.StreamWriter, status: int, payload: dict) -> bool:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data
        )
        await writer.drain()
        return True

    async def _route(self, method, path, body, reader, writer) -> bool:
        if self.log_requests:
            print(f"[fake] {method} {path}", flush=True)
        if path in ("/api/tags", "/api/ps", "/api/show") and self.behaviour.list_delay_ms:
            await asyncio.sleep(self.behaviour.list_delay_ms / 1000)
        if method == "GET" and path == "/api/tags":
            self.stats.tags += 1
            return await self._json(writer, 200, {"models": [self._model_entry(m) for m in self.behaviour.models]})
        if method == "GET" and path == "/api/ps":
            return await self._json(writer, 200, {"models": [self._ps_entry(name) for name in list(self.loaded)]})
        if method == "GET" and path == "/api/version":
            return await self._json(writer, 200, {"version": "0.0.0-fake"})
        if method == "GET" and path == "/_stats":
            return await self._json(writer, 200, asdict(self.stats))
        if method == "POST" and path == "/_control":
            control = json.loads(body or b"{}")
            reset, restart = control.pop("reset_stats", False), control.pop("restart", False)
            self.configure(**control)
            if reset:
                self.reset_stats()
            if restart:
                self.restart()
            return await self._json(writer, 200, asdict(self.behaviour))
        if method == "POST" and path == "/api/show":
            self.stats.shows += 1
            name = json.loads(body or b"{}").get("model", "")
            if name not in self.behaviour.models:
                return await self._json(writer, 404, {"error": f"model '{name}' not found"})
            return await self._json(writer, 200, self._show(name))
        if method == "POST" and path in ("/api/chat", "/api/generate"):
            return await self._generate(path, json.loads(body or b"{}"), reader, writer)
        return await self._json(writer, 404, {"error": "not found"})

    def _profile(self, name: str) -> dict:
        return profile_for(name, self.behaviour.profiles.get(name))

    def _details(self, name: str) -> dict:
        profile = self._profile(name)
        family = name.split(":")[0].split("-")[-1]
        return {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                "parameter_size": profile["parameter_size"], "quantization_level": profile["quantization"]}

    def _model_entry(self, name: str) -> dict:
        return {
            "name": name,
            "model": name,
            "modified_at": "2026-11-01T10:00:00Z",
            "size": self._profile(name)["size"],
            "digest": f"{abs(hash(name)) % 16**12:012x}".rjust(64, "0"),
            "details": self._details(name),
        }

    def _ps_entry(self, name: str) -> dict:
        """A loaded model takes its weights plus a KV cache that grows with the context it was loaded with."""
        context = self.loaded_ctx.get(name, DEFAULT_NUM_CTX)
        size = self._profile(name)["size"] + context * 1000
        return {**self._model_entry(name), "size": size, "expires_at": self.loaded.get(name, FOREVER),
                "size_vram": size if self.behaviour.gpu else 0, "context_length": context}

    def _show(self, name: str) -> dict:
        profile = self._profile(name)
        arch = profile["architecture"]
        return {
            "modelfile": f"FROM {name}\n",
            "parameters": "stop \"<|end|>\"",
            "template": profile["template"],
            "details": self._details(name),
            "model_info": {
                "general.architecture": arch,
                "general.parameter_count": 1_000_000,
                f"{arch}.context_length": profile["context_length"],
                f"{arch}.embedding_length": 576,
            },
            "capabilities": profile["capabilities"],
            "modified_at": "2026-11-01T10:00:00Z",
        }

    def _tokens(self, limit: int) -> list[str]:
        if self.behaviour.text is not None:
            words = self.behaviour.text.split(" ")
            return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)][:limit]
        return [f"t{i} " for i in range(limit)]

    async def _generate(self, path: str, request: dict, reader, writer) -> bool:
        behaviour = self.behaviour
        self.stats.last_request = request
        if request.get("model") not in behaviour.models:
            return await self._json(writer, 404, {"error": f"model '{request.get('model')}' not found"})
        chat = path == "/api/chat"
        name = request["model"]
        try:
            expires = expiry_for(request.get("keep_alive"))
        except ValueError as exc:
            return await self._json(writer, 400, {"error": str(exc)})
        if expires is None:
            if self.loaded.pop(name, None) is not None:
                self.stats.unloads += 1
            self.loaded_ctx.pop(name, None)
        else:
            context = int((request.get("options") or {}).get("num_ctx") or DEFAULT_NUM_CTX)
            if name not in self.loaded or self.loaded_ctx.get(name) != context:
                self.stats.loads += 1  # Ollama reloads a model asked for with another context size
            self.loaded[name], self.loaded_ctx[name] = expires, context
        if not (request.get("messages") if chat else request.get("prompt")):  # a load or unload, nothing more
            reason = "unload" if expires is None else "load"
            payload = {"model": request["model"], "created_at": "2026-11-21T00:00:00Z", "done": True,
                       "done_reason": reason}
            payload.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
            return await self._json(writer, 200, payload)
        limit = min(behaviour.tokens, int((request.get("options") or {}).get("num_predict") or behaviour.tokens))
        reason = "length" if limit < behaviour.tokens else "stop"  # num_predict cut the reply short
        stream = request.get("stream", True)
        self.stats.started += 1
        self.stats.active += 1
        try:
            if not stream:
                await asyncio.sleep(behaviour.delay_ms * limit / 1000)
                text = "".join(self._tokens(limit))
                payload = {"model": request["model"], "done": True, "done_reason": reason, "eval_count": limit,
                           "prompt_eval_count": 7}
                payload.update({"message": {"role": "assistant", "content": text}} if chat else {"response": text})
                self.stats.completed += 1
                return await self._json(writer, 200, payload)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            await writer.drain()
            # The transport keeps reading into `reader` in the background; EOF there means the client hung up.
            # Nothing is consumed, so the connection stays usable for the client's next request (keep-alive).
            started = time.monotonic()
            if behaviour.first_delay_ms:
                await asyncio.sleep(behaviour.first_delay_ms / 1000)
            tokens = self._tokens(limit)
            # Every line but its content is the same: build the JSON around it once (the fake shares the benchmark
            # machine with the server it feeds, so its own CPU per token is kept small).
            head = json.dumps({"model": request["model"], "created_at": "2026-11-21T00:00:00Z", "done": False})
            key = '"message": {"role": "assistant", "content": ' if chat else '"response": '
            prefix, suffix = (head[:-1] + ", " + key).encode(), (b"}}\n" if chat else b"}\n")
            for i, delta in enumerate(tokens):
                if behaviour.die_after is not None and i >= behaviour.die_after:
                    self.stats.died += 1
                    writer.transport.abort()
                    return False
                if reader.at_eof():
                    self.stats.aborted += 1
                    self.stats.aborted_at = time.monotonic()
                    return False
                self._chunk(writer, prefix + json.dumps(delta).encode() + suffix)
                try:
                    await writer.drain()
                except ConnectionError:
                    self.stats.aborted += 1
                    self.stats.aborted_at = time.monotonic()
                    return False
                if behaviour.delay_ms:
                    await asyncio.sleep(behaviour.delay_ms / 1000)
                elif i % 32 == 31:
                    await asyncio.sleep(0)  # let other streams and disconnects through
            if reader.at_eof():
                self.stats.aborted += 1
                return False
            final = {
                "model": request["model"], "done": True, "done_reason": reason, "total_duration":
                int((time.monotonic() - started) * 1e9), "prompt_eval_count": 7, "eval_count": len(tokens),
            }
            final.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
            self._chunk(writer, json.dumps(final).encode() + b"\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.stats.completed += 1
            return True  # keep-alive, as Ollama's Go server does
        finally:
            self.stats.active -= 1

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def parse_ollama_host(value: str) -> tuple[str, int]:
    """OLLAMA_HOST as the real binary reads it: `host:port`, `host`, `:port` or a URL; 127.0.0.1:11434 by default."""
    text = value.strip().split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host or "127.0.0.1", int(port) if port else 11434


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"],
                        help="serve: behave as `ollama serve` (address from OLLAMA_HOST, one log line per request)")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    serve = args.command == "serve"
    host, port = parse_ollama_host(os.environ.get("OLLAMA_HOST", "")) if serve else ("127.0.0.1", 11555)
    fake = FakeOllama(args.host or host, args.port if args.port is not None else port,
                      Behaviour(tokens=args.tokens, delay_ms=args.delay_ms))
    if serve and os.environ.get("FAKE_OLLAMA_FAIL_START"):
        print(f"Error: {os.environ['FAKE_OLLAMA_FAIL_START']}", file=sys.stderr, flush=True)
        sys.exit(1)

    async def run() -> None:
        if serve:  # logged before it listens, as `ollama serve` does, so it is there once the server answers
            settings = {key: value for key, value in sorted(os.environ.items()) if key.startswith("OLLAMA_")}
            print(f"server config env={settings}", flush=True)
        await fake.serve()
        print(f"fake ollama on {fake.url}", flush=True)
        stopped = asyncio.Event()
        if serve and not os.environ.get("FAKE_OLLAMA_IGNORE_SIGTERM"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        elif serve:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a hung server, for the kill that follows the time-out
        await stopped.wait()
        print("shutting down on SIGTERM", flush=True)

    if serve:
        fake.log_requests = True
    asyncio.run(run())


if __name__ == "__main__":
    main()
