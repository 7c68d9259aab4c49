"""The in-process channel layer, with its expiry sweep rate-limited.

Channels' InMemoryChannelLayer walks every channel and group on every send and receive to drop expired
messages; with a hundred watchers and jobs that sweep was a visible share of the streaming profile.
Expiry is measured in seconds (default 60), so sweeping at most once a second changes nothing visible.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer as _InMemoryChannelLayer


class InMemoryChannelLayer(_InMemoryChannelLayer):
    sweep_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            super()._clean_expired()
