"""Model providers behind one small interface; nothing outside this package talks to a backend."""

from models_mgmt.providers.base import (
    ChatTurn,
    GenerationOptions,
    ModelInfo,
    Provider,
    ProviderChunk,
    ProviderError,
    Usage,
)

__all__ = ["ChatTurn", "GenerationOptions", "ModelInfo", "Provider", "ProviderChunk", "ProviderError", "Usage"]
