"""Connections under ASGI: the handler keeps a few request threads with their connections from one request to
the next; a request's own (overflow) thread closes its connections when the request ends; the worker's shared
database thread keeps its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connection, connections
from django.db.backends.signals import connection_created

from accounts.services import create_api_token
from chatproject.handlers import ChatASGIHandler, RequestThreads
from tests.asgi_driver import asgi_request
from tests.factories import UserFactory
from tests.procs import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent


def _finish_a_request() -> None:
    connection.ensure_connection()
    request_finished.send(sender=None)  # as Django does once a response is closed, on the request's thread


@pytest.mark.django_db(transaction=True)
async def test_a_request_thread_closes_its_connections_and_the_shared_thread_keeps_its_own(monkeypatch):
    closed_on: list[int] = []
    monkeypatch.setattr(connections, "close_all", lambda: closed_on.append(threading.get_ident()))
    async with ThreadSensitiveContext():  # as Django's ASGI handler runs each request
        request_thread = await sync_to_async(threading.get_ident)()
        await sync_to_async(_finish_a_request)()
    assert closed_on == [request_thread]
    assert SyncToAsync.thread_sensitive_context.get(None) is None  # as consumers, jobs and SSE starts run
    await sync_to_async(_finish_a_request)()
    assert closed_on == [request_thread]  # the shared database thread keeps its persistent connection


class _RequestThreadLog:
    """Which thread each request started on, and how many database connections were opened meanwhile."""

    def __init__(self, hold_seconds: float = 0.0):
        self.threads: list[int] = []
        self.connections_opened = 0
        self.hold_seconds = hold_seconds

    def started(self, **kwargs) -> None:
        self.threads.append(threading.get_ident())
        time.sleep(self.hold_seconds)  # on the request's sync thread: keeps it busy, as a slow view would

    def opened(self, **kwargs) -> None:
        self.connections_opened += 1

    def __enter__(self):
        request_started.connect(self.started, dispatch_uid="request-thread-log")
        connection_created.connect(self.opened, dispatch_uid="request-thread-log")
        return self

    def __exit__(self, *exc) -> None:
        request_started.disconnect(dispatch_uid="request-thread-log")
        connection_created.disconnect(dispatch_uid="request-thread-log")


async def _me(handler, raw_token: str) -> int | None:
    response = await asgi_request(handler, "GET", "/api/v1/auth/me", headers={"authorization": f"Bearer {raw_token}"})
    return response.status


@pytest.mark.django_db(transaction=True)
async def test_sequential_requests_reuse_one_kept_thread_and_its_connection(settings):
    settings.REQUEST_THREADS = 4
    handler = ChatASGIHandler()
    _t, raw = await sync_to_async(create_api_token)(user=await sync_to_async(UserFactory)(), name="kept")
    try:
        assert await _me(handler, raw) == 200  # the kept thread opens its connection once
        with _RequestThreadLog() as log:
            assert [await _me(handler, raw) for _ in range(5)] == [200] * 5
        # Before: a new thread per request, and on it a new database connection, every time.
        assert len(set(log.threads)) == 1, log.threads
        if settings.DATABASES["default"]["CONN_MAX_AGE"]:  # persistent connections (with a pool, the pool reuses)
            assert log.connections_opened == 0
        assert handler.request_threads.made == 1
    finally:
        RequestThreads.close_all_connections()


@pytest.mark.django_db(transaction=True)
async def test_requests_beyond_the_kept_threads_get_their_own_and_close_their_connections(settings, monkeypatch):
    settings.REQUEST_THREADS = 2
    handler = ChatASGIHandler()
    _t, raw = await sync_to_async(create_api_token)(user=await sync_to_async(UserFactory)(), name="kept")
    closed_on: list[int] = []
    real_close_all = connections.close_all
    monkeypatch.setattr(connections, "close_all", lambda: (closed_on.append(threading.get_ident()), real_close_all()))
    kept_each_burst = []
    try:
        # One request first: it records the token's use, so the bursts only read (the in-memory test database
        # answers concurrent writers "table is locked" where a file with WAL waits).
        assert await _me(handler, raw) == 200
        for _ in range(2):  # the second burst finds the two kept threads idle again
            with _RequestThreadLog(hold_seconds=0.1) as log:
                assert await asyncio.gather(*(_me(handler, raw) for _ in range(5))) == [200] * 5
            assert len(set(log.threads)) == 5  # five at once: none waited for another's thread
            kept_each_burst.append(set(log.threads) - set(closed_on))  # the other three closed their connections
            closed_on.clear()
        assert len(kept_each_burst[0]) == 2 and kept_each_burst[1] == kept_each_burst[0]
        assert handler.request_threads.made == 2 and len(handler.request_threads.idle) == 2
    finally:
        monkeypatch.undo()
        RequestThreads.close_all_connections()


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def _run_bursts(token: str, env_overrides: dict[str, str]) -> tuple[int, list[int]]:
    """A Daphne worker on the test database, three bursts of 30 concurrent API requests: connections before
    the bursts and after each."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "chatproject.settings",
           "LOCAL_MODELS_ENABLED": "false", "THROTTLE_USER_RATE": "100000/min", **env_overrides}
    env.pop("REDIS_URL", None)
    worker = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "chatproject.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)

    async def burst(n: int) -> list[int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     limits=httpx.Limits(max_connections=n)) as client:
            answers = await asyncio.gather(*(client.get("/api/v1/auth/me",
                                                        headers={"Authorization": f"Bearer {token}"})
                                             for _ in range(n)))
        return [answer.status_code for answer in answers]

    try:
        wait_for_http(f"http://127.0.0.1:{port}/", worker)
        before, after = _other_connections(), []
        for _ in range(3):
            assert set(asyncio.run(burst(30))) == {200}
            time.sleep(0.3)  # a request's thread closes its connection just after its response went out
            after.append(_other_connections())
    finally:
        worker.terminate()
        worker.wait(10)
    return before, after


@pytest.mark.slow
@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"],
                    reason="needs PostgreSQL (the second pass of .ci/run)")
def test_bursts_of_api_requests_do_not_pile_up_database_connections(transactional_db):
    """Each burst of concurrent requests used to leave one PostgreSQL connection per request open, until
    max_connections ran out and requests failed with 500."""
    _t, token = create_api_token(user=UserFactory(), name="bursts")
    # No pool: the four kept request threads keep a connection each, the others close theirs.
    before, after = _run_bursts(token, {"DB_POOL": "false", "REQUEST_THREADS": "4"})
    assert max(after) - before <= 4 + 2 and after[-1] == after[0], (before, after)  # was one more per request
    before, after = _run_bursts(token, {"DB_POOL": "true", "DB_POOL_MAX_SIZE": "8"})  # the pool bounds them
    assert max(after) - before <= 8 and after[-1] == after[0], (before, after)
