"""Writes for operations: audit records and the panic switch."""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from chat import services as chat_services
from chat.broadcast import EVERYONE_GROUP, group_send_after_commit
from models_mgmt.registry import registry
from ops.models import AuditEvent, PanicState
from ops.panic import CACHE_KEY, panic_state

PANIC_FIELDS = ("active", "reason", "triggered_by", "triggered_at", "wiped", "reset_by", "reset_at")


@transaction.atomic
def record_audit_event(
    *, actor, action: str, target: str = "", details: dict | None = None, actor_name: str = ""
) -> AuditEvent:
    """Keep the actor's name too, so the trail survives the account's deletion."""
    return AuditEvent.objects.create(
        actor=actor,
        actor_username=actor_name or getattr(actor, "username", "") or "",
        action=action,
        target=target,
        details=details or {},
    )


def _panic_fields(state: PanicState) -> dict:
    values = model_to_dict(state, fields=PANIC_FIELDS)
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in values.items()}


def panic_event(state: PanicState) -> dict:
    """The layer event every open WebSocket turns into a `panic` frame."""
    return {"type": "room.panic", "active": state.active, "reason": state.reason, "wiped": state.wiped}


def _publish_panic(state: PanicState) -> None:
    """Every worker's cache and every open socket learn of the change once it is committed."""
    active = state.active
    transaction.on_commit(lambda: cache.set(CACHE_KEY, active, settings.PANIC_CACHE_SECONDS))
    group_send_after_commit(EVERYONE_GROUP, panic_event(state))


@transaction.atomic
def _switch_on(*, actor, actor_name: str, reason: str, wipe_data: bool) -> PanicState:
    panic_state()
    state = PanicState.objects.select_for_update().get(pk=1)
    before = _panic_fields(state)
    state.active = True
    state.reason = reason
    state.triggered_by = actor_name or getattr(actor, "username", "")
    state.triggered_at = timezone.now()
    state.wiped = wipe_data
    state.wipe_counts = {}
    state.reset_by, state.reset_at = "", None
    state.save()
    _publish_panic(state)
    record_audit_event(actor=actor, actor_name=actor_name, action="panic.trigger", target="instance",
                       details={"before": before, "after": _panic_fields(state), "wipe_data": wipe_data})
    return state


@dataclass
class PanicOutcome:
    state: PanicState
    streams_stopped: int
    deleted: dict[str, int]
    unloaded: list[str]


def trigger_panic(
    *, actor, reason: str, wipe_data: bool = False, unload_models: bool = False, actor_name: str = ""
) -> PanicOutcome:
    """Refuse new chat work everywhere, stop every running reply, and with `wipe_data` delete all chat data;
    `unload_models` frees the models' memory once their replies have stopped.

    The switch commits before the running replies are collected: a reply starting meanwhile either is among
    them or finds the switch on when it checks after its own start commits.
    """
    state = _switch_on(actor=actor, actor_name=actor_name, reason=reason, wipe_data=wipe_data)
    stopped = chat_services.stop_every_stream()
    deleted: dict[str, int] = {}
    if wipe_data:
        deleted = _wipe(state=state, actor=actor, actor_name=actor_name)
    unloaded: list[str] = []
    if unload_models:
        unloaded = async_to_sync(registry.unload_all)()
        record_audit_event(actor=actor, actor_name=actor_name, action="panic.unload_models", target="models",
                           details={"unloaded": unloaded})
    return PanicOutcome(state=state, streams_stopped=stopped, deleted=deleted, unloaded=unloaded)


@transaction.atomic
def _wipe(*, state: PanicState, actor, actor_name: str) -> dict[str, int]:
    deleted = chat_services.wipe_chat_data()
    PanicState.objects.filter(pk=state.pk).update(wipe_counts=deleted)
    state.wipe_counts = deleted
    record_audit_event(actor=actor, actor_name=actor_name, action="panic.wipe", target="instance",
                       details={"deleted": deleted})
    return deleted


@transaction.atomic
def reset_panic(*, actor, actor_name: str = "") -> PanicState:
    """Let chat work through again; what a wipe deleted stays deleted."""
    panic_state()
    state = PanicState.objects.select_for_update().get(pk=1)
    before = _panic_fields(state)
    state.active = False
    state.reset_by = actor_name or getattr(actor, "username", "")
    state.reset_at = timezone.now()
    state.save()
    _publish_panic(state)
    record_audit_event(actor=actor, actor_name=actor_name, action="panic.reset", target="instance",
                       details={"before": before, "after": _panic_fields(state)})
    return state
