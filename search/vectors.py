"""Vector similarity behind one small interface; the default is an exact scan with numpy over cached vectors.

Each search asks the database for the caller's readable rows (the scope is in the SQL, as for full text), as
ids with each stored vector's key (`Document.vector_key`, read from an index), and ranks those rows' vectors,
which the process keeps in memory once read. The cache holds vectors only, never text; a row whose key differs
from the cached one (re-embedded, or an id reused after a rollback) is read again, a row of another model is
not ranked (the cache of a model only reads that model's vectors), and a deleted row cannot be ranked because
the database no longer lists it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from search.indexing import decode_blobs, vector_key
from search.models import Document

LOAD_BATCH = 5000  # rows read per query when filling the cache


class VectorIndex(Protocol):
    def search(self, *, scope: QuerySet[Document], vector: np.ndarray | Callable[[], np.ndarray], model: str,
               k: int) -> list[tuple[int, float]]:
        """The `k` rows of `scope` nearest to `vector` (unit length) as (row id, cosine similarity), best first.

        `vector` may be a function that waits for it, so the index can read the scope while the query embeds.
        """
        ...


@dataclass(frozen=True)
class Block:
    """Cached vectors of one model: ids sorted, with vector keys, int8 codes and scales in the same order."""

    ids: np.ndarray
    keys: np.ndarray
    codes: np.ndarray
    scales: np.ndarray

    @classmethod
    def empty(cls, dimension: int) -> Block:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.int8),
                   np.zeros(0, dtype=np.float32))

    def positions(self, ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of `ids` sits in the block, and which of them are there with the same stored vector (same key)."""
        if not len(self.ids):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        where = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return where, (self.ids[where] == ids) & (self.keys[where] == keys)

    def merged(self, ids: np.ndarray, keys: np.ndarray, codes: np.ndarray, scales: np.ndarray) -> Block:
        """A new block with these rows added, replacing any older vectors of the same ids."""
        keep = ~np.isin(self.ids, ids)
        all_ids = np.concatenate([self.ids[keep], ids])
        order = np.argsort(all_ids, kind="stable")
        return Block(all_ids[order], np.concatenate([self.keys[keep], keys])[order],
                     np.concatenate([self.codes[keep], codes])[order],
                     np.concatenate([self.scales[keep], scales])[order])


class VectorCache:
    """Vectors read from the database once per process, by model; blocks are replaced whole, never mutated."""

    def __init__(self) -> None:
        self._blocks: dict[str, Block] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()

    def rows(self, *, model: str, ids: np.ndarray, keys: np.ndarray,
             dimension: int) -> tuple[Block, np.ndarray]:
        """The block holding the current vector of each of `ids` that has one of `model`, and their positions."""
        block = self._blocks.get(model) or Block.empty(dimension)
        where, present = block.positions(ids, keys)
        if not present.all():  # rows of another model stay missing, and are asked for again until re-embedded
            block = self._load(model=model, ids=ids, keys=keys, missing=ids[~present], dimension=dimension)
            where, present = block.positions(ids, keys)
        return block, where[present]

    def _load(self, *, model: str, ids: np.ndarray, keys: np.ndarray, missing: np.ndarray, dimension: int) -> Block:
        """Read the missing rows' vectors into the model's block; a full block keeps only what `ids` needs."""
        loaded_ids, blobs = [], []
        for first in range(0, len(missing), LOAD_BATCH):
            batch = [int(pk) for pk in missing[first:first + LOAD_BATCH]]
            for pk, blob in (Document.objects.filter(pk__in=batch, embedding_model=model, vector__isnull=False)
                             .values_list("id", "vector")):
                loaded_ids.append(pk)
                blobs.append(bytes(blob))
        codes, scales = decode_blobs(blobs, dimension)
        fresh = np.asarray(loaded_ids, dtype=np.int64)
        fresh_keys = np.fromiter((vector_key(blob) for blob in blobs), dtype=np.int64, count=len(blobs))
        with self._lock:
            block = self._blocks.get(model) or Block.empty(dimension)
            if block.codes.shape[1] != dimension:
                block = Block.empty(dimension)
            elif len(block.ids) + len(fresh) > settings.SEARCH_VECTOR_CACHE_ROWS:
                where, present = block.positions(ids, keys)
                kept = np.sort(where[present])
                block = Block(block.ids[kept], block.keys[kept], block.codes[kept], block.scales[kept])
            block = block.merged(fresh, fresh_keys, codes, scales)
            self._blocks[model] = block
        return block


def scope_rows(scope: QuerySet[Document]) -> tuple[np.ndarray, np.ndarray]:
    """Ids and vector keys of the scope's rows that have a vector, in one query that an index covers."""
    sql, params = scope.filter(vector_key__isnull=False).order_by().values("id", "vector_key").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    ids = np.fromiter((pk for pk, _ in fetched), dtype=np.int64, count=len(fetched))
    return ids, np.fromiter((key for _, key in fetched), dtype=np.int64, count=len(fetched))


class ExactScanIndex:
    """Every readable vector of the current model, one matrix product over the cached int8 codes."""

    def __init__(self, cache: VectorCache) -> None:
        self.cache = cache

    def search(self, *, scope: QuerySet[Document], vector: np.ndarray | Callable[[], np.ndarray], model: str,
               k: int) -> list[tuple[int, float]]:
        ids, keys = scope_rows(scope)
        query = vector() if callable(vector) else vector
        if not len(ids) or k <= 0:
            return []
        block, where = self.cache.rows(model=model, ids=ids, keys=keys, dimension=query.shape[0])
        if not len(where):
            return []
        # einsum rather than a BLAS product: BLAS threads spin against the server's own on a busy machine.
        rows = np.take(block.codes, where, axis=0).astype(np.float32)
        scores = np.einsum("ij,j->i", rows, query.astype(np.float32)) * np.take(block.scales, where)
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(block.ids[where[i]]), float(scores[i])) for i in top]


vector_cache = VectorCache()
vector_index: VectorIndex = ExactScanIndex(vector_cache)
