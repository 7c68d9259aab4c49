"""A worker loads the embedding model while it starts, so the first message it indexes never stalls its loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = textwrap.dedent("""
    import asyncio, sys, time
    import chatproject.asgi  # noqa: F401 - what a server imports before it serves
    from models_mgmt.embeddings import embedder

    async def main() -> float:
        gaps, last = [], time.perf_counter()

        async def ticker() -> None:
            nonlocal last
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        await embedder.aembed(["the first message this worker indexes"])
        task.cancel()
        return max(gaps)

    print("loaded" if "torch" in sys.modules else "not loaded", asyncio.run(main()))
""")


def run_probe(tmp_path: Path, **env: str) -> tuple[str, float]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "PYTHONPATH": str(ROOT),
                   "DATABASE_URL": f"sqlite:///{tmp_path}/probe.sqlite3", "LOG_LEVEL": "WARNING", **env}
    environment.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=environment, check=True)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environment, check=True,
                         capture_output=True, text=True, timeout=300).stdout.split()
    return " ".join(out[:-1]), float(out[-1])


@pytest.mark.slow
def test_a_worker_with_indexing_loads_the_model_before_serving(tmp_path):
    state, worst_gap = run_probe(tmp_path, SEARCH_INDEXING="true")
    assert state == "loaded"
    assert worst_gap < 1.0  # a load on the serving worker instead stalls the loop for seconds


@pytest.mark.slow
def test_a_worker_without_indexing_does_not_load_it(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "PYTHONPATH": str(ROOT),
                   "DATABASE_URL": f"sqlite:///{tmp_path}/probe.sqlite3", "SEARCH_INDEXING": "false"}
    environment.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=environment, check=True)
    out = subprocess.run([sys.executable, "-c", "import sys, chatproject.asgi; print('torch' in sys.modules)"],
                         cwd=ROOT, env=environment, check=True, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False"
