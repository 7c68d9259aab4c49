"""A local `ollama serve` driven by this app when OLLAMA_BINARY is set: start, health wait, logs, graceful stop.

One host manages the binary, and among its workers whichever gets the lock does the work:
- the server runs in a session of its own, detached from the worker and the request that started it, so it
  outlives both and any worker of the host can report on it or stop it;
- its pid, process start time (so a reused pid is never taken for it), start time, environment and last exit
  are kept in a state file in OLLAMA_RUN_DIR, with its log (`serve.log`) beside it;
- an exclusive lock on `serve.lock` there lets one start, shutdown or restart run at a time; a second one,
  from any worker, answers 409 `operation_in_progress` at once.
Workers on other hosts do not see that state: set OLLAMA_BINARY on the host that runs Ollama only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from asgiref.sync import async_to_sync
from django.conf import settings

from chatproject.errors import ApiError, Conflict

logger = logging.getLogger(__name__)

STATE_FILE = "serve.json"
LOCK_FILE = "serve.lock"
LOG_FILE = "serve.log"
LOG_KEEP_BYTES = 10 * 1024 * 1024  # a log past this is moved to serve.log.1 at the next start
LOG_TAIL_LINES = 40
HEALTH_POLL_SECONDS = 0.2
KILL_WAIT_SECONDS = 5.0
DEFAULT_URL = "http://127.0.0.1:11434"

# Servers this process started: it is their parent, so it reaps them and learns their exit codes.
_children: dict[int, subprocess.Popen] = {}


def configured() -> bool:
    return bool(settings.OLLAMA_BINARY)


def managed_url() -> str:
    """Where the managed server listens: OLLAMA_MANAGED_URL, else the first of OLLAMA_URLS."""
    url = settings.OLLAMA_MANAGED_URL or (settings.OLLAMA_URLS[0] if settings.OLLAMA_URLS else DEFAULT_URL)
    return url.rstrip("/")


def server_urls() -> list[str]:
    """Every Ollama server this app knows: OLLAMA_URLS, and the managed one where it is not among them."""
    urls = [url.rstrip("/") for url in settings.OLLAMA_URLS]
    if configured() and managed_url() not in urls:
        urls.append(managed_url())
    return urls


def label(url: str) -> str:
    """The name people without staff rights see, the same as the catalogue's: ollama-1, ollama-2, ..."""
    urls = [item.rstrip("/") for item in settings.OLLAMA_URLS]
    return f"ollama-{urls.index(url) + 1}" if url in urls else "ollama-managed"


def ollama_host(url: str) -> str:
    """OLLAMA_HOST for `ollama serve` (host:port) from a base URL."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 11434}"


def run_dir() -> Path:
    path = Path(settings.OLLAMA_RUN_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dir(directory: Path | None) -> Path:
    return directory if directory is not None else run_dir()


def log_path() -> Path:
    return run_dir() / LOG_FILE


def not_configured() -> Conflict:
    return Conflict("No Ollama binary is configured (OLLAMA_BINARY is unset), so this app does not start or stop "
                    "Ollama; the servers in OLLAMA_URLS are run outside it.", code="not_configured",
                    details={"servers": [label(url) for url in server_urls()]})


@contextlib.contextmanager
def control_lock(*, wait: bool = False, directory: Path | None = None) -> Iterator[None]:
    """One start, shutdown or restart at a time among all the host's workers (an flock on serve.lock)."""
    with open(_dir(directory) / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Conflict("Another start, shutdown or restart of the Ollama server is under way.",
                           code="operation_in_progress") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(directory: Path | None = None) -> dict:
    try:
        return json.loads((_dir(directory) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(state: dict, directory: Path | None = None) -> None:
    """Written whole and renamed into place, so a reader never sees half a file."""
    target = _dir(directory) / STATE_FILE
    scratch = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    scratch.write_text(json.dumps(state, indent=1))
    os.replace(scratch, target)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def process_of(state: dict) -> psutil.Process | None:
    """The recorded server process if it still runs: same pid and same start time (a pid can be reused)."""
    pid, created = state.get("pid"), state.get("create_time")
    if not pid or created is None:
        return None
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - created) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return process


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def log_tail(lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of the server's log (read from the end, so a long log costs nothing)."""
    try:
        with open(log_path(), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


async def _probe_one(client: httpx.AsyncClient, url: str) -> dict:
    started = time.monotonic()
    try:
        response = await client.get(f"{url}/api/version")
        response.raise_for_status()
        version, error = str(response.json().get("version") or ""), ""
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        version, error = None, _describe(exc)
    return {"url": url, "reachable": version is not None, "version": version, "error": error,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {settings.MODEL_SERVER_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return type(exc).__name__


async def _probe_all(urls: list[str], timeout: float) -> list[dict]:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(_probe_one(client, url) for url in urls)))


def probe(urls: list[str], *, timeout: float | None = None) -> list[dict]:
    """Each server's `/api/version`, all at once, each given MODEL_SERVER_TIMEOUT_SECONDS."""
    return async_to_sync(_probe_all)(urls, timeout or settings.MODEL_SERVER_TIMEOUT_SECONDS)


def _binary() -> str:
    found = shutil.which(settings.OLLAMA_BINARY)
    if found is None:
        raise Conflict(f"OLLAMA_BINARY ({settings.OLLAMA_BINARY}) is not an executable file.",
                       code="binary_not_found")
    return found


def _open_log():
    """The log, appended to across starts; one past LOG_KEEP_BYTES is moved to serve.log.1 first."""
    path = log_path()
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_KEEP_BYTES:
            os.replace(path, path.with_name(LOG_FILE + ".1"))
    return open(path, "ab")


def _watch(popen: subprocess.Popen, create_time: float, directory: Path) -> None:
    """Reap a server this worker started; one that ended on its own gets its exit recorded."""
    code = popen.wait()
    with control_lock(wait=True, directory=directory):
        _children.pop(popen.pid, None)
        state = read_state(directory)
        if state.get("pid") == popen.pid and state.get("create_time") == create_time:
            logger.warning("the managed Ollama server (pid %s) exited on its own with code %s", popen.pid, code)
            write_state({**_cleared(state), "last_exit": {"code": code, "at": _now(), "reason": "exited on its own",
                                                          "killed": False}}, directory)


def _cleared(state: dict) -> dict:
    return {**state, "pid": None, "create_time": None, "started_at": None}


def _spawn(*, binary: str, url: str, environment: dict[str, str]) -> subprocess.Popen:
    with _open_log() as log:
        log.write(f"--- {_now()} starting {binary} serve on {ollama_host(url)}\n".encode())
        log.flush()
        # Its own session: no signal sent to the worker's process group reaches it, and it outlives the worker.
        popen = subprocess.Popen([binary, "serve"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, **environment, "OLLAMA_HOST": ollama_host(url)},
                                 start_new_session=True, close_fds=True)
    return popen


def _wait_healthy(popen: subprocess.Popen, url: str) -> str:
    """The server's version once `/api/version` answers; raises ApiError when it exits or time runs out."""
    deadline = time.monotonic() + settings.OLLAMA_START_TIMEOUT_SECONDS
    with httpx.Client(timeout=1.0) as client:
        while True:
            if popen.poll() is not None:
                raise ApiError(f"The Ollama server exited with code {popen.returncode} while starting.",
                               code="start_failed", status_code=503)
            try:
                response = client.get(f"{url}/api/version")
                if response.status_code == 200:
                    return str(response.json().get("version") or "")
            except (httpx.HTTPError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ApiError(f"The Ollama server did not answer within {settings.OLLAMA_START_TIMEOUT_SECONDS:g} s "
                               "of starting.", code="start_timeout", status_code=503)
            time.sleep(HEALTH_POLL_SECONDS)


def _start_locked(*, reason: str, started_by: str, environment: dict[str, str]) -> dict:
    state, url = read_state(), managed_url()
    if process_of(state) is not None:
        raise Conflict(f"The managed Ollama server is already running (pid {state['pid']}).",
                       code="already_running", details={"pid": state["pid"]})
    if probe([url])[0]["reachable"]:
        raise Conflict(f"An Ollama server this app did not start already answers at {label(url)}; stop it there "
                       "first.", code="already_running", details={"external": True})
    binary = _binary()
    popen = _spawn(binary=binary, url=url, environment=environment)
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0  # it ended already; the health wait reports how
    _children[popen.pid] = popen
    state = {**state, "pid": popen.pid, "create_time": create_time, "started_at": _now(), "url": url,
             "binary": binary, "reason": reason, "started_by": started_by, "environment": environment,
             "version": None}
    write_state(state)
    threading.Thread(target=_watch, args=(popen, create_time, run_dir()), name=f"ollama-serve-{popen.pid}",
                     daemon=True).start()
    try:
        state["version"] = _wait_healthy(popen, url)
    except ApiError as exc:
        exit_ = _stop_process(state, reason=f"failed to start: {exc.detail}")
        write_state({**_cleared(state), "last_exit": exit_})
        exc.details = {"exit_code": exit_["code"], "log": log_tail(20)}  # the views are staff-only
        raise
    write_state(state)
    logger.info("started the managed Ollama server (pid %s) on %s: %s", popen.pid, url, reason)
    return state


def _stop_process(state: dict, *, reason: str) -> dict:
    """SIGTERM to the server's process group (Ollama's model runners too), SIGKILL after
    OLLAMA_STOP_TIMEOUT_SECONDS; answers its exit: code (when this worker is its parent), time, reason."""
    pid, killed = state["pid"], False
    popen, process = _children.get(pid), process_of(state)
    if process is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        if not _wait_gone(popen, process, settings.OLLAMA_STOP_TIMEOUT_SECONDS):
            logger.warning("the managed Ollama server (pid %s) ignored SIGTERM; killing it", pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            killed = True
            _wait_gone(popen, process, KILL_WAIT_SECONDS)
    elif popen is not None:
        _wait_gone(popen, None, KILL_WAIT_SECONDS)  # it exited already: reap it for its code
    code = popen.returncode if popen is not None else None
    return {"code": code, "at": _now(), "reason": reason, "killed": killed}


def _wait_gone(popen: subprocess.Popen | None, process: psutil.Process | None, timeout: float) -> bool:
    """Whether the server ended within `timeout`: waited on as a child when this worker started it."""
    if popen is not None:
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while process is not None and _alive(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _shutdown_locked(*, reason: str) -> dict:
    state = read_state()
    if process_of(state) is None:
        url = managed_url()
        if probe([url])[0]["reachable"]:
            raise Conflict(f"The Ollama server at {label(url)} was not started by this app, so it cannot stop it.",
                           code="not_managed")
        raise Conflict("The managed Ollama server is not running.", code="not_running")
    exit_ = _stop_process(state, reason=f"shutdown: {reason}")
    state = {**_cleared(state), "last_exit": exit_}
    write_state(state)
    logger.info("shut the managed Ollama server down (%s): %s", exit_, reason)
    return state


def start(*, reason: str, started_by: str, environment: dict[str, str]) -> dict:
    """Start `ollama serve` and answer once `/api/version` does; 503 with the log's last lines if it does not."""
    if not configured():
        raise not_configured()
    with control_lock():
        return _start_locked(reason=reason, started_by=started_by, environment=environment)


def shutdown(*, reason: str) -> dict:
    """Stop the managed server: SIGTERM, then SIGKILL if it is still there after OLLAMA_STOP_TIMEOUT_SECONDS."""
    if not configured():
        raise not_configured()
    with control_lock():
        return _shutdown_locked(reason=reason)


def restart(*, reason: str, started_by: str, environment: dict[str, str]) -> dict:
    """Shutdown (when running) and start under one lock, so no other worker starts it in between."""
    if not configured():
        raise not_configured()
    with control_lock():
        if process_of(read_state()) is not None:
            _shutdown_locked(reason=reason)
        return _start_locked(reason=reason, started_by=started_by, environment=environment)


def status(*, staff: bool) -> dict:
    """The managed process (running, stopped, external or unmanaged) and every configured server's reachability."""
    urls = server_urls()
    probes = {row["url"]: row for row in probe(urls)} if urls else {}
    managed = configured()
    state = read_state() if managed else {}
    process = process_of(state) if managed else None
    url = managed_url() if managed else None
    if not managed:
        kind, message = "unmanaged", "No Ollama binary is configured; the servers are run outside this app."
    elif process is not None:
        kind, message = "running", f"Started by this app: {state.get('reason') or 'no reason given'}."
    elif probes.get(url, {}).get("reachable"):
        kind, message = "external", "An Ollama server this app did not start answers at the managed address."
    else:
        kind, message = "stopped", "The managed Ollama server is not running."
    started_at = state.get("started_at") if process is not None else None
    uptime = time.time() - state["create_time"] if process is not None else None
    return {
        "managed": managed, "state": kind, "message": message,
        "server": label(url) if url else None, "url": url if staff else None,
        "pid": state.get("pid") if process is not None and staff else None,
        "started_at": started_at, "uptime_seconds": round(uptime, 1) if uptime is not None else None,
        "version": probes.get(url, {}).get("version") if url else None,
        "started_by": state.get("started_by") if process is not None and staff else None,
        "environment": state.get("environment") if process is not None and staff else None,
        "last_exit": state.get("last_exit"),
        "log_file": str(log_path()) if managed and staff else None,
        "log_tail": log_tail() if managed and staff else [],
        "servers": [{"server": label(item), "url": item if staff else None, "managed": item == url,
                     "reachable": probes[item]["reachable"], "version": probes[item]["version"],
                     "error": probes[item]["error"], "elapsed_ms": probes[item]["elapsed_ms"]} for item in urls],
    }
