"""`call_service`: concurrent writes share one transaction, yet each succeeds, fails and broadcasts alone."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import APIException

from chat import broadcast, generation
from chat.broadcast import call_service
from chat.models import Message, Room
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _rooms(n: int):
    user = await database_sync_to_async(UserFactory)()
    rooms = [await database_sync_to_async(RoomFactory)(owner=user) for _ in range(n)]
    return user, rooms


async def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def test_concurrent_starts_commit_together_and_fail_alone(settings):
    settings.STREAMS_PER_USER = 100
    user, rooms = await _rooms(4)
    gone = rooms[2]
    await database_sync_to_async(Room.objects.filter(pk=gone.pk).update)(is_deleted=True)
    layer = get_channel_layer()
    listeners = [await _listen(room.group_name) for room in rooms]
    batches = []
    real_run_batch = broadcast._run_batch

    def counting_run_batch(calls):
        batches.append(len(calls))
        with CaptureQueriesContext(connection) as queries:
            result = real_run_batch(calls)
        batches.append(sum(q["sql"] == "COMMIT" for q in queries.captured_queries))
        return result

    broadcast._run_batch = counting_run_batch
    try:
        results = await asyncio.gather(
            *(call_service(generation.send_user_message, room=room, user=user, content=f"hi {i}", model="m")
              for i, room in enumerate(rooms)),
            return_exceptions=True,
        )
    finally:
        broadcast._run_batch = real_run_batch
    assert batches == [4, 1]  # one batch of four, one commit
    assert isinstance(results[2], APIException) and results[2].status_code == 404
    for i in (0, 1, 3):
        assert results[i].assistant.room_id == rooms[i].pk
        created = [await asyncio.wait_for(layer.receive(listeners[i]), 1) for _ in range(2)]
        assert [e["message"]["role"] for e in created] == ["user", "assistant"]
        assert created[0]["message"]["content"] == f"hi {i}"
    with pytest.raises(asyncio.TimeoutError):  # the failed start broadcast nothing
        await asyncio.wait_for(layer.receive(listeners[2]), 0.1)
    count = await database_sync_to_async(Message.objects.filter(room__in=rooms).count)()
    assert count == 6 and not await database_sync_to_async(Message.objects.filter(room=gone).exists)()


async def test_a_lone_call_runs_at_once_and_returns_its_result():
    user, (room,) = await _rooms(1)
    started = await call_service(generation.send_user_message, room=room, user=user, content="solo", model="m")
    reply = await database_sync_to_async(Message.objects.get)(pk=started.assistant.pk)
    assert reply.status == "streaming" and reply.parent_id == started.user_message.pk


async def test_a_database_error_is_retried_alone(monkeypatch):
    user, (room,) = await _rooms(1)
    attempts = []

    def flaky(**kwargs):
        attempts.append(kwargs)
        if len(attempts) == 1:
            from django.db import OperationalError

            raise OperationalError("deadlock detected")
        return "ok"

    assert await call_service(flaky, room=room) == "ok"
    assert len(attempts) == 2


async def test_callers_are_not_left_waiting_when_the_drain_is_cancelled():
    import time

    def slow(**kwargs):
        time.sleep(0.2)
        return "late"

    caller = asyncio.create_task(call_service(slow))
    await asyncio.sleep(0.05)  # the batch is on the database thread now
    broadcast._batches[asyncio.get_running_loop()].task.cancel()  # as at worker shutdown
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 2)
    await asyncio.sleep(0.3)  # a thread cannot be cancelled: let it finish its transaction before teardown


async def test_events_go_to_the_in_memory_layer_uncopied(monkeypatch):
    """A service's after-commit event is built for its one send: watchers get that very dict, not a copy."""
    layer = get_channel_layer()
    if not hasattr(layer, "group_send_nowait"):
        pytest.skip("only the in-process layer copies on send")
    built = []
    real_message_event = generation.message_event

    def recording_message_event(kind, message):
        built.append(real_message_event(kind, message))
        return built[-1]

    monkeypatch.setattr(generation, "message_event", recording_message_event)
    user, (room,) = await _rooms(1)
    first, second = await _listen(room.group_name), await _listen(room.group_name)
    await call_service(generation.send_user_message, room=room, user=user, content="shared", model="m")
    seen_by_first = await asyncio.wait_for(layer.receive(first), 1)
    seen_by_second = await asyncio.wait_for(layer.receive(second), 1)
    assert seen_by_first["message"]["content"] == "shared"
    assert seen_by_first is seen_by_second is built[0]
