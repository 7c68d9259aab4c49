"""Staff edits made in the Django admin land in the audit trail too, with the values before and after."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.contrib import admin
from django.db import models

from ops.services import record_audit_event

# Never copied into the trail, only named as changed (any field with "password" in its name, too).
SECRET_FIELDS = {"key_hash", "token_hash"}


def audit_value(value: Any) -> Any:
    """A JSON-safe rendering of a form value: objects by primary key, times as ISO 8601."""
    if isinstance(value, models.Model):
        return value.pk if not isinstance(value.pk, uuid.UUID) else str(value.pk)
    if isinstance(value, models.QuerySet | list | tuple | set):
        return [audit_value(item) for item in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def label_of(obj: models.Model) -> str:
    """`app.model`, e.g. `accounts.user`."""
    return f"{type(obj).__module__.split('.')[0]}.{type(obj).__name__.lower()}"


def target_of(obj: models.Model) -> str:
    return f"{label_of(obj)}:{obj.pk} {obj}"[:200]


def action_of(obj: models.Model, verb: str) -> str:
    return f"admin.{label_of(obj)}.{verb}"[:64]


def changes_of(form, fields: list[str]) -> dict:
    before, after = {}, {}
    for name in fields:
        if name in SECRET_FIELDS or "password" in name:
            before[name] = after[name] = "[not recorded]"
            continue
        before[name] = audit_value(form.initial.get(name))
        after[name] = audit_value(form.cleaned_data.get(name))
    return {"before": before, "after": after}


class AuditedModelAdmin(admin.ModelAdmin):
    """Records every add, change and delete (inline rows included) as an `ops.AuditEvent`."""

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and not form.changed_data:
            return
        record_audit_event(actor=request.user, action=action_of(obj, "change" if change else "add"),
                           target=target_of(obj), details=changes_of(form, list(form.changed_data)))

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            record_audit_event(actor=request.user, action=action_of(obj, "add"), target=target_of(obj),
                               details={"parent": target_of(form.instance)})
        for obj, fields in formset.changed_objects:
            record_audit_event(actor=request.user, action=action_of(obj, "change"), target=target_of(obj),
                               details={"parent": target_of(form.instance), "changed": list(fields)})
        for obj in formset.deleted_objects:
            record_audit_event(actor=request.user, action=action_of(obj, "delete"), target=target_of(obj),
                               details={"parent": target_of(form.instance)})

    def delete_model(self, request, obj) -> None:
        target = target_of(obj)
        super().delete_model(request, obj)
        record_audit_event(actor=request.user, action=action_of(obj, "delete"), target=target)

    def delete_queryset(self, request, queryset) -> None:
        doomed = [(action_of(obj, "delete"), target_of(obj)) for obj in queryset]
        super().delete_queryset(request, queryset)
        for action, target in doomed:
            record_audit_event(actor=request.user, action=action, target=target)
