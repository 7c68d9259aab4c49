"""chat.sql prepares values exactly as the fields themselves would, and runs statements in the transaction."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, connections, transaction

from chat import sql
from chat.models import Message, MessageStatus, Room, Stream
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db

SAMPLES = [None, "", "text", "ünïcode ✓", 0, 7, -1, 3.5, True, False, uuid.uuid4(), MessageStatus.STREAMING,
           datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC), datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
           datetime(2026, 11, 23, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))), {"k": [1, 2]}]


@pytest.mark.parametrize("model", [Message, Stream, Room])
def test_every_field_prepares_every_fitting_value_as_the_field_does(model):
    for field in model._meta.concrete_fields:
        for value in SAMPLES:
            try:
                expected = field.get_db_prep_save(value, connection)
            except (TypeError, ValueError, AttributeError, Exception):  # noqa: BLE001 - not a value for this field
                continue
            assert _plain(sql.prep(model, field.name, value)) == _plain(expected), (field.name, value)


def _plain(value):
    """psycopg's Jsonb wrappers do not compare equal; what they wrap does."""
    return ("jsonb", value.obj) if type(value).__name__ == "Jsonb" else value


def test_insert_and_fetch_round_trip_through_the_orm():
    room = RoomFactory()
    message = sql.new(Message, id=uuid.uuid4(), room_id=room.pk, role="user", content="it's 100% «quoted»",
                      status=MessageStatus.COMPLETE, created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    with transaction.atomic():
        sql.insert(Message, [message])
        changed = sql.execute(
            f"UPDATE {sql.table(Message)} SET {sql.column(Message, 'content')} = %s "
            f"WHERE {sql.column(Message, 'id')} = %s",
            ["50% off", sql.prep(Message, "id", message.pk)],
        )
    assert changed == 1
    stored = Message.objects.get(pk=message.pk)
    assert stored.content == "50% off" and stored.room_id == room.pk and stored.metadata == {}
    assert stored.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = sql.fetchone(f"SELECT {sql.column(Message, 'role')} FROM {sql.table(Message)} WHERE "
                       f"{sql.column(Message, 'id')} = %s", [sql.prep(Message, "id", message.pk)])
    assert row == ("user",)


def test_a_failed_statement_raises_djangos_database_error_and_rolls_back():
    from django.db import DatabaseError

    room = RoomFactory()
    with pytest.raises(DatabaseError), transaction.atomic():
        sql.execute(f"UPDATE {sql.table(Room)} SET {sql.column(Room, 'name')} = %s WHERE {sql.column(Room, 'id')} = %s",
                    ["renamed", sql.prep(Room, "id", room.pk)])
        sql.execute("UPDATE no_such_table SET x = 1", [])
    room.refresh_from_db()
    assert room.name != "renamed"


def test_each_thread_remembers_its_own_connection():
    assert sql._conn() is sql._conn() is connections["default"]
    seen = {}

    def other_thread():
        seen["sql"], seen["django"] = sql._conn(), connections["default"]
        connections["default"].close()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert seen["sql"] is seen["django"] and seen["sql"] is not connections["default"]
