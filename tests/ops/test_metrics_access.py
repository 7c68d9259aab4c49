"""Who may read `/metrics`: loopback clients by default, anyone with METRICS_TOKEN, nobody else."""

from __future__ import annotations

import copy

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


def get(**extra):
    return APIClient().get("/metrics", **extra)


def test_loopback_is_open_by_default():
    assert get().status_code == 200
    assert get(REMOTE_ADDR="::1").status_code == 200


def test_a_remote_client_gets_403_json_without_a_configured_token():
    response = get(**REMOTE)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_the_token_opens_it_from_anywhere_and_a_wrong_one_is_401(settings):
    settings.METRICS_TOKEN = "scrape-secret-123"
    assert get(**REMOTE, HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200
    wrong = get(**REMOTE, HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "authentication_failed"
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'
    missing = get(**REMOTE)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "not_authenticated"


def test_an_api_token_is_not_a_metrics_token(settings, user):
    from accounts.services import create_api_token

    settings.METRICS_TOKEN = "scrape-secret-123"
    _token, raw = create_api_token(user=user, name="not for metrics")
    assert get(**REMOTE, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_loopback_can_be_closed(settings):
    settings.METRICS_LOOPBACK_OPEN = False
    assert get().status_code == 403
    settings.METRICS_TOKEN = "scrape-secret-123"
    assert get().status_code == 401
    assert get(HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200


def test_a_forged_forwarded_for_does_not_make_a_client_local(settings):
    assert get(**REMOTE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403
    # Behind one trusted proxy on the same host, the address the proxy saw counts.
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["NUM_PROXIES"] = 1
    settings.REST_FRAMEWORK = rest
    assert get(HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403
    assert get(HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_errors_are_json_whatever_the_scraper_accepts():
    response = get(**REMOTE, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"


def test_metrics_are_not_throttled(settings):
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"ip": "2/min", "user": "2/min", "auth": "2/min"}
    settings.REST_FRAMEWORK = rest
    assert [get().status_code for _ in range(5)] == [200] * 5
