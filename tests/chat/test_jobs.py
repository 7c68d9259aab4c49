"""Start slots: a few starts at a time per worker, each held until its first token or a short wait; running
replies yield to starts."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from chat import jobs

pytestmark = pytest.mark.asyncio


async def test_start_slots_admit_a_few_at_a_time(settings):
    settings.STREAM_START_CONCURRENCY = 2
    inside, peak = 0, 0

    async def start():
        nonlocal inside, peak
        async with jobs.start_slot():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(start() for _ in range(6)))
    assert peak == 2


async def test_a_slot_is_held_until_the_first_token_or_the_timeout():
    job = SimpleNamespace(first_token=asyncio.Event())
    began = time.monotonic()
    await jobs.until_first_token(job, timeout=0.05)  # a backend that is slow to answer: the slot is let go
    assert 0.04 <= time.monotonic() - began < 1
    asyncio.get_running_loop().call_later(0.01, job.first_token.set)
    began = time.monotonic()
    await jobs.until_first_token(job, timeout=5)
    assert time.monotonic() - began < 1


async def test_running_replies_pause_while_starts_are_under_way_but_not_for_long(settings):
    settings.STREAM_START_PRIORITY_MS = 200
    began = time.monotonic()
    await jobs.yield_to_starts()  # nothing is starting: no pause at all
    assert time.monotonic() - began < 0.05
    released = asyncio.Event()

    async def start():
        async with jobs.start_slot():
            await released.wait()

    starting = asyncio.create_task(start())
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.05, released.set)
    began = time.monotonic()
    await jobs.yield_to_starts()  # resumes as soon as the start is done
    assert 0.04 <= time.monotonic() - began < 0.15
    await starting
    released.clear()
    stuck = asyncio.create_task(start())  # a start that never ends holds nobody up past the cap
    await asyncio.sleep(0)
    began = time.monotonic()
    await jobs.yield_to_starts()
    assert 0.19 <= time.monotonic() - began < 0.5
    settings.STREAM_START_PRIORITY_MS = 0
    began = time.monotonic()
    await jobs.yield_to_starts()  # switched off
    assert time.monotonic() - began < 0.05
    stuck.cancel()
