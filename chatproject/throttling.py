"""Rate limits per IP and per user; rates are read at request time so settings overrides apply.

DRF's SimpleRateThrottle keeps a list of every request's time in the cache and reads, trims and rewrites
the whole list on each request: at 600/min that is up to 600 floats pickled twice per request per scope,
and the cost grows with the rate. These throttles count in two fixed windows instead and weight the
previous window by how much of it still overlaps the sliding one (the usual sliding-window estimate):
two cache reads and one atomic increment, whatever the rate.
"""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    """Look up the rate from settings on each request instead of once at import; O(1) sliding window."""

    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)

    def allow_request(self, request, view) -> bool:
        if not self.would_allow(request, view):
            return self.throttle_failure()
        self.record()
        return True

    def would_allow(self, request, view) -> bool:
        """Whether this request is within the limit, counting nothing (`record` counts it)."""
        self.rate = self.get_rate()
        if self.rate is None:
            self.key = None
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        current_key, previous_key = f"{self.key}:{window}", f"{self.key}:{window - 1}"
        counts = self.cache.get_many([current_key, previous_key])
        self._current, self._previous = counts.get(current_key, 0), counts.get(previous_key, 0)
        self._elapsed = self.now - window * self.duration
        self._current_key = current_key
        overlap = 1 - self._elapsed / self.duration
        return self._previous * overlap + self._current < self.num_requests

    def record(self) -> None:
        """Count the request `would_allow` just checked."""
        if self.key is None:
            return
        current_key = self._current_key
        if not self.cache.add(current_key, 1, timeout=2 * self.duration):
            try:
                self.cache.incr(current_key)
            except ValueError:  # expired between add and incr
                self.cache.set(current_key, 1, timeout=2 * self.duration)

    def wait(self) -> float:
        """Seconds until the estimate drops below the limit again."""
        if self._current >= self.num_requests or not self._previous:
            return max(1.0, self.duration - self._elapsed)
        # previous * (1 - (elapsed + t) / duration) + current < limit
        needed = self.duration * (1 - (self.num_requests - self._current) / self._previous) - self._elapsed
        return max(1.0, math.ceil(needed))


class PerIPRateThrottle(_SettingsRateThrottle):
    """Every request counts against its client IP, logged in or not."""

    scope = "ip"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PerUserRateThrottle(_SettingsRateThrottle):
    """Authenticated requests also count against the user, whatever IP they come from."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AuthRateThrottle(_SettingsRateThrottle):
    """Tighter per-IP limit on credential endpoints (login, register, password reset)."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
