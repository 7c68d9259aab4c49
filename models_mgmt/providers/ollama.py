"""Ollama through the official `ollama` client: /api/tags to list, streaming /api/chat to generate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import ollama

from models_mgmt.providers.base import (
    ChatTurn,
    GenerationOptions,
    ModelInfo,
    ProviderChunk,
    ProviderError,
    Usage,
    estimate_tokens,
)
from models_mgmt.providers.clients import (
    BODY_END_TIMEOUT,
    CONNECT_TIMEOUT,
    LIST_TIMEOUT,
    READ_TIMEOUT,
    PerLoop,
    forget_cookies,
)

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096

TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, write=30.0, pool=30.0)
# Idle connections are kept long enough to serve the next reply after a pause in a conversation.
LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30.0)

UNREACHABLE = "The Ollama server is not reachable."
FAILED = "The Ollama server returned an error."


def _client_for(url: str) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=url, timeout=TIMEOUT, limits=LIMITS, event_hooks={"request": [forget_cookies]})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class OllamaProvider:
    """One or more Ollama servers; a model present on several goes to the least busy one."""

    name = "ollama"

    def __init__(self, *, urls: list[str], keep_alive: str | None = None):
        self.urls = [url.rstrip("/") for url in urls]
        self.keep_alive = keep_alive
        self._clients: PerLoop[ollama.AsyncClient] = PerLoop(_client_for)
        self._in_flight: dict[str, int] = {url: 0 for url in self.urls}
        self._servers_for: dict[str, list[str]] = {}

    async def _tags(self, url: str) -> list[ollama.ListResponse.Model]:
        try:
            async with asyncio.timeout(LIST_TIMEOUT):
                return list((await self._clients.get(url).list()).models)
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError, TimeoutError, ValueError) as exc:
            logger.warning("Ollama at %s could not list its models: %r", url, exc)
            return []

    async def list_models(self) -> list[ModelInfo]:
        results = await asyncio.gather(*(self._tags(url) for url in self.urls))
        seen: dict[str, ModelInfo] = {}
        servers_for: dict[str, list[str]] = {}
        for url, models in zip(self.urls, results, strict=True):
            for item in models:
                name = item.model
                if not name:
                    continue
                servers_for.setdefault(name, []).append(url)
                if name in seen:
                    continue
                seen[name] = ModelInfo(
                    name=name,
                    provider=self.name,
                    upstream=name,
                    context_length=DEFAULT_CONTEXT,
                    size=int(item.size) if item.size is not None else None,
                    modified_at=_iso(item.modified_at),
                    family=(item.details.family or "") if item.details else "",
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

    async def unload_all(self) -> list[str]:
        """Ask every server to drop every model it holds (`keep_alive: 0`); an unreachable server is skipped."""

        async def unload_on(url: str) -> list[str]:
            client = self._clients.get(url)
            try:
                async with asyncio.timeout(LIST_TIMEOUT):
                    loaded = [item.model for item in (await client.ps()).models if item.model]
                    await asyncio.gather(*(client.generate(model=name, keep_alive=0) for name in loaded))
            except (ollama.ResponseError, httpx.HTTPError, ConnectionError, TimeoutError, ValueError) as exc:
                logger.warning("Ollama at %s could not unload its models: %r", url, exc)
                return []
            return [f"{url} {name}" for name in loaded]

        return [name for names in await asyncio.gather(*(unload_on(url) for url in self.urls)) for name in names]

    async def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Stream the reply; leaving early closes the response, and so the connection, which stops Ollama."""
        url = self._pick_server(model)
        self._in_flight[url] = self._in_flight.get(url, 0) + 1
        try:
            parts = await self._clients.get(url).chat(
                model=model.upstream,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                stream=True,
                options=_ollama_options(options, model),
                keep_alive=self.keep_alive or None,
            )
            # The client's stream is an async generator around the streamed response: closing it closes both.
            async with contextlib.aclosing(parts):
                async for part in parts:
                    delta = part.message.content or ""
                    if delta:
                        yield ProviderChunk(delta=delta)
                    if part.done:
                        await _read_to_end(parts)
                        yield ProviderChunk(
                            done=True,
                            usage=Usage(prompt_tokens=part.prompt_eval_count, completion_tokens=part.eval_count),
                            finish_reason=part.done_reason or "",
                        )
                        return
        except ollama.ResponseError as exc:
            logger.warning("Ollama at %s refused %s: %r", url, model.upstream, exc)
            if exc.status_code == 404:
                raise ProviderError(
                    "The model is not available on the Ollama server.", code="model_not_found", status=400
                ) from exc
            raise ProviderError(FAILED) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            logger.warning("Ollama at %s is unreachable: %r", url, exc)
            raise ProviderError(UNREACHABLE, code="backend_unavailable") from exc
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("Ollama at %s failed during a reply: %r", url, exc)
            raise ProviderError(FAILED) from exc
        finally:
            self._in_flight[url] -= 1
        logger.warning("Ollama at %s ended a reply before it was done", url)
        raise ProviderError("The Ollama server ended the reply before it was done.")


def _ollama_options(options: GenerationOptions, model: ModelInfo) -> dict:
    """Ollama's names for the sampling options; stop strings and the seed only when given."""
    mapped: dict = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "repeat_penalty": options.repeat_penalty,
        "num_predict": options.max_tokens,
        "num_ctx": model.context_length,
    }
    if options.stop:
        mapped["stop"] = list(options.stop)
    if options.seed is not None:
        mapped["seed"] = options.seed
    return mapped


async def _read_to_end(parts: AsyncIterator[ollama.ChatResponse]) -> None:
    """Read what follows the final part, so the connection goes back to the pool instead of being closed."""
    # The reply is complete by now: a server that ends the body badly only costs its connection.
    with contextlib.suppress(TimeoutError, httpx.HTTPError, ValueError, ollama.ResponseError):
        async with asyncio.timeout(BODY_END_TIMEOUT):
            async for _ in parts:
                pass
