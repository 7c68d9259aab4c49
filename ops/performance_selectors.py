"""Reads for performance: the last minute, per-model percentiles over a window, and time buckets.

All replies of all users: operator data, so the views serve it to staff only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from chat.models import MessageStatus, Stream
from ops.models import PerformanceSample, SystemSample

CURRENT_WINDOW = timedelta(minutes=1)
BUCKETS = {"hour": TruncHour, "day": TruncDay}


def percentile(values: list[float], share: float) -> float | None:
    """Linear interpolation between the two nearest ranks (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 3)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


def samples_since(since: datetime, *, model: str = "") -> QuerySet[PerformanceSample]:
    samples = PerformanceSample.objects.filter(created_at__gte=since)
    return samples.filter(model=model) if model else samples


def active_streams() -> int:
    """Replies generating now, on every worker."""
    return Stream.objects.filter(finished_at__isnull=True).count()


def current() -> dict:
    """The last minute: replies finished, by status, their mean timings and tokens, and replies running now."""
    now = timezone.now()
    since = now - CURRENT_WINDOW
    summary = samples_since(since).aggregate(
        replies=Count("id"),
        errors=Count("id", filter=Q(status=MessageStatus.ERROR)),
        mean_ttft_ms=Avg("time_to_first_token_ms"),
        mean_tokens_per_second=Avg("tokens_per_second"),
    )
    statuses = dict(samples_since(since).order_by().values_list("status").annotate(count=Count("id")))
    completion = sum(samples_since(since).exclude(completion_tokens=None).values_list("completion_tokens", flat=True))
    return {
        "window_seconds": int(CURRENT_WINDOW.total_seconds()),
        "since": since,
        "replies": summary["replies"],
        "statuses": statuses,
        "errors": summary["errors"],
        "active_streams": active_streams(),
        "mean_ttft_ms": rounded(summary["mean_ttft_ms"], 2),
        "mean_tokens_per_second": rounded(summary["mean_tokens_per_second"], 2),
        "completion_tokens": completion,
    }


def stats(*, hours: int, model: str = "") -> dict:
    """Per model and provider: count, error rate, p50 and p95 of time to first token and tokens per second."""
    since = timezone.now() - timedelta(hours=hours)
    rows = samples_since(since, model=model).values_list(
        "model", "provider", "status", "time_to_first_token_ms", "tokens_per_second"
    )
    grouped: dict[tuple[str, str], dict] = defaultdict(lambda: {"count": 0, "errors": 0, "ttft": [], "tps": []})
    for name, provider, status, ttft, tps in rows.iterator():
        entry = grouped[(name, provider)]
        entry["count"] += 1
        entry["errors"] += status == MessageStatus.ERROR
        if ttft is not None:
            entry["ttft"].append(ttft)
        if tps is not None:
            entry["tps"].append(tps)
    models = [
        {
            "model": name,
            "provider": provider,
            "count": entry["count"],
            "errors": entry["errors"],
            "error_rate": round(entry["errors"] / entry["count"], 4),
            "ttft_ms_p50": percentile(entry["ttft"], 0.5),
            "ttft_ms_p95": percentile(entry["ttft"], 0.95),
            "tokens_per_second_p50": percentile(entry["tps"], 0.5),
            "tokens_per_second_p95": percentile(entry["tps"], 0.95),
        }
        for (name, provider), entry in sorted(grouped.items())
    ]
    return {"window_hours": hours, "since": since, "models": models}


def history(*, days: int, bucket: str, model: str = "") -> dict:
    """Per model, one row per hour or day that had replies; system samples in the same buckets."""
    since = timezone.now() - timedelta(days=days)
    trunc = BUCKETS[bucket]
    rows = (
        samples_since(since, model=model)
        .annotate(start=trunc("created_at"))
        .values("model", "provider", "start")
        .annotate(
            count=Count("id"),
            errors=Count("id", filter=Q(status=MessageStatus.ERROR)),
            mean_ttft_ms=Avg("time_to_first_token_ms"),
            mean_tokens_per_second=Avg("tokens_per_second"),
        )
        .order_by("model", "provider", "start")
    )
    models: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        models[(row["model"], row["provider"])].append({
            "start": row["start"], "count": row["count"], "errors": row["errors"],
            "mean_ttft_ms": rounded(row["mean_ttft_ms"], 2),
            "mean_tokens_per_second": rounded(row["mean_tokens_per_second"], 2),
        })
    system = (
        SystemSample.objects.filter(created_at__gte=since)
        .annotate(start=trunc("created_at"))
        .values("start")
        .annotate(mean_cpu_percent=Avg("cpu_percent"), mean_memory_percent=Avg("memory_percent"),
                  max_temperature_c=Max("max_temperature_c"), samples=Count("id"))
        .order_by("start")
    )
    return {
        "days": days,
        "bucket": bucket,
        "since": since,
        "retention_days": settings.PERFORMANCE_RETENTION_DAYS,
        "models": [{"model": name, "provider": provider, "buckets": buckets}
                   for (name, provider), buckets in models.items()],
        "system": [{**row, "mean_cpu_percent": rounded(row["mean_cpu_percent"], 2),
                    "mean_memory_percent": rounded(row["mean_memory_percent"], 2)} for row in system],
    }
