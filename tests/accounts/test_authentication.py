"""Bearer tokens resolve to the same user and token the ORM would load, and only while valid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.authentication import user_for_raw_token
from accounts.models import ApiToken, User
from accounts.services import create_api_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_a_token_loads_the_same_user_and_token_as_the_orm():
    user = UserFactory(first_name="Ada", is_staff=True, email_verified=True)
    user.last_login = timezone.now() - timedelta(days=2)
    user.save()
    token, raw = create_api_token(user=user, name="cli")
    token.expires_at = timezone.now() + timedelta(days=1)
    token.last_used_at = timezone.now()  # recent: the lookup writes nothing
    token.save()

    loaded_user, loaded_token = user_for_raw_token(raw)

    assert _fields(loaded_user) == _fields(User.objects.get(pk=user.pk))
    assert _fields(loaded_token) == _fields(ApiToken.objects.get(pk=token.pk))
    assert loaded_token.user is loaded_user and loaded_user.is_authenticated
    assert loaded_token.expires_at.tzinfo is not None and loaded_user.email_verified is True
    assert not loaded_user._state.adding and loaded_user._state.db == "default"


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
