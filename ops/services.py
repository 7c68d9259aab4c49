"""Writes for operations: audit records."""

from __future__ import annotations

from django.db import transaction

from ops.models import AuditEvent


@transaction.atomic
def record_audit_event(*, actor, action: str, target: str = "", details: dict | None = None) -> AuditEvent:
    """Keep the actor's name too, so the trail survives the account's deletion."""
    return AuditEvent.objects.create(
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        action=action,
        target=target,
        details=details or {},
    )
