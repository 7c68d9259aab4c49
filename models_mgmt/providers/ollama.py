"""Ollama through the official `ollama` client: /api/tags, /api/ps and /api/show to list, streaming /api/chat to
generate, an empty /api/generate with `keep_alive` to load and unload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import ollama

from models_mgmt.providers.base import (
    ChatTurn,
    GenerationOptions,
    LoadedModel,
    ModelInfo,
    ProviderChunk,
    ProviderError,
    ServerReport,
    Usage,
    describe_failure,
    estimate_tokens,
)
from models_mgmt.providers.clients import (
    BODY_END_TIMEOUT,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    PerLoop,
    forget_cookies,
)

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096
# Errors a request to an Ollama server can end in, besides the client's own.
FAILURES = (ollama.ResponseError, httpx.HTTPError, ConnectionError, TimeoutError, ValueError)

TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, write=30.0, pool=30.0)
# Idle connections are kept long enough to serve the next reply after a pause in a conversation.
LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30.0)

UNREACHABLE = "The Ollama server is not reachable."
FAILED = "The Ollama server returned an error."


def _client_for(url: str) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=url, timeout=TIMEOUT, limits=LIMITS, event_hooks={"request": [forget_cookies]})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class ShowFacts:
    """What /api/show says about a model version; it never changes for a digest, so it is asked once."""

    context_length: int | None
    capabilities: tuple[str, ...]
    instruct: bool


def facts_from_show(show: ollama.ShowResponse) -> ShowFacts:
    """Context from `model_info.<architecture>.context_length`; Ollama's capability names mapped onto ours.

    A model counts as instruction-tuned when it can call tools or its template lays out chat roles (a base
    model's template is just `{{ .Prompt }}`).
    """
    info = dict(show.modelinfo or {})
    arch = info.get("general.architecture") or ""
    context = info.get(f"{arch}.context_length")
    named = [str(item) for item in (show.capabilities or [])]
    capabilities = tuple(dict.fromkeys({"completion": "chat", "embedding": "embed"}.get(c, c) for c in named))
    template = show.template or ""
    instruct = "tools" in named or any(marker in template for marker in (".Messages", ".System", ".Role"))
    return ShowFacts(context_length=int(context) if isinstance(context, int) and context > 0 else None,
                     capabilities=capabilities or ("chat",), instruct=instruct)


class OllamaProvider:
    """One or more Ollama servers; a model present on several goes to the least busy one.

    `num_ctx` is the context window asked of Ollama (and prompts are trimmed to), at most the model's own:
    asking for a model's full window (often 128k) would make Ollama reserve memory for all of it.
    """

    name = "ollama"

    def __init__(self, *, urls: list[str], keep_alive: str | None = None, num_ctx: int = DEFAULT_CONTEXT,
                 list_timeout: float = 2.0):
        self.urls = [url.rstrip("/") for url in urls]
        self.keep_alive = keep_alive
        self.num_ctx = num_ctx
        self.list_timeout = list_timeout
        # Per model (its upstream name), a keep_alive that replaces the default: -1 for models in a hot slot.
        self.keep_alive_overrides: dict[str, str | int] = {}
        self._clients: PerLoop[ollama.AsyncClient] = PerLoop(_client_for)
        self._in_flight: dict[str, int] = {url: 0 for url in self.urls}
        self._servers_for: dict[str, list[str]] = {}
        self._facts: dict[tuple[str, str, str], ShowFacts] = {}

    def label(self, url: str) -> str:
        """What people without staff rights see instead of the address: ollama-1, ollama-2, ..."""
        return f"ollama-{self.urls.index(url) + 1}" if url in self.urls else "ollama"

    def keep_alive_for(self, model: ModelInfo, requested: str | int | None = None) -> str | int | None:
        """A hot slot's -1 first, then what the reply asks for (the model's default), then the server default."""
        fallback = requested if requested not in ("", None) else self.keep_alive
        value = self.keep_alive_overrides.get(model.upstream, fallback)
        return value if value not in ("", None) else None

    async def _show_all(self, url: str, names: list[tuple[str, str]], deadline: float) -> None:
        """Ask /api/show for the models not asked yet, in parallel, for as long as the server's time allows."""
        client = self._clients.get(url)

        async def show(name: str, digest: str) -> None:
            self._facts[(url, name, digest)] = facts_from_show(await client.show(name))

        tasks = [asyncio.ensure_future(show(name, digest)) for name, digest in names]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.warning("Ollama at %s could not describe a model: %r", url, task.exception())

    def _model_info(self, url: str, item: ollama.ListResponse.Model) -> ModelInfo:
        name = item.model or ""
        facts = self._facts.get((url, name, item.digest or ""))
        details = item.details
        trained = facts.context_length if facts else None
        return ModelInfo(
            name=name,
            provider=self.name,
            upstream=name,
            context_length=min(self.num_ctx, trained) if trained else self.num_ctx,
            max_context_length=trained,
            size=int(item.size) if item.size is not None else None,
            modified_at=_iso(item.modified_at),
            family=(details.family or "") if details else "",
            parameter_size=(details.parameter_size or "") if details else "",
            quantization=(details.quantization_level or "") if details else "",
            capabilities=facts.capabilities if facts else (("embed",) if "embed" in name else ("chat",)),
            instruct=facts.instruct if facts else False,
            digest=item.digest or "",
            server=url,
        )

    async def _survey_server(self, url: str, timeout: float) -> ServerReport:
        started = time.monotonic()
        deadline = started + timeout
        client = self._clients.get(url)
        try:
            async with asyncio.timeout(timeout):
                tags, running = await asyncio.gather(client.list(), client.ps())
        except FAILURES as exc:
            logger.warning("Ollama at %s could not list its models: %r", url, exc)
            return ServerReport(provider=self.name, server=url, label=self.label(url), ok=False,
                                error=describe_failure(exc, timeout=timeout),
                                elapsed_ms=(time.monotonic() - started) * 1000)
        items = [item for item in tags.models if item.model]
        unknown = [(item.model, item.digest or "") for item in items if (url, item.model, item.digest or "")
                   not in self._facts]
        await self._show_all(url, unknown, deadline)
        loaded = tuple(
            LoadedModel(provider=self.name, upstream=item.model, server=url, size=int(item.size or 0),
                        size_vram=int(item.size_vram or 0), expires_at=_iso(item.expires_at),
                        context_length=item.context_length)
            for item in running.models if item.model
        )
        return ServerReport(provider=self.name, server=url, label=self.label(url), ok=True,
                            models=tuple(self._model_info(url, item) for item in items), loaded=loaded,
                            elapsed_ms=(time.monotonic() - started) * 1000)

    async def survey(self, *, timeout: float | None = None) -> list[ServerReport]:
        """Every server at once, each given `timeout` seconds for its list, loaded models and descriptions."""
        reports = await asyncio.gather(*(self._survey_server(url, timeout or self.list_timeout)
                                         for url in self.urls))
        servers_for: dict[str, list[str]] = {}
        for report in reports:
            for model in report.models:
                servers_for.setdefault(model.upstream, []).append(report.server)
        self._servers_for = servers_for
        return list(reports)

    async def list_models(self) -> list[ModelInfo]:
        """One entry per model name; a model on several servers is listed once (with the first server)."""
        seen: dict[str, ModelInfo] = {}
        for report in await self.survey():
            for model in report.models:
                seen.setdefault(model.name, model)
        return list(seen.values())

    def _servers_with(self, model: ModelInfo) -> list[str]:
        return self._servers_for.get(model.upstream) or [model.server or self.urls[0]]

    async def load(self, *, model: ModelInfo, keep_alive: str | int | None = None) -> list[str]:
        """An empty generate on every server that has the model, with the context chat requests will ask for
        (another `num_ctx` would make Ollama load it again at the first reply); answers once all are ready."""
        keep = keep_alive if keep_alive is not None else self.keep_alive_for(model)

        async def load_on(url: str) -> str:
            await self._clients.get(url).generate(model=model.upstream, keep_alive=keep,
                                                  options={"num_ctx": model.context_length})
            return url

        results = await asyncio.gather(*(load_on(url) for url in self._servers_with(model)), return_exceptions=True)
        loaded = [result for result in results if isinstance(result, str)]
        failures = [result for result in results if isinstance(result, BaseException)]
        for failure in failures:
            logger.warning("Ollama could not load %s: %r", model.upstream, failure)
        if not loaded:
            if any(isinstance(f, ollama.ResponseError) and f.status_code == 404 for f in failures):
                raise ProviderError("The model is not available on the Ollama server.", code="model_not_found",
                                    status=400)
            raise ProviderError(UNREACHABLE if any(isinstance(f, httpx.ConnectError | ConnectionError)
                                                   for f in failures) else FAILED, code="load_failed")
        return loaded

    async def unload(self, *, model: ModelInfo) -> list[str]:
        """`keep_alive: 0` on each server that holds the model now; Ollama unloads it once its replies end."""

        async def unload_on(url: str) -> str | None:
            client = self._clients.get(url)
            try:
                async with asyncio.timeout(self.list_timeout):
                    held = any(item.model == model.upstream for item in (await client.ps()).models)
                if held:
                    await client.generate(model=model.upstream, keep_alive=0)
            except FAILURES as exc:
                logger.warning("Ollama at %s could not unload %s: %r", url, model.upstream, exc)
                return None
            return url if held else None

        results = await asyncio.gather(*(unload_on(url) for url in self.urls))
        return [url for url in results if url]

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
                async with asyncio.timeout(self.list_timeout):
                    loaded = [item.model for item in (await client.ps()).models if item.model]
                    await asyncio.gather(*(client.generate(model=name, keep_alive=0) for name in loaded))
            except FAILURES as exc:
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
                keep_alive=self.keep_alive_for(model, options.keep_alive),
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
