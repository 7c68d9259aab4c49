"""Group messages to everyone watching a room, sent only once the transaction that caused them commits."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.models import Room


def room_group(room_id) -> str:
    """Same name as Room.group_name, for code that only has the id."""
    return f"room.{room_id.hex if hasattr(room_id, 'hex') else str(room_id).replace('-', '')}"


def broadcast_after_commit(room: Room, event: dict) -> None:
    group = room.group_name

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, event)

    transaction.on_commit(send)


def send_to_channels_after_commit(channels: list[str], event: dict) -> None:
    """Direct messages (a job's control channel) after commit."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for channel in channels:
            async_to_sync(layer.send)(channel, event)

    transaction.on_commit(send)
