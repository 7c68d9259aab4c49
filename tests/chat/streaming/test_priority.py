"""Running replies give way to starting ones, but never for long."""

from __future__ import annotations

import asyncio

import pytest

from chat.streaming.priority import starting, yield_to_starts

pytestmark = pytest.mark.asyncio


async def test_no_pause_without_starts():
    loop = asyncio.get_running_loop()
    began = loop.time()
    await yield_to_starts()
    assert loop.time() - began < 0.01


async def test_a_running_reply_waits_for_the_starts_to_finish(settings):
    settings.STREAM_START_PRIORITY_MS = 1000
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    async def start():
        with starting():
            await release.wait()

    task = asyncio.create_task(start())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(yield_to_starts())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    began = loop.time()
    release.set()
    await waiting
    await task
    assert loop.time() - began < 0.1


async def test_the_pause_is_bounded(settings):
    settings.STREAM_START_PRIORITY_MS = 30
    loop = asyncio.get_running_loop()
    with starting():
        began = loop.time()
        await yield_to_starts()
        assert 0.02 < loop.time() - began < 0.5
