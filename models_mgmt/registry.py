"""Which providers are configured, which models they offer, and which one a request means."""

from __future__ import annotations

import asyncio
import time

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from models_mgmt.providers.base import ModelInfo, Provider, ProviderError

PROVIDER_SETTINGS = {
    "LOCAL_MODELS_ENABLED", "MODELS_DIR", "LOCAL_N_CTX", "LOCAL_N_THREADS", "OLLAMA_URLS", "OLLAMA_KEEP_ALIVE",
    "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_CONTEXT_LENGTH", "OPENAI_SEND_EXTRA_OPTIONS", "DEFAULT_MODEL",
    "MODEL_LIST_TTL_SECONDS",
}


class ModelRegistry:
    """Built lazily from settings; the model list is cached briefly so a send does not re-query every backend."""

    def __init__(self) -> None:
        self._providers: list[Provider] | None = None
        self._models: list[ModelInfo] = []
        self._listed_at = 0.0
        self._refreshing: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def reset(self) -> None:
        self._providers = None
        self._models = []
        self._listed_at = 0.0

    def providers(self) -> list[Provider]:
        if self._providers is None:
            self._providers = _build_providers()
        return self._providers

    def provider(self, name: str) -> Provider:
        for provider in self.providers():
            if provider.name == name:
                return provider
        raise ProviderError(f"Provider {name!r} is not configured.", code="model_not_found", status=400)

    def _fresh(self) -> bool:
        return bool(self._models) and time.monotonic() - self._listed_at < settings.MODEL_LIST_TTL_SECONDS

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Cached briefly; when it expires, one caller asks the backends and the others wait for its answer."""
        if refresh or not self._fresh():
            asked_at = time.monotonic()
            lock = self._refreshing.setdefault(asyncio.get_running_loop(), asyncio.Lock())
            async with lock:
                if self._listed_at < asked_at and (refresh or not self._fresh()):
                    lists = await asyncio.gather(*(provider.list_models() for provider in self.providers()))
                    self._models = [model for models in lists for model in models]
                    self._listed_at = time.monotonic()
        return list(self._models)

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
                if wanted in (model.qualified_name, model.name):
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

        providers.append(OllamaProvider(urls=settings.OLLAMA_URLS, keep_alive=settings.OLLAMA_KEEP_ALIVE or None))
    if settings.OPENAI_BASE_URL:
        from models_mgmt.providers.openai_compat import OpenAICompatibleProvider

        providers.append(
            OpenAICompatibleProvider(
                base_url=settings.OPENAI_BASE_URL,
                api_key=settings.OPENAI_API_KEY,
                context_length=settings.OPENAI_CONTEXT_LENGTH,
                send_extra_options=settings.OPENAI_SEND_EXTRA_OPTIONS,
            )
        )
    return providers


registry = ModelRegistry()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs) -> None:
    """Tests (and reloads) that change provider settings get providers built from the new values."""
    if setting in PROVIDER_SETTINGS:
        registry.reset()
