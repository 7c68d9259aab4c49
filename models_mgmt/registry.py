"""Which providers are configured, which models they offer, and which one a request means.

The catalogue (every server's models and what each holds in memory) is kept for MODEL_LIST_TTL_SECONDS. Once
it is older, callers get it at once and one refresh runs in the background, so a dead or slow server costs a
listing nothing; each server is given MODEL_SERVER_TIMEOUT_SECONDS per refresh and is reported down, with the
reason, when it does not answer in time.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from models_mgmt.providers.base import LoadedModel, ModelInfo, Provider, ProviderError, ServerReport

logger = logging.getLogger(__name__)

PROVIDER_SETTINGS = {
    "LOCAL_MODELS_ENABLED", "MODELS_DIR", "LOCAL_N_CTX", "LOCAL_N_THREADS", "OLLAMA_URLS", "OLLAMA_KEEP_ALIVE",
    "OLLAMA_NUM_CTX", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_CONTEXT_LENGTH", "OPENAI_SEND_EXTRA_OPTIONS",
    "DEFAULT_MODEL", "MODEL_LIST_TTL_SECONDS", "MODEL_SERVER_TIMEOUT_SECONDS",
}


@dataclass(frozen=True)
class Catalogue:
    """One listing of every server: the models (one entry per provider and name), and each server's report."""

    models: tuple[ModelInfo, ...] = ()
    servers: tuple[ServerReport, ...] = ()
    listed_at: float = 0.0  # time.time() when the listing finished; 0 for none yet
    started: float = 0.0  # time.monotonic() when it began, so a slower, older listing never replaces a newer one
    refreshing: bool = False  # a background refresh was running when this was handed out
    loaded: tuple[LoadedModel, ...] = field(default=())

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.listed_at) if self.listed_at else 0.0


def names_model(wanted: str, model: ModelInfo) -> bool:
    """`provider/name` or the plain name; a name without a tag means its `:latest`, as Ollama reads it."""
    names = (model.qualified_name, model.name)
    if wanted in names:
        return True
    return ":" not in wanted.rsplit("/", 1)[-1] and f"{wanted}:latest" in names


class _BackgroundLoop:
    """One event loop on a daemon thread per process, for refreshes no request waits for."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, coroutine) -> Future:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="models-refresh", daemon=True).start()
                self._loop = loop
        # In a fresh context: the caller's (a request's) context holds asgiref's executor for that request, and
        # sync calls made through it after the request ends would fail ("CurrentThreadExecutor already quit").
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coroutine, self._loop)


BACKGROUND = _BackgroundLoop()


class ModelRegistry:
    """Built lazily from settings; the catalogue is cached so a send does not re-query every backend."""

    def __init__(self) -> None:
        self._providers: list[Provider] | None = None
        self._catalogue = Catalogue()
        self._generation = 0  # bumped by reset, so a refresh begun with old settings is dropped
        self._refreshing: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._background: Future | None = None
        self._state_lock = threading.Lock()
        # Called on each catalogue read; each must be cheap once it has done its work (the hot-slot keeper's start).
        self.on_use: list[Callable[[], None]] = []

    def reset(self) -> None:
        with self._state_lock:
            self._providers = None
            self._catalogue = Catalogue()
            self._generation += 1
            self._background = None

    def providers(self) -> list[Provider]:
        if self._providers is None:
            self._providers = _build_providers()
        return self._providers

    def provider(self, name: str) -> Provider:
        for provider in self.providers():
            if provider.name == name:
                return provider
        raise ProviderError(f"Provider {name!r} is not configured.", code="model_not_found", status=400)

    def _fresh(self, catalogue: Catalogue) -> bool:
        return bool(catalogue.listed_at) and catalogue.age_seconds < settings.MODEL_LIST_TTL_SECONDS

    async def _survey(self) -> Catalogue:
        """Ask every server now, each within MODEL_SERVER_TIMEOUT_SECONDS, and keep the answer."""
        generation, started = self._generation, time.monotonic()
        providers = self.providers()
        timeout = settings.MODEL_SERVER_TIMEOUT_SECONDS
        reports = await asyncio.gather(*(provider.survey(timeout=timeout) for provider in providers))
        servers = tuple(report for provider_reports in reports for report in provider_reports)
        seen: dict[str, ModelInfo] = {}
        for report in servers:
            for model in report.models:
                seen.setdefault(model.qualified_name, model)
        catalogue = Catalogue(models=tuple(seen.values()), servers=servers, listed_at=time.time(), started=started,
                              loaded=tuple(item for report in servers for item in report.loaded))
        with self._state_lock:
            if generation == self._generation and started >= self._catalogue.started:
                self._catalogue = catalogue
        return catalogue

    def _refresh_in_background(self) -> bool:
        """Start one background refresh unless one is running already; answers True (one is running now)."""
        with self._state_lock:
            if self._background is None or self._background.done():
                self._background = BACKGROUND.submit(self._survey())
        return True

    async def catalogue(self, *, refresh: bool = False) -> Catalogue:
        """The last listing, refreshed in the background once older than MODEL_LIST_TTL_SECONDS.

        With none yet, or `refresh`, this caller asks the servers and others on its loop wait for its answer.
        """
        for hook in self.on_use:
            hook()
        current = self._catalogue
        if not refresh and current.listed_at:
            if self._fresh(current):
                return current
            return replace(current, refreshing=self._refresh_in_background())
        asked_at = time.monotonic()
        lock = self._refreshing.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._catalogue.started >= asked_at and self._catalogue.listed_at:
                return self._catalogue  # another caller on this loop listed while this one waited
            return await self._survey()

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The catalogue's models (see `catalogue` for how fresh)."""
        return list((await self.catalogue(refresh=refresh)).models)

    def find(self, qualified_or_name: str) -> ModelInfo | None:
        """A model of the last listing by `provider/name` or plain name, without asking any server."""
        for model in self._catalogue.models:
            if names_model(qualified_or_name, model):
                return model
        return None

    async def unload_all(self) -> list[str]:
        """Every provider frees the models it holds (the panic switch's optional step)."""
        lists = await asyncio.gather(*(provider.unload_all() for provider in self.providers()))
        return [f"{provider.name}: {name}" for provider, names in zip(self.providers(), lists, strict=True)
                for name in names]

    async def resolve(self, name: str | None, *, ask_backends_on_miss: bool = True) -> ModelInfo:
        """Exact `provider/model` or plain name; empty means the default model. A name not in the cached list
        makes the backends be asked again, unless the caller (one not yet authenticated) says not to."""
        for refresh in (False, True) if ask_backends_on_miss else (False,):
            models = await self.list_models(refresh=refresh)
            if not models:
                continue
            wanted = (name or settings.DEFAULT_MODEL or "").strip()
            if not wanted:
                return next((m for m in models if m.provider == "local"), models[0])
            for model in models:
                if names_model(wanted, model):
                    return model
        if not name and not settings.DEFAULT_MODEL:
            raise ProviderError("No model backend is available.", code="no_backend", status=503)
        raise ProviderError(f"Unknown model {name or settings.DEFAULT_MODEL!r}.", code="model_not_found", status=400)


def _build_providers() -> list[Provider]:
    providers: list[Provider] = []
    if settings.LOCAL_MODELS_ENABLED:
        from models_mgmt.providers.local import LocalProvider

        providers.append(
            LocalProvider(
                models_dir=settings.MODELS_DIR, n_ctx=settings.LOCAL_N_CTX, n_threads=settings.LOCAL_N_THREADS
            )
        )
    if settings.OLLAMA_URLS:
        from models_mgmt.providers.ollama import OllamaProvider

        providers.append(OllamaProvider(urls=settings.OLLAMA_URLS, keep_alive=settings.OLLAMA_KEEP_ALIVE or None,
                                        num_ctx=settings.OLLAMA_NUM_CTX,
                                        list_timeout=settings.MODEL_SERVER_TIMEOUT_SECONDS))
    if settings.OPENAI_BASE_URL:
        from models_mgmt.providers.openai_compat import OpenAICompatibleProvider

        providers.append(
            OpenAICompatibleProvider(
                base_url=settings.OPENAI_BASE_URL,
                api_key=settings.OPENAI_API_KEY,
                context_length=settings.OPENAI_CONTEXT_LENGTH,
                send_extra_options=settings.OPENAI_SEND_EXTRA_OPTIONS,
                list_timeout=settings.MODEL_SERVER_TIMEOUT_SECONDS,
            )
        )
    return providers


registry = ModelRegistry()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs) -> None:
    """Tests (and reloads) that change provider settings get providers built from the new values."""
    if setting in PROVIDER_SETTINGS:
        registry.reset()
