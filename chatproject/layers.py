"""The in-process channel layer, trimmed for streaming fan-out.

Channels' InMemoryChannelLayer does, for every token sent to a room:
- a sweep of every channel and group for expired messages (on every send and receive);
- one asyncio Task per watcher, gathered with `as_completed`, even though an in-memory send never waits;
- a new `asyncio.Queue` built on every send (the default argument of a `setdefault`), and a deep copy
  of the message per watcher.
Here the sweep runs at most once a second (expiry is measured in seconds, default 60, so nothing visible
changes), a group send puts one deep copy straight into each watcher's queue (none for a message its
sender marks fresh: generation jobs' events and services' after-commit events), and queues are only built
for new channels. Receivers of one group message share that copy and must treat it as read-only (the chat
consumer does). A consumer may `attach` its own inbox to its channel (chatproject.consumers): messages then
land in the queue it reads anyway, with no receive task in between.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as _InMemoryChannelLayer


class InMemoryChannelLayer(_InMemoryChannelLayer):
    sweep_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0
        self.attached: dict[str, asyncio.Queue] = {}

    def attach(self, channel: str, inbox: asyncio.Queue) -> None:
        """Deliver `channel`'s messages into `inbox` as (expiry, message) pairs, the shape of a channel queue."""
        self.require_valid_channel_name(channel)
        self.attached[channel] = self.channels[channel] = inbox

    def detach(self, channel: str) -> None:
        self.attached.pop(channel, None)
        self.channels.pop(channel, None)
        self._remove_from_groups(channel)

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.attached.get(channel)  # the expiry sweep drops emptied queues, attached ones too
            if queue is None:
                self.require_valid_channel_name(channel)
                queue = asyncio.Queue(maxsize=self.get_capacity(channel))
            self.channels[channel] = queue
        return queue

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict) -> None:
        self.group_send_nowait(group, message)

    def group_send_nowait(self, group: str, message: dict, *, fresh: bool = False) -> None:
        """group_send without a coroutine: an in-memory send never waits (generation jobs call this per token).

        `fresh`: the sender built `message` for this send and never changes it afterwards, so receivers may
        share it as it is (the copy only guards against a sender's later changes).
        """
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        item = (time.time() + self.expiry, message if fresh else deepcopy(message))
        for channel in list(members):
            try:
                self._queue(channel).put_nowait(item)
            except asyncio.QueueFull:
                pass  # a full watcher misses this message, as with Channels' own layers
