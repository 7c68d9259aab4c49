"""Any OpenAI-compatible server (llama.cpp server, vLLM, NVIDIA NIM, OpenAI) through the official `openai` client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import openai

from models_mgmt.providers.base import (
    NO_USAGE,
    ChatTurn,
    GenerationOptions,
    ModelInfo,
    ProviderChunk,
    ProviderError,
    ServerReport,
    Usage,
    describe_failure,
    estimate_tokens,
)
from models_mgmt.providers.clients import CONNECT_TIMEOUT, READ_TIMEOUT, PerLoop, forget_cookies

logger = logging.getLogger(__name__)

UNREACHABLE = "The model server is not reachable."
FAILED = "The model server returned an error."
# The client insists on a key; with none configured (a local server) it stands in, and each request
# leaves the Authorization header out.
NO_KEY = "none"


class OpenAICompatibleProvider:
    """`top_k` and `repeat_penalty` are sent too unless `send_extra_options` is off (strict OpenAI rejects them)."""

    name = "openai"

    def __init__(self, *, base_url: str, api_key: str = "", context_length: int = 4096, send_extra_options=True,
                 list_timeout: float = 2.0):
        self.base_url = base_url.rstrip("/")
        self.list_timeout = list_timeout
        self.api_key = api_key
        self.context_length = context_length
        self.send_extra_options = send_extra_options
        self._headers: dict[str, Any] = {} if api_key else {"Authorization": openai.omit}
        self._clients: PerLoop[openai.AsyncOpenAI] = PerLoop(self._new_client)

    def _new_client(self, base_url: str) -> openai.AsyncOpenAI:
        # Retries would hold a reply's error back for seconds; the user can send again.
        return openai.AsyncOpenAI(
            base_url=base_url,
            api_key=self.api_key or NO_KEY,
            max_retries=0,
            timeout=openai.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [forget_cookies]}),
        )

    def client(self) -> openai.AsyncOpenAI:
        """The running loop's client, because a client's connections belong to the loop that opened them."""
        return self._clients.get(self.base_url)

    async def list_models(self) -> list[ModelInfo]:
        return [model for report in await self.survey() for model in report.models]

    async def survey(self, *, timeout: float | None = None) -> list[ServerReport]:
        """The server's /models; it reports nothing about what is loaded, so nothing is listed as loaded."""
        timeout = timeout or self.list_timeout
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                page = await self.client().models.list(extra_headers=self._headers)
            items = [model.model_dump() for model in page.data]
        except (openai.OpenAIError, TimeoutError, ValueError) as exc:
            logger.warning("OpenAI-compatible server at %s could not list its models: %r", self.base_url, exc)
            return [ServerReport(provider=self.name, server=self.base_url, label=self.name, ok=False,
                                 error=describe_failure(exc, timeout=timeout),
                                 elapsed_ms=(time.monotonic() - started) * 1000)]
        return [ServerReport(provider=self.name, server=self.base_url, label=self.name, ok=True,
                             models=tuple(self._model_info(item) for item in items if item.get("id")),
                             elapsed_ms=(time.monotonic() - started) * 1000)]

    def _model_info(self, item: dict) -> ModelInfo:
        trained = (item.get("meta") or {}).get("n_ctx_train")
        return ModelInfo(
            name=item["id"],
            provider=self.name,
            upstream=item["id"],
            context_length=int(trained or self.context_length),
            max_context_length=int(trained) if trained else None,
            modified_at=str(item.get("created") or "") or None,
            family=item.get("owned_by") or "",
            server=self.base_url,
        )

    async def unload_all(self) -> list[str]:
        """The OpenAI API has no way to unload a model: the server manages its own memory."""
        return []

    async def load(self, *, model: ModelInfo, keep_alive: str | int | None = None) -> list[str]:
        raise ProviderError("An OpenAI-compatible server loads and unloads its models itself.",
                            code="not_supported", status=409)

    async def unload(self, *, model: ModelInfo) -> list[str]:
        raise ProviderError("An OpenAI-compatible server loads and unloads its models itself.",
                            code="not_supported", status=409)

    async def count_tokens(self, *, model: ModelInfo, texts: list[str]) -> list[int]:
        return [estimate_tokens(text) for text in texts]

    async def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Stream the completion; leaving early closes the response, and so the connection, which frees the server."""
        extra_body: dict[str, Any] | None = None
        if self.send_extra_options:
            extra_body = {"top_k": options.top_k, "repeat_penalty": options.repeat_penalty}
        usage, finished, received = NO_USAGE, "", False
        try:
            stream = await self.client().chat.completions.create(
                model=model.upstream,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                stream=True,
                stream_options={"include_usage": True},
                temperature=options.temperature,
                top_p=options.top_p,
                max_tokens=options.max_tokens,
                stop=list(options.stop) if options.stop else openai.omit,
                seed=options.seed if options.seed is not None else openai.omit,
                extra_body=extra_body,
                extra_headers=self._headers,
            )
            async with stream:  # closes the response however the loop is left
                async for chunk in stream:
                    received = True
                    if chunk.usage:
                        usage = Usage(
                            prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                        )
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield ProviderChunk(delta=choice.delta.content)
                        if choice.finish_reason:
                            finished = choice.finish_reason
        except openai.APIConnectionError as exc:
            logger.warning("OpenAI-compatible server at %s failed: %r", self.base_url, exc)
            if received:
                raise ProviderError(FAILED) from exc
            raise ProviderError(UNREACHABLE, code="backend_unavailable") from exc
        except openai.NotFoundError as exc:
            logger.warning("OpenAI-compatible server at %s has no %s: %r", self.base_url, model.upstream, exc)
            raise ProviderError("The model is not available on the model server.", code="model_not_found",
                                status=400) from exc
        except (openai.OpenAIError, ValueError) as exc:
            logger.warning("OpenAI-compatible server at %s failed: %r", self.base_url, exc)
            raise ProviderError(FAILED) from exc
        if not finished:
            logger.warning("OpenAI-compatible server at %s ended a reply before it was done", self.base_url)
            raise ProviderError("The model server ended the reply before it was done.")
        yield ProviderChunk(done=True, usage=usage, finish_reason=finished if finished in ("stop", "length") else "")
