"""Writes for performance: a sample per finished reply, periodic system samples, pruning and reset.

System samples: every worker process runs one small asyncio task (started by its first async request) that
wakes every SYSTEM_SAMPLE_SECONDS and writes a sample only when it takes the shared cache's lock for the
interval and the newest stored sample is older than the interval, so several workers write one sample
between them rather than one each.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.utils import timezone

from chat.broadcast import call_service
from ops import metrics, system
from ops.models import PerformanceSample, SystemSample

logger = logging.getLogger(__name__)

SAMPLE_LOCK_KEY = "ops:system-sample"
# A due check fires a little before the full interval so two workers' clocks never skip a whole period.
DUE_FRACTION = 0.9
SAMPLERS: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


@dataclass(frozen=True)
class ReplyOutcome:
    """How one reply went, as the job measured it (seconds on the monotonic clock)."""

    model: str
    provider: str
    server: str
    status: str
    duration_s: float
    ttft_s: float | None
    tokens_per_second: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error_code: str = ""

    @property
    def time_per_output_token_s(self) -> float | None:
        """The decode phase only (OpenTelemetry's definition): the time after the first token per later token."""
        if self.ttft_s is None or not self.completion_tokens or self.completion_tokens < 2:
            return None
        return max(0.0, self.duration_s - self.ttft_s) / (self.completion_tokens - 1)


def observe_reply(outcome: ReplyOutcome) -> None:
    """Count the reply in the metrics; a metrics failure must never break a reply."""
    try:
        metrics.reply_finished(
            model=outcome.model, provider=outcome.provider, status=outcome.status, duration_s=outcome.duration_s,
            ttft_s=outcome.ttft_s, time_per_output_token_s=outcome.time_per_output_token_s,
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            error_code=outcome.error_code,
        )
    except Exception:  # noqa: BLE001
        logger.exception("could not count a reply in the metrics")


@transaction.atomic
def record_performance_sample(*, outcome: ReplyOutcome) -> PerformanceSample:
    return PerformanceSample.objects.create(
        model=outcome.model[:200],
        provider=outcome.provider[:32],
        server=outcome.server[:200],
        status=outcome.status,
        time_to_first_token_ms=outcome.ttft_s * 1000 if outcome.ttft_s is not None else None,
        tokens_per_second=outcome.tokens_per_second,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        duration_ms=outcome.duration_s * 1000,
    )


def store_reply_sample(*, outcome: ReplyOutcome) -> None:
    """Store the reply's sample inside the caller's transaction; a failure is logged and rolled back alone,
    never raised into the reply's own writes."""
    try:
        with transaction.atomic():
            record_performance_sample(outcome=outcome)
    except DatabaseError:
        logger.exception("could not store a performance sample")


@transaction.atomic
def record_system_sample(*, reading: system.SystemReading) -> SystemSample:
    return SystemSample.objects.create(
        cpu_percent=reading.cpu_percent,
        memory_percent=reading.memory_percent,
        memory_used_bytes=reading.memory_used_bytes,
        load_1m=reading.load_1m,
        max_temperature_c=reading.max_temperature_c,
    )


def take_system_sample_if_due() -> SystemSample | None:
    """Write a system sample unless another worker wrote one within the interval; prune while at it."""
    interval = settings.SYSTEM_SAMPLE_SECONDS
    if interval <= 0 or not cache.add(SAMPLE_LOCK_KEY, True, interval * DUE_FRACTION):
        return None
    newest = SystemSample.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    if newest is not None and timezone.now() - newest < timedelta(seconds=interval * DUE_FRACTION):
        return None
    sample = record_system_sample(reading=system.read_system())
    prune_samples()
    return sample


def recent_system_sample() -> SystemSample | system.SystemReading:
    """The newest sample if it is from the last two intervals, else a new reading (stored when one is due)."""
    interval = settings.SYSTEM_SAMPLE_SECONDS
    if interval <= 0:
        return system.read_system()
    recent = SystemSample.objects.filter(created_at__gte=timezone.now() - timedelta(seconds=2 * interval))
    sample = recent.order_by("-created_at").first() or take_system_sample_if_due()
    return sample if sample is not None else system.read_system()


@transaction.atomic
def prune_samples(*, days: int | None = None) -> dict[str, int]:
    """Delete performance and system samples older than `days` (PERFORMANCE_RETENTION_DAYS; 0 keeps all)."""
    days = settings.PERFORMANCE_RETENTION_DAYS if days is None else days
    if days <= 0:
        return {"performance_samples": 0, "system_samples": 0}
    cutoff = timezone.now() - timedelta(days=days)
    replies, _ = PerformanceSample.objects.filter(created_at__lt=cutoff).delete()
    systems, _ = SystemSample.objects.filter(created_at__lt=cutoff).delete()
    return {"performance_samples": replies, "system_samples": systems}


def sample_counts() -> dict[str, int]:
    return {"performance_samples": PerformanceSample.objects.count(), "system_samples": SystemSample.objects.count()}


@transaction.atomic
def reset_performance(*, actor) -> dict[str, dict[str, int]]:
    """Forget every sample; the audit trail keeps who did it and how many there were."""
    # Imported here: ops.services reaches chat.services, and the reply job imports this module.
    from ops.services import record_audit_event

    before = sample_counts()
    PerformanceSample.objects.all().delete()
    SystemSample.objects.all().delete()
    after = sample_counts()
    record_audit_event(actor=actor, action="performance.reset", target="performance samples",
                       details={"before": before, "after": after})
    return {"before": before, "after": after}


async def sample_system_periodically() -> None:
    while True:
        # Sleep first: a loop that lives for one request only (a sync caller's async_to_sync) cancels this task
        # when the request ends, before it has touched the database.
        await asyncio.sleep(max(1, settings.SYSTEM_SAMPLE_SECONDS))
        try:
            await call_service(take_system_sample_if_due)
        except Exception:  # noqa: BLE001 - the sampler outlives a database hiccup
            logger.exception("could not take a system sample")


def ensure_system_sampler() -> None:
    """Start this event loop's sampler once (SYSTEM_SAMPLE_SECONDS = 0 turns sampling off)."""
    if settings.SYSTEM_SAMPLE_SECONDS <= 0:
        return
    loop = asyncio.get_running_loop()
    task = SAMPLERS.get(loop)
    if task is None or task.done():
        for old in [old for old in SAMPLERS if old.is_closed()]:
            del SAMPLERS[old]
        # A fresh context: the sampler outlives the request that started it, and must not carry its request id.
        SAMPLERS[loop] = loop.create_task(sample_system_periodically(), name="system-sampler",
                                          context=contextvars.Context())
