"""Plain SQL for the streaming hot path (starting and finishing a reply), portable across SQLite and PostgreSQL.

Every reply costs a start and a finish transaction. Through the ORM each statement cost about 0.3 ms of
Python (query building and compiling), which made the start alone ~2.7 ms of GIL time and capped how many
replies a worker could begin per second. These helpers build each statement once from the models' metadata
and prepare values with the fields' own `get_db_prep_save`, so types (UUIDs, JSON, datetimes, booleans) are
stored exactly as the ORM would store them.

The default connection is looked up once per helper call (each `connection.x` through Django's proxy is a
thread-local lookup), plain values of plain fields (text, numbers, UUIDs) skip the fields' preparation
chain, and on SQLite statements go straight to the driver with their `%s` placeholders converted once:
Django's cursor wrapper re-ran a regular expression and five wrapper layers per statement. Whenever Django
is recording queries (DEBUG, tests capturing them) or has execute wrappers installed, its own cursor is used.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import Model

_thread = threading.local()


def _conn():
    """The default connection of this thread, remembered per thread.

    `connections[alias]` goes through asgiref's Local, which asks for a running event loop (an exception
    raised and caught) on every lookup, and a start and a finish made about thirty. Services run in sync
    threads, where that Local is a plain thread-local whose wrapper stays the thread's for good (Django only
    sets another in its live-server threads, as they start, before any query).
    """
    conn = getattr(_thread, "conn", None)
    if conn is None:
        conn = _thread.conn = connections[DEFAULT_DB_ALIAS]
    return conn


# Names are quoted once per process (a process talks to one database): quoting through Django's connection
# proxy on every statement was a visible share of a start.
@cache
def q(name: str) -> str:
    return _conn().ops.quote_name(name)


@cache
def table(model: type[Model]) -> str:
    return q(model._meta.db_table)


@cache
def column(model: type[Model], field: str) -> str:
    return q(model._meta.get_field(field).column)


# Fields whose database value is the Python value itself when it already has the right type.
_PLAIN_TYPES = {
    "CharField": str, "TextField": str, "SlugField": str, "EmailField": str, "BooleanField": bool,
    "IntegerField": int, "SmallIntegerField": int, "BigIntegerField": int, "PositiveIntegerField": int,
    "PositiveSmallIntegerField": int, "PositiveBigIntegerField": int, "FloatField": float,
    "AutoField": int, "BigAutoField": int, "SmallAutoField": int,  # e.g. a foreign key to a user
}


@cache
def _preparer(model: type[Model], name: str, vendor: str) -> Callable[[Any, Any], Any]:
    """`get_db_prep_save` of one field, short-cut for the plain values it would pass through unchanged."""
    field = model._meta.get_field(name)
    slow = field.get_db_prep_save
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    plain = _PLAIN_TYPES.get(kind)
    if plain is str:  # choices (a TextChoices member is a str) are stored as they are, as the field does
        return lambda value, conn: value if value is None or isinstance(value, str) else slow(value, conn)
    if plain is not None:
        return lambda value, conn: value if value is None or type(value) is plain else slow(value, conn)
    if kind == "DateTimeField" and vendor == "sqlite" and _conn().timezone is dt.UTC:
        # What Django's SQLite adapter makes of an aware UTC datetime (make it naive in UTC, then str()).
        return lambda value, conn: (value if value is None
                                    else str(value.replace(tzinfo=None))
                                    if type(value) is dt.datetime and value.tzinfo is dt.UTC
                                    else slow(value, conn))
    if kind == "UUIDField":
        if _conn().features.has_native_uuid_field:
            return lambda value, conn: value if value is None or type(value) is uuid.UUID else slow(value, conn)
        return lambda value, conn: value.hex if type(value) is uuid.UUID else slow(value, conn)
    return slow


def prep(model: type[Model], field: str, value):
    """A value as the database stores it in `field` (e.g. a UUID as 32 hex digits on SQLite)."""
    conn = _conn()
    return _preparer(model, field, conn.vendor)(value, conn)


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
    preparers = tuple((f.attname, _preparer(model, f.name, vendor)) for f in fields)
    return f"INSERT INTO {table(model)} ({columns}) VALUES " + ", ".join([one] * rows), preparers


def new(model_class: type[Model], /, **values) -> Model:
    """An instance for a row about to be inserted with `insert`, marked as saved.

    Built positionally in field order (the path Django takes for rows it reads): keyword construction of a
    model instance was the largest single cost of a start once the SQL itself was cheap.
    """
    fields = model_class._meta.concrete_fields
    row = [values.pop(f.attname) if f.attname in values else f.get_default() for f in fields]
    if values:
        raise TypeError(f"{model_class.__name__} has no fields {sorted(values)}")
    return model_class.from_db(DEFAULT_DB_ALIAS, None, row)


@cache
def _qmark(sql: str) -> str:
    """SQLite's placeholders, as Django's SQLite cursor converts them on every execute."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def _run(sql: str, params: list, result: str):
    conn = _conn()
    if conn.vendor == "sqlite" and not conn.queries_logged and not conn.execute_wrappers:
        raw = conn.connection
        if raw is None:
            conn.ensure_connection()
            raw = conn.connection
        with conn.wrap_database_errors:
            cursor = raw.execute(_qmark(sql), params)
            try:
                return cursor.rowcount if result == "rowcount" else getattr(cursor, result)()
            finally:
                cursor.close()
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount if result == "rowcount" else getattr(cursor, result)()


def insert(model: type[Model], instances: list[Model]) -> None:
    """Insert instances (see `new`) in one statement, values prepared by their fields."""
    conn = _conn()
    sql, preparers = _insert_sql(model, len(instances), conn.vendor)
    params = [prepare(getattr(obj, attname), conn) for obj in instances for attname, prepare in preparers]
    _run(sql, params, "rowcount")


def execute(sql: str, params: list) -> int:
    """Run one statement; returns the affected row count."""
    return _run(sql, params, "rowcount")


def fetchone(sql: str, params: list):
    return _run(sql, params, "fetchone")


def fetchall(sql: str, params: list) -> list:
    return _run(sql, params, "fetchall")


def for_update() -> str:
    """Row locks where the database has them; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return " FOR UPDATE" if _conn().features.has_select_for_update else ""
