"""The SQLite backend runs savepoints on the driver, yet they behave, and show in recorded queries, as Django's."""

from __future__ import annotations

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from chat.models import Room
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend only"),
]


def test_the_project_backend_is_in_use():
    assert type(connections["default"]).__module__ == "chatproject.sqlite_backend.base"


def test_a_savepoint_takes_no_django_cursor(monkeypatch):
    opened = []
    real_cursor = connection.cursor
    monkeypatch.setattr(connection, "cursor", lambda *a, **kw: opened.append(1) or real_cursor(*a, **kw))
    with transaction.atomic():  # BEGIN goes through a cursor, as Django does it
        opened.clear()
        with transaction.atomic():  # a savepoint, created and released
            pass
        assert opened == []


def test_an_inner_failure_rolls_back_to_its_savepoint_only():
    owner = UserFactory()
    with transaction.atomic():
        Room.objects.create(owner=owner, name="kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            Room.objects.create(owner=owner, name="rolled back")
            raise RuntimeError("inner")
        Room.objects.create(owner=owner, name="also kept")
    assert sorted(Room.objects.values_list("name", flat=True)) == ["also kept", "kept"]


def test_recorded_queries_still_show_the_savepoints():
    with CaptureQueriesContext(connection) as queries, transaction.atomic(), transaction.atomic():
        pass
    statements = [query["sql"] for query in queries.captured_queries]
    assert any(s.startswith("SAVEPOINT") for s in statements)
    assert any(s.startswith("RELEASE SAVEPOINT") for s in statements)
