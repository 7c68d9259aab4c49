"""Database connections under ASGI: what a request's own sync thread opens, it closes."""

from __future__ import annotations

from asgiref.sync import SyncToAsync
from django.db import connections

from chatproject.handlers import runs_on_kept_request_thread


def close_request_thread_connections(**kwargs) -> None:
    """Close this thread's connections when it is a request's own thread (request_finished runs there).

    Under ASGI Django runs each request's sync code on a thread of its own (asgiref's ThreadSensitiveContext),
    thrown away after the request: a connection opened there can never be reused, yet with CONN_MAX_AGE it
    stayed open until the garbage collector found it. On PostgreSQL, bursts of 40 concurrent API requests
    left 41, then 81 connections open, and the next burst failed with "too many clients". With the pool
    (DB_POOL) closing hands the connection back, which request threads otherwise did only when collected.
    The worker's shared database thread (WebSocket consumers, generation jobs, SSE starts) runs outside any
    such context and keeps its connection, as do the threads the handler keeps for requests
    (chatproject/handlers.py), whose connections Django's own close_old_connections ages out.
    """
    if SyncToAsync.thread_sensitive_context.get(None) is not None and not runs_on_kept_request_thread():
        connections.close_all()
