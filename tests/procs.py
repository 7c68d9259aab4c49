"""Helpers for tests that start real processes on loopback."""

from __future__ import annotations

import socket
import subprocess
import time

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
