"""Per-account failed-login limit: it holds whatever address the attempts come from, on the API and the page."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600


def api_login(identifier: str, password: str, address: str):
    client = APIClient(REMOTE_ADDR=address)
    return client.post("/api/v1/auth/login", {"username": identifier, "password": password}, format="json")


def test_limit_holds_across_addresses_and_blocks_even_the_right_password():
    alice = UserFactory(username="alice")
    statuses = [api_login("alice", "wrong", f"10.0.0.{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    blocked = api_login("alice", PASSWORD, "10.0.9.9")
    assert blocked.status_code == 429
    assert 590 <= int(blocked["Retry-After"]) <= 600
    error = blocked.json()["error"]
    assert error["code"] == "too_many_login_failures" and error["details"]["retry_after"] == int(blocked["Retry-After"])
    # The email address is the same account.
    assert api_login(alice.email.upper(), PASSWORD, "10.0.9.10").status_code == 429
    # Other accounts are untouched.
    UserFactory(username="bob")
    assert api_login("bob", PASSWORD, "10.0.0.1").status_code == 200


def test_unknown_names_are_limited_like_known_ones():
    assert [api_login("ghost", "x", f"10.0.1.{i}").status_code for i in range(4)] == [401, 401, 401, 429]


def test_success_resets_the_count():
    UserFactory(username="carol")
    for _ in range(2):
        assert api_login("carol", "wrong", "10.0.0.1").status_code == 401
    assert api_login("carol", PASSWORD, "10.0.0.2").status_code == 200
    for _ in range(2):
        assert api_login("carol", "wrong", "10.0.0.3").status_code == 401
    assert api_login("carol", PASSWORD, "10.0.0.4").status_code == 200


def test_the_window_ends(monkeypatch):
    UserFactory(username="dave")
    for i in range(3):
        api_login("dave", "wrong", f"10.0.2.{i}")
    assert api_login("dave", PASSWORD, "10.0.2.9").status_code == 429
    later = time.time() + 601
    monkeypatch.setattr(time, "time", lambda: later)
    assert api_login("dave", PASSWORD, "10.0.2.9").status_code == 200


def test_zero_disables_the_limit(settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 0
    UserFactory(username="erin")
    assert all(api_login("erin", "wrong", "10.0.3.1").status_code == 401 for _ in range(5))
    assert api_login("erin", PASSWORD, "10.0.3.1").status_code == 200


def test_sign_in_page_shares_the_limit():
    UserFactory(username="frank")
    for i in range(2):
        page = Client(REMOTE_ADDR=f"10.0.4.{i}").post("/signin/", {"username": "frank", "password": "wrong"})
        assert page.status_code == 400
    assert api_login("frank", "wrong", "10.0.4.7").status_code == 401  # the API counts toward the same limit
    page = Client(REMOTE_ADDR="10.0.4.8").post("/signin/", {"username": "frank", "password": PASSWORD})
    assert page.status_code == 429
    assert int(page["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in page.content
    assert "_auth_user_id" not in page.wsgi_request.session
