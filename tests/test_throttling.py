"""The sliding-window throttle: constant work per request, the previous window weighted by its overlap."""

from __future__ import annotations

from types import SimpleNamespace

from chatproject.throttling import PerUserRateThrottle


def _throttle_at(now: float) -> PerUserRateThrottle:
    throttle = PerUserRateThrottle()
    throttle.timer = lambda: now
    return throttle


def test_previous_window_counts_by_its_overlap(settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "user": "10/min"}
    settings.REST_FRAMEWORK = rest
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=4242))
    start = 60 * 1_000_000  # the start of a window
    assert all(_throttle_at(start + i).allow_request(request, None) for i in range(10))
    blocked = _throttle_at(start + 30)
    assert not blocked.allow_request(request, None) and 1 <= blocked.wait() <= 30
    # A quarter into the next window, 75% of the previous window's 10 still count (7.5): 3 more fit, not 4.
    quarter = start + 60 + 15
    assert all(_throttle_at(quarter).allow_request(request, None) for _ in range(3))
    late = _throttle_at(quarter)
    assert not late.allow_request(request, None)
    assert 1 <= late.wait() <= 45
    # Once the old window no longer overlaps, the full rate is back.
    assert sum(_throttle_at(start + 180 + i).allow_request(request, None) for i in range(12)) == 10
