"""Plain SQL for the streaming hot path (starting and finishing a reply), portable across SQLite and PostgreSQL.

Every reply costs a start and a finish transaction. Through the ORM each statement cost about 0.3 ms of
Python (query building and compiling), which made the start alone ~2.7 ms of GIL time and capped how many
replies a worker could begin per second. These helpers build each statement once from the models' metadata
and prepare values with the fields' own `get_db_prep_save`, so types (UUIDs, JSON, datetimes, booleans) are
stored exactly as the ORM would store them.
"""

from __future__ import annotations

import uuid
from functools import cache

from django.db import connection
from django.db.models import Model


# Names are quoted once per process (a process talks to one database): quoting through Django's connection
# proxy on every statement was a visible share of a start.
@cache
def q(name: str) -> str:
    return connection.ops.quote_name(name)


@cache
def table(model: type[Model]) -> str:
    return q(model._meta.db_table)


@cache
def column(model: type[Model], field: str) -> str:
    return q(model._meta.get_field(field).column)


@cache
def _field(model: type[Model], name: str):
    return model._meta.get_field(name)


def prep(model: type[Model], field: str, value):
    """A value as the database stores it in `field` (e.g. a UUID as 32 hex digits on SQLite)."""
    return _field(model, field).get_db_prep_save(value, connection)


def as_uuid(value) -> uuid.UUID | None:
    """UUID columns read back as UUID objects (PostgreSQL) or hex strings (SQLite)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


@cache
def _insert_sql(model: type[Model], rows: int, vendor: str) -> tuple[str, tuple]:
    fields = tuple(model._meta.concrete_fields)
    columns = ", ".join(q(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"INSERT INTO {table(model)} ({columns}) VALUES " + ", ".join([one] * rows), fields


def new(model_class: type[Model], /, **values) -> Model:
    """An instance for a row about to be inserted with `insert`, marked as saved.

    Built positionally in field order (the path Django takes for rows it reads): keyword construction of a
    model instance was the largest single cost of a start once the SQL itself was cheap.
    """
    fields = model_class._meta.concrete_fields
    row = [values.pop(f.attname) if f.attname in values else f.get_default() for f in fields]
    if values:
        raise TypeError(f"{model_class.__name__} has no fields {sorted(values)}")
    return model_class.from_db(connection.alias, None, row)


def insert(model: type[Model], instances: list[Model]) -> None:
    """Insert instances (see `new`) in one statement, values prepared by their fields."""
    sql, fields = _insert_sql(model, len(instances), connection.vendor)
    params = [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in instances for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def execute(sql: str, params: list) -> int:
    """Run one statement; returns the affected row count."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetchone(sql: str, params: list):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetchall(sql: str, params: list) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def for_update() -> str:
    """Row locks where the database has them; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return " FOR UPDATE" if connection.features.has_select_for_update else ""
