"""Ollama over its HTTP API: /api/tags to list, streaming NDJSON /api/chat to generate."""

from __future__ import annotations

import asyncio
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

DEFAULT_CONTEXT = 4096


class OllamaProvider:
    """One or more Ollama servers; a model present on several goes to the least busy one."""

    name = "ollama"

    def __init__(self, *, urls: list[str], keep_alive: str | None = None):
        self.urls = [url.rstrip("/") for url in urls]
        self.keep_alive = keep_alive
        self._in_flight: dict[str, int] = {url: 0 for url in self.urls}
        self._servers_for: dict[str, list[str]] = {}

    async def _tags(self, url: str) -> list[dict]:
        try:
            response = await http.client().get(f"{url}/api/tags", timeout=3.0)
            response.raise_for_status()
            return response.json().get("models", [])
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("Ollama at %s is unreachable: %s", url, exc)
            return []

    async def list_models(self) -> list[ModelInfo]:
        results = await asyncio.gather(*(self._tags(url) for url in self.urls))
        seen: dict[str, ModelInfo] = {}
        servers_for: dict[str, list[str]] = {}
        for url, models in zip(self.urls, results, strict=True):
            for item in models:
                name = item.get("name") or item.get("model")
                if not name:
                    continue
                servers_for.setdefault(name, []).append(url)
                if name in seen:
                    continue
                details = item.get("details") or {}
                seen[name] = ModelInfo(
                    name=name,
                    provider=self.name,
                    upstream=name,
                    context_length=int(item.get("context_length") or DEFAULT_CONTEXT),
                    size=item.get("size"),
                    modified_at=item.get("modified_at"),
                    family=details.get("family", ""),
                    capabilities=("embed",) if "embed" in name else ("chat",),
                    server=url,
                )
        self._servers_for = servers_for
        return list(seen.values())

    def _pick_server(self, model: ModelInfo) -> str:
        """The least busy server that has the model (as of the last listing)."""
        candidates = self._servers_for.get(model.upstream) or [model.server or self.urls[0]]
        return min(candidates, key=lambda url: self._in_flight.get(url, 0))

    async def count_tokens(self, *, model: ModelInfo, texts: list[str]) -> list[int]:
        return [estimate_tokens(text) for text in texts]

    async def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Stream NDJSON lines; leaving early closes the connection, which makes Ollama stop generating."""
        url = self._pick_server(model)
        body = {
            "model": model.upstream,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "options": {
                "temperature": options.temperature,
                "top_p": options.top_p,
                "top_k": options.top_k,
                "repeat_penalty": options.repeat_penalty,
                "num_predict": options.max_tokens,
                "num_ctx": model.context_length,
            },
        }
        if self.keep_alive:
            body["keep_alive"] = self.keep_alive
        self._in_flight[url] = self._in_flight.get(url, 0) + 1
        finished = False
        try:
            async with http.stream("POST", f"{url}/api/chat", json=body) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")[:500]
                    raise ProviderError(f"Ollama answered {response.status_code}: {text}", code="backend_error")
                lines = http.iter_lines(response)
                async for line in lines:
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError as exc:
                        raise ProviderError("Ollama sent a malformed stream line.") from exc
                    if item.get("error"):
                        raise ProviderError(f"Ollama error: {item['error']}")
                    delta = (item.get("message") or {}).get("content") or ""
                    if delta:
                        yield ProviderChunk(delta=delta)
                    if item.get("done"):
                        finished = True
                        await http.drain(lines)
                        yield ProviderChunk(
                            done=True,
                            usage=Usage(
                                prompt_tokens=item.get("prompt_eval_count"), completion_tokens=item.get("eval_count")
                            ),
                        )
                        return
        except httpx.HTTPError as exc:
            raise ProviderError(f"Ollama at {url} failed: {exc.__class__.__name__}") from exc
        finally:
            self._in_flight[url] -= 1
        if not finished:
            raise ProviderError("Ollama closed the stream before it was done.")
