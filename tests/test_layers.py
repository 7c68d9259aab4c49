"""The trimmed in-memory channel layer keeps Channels' semantics: fan-out, capacity, expiry."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from chatproject.layers import InMemoryChannelLayer

pytestmark = pytest.mark.asyncio


async def test_group_send_reaches_every_member_and_only_them():
    layer = InMemoryChannelLayer()
    a, b, outsider = [await layer.new_channel() for _ in range(3)]
    await layer.group_add("room.x", a)
    await layer.group_add("room.x", b)
    event = {"type": "stream.token", "delta": "hi", "nested": {"n": 1}}
    await layer.group_send("room.x", event)
    event["nested"]["n"] = 2  # the sender's later changes do not reach receivers
    assert await layer.receive(a) == {"type": "stream.token", "delta": "hi", "nested": {"n": 1}}
    assert await layer.receive(b) == {"type": "stream.token", "delta": "hi", "nested": {"n": 1}}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(outsider), 0.05)
    await layer.group_discard("room.x", b)
    await layer.group_send("room.x", {"type": "after"})
    assert (await layer.receive(a))["type"] == "after"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(b), 0.05)
    await layer.group_send("room.nobody", {"type": "lost"})  # no members: nothing happens


async def test_capacity_is_enforced_per_channel():
    layer = InMemoryChannelLayer(capacity=2)
    full, fine = await layer.new_channel(), await layer.new_channel()
    for channel in (full, fine):
        await layer.group_add("g", channel)
    await layer.send(full, {"type": "one"})
    await layer.send(full, {"type": "two"})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "three"})
    await layer.group_send("g", {"type": "group"})  # the full member misses it, the other still gets it
    assert [(await layer.receive(full))["type"] for _ in range(2)] == ["one", "two"]
    assert (await layer.receive(fine))["type"] == "group"


async def test_expired_messages_are_swept():
    layer = InMemoryChannelLayer(expiry=0.01)
    layer.sweep_interval = 0
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "stale"})
    await asyncio.sleep(0.05)
    await layer.send(await layer.new_channel(), {"type": "trigger a sweep"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.05)


async def test_invalid_names_are_refused():
    layer = InMemoryChannelLayer()
    with pytest.raises(TypeError):
        await layer.send("bad name!", {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_send("bad group!", {"type": "x"})


async def test_an_attached_inbox_receives_the_channels_messages_directly():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    inbox: asyncio.Queue = asyncio.Queue()
    layer.attach(channel, inbox)
    await layer.group_add("room.x", channel)
    layer.group_send_nowait("room.x", {"type": "stream.token", "delta": "a"})
    await layer.send(channel, {"type": "direct"})
    first, second = inbox.get_nowait(), inbox.get_nowait()
    assert first[1] == {"type": "stream.token", "delta": "a"} and first[0] > 0  # (expiry, message), as queued
    assert second[1] == {"type": "direct"}
    layer.channels.pop(channel)  # what the expiry sweep does to a channel it emptied
    await layer.group_send("room.x", {"type": "still.here"})
    assert inbox.get_nowait()[1] == {"type": "still.here"}
    layer.detach(channel)
    await layer.group_send("room.x", {"type": "gone"})
    assert inbox.empty() and channel not in layer.channels


async def test_a_fresh_message_is_shared_not_copied():
    layer = InMemoryChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    for channel in (a, b):
        await layer.group_add("room.x", channel)
    event = {"type": "stream.token", "delta": "hi"}
    layer.group_send_nowait("room.x", event, fresh=True)
    assert await layer.receive(a) is event and await layer.receive(b) is event
    layer.group_send_nowait("room.x", event)  # by default a copy, as Channels does
    assert await layer.receive(a) == event and await layer.receive(b) is not event
