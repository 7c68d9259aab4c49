"""First tokens before later ones: while replies are starting, running replies pause reading for a moment.

asyncio runs ready work first come, first served, so fifty replies starting while others stream would each
wait behind every token relayed meanwhile. What a paused reply would have relayed waits in its socket and
goes out as one frame afterwards (as LLM servers run waiting prefills before further decode steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from django.conf import settings


class Starts:
    """This worker's replies between their start request and their first token."""

    def __init__(self) -> None:
        self.under_way = 0
        self.idle = asyncio.Event()
        self.idle.set()


_starts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Starts] = weakref.WeakKeyDictionary()


def starts_here() -> Starts:
    loop = asyncio.get_running_loop()
    starts = _starts.get(loop)
    if starts is None:
        starts = _starts[loop] = Starts()
    return starts


@contextlib.contextmanager
def starting():
    """Count a reply as starting until the block ends (its first token, or giving up on one)."""
    starts = starts_here()
    starts.under_way += 1
    starts.idle.clear()
    try:
        yield
    finally:
        starts.under_way -= 1
        if not starts.under_way:
            starts.idle.set()


async def yield_to_starts() -> None:
    """Wait while replies start, at most STREAM_START_PRIORITY_MS (0: never)."""
    starts = _starts.get(asyncio.get_running_loop())
    if starts is None or not starts.under_way or settings.STREAM_START_PRIORITY_MS <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(starts.idle.wait(), settings.STREAM_START_PRIORITY_MS / 1000)
