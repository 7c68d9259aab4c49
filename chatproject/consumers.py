"""A leaner receive loop for Channels consumers that stream many small events.

Channels' AsyncConsumer waits on the client and the channel layer with `asyncio.wait` on two tasks and
starts a new receive task after every message: per token sent to a watcher that was a fresh task, a
wait with its callbacks and futures, and a wake-up of the consumer. Here layer events feed one inbox that
the consumer reads in order (with this project's in-memory layer the layer puts them straight into it, no
task at all; with any other layer one long-lived task forwards them), and client messages wait in a queue
of their own that is served first, as Channels serves the client when both have something.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque

from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper

from chatproject.tasks import cancel_and_wait


class _Failed:
    """A source's exception, carried through the inbox to the consumer's own task."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_CLIENT = object()  # an inbox nudge: a client message waits in the consumer's client queue


async def _forward(source, inbox: asyncio.Queue) -> None:
    try:
        while True:
            await inbox.put((math.inf, await source()))
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer, as await_many_dispatch would
        await inbox.put((math.inf, _Failed(exc)))


async def _forward_client(receive, client: deque, inbox: asyncio.Queue) -> None:
    """Client messages wait in their own queue, served before layer events (as Channels serves them when both
    are ready): a `resume` must not queue behind the very tokens it is about to cover."""
    try:
        while True:
            client.append(await receive())
            with contextlib.suppress(asyncio.QueueFull):  # a full inbox means the consumer is awake anyway
                inbox.put_nowait((math.inf, _CLIENT))
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
        client.append(_Failed(exc))
        with contextlib.suppress(asyncio.QueueFull):
            inbox.put_nowait((math.inf, _CLIENT))


class InboxConsumerMixin:
    """Put before AsyncJsonWebsocketConsumer; dispatch is unchanged (one message at a time, in order)."""

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        # Channels' session wrapper only acts on `http.response.start`; websocket frames can skip it.
        owner = getattr(send, "__self__", None)
        self._frame_send = owner.real_send if isinstance(owner, InstanceSessionWrapper) else send
        self.channel_layer = layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await layer.new_channel()
        capacity = getattr(layer, "get_capacity", None)  # not every layer has one (channels-redis pub/sub)
        inbox: asyncio.Queue = asyncio.Queue(maxsize=capacity(self.channel_name) if capacity else 0)
        client: deque = deque()
        forwarders = [asyncio.create_task(_forward_client(receive, client, inbox))]
        attach = getattr(layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, inbox)
        else:
            forwarders.append(asyncio.create_task(_forward(lambda: layer.receive(self.channel_name), inbox)))
        try:
            while True:
                if client:
                    message = client.popleft()
                else:
                    _expiry, message = await inbox.get()
                    if message is _CLIENT:
                        continue
                if isinstance(message, _Failed):
                    raise message.exc
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            if attach is not None:
                layer.detach(self.channel_name)
            await cancel_and_wait(forwarders)

    async def send_json(self, content, close: bool = False) -> None:
        """Frames go straight to the server's send (see __call__); closing takes Channels' usual path."""
        if close:
            await super().send_json(content, close=True)
            return
        await self._frame_send({"type": "websocket.send", "text": json.dumps(content)})
