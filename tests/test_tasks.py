"""cancel_and_wait: helper tasks end for sure, even when a library swallows their cancellation."""

from __future__ import annotations

import asyncio

import pytest

from chatproject.tasks import cancel_and_wait

pytestmark = pytest.mark.asyncio


async def test_a_swallowed_cancellation_is_repeated():
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.append(True)  # as a client library may, turning a cancel into a timeout and retrying
        await asyncio.sleep(10)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait([task], wait=0.05)
    assert swallowed == [True] and task.cancelled()


async def test_finished_tasks_are_left_alone():
    done = asyncio.create_task(asyncio.sleep(0, result="ok"))
    await done
    await cancel_and_wait([done])
    assert done.result() == "ok"
