"""The inbox receive loop of chatproject.consumers: both sources dispatched in order, failures surface."""

from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from chatproject.consumers import InboxConsumerMixin

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db]  # Channels closes old connections per message


class EchoConsumer(InboxConsumerMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add("echo", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard("echo", self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("boom"):
            raise RuntimeError("boom")
        await self.send_json({"echo": content})

    async def room_note(self, event: dict) -> None:
        await self.send_json({"note": event["n"]})


async def test_client_frames_and_layer_events_are_both_dispatched_in_order():
    ws = WebsocketCommunicator(EchoConsumer.as_asgi(), "/")
    assert (await ws.connect())[0]
    await ws.send_json_to({"hello": 1})
    assert await ws.receive_json_from(timeout=2) == {"echo": {"hello": 1}}
    layer = get_channel_layer()
    for n in range(5):
        await layer.group_send("echo", {"type": "room.note", "n": n})
    assert [(await ws.receive_json_from(timeout=2))["note"] for _ in range(5)] == [0, 1, 2, 3, 4]
    await ws.disconnect()


async def test_a_handler_failure_ends_the_consumer_with_that_error():
    ws = WebsocketCommunicator(EchoConsumer.as_asgi(), "/")
    assert (await ws.connect())[0]
    await ws.send_json_to({"boom": True})
    with pytest.raises(RuntimeError, match="boom"):
        await ws.receive_output(timeout=2)
