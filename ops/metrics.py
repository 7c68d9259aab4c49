"""Prometheus metrics: what every worker records, and the exposition `/metrics` serves.

With `PROMETHEUS_MULTIPROC_DIR` set (before the process starts), prometheus-client keeps each worker's values
in files there and a scrape adds up every worker's files; otherwise the process's default registry is served.
Model and provider names come from the configured backends and HTTP routes from the URL map, so no label
grows with users, rooms or request paths. Names follow the OpenTelemetry GenAI and HTTP conventions where
they have one (dots become underscores).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from django.db import DatabaseError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# OpenTelemetry's advised bucket boundaries for each instrument.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
REPLY_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
# Methods outside this set are counted as `_OTHER` (OpenTelemetry's rule), so made-up methods add no series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

HTTP_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time until the response starts (an SSE reply: its headers), by route pattern; _count counts requests.",
    ["http_route", "http_request_method", "http_response_status_code"],
    buckets=HTTP_BUCKETS,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "chat_websocket_connections_open", "Chat WebSockets open now.", multiprocess_mode="livesum"
)
WEBSOCKET_CONNECTIONS_TOTAL = Counter("chat_websocket_connections", "Chat WebSocket connections opened.")
ACTIVE_STREAMS = Gauge("chat_active_streams", "Replies generating now.", multiprocess_mode="livesum")
REPLIES = Counter(
    "chat_replies", "Finished replies by final status (complete, cancelled, error, interrupted).", [*GENAI, "status"]
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds", "Time from the reply's start to its first token.", GENAI,
    buckets=TTFT_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds", "Time per output token after the first, per reply.", GENAI,
    buckets=TPOT_BUCKETS,
)
REQUEST_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds", "Time from the reply's start to its end.", [*GENAI, "status"],
    buckets=REPLY_BUCKETS,
)
TOKEN_USAGE = Counter(
    "gen_ai_server_token_usage", "Tokens read (input: the prompt) and generated (output) by finished replies.",
    [*GENAI, "gen_ai_token_type"],
)
QUEUE_WAIT = Histogram(
    "chat_queue_wait_seconds",
    "Local models: the wait for the model's thread; other backends: the time before the request goes out.",
    ["gen_ai_provider_name"], buckets=WAIT_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "chat_backend_errors", "Replies that ended in a backend error, by its code.",
    ["gen_ai_provider_name", "error_type"],
)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


# --- recording ------------------------------------------------------------------------------------------


def observe_http(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "_OTHER"
    HTTP_DURATION.labels(route, method, str(status)).observe(seconds)


def websocket_opened() -> None:
    WEBSOCKET_CONNECTIONS.inc()
    WEBSOCKET_CONNECTIONS_TOTAL.inc()


def websocket_closed() -> None:
    WEBSOCKET_CONNECTIONS.dec()


def reply_started() -> None:
    ACTIVE_STREAMS.inc()


def observe_queue_wait(*, provider: str, seconds: float) -> None:
    QUEUE_WAIT.labels(provider).observe(max(0.0, seconds))


def reply_finished(
    *, model: str, provider: str, status: str, duration_s: float, ttft_s: float | None,
    time_per_output_token_s: float | None, prompt_tokens: int | None, completion_tokens: int | None,
    error_code: str = "",
) -> None:
    """Everything a finished reply adds, in one place, so every reply path counts the same way."""
    ACTIVE_STREAMS.dec()
    genai = ("chat", provider, model)
    REPLIES.labels(*genai, status).inc()
    REQUEST_DURATION.labels(*genai, status).observe(duration_s)
    if ttft_s is not None:
        TIME_TO_FIRST_TOKEN.labels(*genai).observe(ttft_s)
    if time_per_output_token_s is not None:
        TIME_PER_OUTPUT_TOKEN.labels(*genai).observe(time_per_output_token_s)
    if prompt_tokens:
        TOKEN_USAGE.labels(*genai, "input").inc(prompt_tokens)
    if completion_tokens:
        TOKEN_USAGE.labels(*genai, "output").inc(completion_tokens)
    if error_code:
        BACKEND_ERRORS.labels(provider, error_code).inc()


# --- exposition -----------------------------------------------------------------------------------------


PANIC_METRIC = "chat_panic_active"
PANIC_HELP = "1 while the panic switch refuses chat work, else 0."


class StateCollector(Collector):
    """Values read from shared state at scrape time (the database-backed panic switch), not kept per process."""

    def describe(self) -> Iterator[Metric]:
        """The names only: registering must not read the database (apps may still be loading)."""
        yield GaugeMetricFamily(PANIC_METRIC, PANIC_HELP)

    def collect(self) -> Iterator[Metric]:
        # Imported at scrape time: providers import this module, and ops.panic needs the app registry ready.
        from ops.panic import is_panicking

        try:
            active = is_panicking()
        except DatabaseError:
            logger.warning("/metrics: the panic switch could not be read", exc_info=True)
            return  # a scrape still answers while the database is down; the gauge is missing from it
        panic = GaugeMetricFamily(PANIC_METRIC, PANIC_HELP)
        panic.add_metric([], 1.0 if active else 0.0)
        yield panic


STATE_COLLECTOR = StateCollector()
if not multiprocess_dir():
    REGISTRY.register(STATE_COLLECTOR)


def exposition() -> tuple[bytes, str]:
    """The text format: every worker's files added up in multiprocess mode, else this process's registry."""
    if multiprocess_dir():
        drop_dead_processes()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(STATE_COLLECTOR)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def drop_dead_processes() -> list[int]:
    """Take the live gauges (open sockets, running replies) of workers that are gone out of the sums.

    prometheus-client names a live gauge's file after its process (`gauge_livesum_<pid>.db`, the name its
    `mark_process_dead` removes). Checked at each scrape because Uvicorn ends a worker by re-raising SIGTERM,
    which skips atexit, and a killed worker runs nothing at all.
    """
    dead = set()
    for path in Path(multiprocess_dir()).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not is_running(int(pid)):
            dead.add(int(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid)
    return sorted(dead)
