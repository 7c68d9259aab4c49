"""The chat tables' indexes: every hot lookup has one, and no index duplicates another's leading column."""

import pytest
from django.db import connection

from chat.models import Message, Room, Stream


def _indexes(model) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: info["columns"] for name, info in constraints.items() if info["index"] and not info["primary_key"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "column", "composite"),
    [(Message, "room_id", "message_room_created"), (Room, "owner_id", "room_owner_activity"),
     (Stream, "user_id", "stream_user_running")],
)
def test_foreign_key_lookups_use_the_composite_index_only(model, column, composite):
    indexes = _indexes(model)
    assert indexes[composite][0] == column
    assert [name for name, columns in indexes.items() if columns == [column]] == []


@pytest.mark.django_db
def test_room_history_query_is_served_by_an_index():
    """Dropping the single-column index must not leave the branch and history reads scanning the table."""
    if connection.vendor != "sqlite":
        pytest.skip("the plan text is SQLite's")
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN SELECT id FROM {Message._meta.db_table} WHERE room_id = %s "
                       "ORDER BY created_at", ["x" * 32])
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "message_room_created" in plan and "SCAN" not in plan.replace("SCAN USING", "")
