"""Django's ASGI handler, without a reference cycle holding each finished request, on kept request threads."""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor, wait

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

_thread_role = threading.local()


def _mark_kept() -> None:
    _thread_role.kept = True


def runs_on_kept_request_thread() -> bool:
    """Whether this thread is one the worker keeps for requests (its database connections stay open)."""
    return getattr(_thread_role, "kept", False)


class RequestThreads:
    """Sync threads for requests, kept from one request to the next with their database connections.

    Django runs each ASGI request's sync code on a new thread, so on SQLite every API request opened (and
    closed) a database connection of its own: in a profile of `GET /auth/me` connecting was ~45% of the
    request. Up to `keep` threads are kept and lent to one request at a time (the most recently used first);
    a request that finds them all busy gets a thread of its own, as Django does, thrown away afterwards with
    its connections, so a slow view never holds up another. Only the event loop's thread calls lease and
    give_back, so no lock is needed.
    """

    every: weakref.WeakSet[RequestThreads] = weakref.WeakSet()

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []
        self.made = 0
        RequestThreads.every.add(self)

    def lease(self) -> tuple[ThreadPoolExecutor, bool]:
        if self.idle:
            return self.idle.pop(), True
        if self.made < self.keep:
            self.made += 1
            return ThreadPoolExecutor(1, thread_name_prefix="request-kept", initializer=_mark_kept), True
        return ThreadPoolExecutor(1, thread_name_prefix="request"), False

    def give_back(self, executor: ThreadPoolExecutor, kept: bool) -> None:
        if kept:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)  # its thread ends once any call still running returns

    @classmethod
    def close_all_connections(cls) -> None:
        """Close every idle kept thread's database connections (tests, before the test database is dropped)."""
        wait([executor.submit(connections.close_all) for threads in cls.every for executor in threads.idle],
             timeout=30)


class ReturningDisconnectHandler(ASGIHandler):
    """Django's handler whose disconnect listener returns when the client goes away, instead of raising.

    Daphne sends `http.disconnect` as soon as a response is complete, so Django's listener raised
    `RequestAborted` at the end of every request. Its traceback holds the handler's frame, which holds the
    task that holds the exception: a reference cycle that kept the whole request (request, response, session,
    DRF objects, about 250 objects a request) for the cyclic garbage collector, whose collections then took
    10-20 ms each, several a second under load. On Django 5.2 (pinned) the handler treats a listener that
    returned exactly like one that raised `RequestAborted`: a request still being processed is cancelled
    either way, which tests/test_handlers.py checks.
    """

    async def listen_for_disconnect(self, receive):
        message = await receive()
        if message["type"] != "http.disconnect":
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")


class ChatASGIHandler(ReturningDisconnectHandler):
    """The worker's handler for every HTTP request but the SSE start: on kept request threads."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads(keep=settings.REQUEST_THREADS)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor, kept = self.request_threads.lease()
        try:
            # As Django's own __call__, but the request's thread-sensitive sync code runs on the lent thread.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.request_threads.give_back(executor, kept)


class SharedThreadASGIHandler(ReturningDisconnectHandler):
    """Django without a sync thread of its own per request, for the SSE stream start only.

    Django gives every ASGI request a new thread for its sync work (ThreadSensitiveContext), created on first
    use. The SSE view already does its database work on the worker's shared database thread, so for it that
    thread only ran Django's request signals, at the cost of creating and starting a thread per reply (4% of
    the CPU of fifty concurrent SSE replies). Other views keep their own threads: a slow sync view must never
    hold up the shared one.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)
