"""Backend clients kept per event loop, and what every backend request shares."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Listing is what a page load waits for, so a dead backend in the list is given up on quickly.
LIST_TIMEOUT = 3.0
# Generation waits for a model to load and think; only a backend that cannot even be reached fails fast.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 300.0
# After a reply's last event the rest of the body is read, so its connection is kept for the next reply.
BODY_END_TIMEOUT = 1.0


class PerLoop(Generic[T]):
    """One client per event loop and key, because a client's pooled connections belong to the loop that opened them."""

    def __init__(self, factory: Callable[[str], T]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, T]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: str) -> T:
        loop = asyncio.get_running_loop()
        clients = self._clients.get(loop)
        if clients is None:
            # Idle connections refer to their loop, so a closed loop's clients are let go of here.
            for closed in [old for old in self._clients.keys() if old.is_closed()]:
                del self._clients[closed]
            clients = self._clients[loop] = {}
        client = clients.get(key)
        if client is None:
            client = clients[key] = self._factory(key)
        return client


async def forget_cookies(request: Any) -> None:
    """Send no cookies, because one client serves every user of a worker and a backend's cookie must follow no one."""
    request.headers.pop("cookie", None)
