"""Group messages to everyone watching a room, sent only once the transaction that caused them commits.

From async code, call a service through `call_service`: its after-commit events are collected and sent
from the event loop once the database thread is free. Sending them from the database thread with
async_to_sync would park Django's one sync thread until the (busy) loop got round to it, and every other
start and flush queued behind it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from chat.models import Room

_collected: contextvars.ContextVar[list | None] = contextvars.ContextVar("collected_broadcasts", default=None)


def room_group(room_id) -> str:
    """Same name as Room.group_name, for code that only has the id."""
    return f"room.{room_id.hex if hasattr(room_id, 'hex') else str(room_id).replace('-', '')}"


def _deliver(send: Callable[[Any], Any], target: str, event: dict) -> None:
    collected = _collected.get()
    if collected is not None:
        collected.append((send, target, event))
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(getattr(layer, send))(target, event)


def broadcast_after_commit(room: Room, event: dict) -> None:
    group = room.group_name
    transaction.on_commit(lambda: _deliver("group_send", group, event))


def send_to_channels_after_commit(channels: list[str], event: dict) -> None:
    """Direct messages (a job's control channel) after commit."""
    for channel in channels:
        transaction.on_commit(lambda channel=channel: _deliver("send", channel, event))


async def call_service(service: Callable[..., Any], **kwargs) -> Any:
    """Run a sync service on the database thread, then send its after-commit messages from the loop, in order."""

    def run() -> tuple[Any, list]:
        token = _collected.set([])
        try:
            return service(**kwargs), _collected.get()
        finally:
            _collected.reset(token)

    result, messages = await database_sync_to_async(run)()
    layer = get_channel_layer()
    if layer is not None:
        for send, target, event in messages:
            await getattr(layer, send)(target, event)
    return result
