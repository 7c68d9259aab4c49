"""Ollama configuration modes: what each sets, which values need a server restart, and picking one for a host.

A mode sets four things. Two are sent with every request and apply at once: `keep_alive` (how long an idle
model stays loaded; hot-slotted models stay forever whatever the mode) and `num_ctx` (the context window
asked for, at most the model's own, which prompts are trimmed to). Two are read by `ollama serve` when it
starts: OLLAMA_NUM_PARALLEL (requests served at once per model) and OLLAMA_MAX_LOADED_MODELS. The request
values are also passed to the server (OLLAMA_KEEP_ALIVE, OLLAMA_CONTEXT_LENGTH) as its defaults for other
clients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models_mgmt.memory import GpuMemory

GIB = 1024**3


@dataclass(frozen=True)
class ModeValues:
    keep_alive: str
    num_ctx: int
    num_parallel: int
    max_loaded_models: int
    description: str = ""

    def per_request(self) -> dict:
        return {"keep_alive": self.keep_alive, "num_ctx": self.num_ctx}

    def server_environment(self) -> dict[str, str]:
        """The variables `ollama serve` reads at start."""
        return {"OLLAMA_NUM_PARALLEL": str(self.num_parallel), "OLLAMA_MAX_LOADED_MODELS": str(self.max_loaded_models),
                "OLLAMA_KEEP_ALIVE": self.keep_alive, "OLLAMA_CONTEXT_LENGTH": str(self.num_ctx)}

    def as_dict(self) -> dict:
        return asdict(self)


MODES: dict[str, ModeValues] = {
    "efficiency": ModeValues(keep_alive="2m", num_ctx=2048, num_parallel=1, max_loaded_models=1,
                             description="Little memory: one model at a time, one request at a time, short "
                                         "contexts, models unloaded after 2 idle minutes."),
    "balanced": ModeValues(keep_alive="5m", num_ctx=4096, num_parallel=2, max_loaded_models=2,
                           description="Ollama's defaults: two models, two requests each, 4k contexts, unloaded "
                                       "after 5 idle minutes."),
    "performance": ModeValues(keep_alive="30m", num_ctx=8192, num_parallel=4, max_loaded_models=4,
                              description="Plenty of memory: all four hot slots loaded together, four requests "
                                          "each, 8k contexts, models kept for 30 idle minutes."),
}


def detect_mode(*, ram_bytes: int, cpus: int, gpus: list[GpuMemory]) -> dict:
    """Pick a mode for a host and say why: a GPU with 16 GiB or more, or 32 GiB of RAM with 8 cores, is
    performance; under 8 GiB of RAM or 2 cores or fewer is efficiency; anything between is balanced."""
    gpu = max(gpus, key=lambda item: item.total_bytes, default=None)
    vram = gpu.total_bytes if gpu else 0
    facts = [f"{ram_bytes / GIB:.1f} GiB of RAM", f"{cpus} CPU cores",
             f"GPU {gpu.name} with {vram / GIB:.1f} GiB" if gpu else "no NVIDIA GPU (nvidia-smi absent or silent)"]
    if vram >= 16 * GIB:
        mode, why = "performance", "a GPU with 16 GiB or more holds several models with long contexts"
    elif ram_bytes >= 32 * GIB and cpus >= 8:
        mode, why = "performance", "32 GiB of RAM or more and 8 cores or more run several models at once"
    elif ram_bytes < 8 * GIB or cpus <= 2:
        mode, why = "efficiency", ("under 8 GiB of RAM fits one small model at a time" if ram_bytes < 8 * GIB
                                   else "2 cores or fewer serve one request at a time")
    else:
        mode, why = "balanced", "enough for two models, not enough for four"
    return {"mode": mode, "explanation": f"{mode.capitalize()}: {', '.join(facts)}; {why}.", "reasons": [*facts, why],
            "facts": {"ram_bytes": ram_bytes, "cpus": cpus,
                      "gpus": [{"name": item.name, "total_bytes": item.total_bytes} for item in gpus]}}
