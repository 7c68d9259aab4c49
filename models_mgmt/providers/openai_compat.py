"""Any OpenAI-compatible server (llama.cpp server, vLLM, NVIDIA NIM, OpenAI): /models and SSE /chat/completions."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx

from models_mgmt.providers import http
from models_mgmt.providers.base import (
    ChatTurn,
    GenerationOptions,
    ModelInfo,
    ProviderChunk,
    ProviderError,
    Usage,
    estimate_tokens,
)

logger = logging.getLogger(__name__)


class OpenAICompatibleProvider:
    """`top_k` and `repeat_penalty` are sent too unless `send_extra_options` is off (strict OpenAI rejects them)."""

    name = "openai"

    def __init__(self, *, base_url: str, api_key: str = "", context_length: int = 4096, send_extra_options=True):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.context_length = context_length
        self.send_extra_options = send_extra_options

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def list_models(self) -> list[ModelInfo]:
        try:
            response = await http.client().get(f"{self.base_url}/models", headers=self._headers(), timeout=3.0)
            response.raise_for_status()
            items = response.json().get("data", [])
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("OpenAI-compatible server at %s is unreachable: %s", self.base_url, exc)
            return []
        return [
            ModelInfo(
                name=item["id"],
                provider=self.name,
                upstream=item["id"],
                context_length=int((item.get("meta") or {}).get("n_ctx_train") or self.context_length),
                modified_at=str(item.get("created", "")) or None,
                family=item.get("owned_by", ""),
                server=self.base_url,
            )
            for item in items
            if item.get("id")
        ]

    async def count_tokens(self, *, model: ModelInfo, texts: list[str]) -> list[int]:
        return [estimate_tokens(text) for text in texts]

    async def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Parse `data:` lines until `[DONE]`; leaving early closes the connection and frees the server."""
        body: dict = {
            "model": model.upstream,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
        }
        if self.send_extra_options:
            body.update(top_k=options.top_k, repeat_penalty=options.repeat_penalty)
        usage = Usage()
        try:
            async with http.stream(
                "POST", f"{self.base_url}/chat/completions", json=body, headers=self._headers()
            ) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")[:500]
                    raise ProviderError(f"Server answered {response.status_code}: {text}")
                lines = http.iter_lines(response)
                async for line in lines:
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        await http.drain(lines)
                        yield ProviderChunk(done=True, usage=usage)
                        return
                    try:
                        item = json.loads(payload)
                    except ValueError as exc:
                        raise ProviderError("The server sent a malformed event.") from exc
                    if item.get("error"):
                        raise ProviderError(f"Server error: {item['error']}")
                    if item.get("usage"):
                        usage = Usage(
                            prompt_tokens=item["usage"].get("prompt_tokens"),
                            completion_tokens=item["usage"].get("completion_tokens"),
                        )
                    for choice in item.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content") or ""
                        if delta:
                            yield ProviderChunk(delta=delta)
        except httpx.HTTPError as exc:
            raise ProviderError(f"Server at {self.base_url} failed: {exc.__class__.__name__}") from exc
        raise ProviderError("The server closed the stream before it was done.")
