"""A body over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 in the error envelope, from DRF and plain Django views."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings

from chat.models import Room

pytestmark = pytest.mark.django_db

LIMIT = 1000


def assert_413(response):
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than the {LIMIT}-byte limit.",
            "details": {"limit_bytes": LIMIT},
        }
    }


def json_body(size: int) -> str:
    """A JSON object of exactly `size` bytes."""
    base = json.dumps({"name": "x", "system_prompt": ""})
    body = json.dumps({"name": "x", "system_prompt": "p" * (size - len(base))})
    assert len(body.encode()) == size
    return body


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_drf_view_json_body_just_over_the_limit(api):
    before = Room.objects.count()
    assert_413(api.generic("POST", "/api/v1/rooms/", json_body(LIMIT + 1), content_type="application/json"))
    assert Room.objects.count() == before
    at_limit = api.generic("POST", "/api/v1/rooms/", json_body(LIMIT), content_type="application/json")
    assert at_limit.status_code == 201, at_limit.content


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_drf_view_form_body_over_the_limit(api):
    body = urlencode({"name": "x" * LIMIT})
    assert_413(api.generic("POST", "/api/v1/rooms/", body, content_type="application/x-www-form-urlencoded"))


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_public_drf_view_over_the_limit(anon_client):
    body = json.dumps({"username": "u" * LIMIT, "password": "p"})
    assert_413(anon_client.generic("POST", "/api/v1/auth/login", body, content_type="application/json"))


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_plain_django_view_over_the_limit():
    body = urlencode({"username": "u", "password": "p" * LIMIT})
    response = Client().generic("POST", "/signin/", body, content_type="application/x-www-form-urlencoded")
    assert_413(response)


def test_other_suspicious_requests_are_json_400():
    response = Client().get("/signin/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "bad_request", "message": "Bad request.", "details": {}}}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_a_parse_error_caused_by_the_limit_is_413():
    """A parser that wraps Django's RequestDataTooBig into DRF's ParseError still answers 413."""
    from django.core.exceptions import RequestDataTooBig
    from rest_framework.exceptions import ParseError

    from chatproject.errors import api_exception_handler

    try:
        try:
            raise RequestDataTooBig("too big")
        except RequestDataTooBig as exc:
            raise ParseError("Multipart form parse error") from exc
    except ParseError as exc:
        response = api_exception_handler(exc, {})
    assert response.status_code == 413
    assert response.data["error"]["code"] == "payload_too_large"
    plain = api_exception_handler(ParseError("JSON parse error"), {})
    assert plain.status_code == 400 and plain.data["error"]["code"] == "parse_error"
