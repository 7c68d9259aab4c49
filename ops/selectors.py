"""Reads for operations: the audit trail, for staff only (the views check that)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from ops.models import AuditEvent


def audit_events(
    *, action: str = "", actor: str = "", target: str = "", since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Newest first; `action` matches a prefix (`user.` is every user action), `target` a substring."""
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_username__iexact=actor)
    if target:
        events = events.filter(target__icontains=target)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-created_at", "-id")
