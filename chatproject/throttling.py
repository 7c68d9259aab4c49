"""Rate limits per IP and per user; rates are read at request time so settings overrides apply."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    """Look up the rate from settings on each request instead of once at import."""

    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)


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
