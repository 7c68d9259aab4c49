"""Vector similarity behind one small interface; the default is an exact scan with numpy.

The exact scan reads the caller's readable vectors (the scope is in the SQL, as for full text) and ranks them
by cosine similarity. It is exact and needs no extra service; see the README for when it stops being enough.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from django.db.models import QuerySet

from search.indexing import from_blobs
from search.models import Document


class VectorIndex(Protocol):
    def search(self, *, scope: QuerySet[Document], vector: np.ndarray, model: str, k: int) -> list[tuple[int, float]]:
        """The `k` rows of `scope` nearest to `vector` (unit length) as (row id, cosine similarity), best first."""
        ...


class ExactScanIndex:
    """Every readable vector of the current model, one matrix product."""

    def search(self, *, scope: QuerySet[Document], vector: np.ndarray, model: str, k: int) -> list[tuple[int, float]]:
        current = scope.filter(embedding_model=model, vector__isnull=False).order_by()
        rows = list(current.values_list("id", "vector"))
        if not rows or k <= 0:
            return []
        ids = np.fromiter((pk for pk, _ in rows), dtype=np.int64, count=len(rows))
        matrix = from_blobs((blob for _, blob in rows), vector.shape[0])
        scores = matrix @ vector.astype(np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top]


vector_index: VectorIndex = ExactScanIndex()
