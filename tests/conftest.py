"""Shared fixtures: API clients, users in teams with every role, generous rate limits."""

from __future__ import annotations

import copy

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import create_api_token
from tests.factories import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a file in WAL mode, as the app does: the in-memory shared cache answers concurrent
    writers from live-server threads with an immediate "table is locked" instead of waiting its turn."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    """High rate limits and an empty cache so tests never throttle each other by accident."""
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"ip": "100000/min", "user": "100000/min", "auth": "100000/min"}
    settings.REST_FRAMEWORK = rest
    settings.SIGNUP_MODE = "open"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    settings.SYSTEM_SAMPLE_SECONDS = 0  # no background sampler writing into other tests' databases
    settings.HOT_SLOT_CHECK_SECONDS = 0  # no hot-slot keeper reading other tests' databases
    settings.SEARCH_INDEXING = False  # no indexing thread either; the search tests turn it on
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_kept_sync_thread_connections(django_db_setup):
    """Close the database connections of the sync threads kept between calls before the test database goes.

    Outside a request's thread (Django's ASGI handler lends each request one, the test clients do not),
    sync code called from async tests, `database_sync_to_async` included, runs on that one shared thread,
    which keeps its connection open as a worker's does. On PostgreSQL that connection is checked out of the
    pool, so dropping the test database at the end failed ("being accessed by other users").
    """
    from asgiref.sync import async_to_sync, sync_to_async
    from django.db import connections

    yield
    async_to_sync(sync_to_async(connections.close_all))()  # runs on that shared thread


@pytest.fixture(autouse=True)
def _fresh_channel_layer(settings):
    """A new channel layer per test. Each async test runs on its own event loop, and channels-redis keeps
    asyncio locks that bind to the first loop that waits on them. Changing the setting is what makes
    Channels drop its layers (it listens to Django's setting_changed), here and again when it is restored."""
    settings.CHANNEL_LAYERS = copy.deepcopy(settings.CHANNEL_LAYERS)
    yield


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    """An API client authenticated with a real Bearer token."""
    _token, raw = create_api_token(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def team(db):
    return TeamFactory(name="Acme")


@pytest.fixture
def user(db, team):
    member = UserFactory(username="owner")
    MembershipFactory(team=team, user=member, role=Role.MEMBER)
    return member


@pytest.fixture
def api(user) -> APIClient:
    """The owner's authenticated client."""
    return client_for(user)


@pytest.fixture
def roles(db, team, user):
    """The isolation cast: owner, another member, a team admin, a founder, and someone from another team."""
    other = UserFactory(username="other")
    MembershipFactory(team=team, user=other, role=Role.MEMBER)
    admin = UserFactory(username="teamadmin")
    MembershipFactory(team=team, user=admin, role=Role.ADMIN)
    founder = UserFactory(username="founder")
    MembershipFactory(team=team, user=founder, role=Role.FOUNDER)
    outsider = UserFactory(username="outsider")
    MembershipFactory(team=TeamFactory(name="Other"), user=outsider, role=Role.FOUNDER)
    return {"owner": user, "other_user": other, "team_admin": admin, "founder": founder, "other_team": outsider}


@pytest.fixture(scope="session")
def fake_ollama_server():
    from tests.fakes.ollama import FakeOllama

    server = FakeOllama().start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def fake_ollama(fake_ollama_server, settings):
    """The fake as the only backend, with default behaviour and zeroed counters for each test."""
    from tests.fakes.ollama import Behaviour

    fake_ollama_server.behaviour = Behaviour()
    fake_ollama_server.reset_stats()
    settings.OLLAMA_URLS = [fake_ollama_server.url]
    settings.LOCAL_MODELS_ENABLED = False
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    return fake_ollama_server
