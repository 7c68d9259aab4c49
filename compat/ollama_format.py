"""Ollama's response objects and its NDJSON stream, built from a run or the model catalogue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from compat.runs import CompletionRun, Outcome
from models_mgmt.providers import ModelInfo

# Ollama's names for the catalogue's capabilities; others (tools, vision ...) are refused by this API, so a
# client is not told of them.
CAPABILITIES = {"chat": "completion", "embed": "embedding"}


def line(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def piece(kind: str, text: str) -> dict:
    """The text part of a chat (`message`) or generate (`response`) object."""
    return {"message": {"role": "assistant", "content": text}} if kind == "chat" else {"response": text}


def final_body(kind: str, run: CompletionRun, outcome: Outcome, text: str) -> dict:
    """The `done` object: counts, and durations in nanoseconds (the prompt's evaluation is the time to the first
    token, the evaluation the rest)."""
    return {
        "model": run.model,
        "created_at": now_iso(),
        **piece(kind, text),
        "done": True,
        "done_reason": outcome.finish_reason,
        "total_duration": outcome.total_ns,
        "prompt_eval_count": outcome.prompt_tokens,
        "prompt_eval_duration": outcome.first_token_ns,
        "eval_count": outcome.completion_tokens,
        "eval_duration": max(0, outcome.total_ns - outcome.first_token_ns),
    }


def loaded_body(kind: str, model: str) -> dict:
    """Ollama's answer to a request with nothing to answer (no messages, or an empty prompt): the model is
    ready."""
    return {"model": model, "created_at": now_iso(), **piece(kind, ""), "done": True, "done_reason": "load"}


async def ndjson_stream(kind: str, run: CompletionRun) -> AsyncIterator[bytes]:
    """One object per delta, then the `done` object; a reply that fails midway ends with `{"error": ...}`,
    which the official client raises."""
    async for event in run.events():
        if event["type"] == "stream.token":
            yield line({"model": run.model, "created_at": now_iso(), **piece(kind, event["delta"]),
                        "done": False})
    failure = await run.failure()
    if failure is not None:
        yield line({"error": str(failure.detail)})
        return
    yield line(final_body(kind, run, run.outcome(), ""))


def details(model: ModelInfo) -> dict:
    return {"format": "gguf" if model.provider == "local" else "", "family": model.family,
            "families": [model.family] if model.family else None, "parameter_size": model.parameter_size,
            "quantization_level": model.quantization}


def tag_entry(model: ModelInfo) -> dict:
    return {"name": model.name, "model": model.name, "modified_at": model.modified_at, "size": model.size,
            "digest": model.digest, "details": details(model)}


def show_body(model: ModelInfo) -> dict:
    """`api/show`: always with `model_info` (architecture and context length, GGUF-style keys) and
    `capabilities`."""
    architecture = model.family or model.provider
    return {
        "details": details(model),
        "model_info": {
            "general.architecture": architecture,
            "general.name": model.name,
            f"{architecture}.context_length": model.context_length,
        },
        "capabilities": [CAPABILITIES[name] for name in model.capabilities if name in CAPABILITIES],
        "modified_at": model.modified_at,
    }


def running_entry(model: ModelInfo, replies: int) -> dict:
    """`api/ps`: a model with replies generating now."""
    return {"name": model.name, "model": model.name, "size": model.size, "digest": model.digest,
            "details": details(model), "context_length": model.context_length, "replies": replies}
