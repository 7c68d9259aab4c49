"""Rate limits per IP and per user: DRF's stock SimpleRateThrottle, with the rate read at request time.

The client IP is DRF's `get_ident`, which trusts X-Forwarded-For only as far as `NUM_PROXIES` says
(settings.TRUSTED_PROXY_COUNT, default 0: the header is ignored and REMOTE_ADDR counts). With DRF's own
default (None) any client could send a different X-Forwarded-For with each request and never be throttled.
"""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class SettingsRateThrottle(SimpleRateThrottle):
    """Look the rate up in settings on each request instead of once at import, so overrides apply."""

    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)

    def wait(self) -> int:
        """Whole seconds, at least 1, so Retry-After (which DRF writes rounded down) never says 0 or goes
        missing (DRF's estimate is None when a lowered rate leaves more requests on record than it allows)."""
        seconds = super().wait()
        return max(1, math.ceil(self.duration if seconds is None else seconds))


class PerIPRateThrottle(SettingsRateThrottle):
    """Every request counts against its client IP, logged in or not."""

    scope = "ip"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PerUserRateThrottle(SettingsRateThrottle):
    """Authenticated requests also count against the user, whatever IP they come from."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AuthRateThrottle(SettingsRateThrottle):
    """Tighter per-IP limit on credential endpoints (login, register, password reset)."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
