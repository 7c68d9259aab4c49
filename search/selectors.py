"""Reads for search, files and index statistics; every query is scoped to the asking user in its SQL."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Length
from rest_framework import exceptions

from chat.selectors import get_room_for_read, readable_room_parts, rooms_readable_by
from models_mgmt.embeddings import embedder
from search import fulltext
from search.indexing import pending_documents, pending_messages
from search.models import Attachment, Document
from search.vectors import vector_index

# Fusion, in one place: reciprocal rank fusion, equal weights, of the vector ranking and of the full-text rows
# that hold every query word, because a row sharing one common word with a question ("sleep", "night") outranked
# meaning when any-word matches were fused, while a row holding all the words (a name, a rare term) is strong
# evidence; `mode=fulltext` alone still matches any word, for recall.
RRF_K = 60  # reciprocal rank fusion's constant: how much the first few ranks dominate
CANDIDATES = 50  # rows each ranking contributes to the fusion
# What a hit reads of its row, room and file (hits, citations): the row's text, never its vector.
HIT_FIELDS = ("id", "room_id", "message_id", "attachment_id", "role", "ordinal", "text", "page", "line_start",
              "line_end", "created_at", "room__name", "room__owner__username", "attachment__name")


@dataclass(frozen=True)
class SearchFilters:
    room: str | None = None
    project: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    role: str | None = None  # user | assistant | file
    kind: str | None = None  # message | chunk


def readable_documents(user, filters: SearchFilters | None = None) -> QuerySet[Document]:
    """Index rows of rooms the user may read (own rooms; a founder's team rooms).

    Rows of deleted messages are gone already: deleting a message removes them in its transaction, and the
    indexer writes a message's rows with the message locked (see `write_message_documents`).
    """
    filters = filters or SearchFilters()
    parts = []
    for rooms in readable_room_parts(user):
        if filters.room:
            rooms = rooms.filter(pk=filters.room)
        if filters.project:
            rooms = rooms.filter(project_id=filters.project)
        parts.append(rooms.order_by().values("pk"))
    qs = Document.objects.filter(room__in=parts[0].union(parts[1]))
    if filters.date_from:
        qs = qs.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(created_at__lte=filters.date_to)
    if filters.role:
        qs = qs.filter(role=filters.role)
    if filters.kind == "message":
        qs = qs.filter(message__isnull=False)
    elif filters.kind == "chunk":
        qs = qs.filter(attachment__isnull=False)
    return qs


@dataclass
class Hit:
    document: Document
    score: float  # the fused score
    fulltext_rank: int | None = None  # 1-based position in the full-text ranking
    vector_rank: int | None = None
    similarity: float | None = None  # cosine similarity to the query
    snippet: str = ""


@dataclass
class SearchResult:
    hits: list[Hit]
    fulltext_candidates: int = 0
    vector_candidates: int = 0
    timings_ms: dict = field(default_factory=dict)


def fuse(rankings: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) for every row it ranks."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for position, pk in enumerate(ranking, start=1):
            scores[pk] = scores.get(pk, 0.0) + 1.0 / (k + position)
    return scores


def hybrid_search(*, scope: QuerySet[Document], query: str, limit: int, mode: str = "hybrid",
                  query_vector: np.ndarray | None = None, min_similarity: float | None = None) -> SearchResult:
    """Full-text and vector rankings of the scoped rows, fused by reciprocal rank (see RRF_K), or either alone.

    The query is embedded on the embedder's query thread while this one reads the database. Rows less similar
    to the query than `min_similarity` (default SEARCH_MIN_SIMILARITY) stay out of the vector ranking.
    """
    floor = settings.SEARCH_MIN_SIMILARITY if min_similarity is None else min_similarity
    timings: dict[str, float] = {}
    wants_vectors = mode in ("hybrid", "vector")
    pending = embedder.submit_query(query) if wants_vectors and query_vector is None else None
    started = time.perf_counter()
    text_hits = (fulltext.search(scope, query, limit=CANDIDATES, every_term=mode == "hybrid")
                 if mode in ("hybrid", "fulltext") else [])
    timings["fulltext"] = (time.perf_counter() - started) * 1000
    vector_hits: list[tuple[int, float]] = []
    if wants_vectors:
        def wait_for_vector() -> np.ndarray:
            waited = time.perf_counter()
            vector = pending.result() if pending is not None else query_vector
            timings["embed"] = (time.perf_counter() - waited) * 1000  # what the embedding added, not its cost
            return vector

        started = time.perf_counter()
        found = vector_index.search(scope=scope, vector=wait_for_vector, model=embedder.model_name, k=CANDIDATES)
        vector_hits = [(pk, score) for pk, score in found if score >= floor]
        timings["vector"] = (time.perf_counter() - started) * 1000 - timings.get("embed", 0.0)
    text_order = [hit.document_id for hit in text_hits]
    vector_order = [pk for pk, _ in vector_hits]
    scores = fuse([text_order, vector_order])
    best = sorted(scores, key=lambda pk: (-scores[pk], pk))[:limit]
    started = time.perf_counter()
    text_rank = {pk: i for i, pk in enumerate(text_order, start=1)}
    documents = (Document.objects.select_related("room__owner", "attachment").only(*HIT_FIELDS).in_bulk(best))
    snippets = fulltext.snippets([pk for pk in best if pk in documents], query)  # any word marked, both rankings
    similarity = dict(vector_hits)
    vector_rank = {pk: i for i, pk in enumerate(vector_order, start=1)}
    terms = fulltext.query_terms(query)
    hits = [
        Hit(document=documents[pk], score=scores[pk], fulltext_rank=text_rank.get(pk),
            vector_rank=vector_rank.get(pk), similarity=similarity.get(pk),
            snippet=snippets.get(pk) or fulltext.snippet_for(documents[pk].text, terms))
        for pk in best if pk in documents
    ]
    timings["rows"] = (time.perf_counter() - started) * 1000
    return SearchResult(hits=hits, fulltext_candidates=len(text_hits), vector_candidates=len(vector_hits),
                        timings_ms={key: round(value, 2) for key, value in timings.items()})


def index_stats(user) -> dict:
    """What the index holds for this user's readable rooms, and how far indexing has got."""
    scope = readable_documents(user)
    model = embedder.model_name
    totals = scope.aggregate(
        documents=Count("id"),
        vectors=Count("id", filter=Q(embedding_model=model, vector__isnull=False)),
        messages=Count("message_id", distinct=True),
        chunks=Count("id", filter=Q(attachment__isnull=False)),
        last_indexed=Max("indexed_at"),
        text_bytes=Coalesce(Sum(Length("text")), 0),
        vector_bytes=Coalesce(Sum(Length("vector")), 0),
    )
    rooms = rooms_readable_by(user).values("pk")
    pending = (pending_messages().filter(room__in=rooms).count()
               + pending_documents().filter(room__in=rooms).count())
    size = totals.pop("text_bytes") + totals.pop("vector_bytes")
    return {**totals, "pending": pending, "model": model, "dimension": embedder.engine.dimension,
            "size_on_disk_bytes": size}


def attachments_of_room(*, user, room_id) -> QuerySet[Attachment]:
    room = get_room_for_read(user=user, room_id=room_id)
    return Attachment.objects.filter(room=room).order_by("-created_at")


def get_attachment_for_read(*, user, attachment_id) -> Attachment:
    """A file in a room the user may read, else 404."""
    try:
        pk = uuid.UUID(str(attachment_id))
    except ValueError as exc:
        raise exceptions.NotFound("File not found.") from exc
    attachment = Attachment.objects.select_related("room").filter(
        pk=pk, room__in=rooms_readable_by(user).values("pk")
    ).first()
    if attachment is None:
        raise exceptions.NotFound("File not found.")
    return attachment


def chunk_of(*, attachment: Attachment, ordinal: int) -> Document:
    chunk = Document.objects.filter(attachment=attachment, ordinal=ordinal).first()
    if chunk is None:
        raise exceptions.NotFound("Passage not found.")
    return chunk
