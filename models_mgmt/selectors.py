"""Reads for model management: catalogue rows with live state, hot slots, memory in use, per-model defaults."""

from __future__ import annotations

import dataclasses
import time

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings

from models_mgmt import ollama_server
from models_mgmt.memory import gpu_memory, host_memory, memory_budget
from models_mgmt.models import GENERATION_FIELDS, HOT_SLOT_COUNT, HotSlot, ModelDefaults, OllamaConfig, parse_keep_alive
from models_mgmt.modes import MODES, ModeValues
from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError
from models_mgmt.providers.base import LoadedModel
from models_mgmt.registry import Catalogue, registry

ORCHESTRATOR_MIN_CONTEXT = 8192


def is_orchestrator_suitable(model: ModelInfo) -> bool:
    """Fit to plan and route: a chat model tuned to follow instructions whose own context window (what it was
    trained for, else the window it runs with) holds at least 8k tokens."""
    window = model.max_context_length or model.context_length
    return "chat" in model.capabilities and model.instruct and window >= ORCHESTRATOR_MIN_CONTEXT


def pins() -> dict[str, int]:
    """`provider/name` -> slot number, for every filled hot slot."""
    return dict(HotSlot.objects.values_list("model", "slot"))


def catalogue(*, refresh: bool = False) -> Catalogue:
    return async_to_sync(registry.catalogue)(refresh=refresh)


def _loaded_by_model(listing: Catalogue) -> dict[str, list[LoadedModel]]:
    held: dict[str, list[LoadedModel]] = {}
    for item in listing.loaded:
        held.setdefault(f"{item.provider}/{item.upstream}", []).append(item)
    return held


def _labels(listing: Catalogue) -> dict[tuple[str, str], str]:
    return {(report.provider, report.server): report.label for report in listing.servers}


def default_model_name() -> str | None:
    try:
        return async_to_sync(registry.resolve)(None, ask_backends_on_miss=False).qualified_name
    except ProviderError:
        return None


def model_rows(listing: Catalogue, *, staff: bool, slots: dict[str, int] | None = None) -> list[dict]:
    """One row per model: what it is, where it is, and whether it is loaded now (memory, unload time)."""
    slots = pins() if slots is None else slots
    held, labels, default = _loaded_by_model(listing), _labels(listing), default_model_name()
    present: dict[str, list[str]] = {}
    for report in listing.servers:
        for model in report.models:
            present.setdefault(model.qualified_name, []).append(report.label)
    rows = []
    for model in listing.models:
        loaded = held.get(model.qualified_name, [])
        expiries = sorted(item.expires_at for item in loaded if item.expires_at)
        capabilities = list(model.capabilities) + (["orchestrator"] if is_orchestrator_suitable(model) else [])
        rows.append({
            "name": model.name, "qualified_name": model.qualified_name, "provider": model.provider,
            "server": labels.get((model.provider, _server_key(model)), model.provider),
            "server_url": _server_key(model) if staff else None,
            "servers": present.get(model.qualified_name, []),
            "size": model.size, "modified_at": model.modified_at, "family": model.family,
            "parameter_size": model.parameter_size, "quantization": model.quantization,
            "context_length": model.context_length, "max_context_length": model.max_context_length,
            "capabilities": capabilities, "instruct": model.instruct, "default": model.qualified_name == default,
            "loaded": bool(loaded), "loaded_on": [labels.get((item.provider, item.server), item.server)
                                                  for item in loaded],
            "memory_bytes": sum(item.size for item in loaded), "vram_bytes": sum(item.size_vram for item in loaded),
            "expires_at": expiries[0] if expiries else None, "hot_slot": slots.get(model.qualified_name),
        })
    return rows


def _server_key(model: ModelInfo) -> str:
    """The server a model's report is filed under: its URL, or `local` for GGUF files of this worker."""
    return "local" if model.provider == "local" else model.server


def server_rows(listing: Catalogue, *, staff: bool) -> list[dict]:
    return [
        {"provider": report.provider, "server": report.label, "url": report.server if staff else None,
         "ok": report.ok, "error": report.error, "models": len(report.models), "loaded": len(report.loaded),
         "elapsed_ms": round(report.elapsed_ms, 1)}
        for report in listing.servers
    ]


def loaded_rows(listing: Catalogue, *, slots: dict[str, int] | None = None) -> list[dict]:
    slots = pins() if slots is None else slots
    labels = _labels(listing)
    return [
        {"model": f"{item.provider}/{item.upstream}", "provider": item.provider,
         "server": labels.get((item.provider, item.server), item.server), "size": item.size,
         "size_vram": item.size_vram, "expires_at": item.expires_at, "context_length": item.context_length,
         "hot_slot": slots.get(f"{item.provider}/{item.upstream}")}
        for item in listing.loaded
    ]


def memory_in_use(listing: Catalogue) -> int:
    """Bytes the loaded models take, as their servers report them."""
    return sum(item.size for item in listing.loaded)


def model_list(*, staff: bool, orchestrators_only: bool = False) -> dict:
    """The catalogue with the state of every server, so a reader sees at once which servers' models are missing."""
    listing = catalogue()
    rows = model_rows(listing, staff=staff)
    if orchestrators_only:
        rows = [row for row in rows if "orchestrator" in row["capabilities"]]
    return {"results": rows, "servers": server_rows(listing, staff=staff), "listed_at": listing.listed_at,
            "refreshing": listing.refreshing}


def status(*, staff: bool) -> dict:
    """The catalogue's live side: each server up or down (and why), what is loaded, the memory budget."""
    listing, slots = catalogue(), pins()
    return {
        "listed_at": listing.listed_at, "age_seconds": round(listing.age_seconds, 2), "refreshing": listing.refreshing,
        "servers": server_rows(listing, staff=staff), "loaded": loaded_rows(listing, slots=slots),
        "memory": {"budget_bytes": memory_budget(), "used_bytes": memory_in_use(listing)},
    }


def hot_slot_rows(*, staff: bool) -> list[dict]:
    """All four slots, empty ones included, each with its model's live state."""
    listing = catalogue()
    rows = {row["qualified_name"]: row for row in model_rows(listing, staff=staff)}
    filled = {slot.slot: slot for slot in HotSlot.objects.select_related("assigned_by")}
    result = []
    for number in range(1, HOT_SLOT_COUNT + 1):
        slot = filled.get(number)
        row = rows.get(slot.model) if slot else None
        result.append({
            "slot": number, "model": slot.model if slot else None,
            "assigned_by": (slot.assigned_by.username if slot and slot.assigned_by else None) if staff else None,
            "assigned_at": slot.assigned_at if slot else None,
            "available": row is not None if slot else None, "loaded": bool(row and row["loaded"]),
            "memory_bytes": row["memory_bytes"] if row else 0, "expires_at": row["expires_at"] if row else None,
        })
    return result


def system_memory() -> dict:
    """Process and host RAM, swap, each loaded model's memory, and GPU memory where nvidia-smi can read it."""
    listing = catalogue()
    return {
        **host_memory(),
        "models": loaded_rows(listing),
        "models_total_bytes": memory_in_use(listing),
        "budget_bytes": memory_budget(),
        "gpus": [gpu.__dict__ for gpu in gpu_memory()],
    }


def ollama_status(*, staff: bool) -> dict:
    """The managed `ollama serve` and every configured Ollama server's reachability."""
    return ollama_server.status(staff=staff)


def ollama_config_row() -> OllamaConfig | None:
    return OllamaConfig.objects.select_related("updated_by").filter(pk=1).first()


def ollama_mode_values() -> ModeValues | None:
    """The stored mode's values; None while no mode is chosen (the environment's values apply)."""
    mode = OllamaConfig.objects.filter(pk=1).values_list("mode", flat=True).first()
    return MODES.get(mode or "")


def per_request_values(values: ModeValues | None) -> dict:
    """What every Ollama request carries: the mode's keep_alive and num_ctx, else OLLAMA_KEEP_ALIVE and
    OLLAMA_NUM_CTX (keep_alive null: the server's own default)."""
    if values is not None:
        return values.per_request()
    return {"keep_alive": settings.OLLAMA_KEEP_ALIVE or None, "num_ctx": settings.OLLAMA_NUM_CTX}


def server_apply_state(environment: dict[str, str]) -> dict:
    """Whether the mode's server variables are in effect, wait for the next start, or need a restart."""
    if not ollama_server.configured():
        message = ("This app does not start Ollama: set these variables in the environment of `ollama serve` and "
                   "restart it." if environment else "No server variables are set.")
        return {"managed": False, "state": "unmanaged", "restart_required": False, "applies": "outside",
                "message": message}
    state = ollama_server.read_state()
    if ollama_server.process_of(state) is None:
        return {"managed": True, "state": "stopped", "restart_required": False, "applies": "next_start",
                "message": "They apply when the managed server next starts."}
    if (state.get("environment") or {}) == environment:
        return {"managed": True, "state": "running", "restart_required": False, "applies": "in_effect",
                "message": "The running server was started with them."}
    return {"managed": True, "state": "running", "restart_required": True, "applies": "restart",
            "message": "The running server was started with other values; they apply after a restart "
                       "(chat_ollama_restart)."}


def ollama_config() -> dict:
    """The chosen mode and its values: which apply to every request now, which `ollama serve` reads at start."""
    row = ollama_config_row()
    values = MODES.get(row.mode if row else "")
    environment = values.server_environment() if values else {}
    return {
        "mode": values and row.mode, "values": values.as_dict() if values else None,
        "per_request": per_request_values(values), "server_environment": environment,
        "server": server_apply_state(environment),
        "modes": {name: mode.as_dict() for name, mode in MODES.items()},
        "updated_by": row.updated_by.username if row and row.updated_by else None,
        "updated_at": row.updated_at if row else None,
        "detection": (row.detection or None) if row else None,
    }


# Defaults are read at every reply's start, so each worker keeps the (small) table this long between reads.
MODEL_DEFAULTS_CACHE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class ModelDefaultsValues:
    """One model's defaults as replies use them: only what staff set (None or empty: the server's own)."""

    context_length: int | None = None
    keep_alive: str | int | None = None
    generation: dict = dataclasses.field(default_factory=dict)
    system_prompt: str = ""

    def apply(self, options: dict | None) -> dict:
        """These generation parameters under the given ones; a null given means "not given"."""
        given = {key: value for key, value in (options or {}).items() if value is not None}
        return {**self.generation, **given}

    def fill(self, options: GenerationOptions) -> GenerationOptions:
        """Options built whole by a caller, with these defaults wherever the caller set nothing itself."""
        unset = {key: value for key, value in self.generation.items() if key not in options.given}
        keep_alive = options.keep_alive if options.keep_alive is not None else self.keep_alive
        return dataclasses.replace(options, **unset, keep_alive=keep_alive)

    def with_system_prompt(self, turns: list[ChatTurn]) -> list[ChatTurn]:
        """The turns with this system prompt first, unless they bring one of their own."""
        if not self.system_prompt or any(turn.role == "system" for turn in turns):
            return turns
        return [ChatTurn(role="system", content=self.system_prompt), *turns]

    def capped(self, model: ModelInfo) -> ModelInfo:
        """The model with its window lowered to the cap, so prompts are trimmed to it and Ollama gets it as num_ctx."""
        if self.context_length is None or self.context_length >= model.context_length:
            return model
        return dataclasses.replace(model, context_length=self.context_length)


NO_DEFAULTS = ModelDefaultsValues()


def defaults_values(row: ModelDefaults) -> ModelDefaultsValues:
    return ModelDefaultsValues(
        context_length=row.context_length,
        keep_alive=parse_keep_alive(row.keep_alive) if row.keep_alive else None,
        generation={key: getattr(row, key) for key in GENERATION_FIELDS if getattr(row, key) is not None},
        system_prompt=row.system_prompt,
    )


@dataclasses.dataclass
class DefaultsCache:
    table: dict[str, ModelDefaultsValues] | None = None
    read_at: float = 0.0

    def fresh(self) -> dict[str, ModelDefaultsValues] | None:
        if self.table is None or time.monotonic() - self.read_at > MODEL_DEFAULTS_CACHE_SECONDS:
            return None
        return self.table

    def load(self) -> dict[str, ModelDefaultsValues]:
        self.table = {row.model: defaults_values(row) for row in ModelDefaults.objects.all()}
        self.read_at = time.monotonic()
        return self.table

    def forget(self) -> None:
        self.table = None


DEFAULTS_CACHE = DefaultsCache()


def _pick(table: dict[str, ModelDefaultsValues], names: tuple[str, ...]) -> ModelDefaultsValues:
    return next((table[name] for name in names if name in table), NO_DEFAULTS)


def model_defaults(*names: str) -> ModelDefaultsValues:
    """The defaults stored under the first of `names` that has any (pass `provider/name`, then the plain name)."""
    return _pick(DEFAULTS_CACHE.fresh() or DEFAULTS_CACHE.load(), names)


async def amodel_defaults(model: ModelInfo) -> ModelDefaultsValues:
    """`model_defaults` for async callers: the cached table, read again (one query) once it is stale."""
    table = DEFAULTS_CACHE.fresh()
    if table is None:
        table = await database_sync_to_async(DEFAULTS_CACHE.load)()
    return _pick(table, (model.qualified_name, model.name))


def model_defaults_rows() -> list[ModelDefaults]:
    return list(ModelDefaults.objects.select_related("updated_by"))
