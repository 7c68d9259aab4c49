"""Changes to what is loaded: preload, unload and hot slots. Each is staff-only and lands in the audit trail.

Backend calls (a load can take a minute) run outside any database transaction; only the slot rows and the
audit event are written in one.
"""

from __future__ import annotations

import logging
import time

import psutil
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from chatproject.errors import ApiError, Conflict
from models_mgmt import ollama_server, selectors
from models_mgmt.memory import gpu_memory, memory_budget
from models_mgmt.models import GENERATION_FIELDS, HOT_SLOT_COUNT, HotSlot, ModelDefaults, OllamaConfig
from models_mgmt.modes import MODES, ModeValues, detect_mode
from models_mgmt.providers import ModelInfo, ProviderError
from models_mgmt.registry import BACKGROUND, Catalogue, registry
from ops.services import record_audit_event

logger = logging.getLogger(__name__)

FOREVER = -1  # Ollama's keep_alive for "never unload"


def _api_error(exc: ProviderError) -> ApiError:
    return ApiError(exc.message, code=exc.code, status_code=exc.status)


def resolve_model(*, name: str, missing_status: int = 400) -> ModelInfo:
    """The catalogue's model by `provider/name` or plain name; unknown is `model_not_found`."""
    try:
        return async_to_sync(registry.resolve)(name)
    except ProviderError as exc:
        if exc.code == "model_not_found":
            raise ApiError(f"Unknown model {name!r}.", code="model_not_found", status_code=missing_status,
                           details={"model": name}) from exc
        raise _api_error(exc) from exc


def _loaded_names(listing: Catalogue) -> list[str]:
    return sorted({f"{item.provider}/{item.upstream}" for item in listing.loaded})


def check_memory_budget(*, model: ModelInfo, listing: Catalogue) -> None:
    """Refuse (409 `memory_budget`) a load that would take the loaded models past MODEL_MEMORY_BUDGET, naming
    the loaded models to unload first: ones outside hot slots, biggest first, until the load would fit."""
    held = {f"{item.provider}/{item.upstream}" for item in listing.loaded}
    if model.qualified_name in held or not model.size:
        return
    budget, used = memory_budget(), selectors.memory_in_use(listing)
    if used + model.size <= budget:
        return
    slots = selectors.pins()
    sizes: dict[str, int] = {}
    for item in listing.loaded:
        name = f"{item.provider}/{item.upstream}"
        sizes[name] = sizes.get(name, 0) + item.size
    candidates = sorted((name for name in sizes if name not in slots), key=lambda name: -sizes[name])
    suggested, freed = [], 0
    for name in candidates:
        if used - freed + model.size <= budget:
            break
        suggested.append(name)
        freed += sizes[name]
    fits = used - freed + model.size <= budget
    message = (f"Loading {model.qualified_name} would exceed the model memory budget; unload "
               f"{', '.join(suggested)} first." if suggested and fits else
               f"{model.qualified_name} does not fit the model memory budget even with every model outside the "
               f"hot slots unloaded.")
    raise Conflict(message, code="memory_budget", details={
        "budget_bytes": budget, "used_bytes": used, "needed_bytes": model.size, "unload": suggested,
        "fits_after_unloading": fits,
    })


def _load(model: ModelInfo, *, keep_alive: str | int | None) -> list[str]:
    # Loaded with the capped window replies will ask for, or Ollama would load it again at the first reply.
    model = selectors.model_defaults(model.qualified_name, model.name).capped(model)
    try:
        return async_to_sync(registry.provider(model.provider).load)(model=model, keep_alive=keep_alive)
    except ProviderError as exc:
        raise _api_error(exc) from exc


def _unload(model: ModelInfo) -> list[str]:
    try:
        return async_to_sync(registry.provider(model.provider).unload)(model=model)
    except ProviderError as exc:
        raise _api_error(exc) from exc


def ollama_environment() -> dict[str, str]:
    """The variables a managed `ollama serve` is started with (beyond OLLAMA_HOST): the mode's."""
    values = selectors.ollama_mode_values()
    return values.server_environment() if values else {}


def apply_ollama_config(values: ModeValues | None) -> bool:
    """Give this worker's Ollama provider the keep_alive and num_ctx every request carries; answers whether
    they changed (the catalogue then needs listing again: a model's context is worked out when it is listed)."""
    try:
        ollama = registry.provider("ollama")
    except ProviderError:
        return False
    wanted = selectors.per_request_values(values)
    changed = (ollama.keep_alive, ollama.num_ctx) != (wanted["keep_alive"], wanted["num_ctx"])
    ollama.keep_alive, ollama.num_ctx = wanted["keep_alive"], wanted["num_ctx"]
    return changed


@transaction.atomic
def _save_mode(*, actor, mode: str, detection: dict | None) -> str:
    row, _ = OllamaConfig.objects.select_for_update().get_or_create(pk=1)
    before = row.mode
    row.mode, row.updated_by = mode, actor
    if detection is not None:
        row.detection = detection
    row.save()
    old = MODES.get(before)
    record_audit_event(actor=actor, action="ollama.config.mode", target="ollama config", details={
        "before": {"mode": before or None, **(old.per_request() if old else {}),
                   **(old.server_environment() if old else {})},
        "after": {"mode": mode, **MODES[mode].per_request(), **MODES[mode].server_environment()},
        "source": "auto-detect" if detection is not None else "manual",
    })
    return before


def set_ollama_mode(*, actor, mode: str, detection: dict | None = None) -> dict:
    """Store the mode; its per-request values apply in this worker at once (the others at their keeper's next
    check), its server variables at the managed server's next start."""
    previous = _save_mode(actor=actor, mode=mode, detection=detection)
    if apply_ollama_config(MODES[mode]):
        async_to_sync(registry.catalogue)(refresh=True)
    return {**selectors.ollama_config(), "previous_mode": previous or None}


def detect_ollama_mode(*, actor, apply: bool) -> dict:
    """Pick a mode from this host's RAM, cores and GPUs (psutil, nvidia-smi), and store it when `apply`."""
    detection = {**detect_mode(ram_bytes=psutil.virtual_memory().total, cpus=psutil.cpu_count() or 1,
                               gpus=gpu_memory()), "at": timezone.now().isoformat()}
    if apply:
        config = set_ollama_mode(actor=actor, mode=detection["mode"], detection=detection)
    else:
        config = {**selectors.ollama_config(), "previous_mode": None}
    return {"detection": detection, "applied": apply, "config": config}


def apply_pins(slots: dict[str, int]) -> None:
    """Tell the Ollama provider which models to ask for with `keep_alive: -1` (every request sets a model's
    unload time, so chat replies must keep asking for "never" too)."""
    try:
        ollama = registry.provider("ollama")
    except ProviderError:
        return
    prefix = "ollama/"
    ollama.keep_alive_overrides = {name[len(prefix):]: FOREVER for name in slots if name.startswith(prefix)}


@transaction.atomic
def _record(*, actor, action: str, target: str, before: dict, after: dict) -> None:
    record_audit_event(actor=actor, action=action, target=target, details={"before": before, "after": after})


def preload_model(*, actor, name: str, keep_alive: str | int | None = None) -> dict:
    """Load a model and answer once it is ready (memory budget checked first); hot-slotted ones forever."""
    model = resolve_model(name=name)
    listing = async_to_sync(registry.catalogue)(refresh=True)
    check_memory_budget(model=model, listing=listing)
    slots = selectors.pins()
    if model.qualified_name in slots:
        keep_alive = FOREVER
    elif keep_alive is None:
        keep_alive = selectors.model_defaults(model.qualified_name, model.name).keep_alive
    started = time.monotonic()
    servers = _load(model, keep_alive=keep_alive)
    elapsed_ms = (time.monotonic() - started) * 1000
    after = async_to_sync(registry.catalogue)(refresh=True)
    _record(actor=actor, action="models.preload", target=model.qualified_name,
            before={"loaded": _loaded_names(listing)}, after={"loaded": _loaded_names(after)})
    return {"model": model.qualified_name, "loaded": True, "servers": _labels(after, servers),
            "keep_alive": keep_alive, "elapsed_ms": round(elapsed_ms, 1)}


def unload_model(*, actor, name: str) -> dict:
    """Free a model's memory once the replies running on it end; a hot-slotted model must leave its slot first."""
    model = resolve_model(name=name, missing_status=404)
    slot = selectors.pins().get(model.qualified_name)
    if slot is not None:
        raise Conflict(f"{model.qualified_name} is in hot slot {slot}; remove it from the slot first.",
                       code="in_hot_slot", details={"slot": slot})
    listing = async_to_sync(registry.catalogue)(refresh=True)
    servers = _unload(model)
    after = async_to_sync(registry.catalogue)(refresh=True)
    _record(actor=actor, action="models.unload", target=model.qualified_name,
            before={"loaded": _loaded_names(listing)}, after={"loaded": _loaded_names(after)})
    return {"model": model.qualified_name, "unloaded": bool(servers), "servers": _labels(after, servers)}


def _labels(listing: Catalogue, servers: list[str]) -> list[str]:
    labels = {report.server: report.label for report in listing.servers}
    return [labels.get(server, server) for server in servers]


def _check_slot_number(slot_number: int) -> None:
    if not 1 <= slot_number <= HOT_SLOT_COUNT:
        raise ApiError(f"Hot slots are numbered 1 to {HOT_SLOT_COUNT}.", code="validation_error",
                       details={"slot_number": [f"Must be between 1 and {HOT_SLOT_COUNT}."]})


@transaction.atomic
def _save_slot(*, actor, slot_number: int, model_name: str) -> tuple[str | None, HotSlot]:
    slot = HotSlot.objects.select_for_update().filter(slot=slot_number).first()
    before = slot.model if slot else None
    if slot is None:
        slot = HotSlot(slot=slot_number)
    slot.model, slot.assigned_by = model_name, actor
    slot.save()
    record_audit_event(actor=actor, action="models.hot_slot.assign", target=f"hot slot {slot_number}",
                       details={"before": {"model": before}, "after": {"model": model_name}})
    return before, slot


def assign_hot_slot(*, actor, slot_number: int, name: str) -> dict:
    """Put a model in a slot and load it to stay (`keep_alive: -1`); the model it replaces may expire again."""
    _check_slot_number(slot_number)
    model = resolve_model(name=name)
    if "chat" not in model.capabilities:
        raise ApiError(f"{model.qualified_name} is not a chat model.", code="not_a_chat_model")
    other = HotSlot.objects.filter(model=model.qualified_name).exclude(slot=slot_number).first()
    if other is not None:
        raise Conflict(f"{model.qualified_name} is already in hot slot {other.slot}.", code="already_in_slot",
                       details={"slot": other.slot})
    listing = async_to_sync(registry.catalogue)(refresh=True)
    check_memory_budget(model=model, listing=listing)
    slots = {**selectors.pins(), model.qualified_name: slot_number}
    apply_pins(slots)
    try:
        servers = _load(model, keep_alive=FOREVER)
    except ApiError:
        apply_pins(selectors.pins())
        raise
    before, _slot = _save_slot(actor=actor, slot_number=slot_number, model_name=model.qualified_name)
    if before and before != model.qualified_name:
        _release(before)
    apply_pins(selectors.pins())
    after = async_to_sync(registry.catalogue)(refresh=True)
    return {"slot": slot_number, "model": model.qualified_name, "replaced": before, "loaded": True,
            "servers": _labels(after, servers)}


def _release(name: str) -> None:
    """A model leaving its slot goes back to the default keep-alive (asked of its servers if it is loaded)."""
    model = registry.find(name)
    if model is None or model.provider != "ollama":
        return  # a local model stays loaded until unloaded; an unknown one has nothing to release
    listing = registry_catalogue()
    if any(f"{item.provider}/{item.upstream}" == name for item in listing.loaded):
        ollama = registry.provider("ollama")
        try:
            _load(model, keep_alive=ollama.keep_alive or "5m")
        except ApiError as exc:
            logger.warning("could not hand %s back its default keep-alive: %s", name, exc.detail)


def registry_catalogue() -> Catalogue:
    return async_to_sync(registry.catalogue)()


@transaction.atomic
def _delete_slot(*, actor, slot_number: int) -> str:
    slot = HotSlot.objects.select_for_update().filter(slot=slot_number).first()
    if slot is None:
        raise ApiError(f"Hot slot {slot_number} is empty.", code="not_found", status_code=404)
    name = slot.model
    slot.delete()
    record_audit_event(actor=actor, action="models.hot_slot.remove", target=f"hot slot {slot_number}",
                       details={"before": {"model": name}, "after": {"model": None}})
    return name


def remove_hot_slot(*, actor, slot_number: int) -> dict:
    """Empty a slot; its model stays loaded until it expires as any other (or is unloaded)."""
    _check_slot_number(slot_number)
    name = _delete_slot(actor=actor, slot_number=slot_number)
    apply_pins(selectors.pins())
    _release(name)
    async_to_sync(registry.catalogue)(refresh=True)  # the next listing shows its new unload time
    return {"slot": slot_number, "model": name, "removed": True}


def load_hot_slots(*, actor) -> dict:
    """Load every slotted model to stay; each slot answers on its own (one failing does not stop the others)."""
    slots = selectors.pins()
    apply_pins(slots)
    results = []
    for name, number in sorted(slots.items(), key=lambda item: item[1]):
        try:
            model = resolve_model(name=name)
            results.append({"slot": number, "model": name, "ok": True,
                            "servers": _load(model, keep_alive=FOREVER), "error": ""})
        except ApiError as exc:
            results.append({"slot": number, "model": name, "ok": False, "servers": [], "error": str(exc.detail)})
    after = async_to_sync(registry.catalogue)(refresh=True)
    for row in results:
        row["servers"] = _labels(after, row["servers"])
    _record(actor=actor, action="models.hot_slots.load", target="hot slots", before={"slots": slots},
            after={"loaded": [row["model"] for row in results if row["ok"]]})
    return {"slots": results}


def _server_summary(status: dict) -> dict:
    return {"state": status["state"], "pid": status["pid"], "version": status["version"]}


def _after_server_change(*, started: bool) -> None:
    """The catalogue learns the server's new state now; after a start the hot slots are warmed at once in the
    background (the keeper would do it within HOT_SLOT_CHECK_SECONDS anyway)."""
    async_to_sync(registry.catalogue)(refresh=True)
    if started and settings.HOT_SLOT_CHECK_SECONDS > 0:
        from models_mgmt import keeper  # the keeper imports this module

        BACKGROUND.submit(keeper.check_once())


def control_ollama(*, actor, action: str, reason: str) -> dict:
    """Start, shut down or restart the managed `ollama serve`; audited when done, and when a start was tried and
    failed (a refusal that changed nothing is not)."""
    before = ollama_server.status(staff=True)
    environment = ollama_environment()
    name = getattr(actor, "username", "") or ""
    operations = {
        "start": lambda: ollama_server.start(reason=reason, started_by=name, environment=environment),
        "shutdown": lambda: ollama_server.shutdown(reason=reason),
        "restart": lambda: ollama_server.restart(reason=reason, started_by=name, environment=environment),
    }
    try:
        operations[action]()
    except ApiError as exc:
        if exc.status_code >= 500:
            _record(actor=actor, action=f"ollama.server.{action}", target=before["server"] or "ollama",
                    before={**_server_summary(before), "reason": reason},
                    after={**_server_summary(ollama_server.status(staff=True)), "error": exc.error_code})
        raise
    _after_server_change(started=action != "shutdown")
    after = ollama_server.status(staff=True)
    _record(actor=actor, action=f"ollama.server.{action}", target=after["server"] or "ollama",
            before={**_server_summary(before), "reason": reason}, after=_server_summary(after))
    return {"action": action, "reason": reason, "previous_pid": before["pid"] if before["state"] == "running" else None,
            "status": after}


DEFAULTS_FIELDS = ("context_length", "keep_alive", *GENERATION_FIELDS, "system_prompt")


def defaults_snapshot(row: ModelDefaults | None) -> dict | None:
    return model_to_dict(row, fields=DEFAULTS_FIELDS) if row is not None else None


def _forget_defaults_after_commit() -> None:
    # This worker sees the change at its next reply; the others when their cache runs out.
    transaction.on_commit(selectors.DEFAULTS_CACHE.forget)


@transaction.atomic
def set_model_defaults(*, actor, name: str, values: dict) -> tuple[ModelDefaults, bool]:
    """Store (replacing) one model's defaults; fields left out are cleared, so the server's values apply."""
    model_name = resolve_model(name=name).qualified_name
    row = ModelDefaults.objects.select_for_update().filter(model=model_name).first()
    before = defaults_snapshot(row)
    created = row is None
    row = row or ModelDefaults(model=model_name)
    for field in DEFAULTS_FIELDS:
        setattr(row, field, values.get(field, "" if field in ("keep_alive", "system_prompt") else None))
    row.updated_by = actor
    row.save()
    record_audit_event(actor=actor, action="models.defaults.set", target=model_name,
                       details={"before": before, "after": defaults_snapshot(row)})
    _forget_defaults_after_commit()
    return row, created


@transaction.atomic
def delete_model_defaults(*, actor, name: str) -> str:
    """Remove a model's defaults (by the name they are stored under, or the model's catalogue name)."""
    row = ModelDefaults.objects.select_for_update().filter(model=name).first()
    if row is None:
        try:
            qualified = async_to_sync(registry.resolve)(name, ask_backends_on_miss=False).qualified_name
        except ProviderError:
            qualified = ""
        row = ModelDefaults.objects.select_for_update().filter(model=qualified).first() if qualified else None
    if row is None:
        raise ApiError(f"No defaults are stored for {name!r}.", code="not_found", status_code=404,
                       details={"model": name})
    before = defaults_snapshot(row)
    row.delete()
    record_audit_event(actor=actor, action="models.defaults.delete", target=row.model,
                       details={"before": before, "after": None})
    _forget_defaults_after_commit()
    return row.model
