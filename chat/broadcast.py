"""Group messages to everyone watching a room, sent only once the transaction that caused them commits;
and `call_service`, how async code runs the sync write services.

This is Zulip's `send_event_on_commit`: a watcher must never see an event for a row it cannot read yet.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction

_collected: contextvars.ContextVar[list | None] = contextvars.ContextVar("collected_broadcasts", default=None)


def room_group(room_id) -> str:
    """Same name as Room.group_name, for code that only has the id."""
    return f"room.{room_id.hex if hasattr(room_id, 'hex') else str(room_id).replace('-', '')}"


def user_group(user_id) -> str:
    """Every WebSocket of one user, so the end of a login reaches all of them."""
    return f"user.{user_id}"


# Every open WebSocket, for instance-wide news such as the panic switch.
EVERYONE_GROUP = "everyone"


def _deliver(collected: list | None, send: str, target: str, event: dict) -> None:
    if collected is not None:  # an async caller sends them from its loop (call_service)
        collected.append((send, target, event))
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(getattr(layer, send))(target, event)


def broadcast_after_commit(room, event: dict) -> None:
    """Send `event` to the room's watchers once the current transaction commits."""
    group_send_after_commit(room.group_name, event)


def group_send_after_commit(group: str, event: dict) -> None:
    collected = _collected.get()
    transaction.on_commit(lambda: _deliver(collected, "group_send", group, event))


def send_to_channels_after_commit(messages: list[tuple[str, dict]]) -> None:
    """Direct messages (jobs' control channels) after commit; from sync code all of them go in one trip to the
    event loop, so stopping many replies at once (the panic switch) does not wait a loop turn per reply."""
    collected = _collected.get()
    if collected is not None:
        for channel, event in messages:
            transaction.on_commit(lambda channel=channel, event=event: collected.append(("send", channel, event)))
        return
    transaction.on_commit(lambda: _send_all(messages))


def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        await asyncio.gather(*(layer.send(channel, event) for channel, event in messages))

    async_to_sync(send_all)()


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def sqlite_writer() -> asyncio.Lock:
    """On SQLite a worker's writes from async code wait their turn here, not in SQLite's busy handler, which
    sleeps between tries: requests run their sync code on threads of their own, each with a connection."""
    loop = asyncio.get_running_loop()
    lock = _writers.get(loop)
    if lock is None:
        lock = _writers[loop] = asyncio.Lock()
    return lock


def _run_collecting(service: Callable[..., Any], kwargs: dict, collected: list) -> Any:
    token = _collected.set(collected)
    try:
        return service(**kwargs)
    finally:
        _collected.reset(token)


async def call_service(service: Callable[..., Any], /, *, writers: ThreadPoolExecutor | None = None,
                       **kwargs) -> Any:
    """Run a sync service on the database thread, then send its after-commit events from the event loop.

    Sending them from the database thread with async_to_sync would park that thread until the loop got round
    to it, and every other database call of the worker would queue behind it. With `writers`, the service
    runs on one of that pool's threads instead, beside other such calls rather than behind them.
    """
    collected: list = []
    if writers is None:
        run = database_sync_to_async(_run_collecting)
    else:
        run = database_sync_to_async(_run_collecting, thread_sensitive=False, executor=writers)
    if connection.vendor == "sqlite":
        async with sqlite_writer():
            result = await run(service, kwargs, collected)
    else:
        result = await run(service, kwargs, collected)
    layer = get_channel_layer()
    if layer is not None:
        for send, target, event in collected:
            await getattr(layer, send)(target, event)
    return result
