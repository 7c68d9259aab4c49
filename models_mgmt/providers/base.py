"""The provider interface: list models, stream a chat completion as deltas, count tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling options every provider maps onto its own parameter names."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    stop: tuple[str, ...] = ()  # generation ends before any of these strings
    seed: int | None = None  # the same seed and options give the same reply on backends that honour it
    keep_alive: str | int | None = None  # how long Ollama keeps the model loaded after it; None: the server's
    # The sampling options the caller set itself; the others may take the model's defaults.
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ChatTurn:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class ModelInfo:
    """A model as clients see it; `name` is what they send, `upstream` what the backend calls it."""

    name: str
    provider: str
    upstream: str
    context_length: int
    size: int | None = None
    modified_at: str | None = None
    family: str = ""
    capabilities: tuple[str, ...] = ("chat",)
    server: str = ""  # backend base URL or file path
    # The window the model was trained for; `context_length` is the one used (and trimmed to), at most this.
    max_context_length: int | None = None
    parameter_size: str = ""
    quantization: str = ""
    instruct: bool = False  # tuned to follow chat instructions (it has a chat template)
    digest: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.provider}/{self.upstream}"


@dataclass(frozen=True)
class LoadedModel:
    """A model held in memory by a backend now, as Ollama's /api/ps reports it (or the local worker)."""

    provider: str
    upstream: str
    server: str
    size: int = 0  # bytes of memory in all
    size_vram: int = 0  # of which on the GPU
    expires_at: str | None = None  # when it unloads unless used; far in the future when kept forever
    context_length: int | None = None


@dataclass(frozen=True)
class ServerReport:
    """One backend server as the catalogue last saw it: up with its models and what it holds, or down and why."""

    provider: str
    server: str  # base URL, or "local" for this worker's llama.cpp
    label: str  # what non-staff see instead of an address: local, ollama-1, openai
    ok: bool
    error: str = ""
    models: tuple[ModelInfo, ...] = ()
    loaded: tuple[LoadedModel, ...] = ()
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


NO_USAGE = Usage()


@dataclass(slots=True)
class ProviderChunk:
    """One step of a stream: a text delta, or the final usage when `done` (one is built per token, hence slots).

    A `done` chunk's `finish_reason` is `stop` (the model ended or hit a stop string) or `length` (max_tokens),
    when the backend says which.
    """

    delta: str = ""
    done: bool = False
    usage: Usage = NO_USAGE
    finish_reason: str = ""


class ProviderError(Exception):
    """A backend failed or refused; `code` is safe to show to the user."""

    def __init__(self, message: str, *, code: str = "backend_error", status: int = 503):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class Provider(Protocol):
    name: str

    async def list_models(self) -> list[ModelInfo]: ...

    def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Yield deltas then one `done` chunk; closing the iterator early must free the backend."""
        ...

    async def count_tokens(self, *, model: ModelInfo, texts: list[str]) -> list[int]:
        """Tokens of each text, in one call: a prompt is fitted from many turns at once."""
        ...

    async def unload_all(self) -> list[str]:
        """Free the memory of every model this provider holds; names what was unloaded. Never cuts a reply off."""
        ...

    async def survey(self, *, timeout: float) -> list[ServerReport]:
        """Each server's models and loaded models, every server given at most `timeout` seconds."""
        ...

    async def load(self, *, model: ModelInfo, keep_alive: str | int | None = None) -> list[str]:
        """Load the model and answer once it is ready; names the servers that loaded it."""
        ...

    async def unload(self, *, model: ModelInfo) -> list[str]:
        """Free the model's memory without cutting a reply off; names the servers that held it."""
        ...


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate (about four characters a token) for backends with no tokenizer."""
    return max(1, (len(text) + 3) // 4) if text else 0


def describe_failure(exc: BaseException, *, timeout: float) -> str:
    """Why a server could not be listed, in words fit for the catalogue (no address, no traceback)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0:
        return f"answered HTTP {status}"
    if isinstance(exc, ConnectionError) or "Connect" in type(exc).__name__:
        return "connection refused"
    return type(exc).__name__
