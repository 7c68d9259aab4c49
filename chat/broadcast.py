"""Group messages to everyone watching a room, sent only once the transaction that caused them commits;
and `call_service`, how async code runs the sync write services.

From async code, call a service through `call_service`. Two things happen there:

- Its after-commit events are collected and sent from the event loop once the database thread is free.
  Sending them from the database thread with async_to_sync would park Django's one sync thread until the
  (busy) loop got round to it, and every other start and flush queued behind it.
- Services called while the database thread is busy are run together as one batch, back to back in one
  transaction (group commit), each inside its own savepoint so one failing does not undo the others. When
  fifty replies start at once, SQLite then writes the shared index pages to its log once per batch instead
  of once per reply, and the thread hops and commits are shared too. A lone call is a batch of one: it
  waits for nothing. A call that hits a database error (a deadlock with another worker's batch), or every
  call of a batch whose commit failed, is run again alone in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction

from chat.models import Room

_collected: contextvars.ContextVar[list | None] = contextvars.ContextVar("collected_broadcasts", default=None)


def room_group(room_id) -> str:
    """Same name as Room.group_name, for code that only has the id."""
    return f"room.{room_id.hex if hasattr(room_id, 'hex') else str(room_id).replace('-', '')}"


def _deliver(collected: list | None, send: str, target: str, event: dict) -> None:
    if collected is not None:
        collected.append((send, target, event))
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(getattr(layer, send))(target, event)


def broadcast_after_commit(room: Room, event: dict) -> None:
    group, collected = room.group_name, _collected.get()
    transaction.on_commit(lambda: _deliver(collected, "group_send", group, event))


def send_to_channels_after_commit(channels: list[str], event: dict) -> None:
    """Direct messages (a job's control channel) after commit."""
    collected = _collected.get()
    for channel in channels:
        transaction.on_commit(lambda channel=channel: _deliver(collected, "send", channel, event))


class _Batch:
    """Service calls waiting for the database thread, and whether a drain is already under way."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], dict, asyncio.Future]] = []
        self.draining = False
        self.task: asyncio.Task | None = None


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()


@functools.cache
def _is_atomic(service: Callable[..., Any]) -> bool:
    """Whether `service` is wrapped by `@transaction.atomic` (its closure holds the Atomic)."""
    return any(isinstance(cell.cell_contents, transaction.Atomic) for cell in (service.__closure__ or ()))


def _run_one(service: Callable[..., Any], kwargs: dict) -> tuple[bool, Any, list]:
    """One call, atomic: its own `@transaction.atomic` (a savepoint inside a batch, else the transaction)
    or ours. Not both: a savepoint costs two statements through Django's cursor."""
    messages: list = []
    token = _collected.set(messages)
    try:
        if _is_atomic(service):
            return True, service(**kwargs), messages
        with transaction.atomic():
            return True, service(**kwargs), messages
    except Exception as exc:  # noqa: BLE001 - handed to that caller; a batch goes on
        return False, exc, messages
    finally:
        _collected.reset(token)


def _run_batch(calls: list[tuple[Callable[..., Any], dict]]) -> list[tuple[bool, Any, list]]:
    """On the database thread: every call in one transaction, each atomic on its own, with its own messages."""
    if len(calls) == 1:
        return [_run_one(*calls[0])]
    with transaction.atomic():
        outcomes = [_run_one(service, kwargs) for service, kwargs in calls]
    return outcomes  # the messages lists are filled by the on_commit callbacks as the batch commits


async def _run_alone(call: tuple[Callable[..., Any], dict]) -> tuple[bool, Any, list]:
    try:
        return (await database_sync_to_async(_run_batch)([call]))[0]
    except Exception as exc:  # noqa: BLE001 - handed to its caller
        return (False, exc, [])


async def _drain(batch: _Batch) -> None:
    items: list = []
    try:
        while batch.pending:
            items, batch.pending = batch.pending, []
            calls = [(service, kw) for service, kw, _ in items]
            try:
                outcomes = await database_sync_to_async(_run_batch)(calls)
            except Exception:  # noqa: BLE001 - the batch as a whole failed (a deadlock, the commit): one by one
                outcomes = [await _run_alone(call) for call in calls]
            for index, (ok, value, _messages) in enumerate(outcomes):
                if not ok and isinstance(value, DatabaseError):  # e.g. deadlocked with another worker's batch
                    outcomes[index] = await _run_alone(calls[index])
            for (_service, _kw, future), (ok, value, messages) in zip(items, outcomes, strict=True):
                if future.done():
                    continue  # the caller went away (its write still happened)
                if ok:
                    future.set_result((value, messages))
                else:
                    future.set_exception(value)
    except asyncio.CancelledError:  # the worker is shutting down: nobody may wait for an answer forever
        for _service, _kw, future in items + batch.pending:
            future.cancel()
        batch.pending = []
        raise
    finally:
        batch.draining = False


async def call_service(service: Callable[..., Any], **kwargs) -> Any:
    """Run a sync service on the database thread (batched with concurrent calls), then send its after-commit
    messages from the loop, in order."""
    loop = asyncio.get_running_loop()
    batch = _batches.get(loop)
    if batch is None:
        batch = _batches[loop] = _Batch()
    future = loop.create_future()
    batch.pending.append((service, kwargs, future))
    if not batch.draining:
        batch.draining = True
        # A fresh context: the drain outlives this caller, so it must not inherit a per-request sync
        # thread (Django's ThreadSensitiveContext) that ends with the request.
        batch.task = loop.create_task(_drain(batch), context=contextvars.Context())
    result, messages = await future
    layer = get_channel_layer()
    if layer is not None:
        send_nowait = getattr(layer, "group_send_nowait", None)
        for send, target, event in messages:
            if send == "group_send" and send_nowait is not None:
                # The service built the event for this send and nobody changes it after the commit: the
                # in-memory layer need not deep-copy it (a reply's message events cost ~60 µs each).
                send_nowait(target, event, fresh=True)
            else:
                await getattr(layer, send)(target, event)
    return result
