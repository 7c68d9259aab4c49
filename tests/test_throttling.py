"""Rate limits: DRF's stock throttles with live rates, and a client IP that X-Forwarded-For cannot forge."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from chatproject.throttling import PerUserRateThrottle
from tests.factories import PASSWORD, UserFactory

AUTH_CALLS = {
    "login": ("/api/v1/auth/login", {"username": "nobody", "password": "wrong"}),
    "register": ("/api/v1/auth/register", {"username": "bad name!", "email": "x", "password": "p"}),
    "password-reset": ("/api/v1/auth/password/reset", {"email": "nobody@example.com"}),
}


def _rates(settings, **rates):
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"].update(rates)
    settings.REST_FRAMEWORK = rest


def _trust_proxies(settings, count):
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["NUM_PROXIES"] = count
    settings.REST_FRAMEWORK = rest


def test_rate_is_read_when_the_request_comes(settings):
    _rates(settings, user="3/min")
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=4242))
    assert [PerUserRateThrottle().allow_request(request, None) for _ in range(4)] == [True, True, True, False]
    _rates(settings, user="5/min")
    assert [PerUserRateThrottle().allow_request(request, None) for _ in range(3)] == [True, True, False]
    anonymous = SimpleNamespace(user=SimpleNamespace(is_authenticated=False))
    assert all(PerUserRateThrottle().allow_request(anonymous, None) for _ in range(10))


def test_proxies_are_not_trusted_by_default():
    from django.conf import settings
    from rest_framework.settings import api_settings

    assert settings.TRUSTED_PROXY_COUNT == 0
    assert api_settings.NUM_PROXIES == 0


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(AUTH_CALLS))
def test_varying_x_forwarded_for_does_not_escape_the_auth_throttle(settings, name):
    _rates(settings, auth="2/min")
    url, body = AUTH_CALLS[name]
    client = APIClient()
    statuses = [
        client.post(url, body, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)
    ]
    assert 429 not in statuses[:2] and statuses[2:] == [429, 429], statuses
    blocked = client.post(url, body, format="json", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "throttled"
    other = APIClient(REMOTE_ADDR="10.1.2.3")  # a genuinely different client is not affected
    assert other.post(url, body, format="json").status_code != 429


@pytest.mark.django_db
def test_varying_x_forwarded_for_does_not_escape_the_ip_throttle(settings):
    _rates(settings, ip="2/min")
    user = UserFactory()
    client = APIClient()
    client.login(username=user.username, password=PASSWORD)
    statuses = [client.get("/api/v1/rooms/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.django_db
def test_with_a_trusted_proxy_the_address_it_appended_counts(settings):
    """Behind one proxy, the last X-Forwarded-For entry (the one the proxy wrote) is the client."""
    _rates(settings, auth="2/min")
    _trust_proxies(settings, 1)
    url, body = AUTH_CALLS["login"]
    client = APIClient()
    # The client forges the leading entries; the proxy appends the real address, which stays the same.
    forged = [client.post(url, body, format="json", HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 203.0.113.9").status_code
              for i in range(3)]
    assert forged == [401, 401, 429]
    # Another real client behind the same proxy (same REMOTE_ADDR) has a budget of its own.
    assert client.post(url, body, format="json", HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 401


def test_wait_is_whole_seconds_and_never_missing(settings):
    _rates(settings, user="2/s")
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=777))
    throttles = [PerUserRateThrottle() for _ in range(3)]
    assert [t.allow_request(request, None) for t in throttles] == [True, True, False]
    assert throttles[2].wait() == 1
    _rates(settings, user="1/s")  # fewer allowed than on record: DRF's own estimate is None
    lowered = PerUserRateThrottle()
    assert not lowered.allow_request(request, None)
    assert lowered.wait() == 1
