"""Bearer tokens resolve to their user and token, and only while valid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.authentication import user_for_raw_token
from accounts.models import ApiToken
from accounts.services import create_api_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_token_resolves_to_its_user_and_itself():
    user = UserFactory(first_name="Ada")
    token, raw = create_api_token(user=user, name="cli")
    loaded_user, loaded_token = user_for_raw_token(raw)
    assert (loaded_user.pk, loaded_token.pk, loaded_user.first_name) == (user.pk, token.pk, "Ada")
    assert loaded_user.is_authenticated


def test_unknown_expired_and_inactive_resolve_to_nothing():
    user = UserFactory()
    token, raw = create_api_token(user=user, name="cli")
    assert user_for_raw_token("") is None
    assert user_for_raw_token(raw + "x") is None
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert user_for_raw_token(raw) is None
    token.expires_at = None
    token.save()
    user.is_active = False
    user.save()
    assert user_for_raw_token(raw) is None


def test_use_is_recorded_at_most_once_a_minute():
    token, raw = create_api_token(user=UserFactory(), name="cli")
    assert token.last_used_at is None
    user_for_raw_token(raw)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    user_for_raw_token(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
