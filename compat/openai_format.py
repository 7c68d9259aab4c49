"""OpenAI's chat completion objects and its server-sent chunk stream, built from a run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from compat.errors import openai_error
from compat.runs import CompletionRun, Outcome
from compat.serializers import AUTO
from models_mgmt.providers import ModelInfo


def sse(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def completion_id(run: CompletionRun) -> str:
    return "chatcmpl-" + run.stream_id.replace("-", "")


def usage_body(outcome: Outcome) -> dict:
    return {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}


def completion_body(run: CompletionRun, outcome: Outcome) -> dict:
    """A `chat.completion` object: one choice with the whole reply."""
    return {
        "id": completion_id(run),
        "object": "chat.completion",
        "created": run.created,
        "model": run.model,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": outcome.text, "refusal": None},
            "logprobs": None,
            "finish_reason": outcome.finish_reason,
        }],
        "usage": usage_body(outcome),
    }


async def completion_chunks(run: CompletionRun, *, include_usage: bool) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` events: the role in the first delta, `finish_reason` null until the last choice
    chunk, then (when asked for) a usage chunk with no choices, then `[DONE]`. A reply that fails midway ends
    with an `error` event instead, which the official clients raise."""
    head = {"id": completion_id(run), "object": "chat.completion.chunk", "created": run.created, "model": run.model,
            "system_fingerprint": None}
    tail = {"usage": None} if include_usage else {}

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse({**head, "choices": [choice], **tail})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    async for event in run.events():
        if event["type"] == "stream.token":
            yield chunk({"content": event["delta"]})
    failure = await run.failure()
    if failure is not None:
        yield sse(openai_error(status=failure.status_code, code=failure.error_code, message=str(failure.detail)))
        return
    outcome = run.outcome()
    yield chunk({}, outcome.finish_reason)
    if include_usage:
        yield sse({**head, "choices": [], "usage": usage_body(outcome)})
    yield sse("[DONE]")


def _created(model: ModelInfo) -> int:
    """Seconds since the epoch of the model's file or listing, 0 when the backend gives no time."""
    if not model.modified_at:
        return 0
    try:
        return int(datetime.fromisoformat(model.modified_at).timestamp())
    except ValueError:
        return int(model.modified_at) if model.modified_at.isdigit() else 0


def model_entry(model: ModelInfo) -> dict:
    return {"id": model.name, "object": "model", "created": _created(model), "owned_by": model.provider}


def auto_entry() -> dict:
    """`auto`, listed beside the catalogue: it picks the default model until the adaptive router exists."""
    return {"id": AUTO, "object": "model", "created": 0, "owned_by": "router"}
