"""Reads of the compatible APIs."""

from __future__ import annotations

from django.db.models import Count

from chat.models import Stream


def running_models() -> dict[str, int]:
    """Models with replies generating now, on every worker, and how many each."""
    rows = Stream.objects.filter(finished_at__isnull=True).values("model").annotate(replies=Count("id"))
    return {row["model"]: row["replies"] for row in rows}
