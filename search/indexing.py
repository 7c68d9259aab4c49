"""Turning messages and file chunks into index rows and vectors, in the background.

Saved messages are handed to one indexing thread per process after their transaction commits; it chunks
them, writes their rows (the full-text index follows by itself), embeds the chunks in batches and stores the
vectors. Nothing here runs on the event loop or in a reply's start. What a crash leaves undone (a message
without rows, a row without a vector) is "pending": the thread sweeps it up when it starts, and
`manage.py reindex` does the same on demand.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable

import numpy as np
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from chat.models import Message, MessageStatus
from models_mgmt.embeddings import EmbeddingError, embedder
from search.chunking import chunk_text
from search.models import Document

logger = logging.getLogger(__name__)

BATCH_MESSAGES = 64  # messages the thread takes in one go
SWEEP_SECONDS = 60.0  # an idle thread looks for pending work this often
def to_blob(vector: np.ndarray) -> bytes:
    """A unit vector as int8 codes with a per-vector scale: a quarter of float32's bytes, same ranking."""
    vector = np.asarray(vector, dtype=np.float32)
    peak = float(np.abs(vector).max()) if vector.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    codes = np.clip(np.rint(vector / scale), -127, 127).astype(np.int8)
    return np.float32(scale).tobytes() + codes.tobytes()


def vector_key(blob: bytes) -> int:
    """A stored vector's first 8 bytes (its scale and first codes) as one integer: tells stored vectors apart."""
    return int.from_bytes(bytes(blob[:8]), "little", signed=True)


def blob_dtype(dimension: int) -> np.dtype:
    return np.dtype([("scale", "<f4"), ("codes", "i1", (dimension,))])


def decode_blobs(blobs: Iterable[bytes], dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors as (int8 codes, one row each; float32 scales), without expanding them to floats."""
    records = np.frombuffer(b"".join(bytes(blob) for blob in blobs), dtype=blob_dtype(dimension))
    return records["codes"].copy(), records["scale"].astype(np.float32)


def from_blobs(blobs: Iterable[bytes], dimension: int) -> np.ndarray:
    """Stored vectors as one float32 matrix, a row each."""
    codes, scales = decode_blobs(blobs, dimension)
    return codes.astype(np.float32) * scales[:, None]


def indexable_messages() -> QuerySet[Message]:
    """Messages whose text belongs in the index: live, finished, not empty."""
    return (Message.objects.filter(is_deleted=False, room__is_deleted=False).exclude(status=MessageStatus.STREAMING)
            .exclude(content=""))


def pending_messages() -> QuerySet[Message]:
    """Indexable messages with no index rows yet."""
    return indexable_messages().filter(~Exists(Document.objects.filter(message_id=OuterRef("pk"))))


def pending_documents() -> QuerySet[Document]:
    """Rows without a vector of the current engine and model."""
    return Document.objects.filter(Q(vector__isnull=True) | ~Q(embedding_model=embedder.model_name))


MESSAGE_FIELDS = ("id", "room_id", "role", "content", "created_at")


def chunk_message(message: Message) -> list[Document]:
    """A message's unsaved index rows, one per chunk, without vectors."""
    return [Document(room_id=message.room_id, message_id=message.pk, role=message.role, ordinal=chunk.ordinal,
                     text=chunk.text, line_start=chunk.line_start, line_end=chunk.line_end,
                     created_at=message.created_at)
            for chunk in chunk_text(message.content, max_tokens=settings.SEARCH_CHUNK_TOKENS,
                                    overlap_tokens=settings.SEARCH_CHUNK_OVERLAP_TOKENS)]


def draft_documents(message_ids: list) -> dict:
    """Each indexable message's text now and its unsaved rows: {message id: (content, rows)}, nothing written."""
    return {message.pk: (message.content, chunk_message(message))
            for message in indexable_messages().filter(pk__in=message_ids).only(*MESSAGE_FIELDS)}


def with_vectors(documents: list[Document], vectors: Iterable[bytes]) -> None:
    """Give unsaved rows their stored vectors, so each row is written once, whole."""
    model, now = embedder.model_name, timezone.now()
    for document, vector in zip(documents, vectors, strict=True):
        document.vector, document.vector_key = vector, vector_key(vector)
        document.embedding_model, document.indexed_at = model, now


@transaction.atomic
def write_message_documents(message_ids: list, drafts: dict | None = None) -> list[Document]:
    """Replace these messages' rows with their drafted rows, vectors included (an update afterwards would leave
    a dead copy of each row on PostgreSQL and split SQLite's pages), or fresh chunks without vectors for a
    message that says something else now; deleted messages get none."""
    drafts = drafts or {}
    Document.objects.filter(message_id__in=message_ids).delete()
    documents: list[Document] = []
    # Locked, so a deletion committing meanwhile either waits for these rows (and removes them) or is seen here.
    locked = indexable_messages().select_for_update(of=("self",)).filter(pk__in=message_ids)
    for message in locked.only(*MESSAGE_FIELDS):
        content, drafted = drafts.get(message.pk, (None, []))
        documents += drafted if content == message.content else chunk_message(message)
    return Document.objects.bulk_create(documents)


def embed_documents(documents: list[Document]) -> int:
    """Embed saved rows' text and store the vectors (file chunks, what a crash left); deleted rows stay deleted."""
    if not documents:
        return 0
    vectors = embedder.embed([document.text for document in documents])
    with_vectors(documents, [to_blob(vector) for vector in vectors])
    Document.objects.bulk_update(documents, ["vector", "vector_key", "embedding_model", "indexed_at"], batch_size=200)
    return len(documents)


def index_messages(message_ids: list) -> int:
    """Chunk and embed these messages before the transaction (a slow model never holds the database), then write
    their rows whole, or without vectors if the engine is down (full text still finds them); returns how many
    rows have a vector."""
    message_ids = list(message_ids)
    drafts = draft_documents(message_ids)
    documents = [document for _content, rows in drafts.values() for document in rows]
    try:
        vectors = embedder.embed([document.text for document in documents]) if documents else []
    except EmbeddingError:
        write_message_documents(message_ids)
        raise
    with_vectors(documents, [to_blob(vector) for vector in vectors])
    return sum(1 for document in write_message_documents(message_ids, drafts) if document.vector is not None)


def embed_pending_documents(limit: int = 256) -> int:
    """Embed up to `limit` rows still without a current vector (file chunks, or what a crash left)."""
    documents = list(pending_documents().only("id", "text")[:limit])
    return embed_documents(documents)


def index_pending(limit: int = BATCH_MESSAGES) -> int:
    """One step of the backfill: messages without rows, then rows without vectors. 0 means nothing is left."""
    ids = list(pending_messages().order_by("created_at").values_list("pk", flat=True)[:limit])
    done = index_messages(ids) if ids else 0
    return done + embed_pending_documents(limit) + len(ids)


def lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux nices threads one by one), so embedding yields the
    core to the event loop that streams replies."""
    if settings.SEARCH_INDEX_NICE and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.SEARCH_INDEX_NICE)
        except OSError:
            logger.debug("could not lower the indexing thread's priority")


class Indexer:
    """One daemon thread per process that indexes what it is handed, in batches, and sweeps at start."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = threading.Event()

    def enqueue_messages(self, message_ids: Iterable) -> None:
        if settings.SEARCH_INDEXING:
            self._busy.set()
            self._queue.put(("messages", [str(pk) for pk in message_ids]))
            self._ensure_thread()

    def enqueue_documents(self) -> None:
        """New file chunks are waiting for vectors."""
        if settings.SEARCH_INDEXING:
            self._busy.set()
            self._queue.put(("documents", []))
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything handed over so far is indexed (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._busy.is_set():
                return True
            time.sleep(0.02)
        return False

    def _take(self) -> tuple[list[str], bool]:
        """Block for work, then gather more until none has come for SEARCH_INDEX_DELAY_SECONDS (up to a batch),
        which keeps embedding off the moment a message is sent, when its reply starts."""
        try:
            kind, ids = self._queue.get(timeout=SWEEP_SECONDS)
        except queue.Empty:
            return [], True  # idle for a while: look for anything pending (imports, a crash's leftovers)
        self._busy.set()
        message_ids, documents = list(ids), kind == "documents"
        while len(message_ids) < BATCH_MESSAGES:
            try:
                kind, ids = self._queue.get(timeout=settings.SEARCH_INDEX_DELAY_SECONDS)
            except queue.Empty:
                break
            message_ids.extend(ids)
            documents = documents or kind == "documents"
        return message_ids, documents

    def _run(self) -> None:
        lower_priority()
        swept = False
        while True:
            message_ids, documents = self._take()
            try:
                close_old_connections()
                if message_ids:
                    index_messages(message_ids)
                if documents or not swept:
                    swept = True
                    while index_pending():
                        pass
            except EmbeddingError as exc:
                logger.warning("indexing paused: %s", exc.message)
            except Exception:  # noqa: BLE001 - the thread must outlive one bad batch; the sweep retries it
                logger.exception("indexing failed for %d messages", len(message_ids))
            finally:
                if self._queue.empty():
                    connections.close_all()
                    self._busy.clear()


indexer = Indexer()
