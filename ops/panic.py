"""Reading the panic switch: one database row, cached briefly so every check is cheap and workers agree fast."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from rest_framework.permissions import SAFE_METHODS, BasePermission

from chatproject.errors import ApiError
from ops.models import PanicState

CACHE_KEY = "ops:panic-active"


def panic_state() -> PanicState:
    """The switch's row, created off on first use."""
    state, _ = PanicState.objects.get_or_create(pk=1)
    return state


def is_panicking() -> bool:
    """True while panic is on; the cache (shared Redis in scale-out) is updated the moment it changes."""
    active = cache.get(CACHE_KEY)
    if active is None:
        active = PanicState.objects.filter(pk=1, active=True).exists()
        cache.set(CACHE_KEY, active, settings.PANIC_CACHE_SECONDS)
    return bool(active)


async def ais_panicking() -> bool:
    active = await cache.aget(CACHE_KEY)
    if active is None:
        active = await PanicState.objects.filter(pk=1, active=True).aexists()
        await cache.aset(CACHE_KEY, active, settings.PANIC_CACHE_SECONDS)
    return bool(active)


def panic_refusal() -> ApiError:
    """The 423 every chat entry point answers while panic is on."""
    return ApiError("Chat is stopped by the panic switch until an administrator resets it.", code="panic",
                    status_code=423)


def refuse_during_panic() -> None:
    if is_panicking():
        raise panic_refusal()


async def arefuse_during_panic() -> None:
    if await ais_panicking():
        raise panic_refusal()


class NotDuringPanic(BasePermission):
    """Chat work that creates something (rooms, messages, replies) is refused with 423 while panic is on;
    reading, stopping and deleting stay allowed."""

    refused_during_panic = True  # the API schema documents a 423 for views that carry this

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS and request.method != "DELETE":
            refuse_during_panic()
        return True
