"""Ending helper tasks for sure, even where a library swallows their cancellation."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(tasks: list[asyncio.Task], attempts: int = 3, wait: float = 0.2) -> None:
    """Cancel the tasks and wait for them to end, cancelling again any still running after a short wait.

    A cancellation can be lost: redis-py turns one that races its read timeout into a timeout, and
    channels-redis then waits again. A task that outlived its owner that way held it for the life of the
    worker.
    """
    pending = {task for task in tasks if not task.done()}
    for _ in range(attempts):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=wait)
