"""Django's SQLite backend, with savepoints created and released on the driver directly.

`chat.broadcast.call_service` runs concurrent writes as one transaction with a savepoint per call, so a
reply's start and finish each create and release one. Through Django's cursor wrapper each of those four
statements cost a cursor, the wrapper layers and a regular expression over the SQL; on the driver they
cost the statement. `bench/db_bench.py`, in alternation (six pairs): 5–10% of a reply's database CPU.
Whenever Django records queries (DEBUG, tests capturing them) or has execute wrappers installed, its own
cursor is used, so nothing is hidden from them.
"""

from __future__ import annotations

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _run_on_driver(self, statement: str) -> None:
        if self.queries_logged or self.execute_wrappers:
            with self.cursor() as cursor:
                cursor.execute(statement)
            return
        if self.connection is None:  # savepoints come inside a transaction, so it is open already
            self.ensure_connection()
        with self.wrap_database_errors:
            self.connection.execute(statement)

    def _savepoint(self, sid: str) -> None:
        self._run_on_driver(self.ops.savepoint_create_sql(sid))

    def _savepoint_commit(self, sid: str) -> None:
        self._run_on_driver(self.ops.savepoint_commit_sql(sid))

    def _savepoint_rollback(self, sid: str) -> None:
        self._run_on_driver(self.ops.savepoint_rollback_sql(sid))
