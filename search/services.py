"""Writes for files in rooms: check, extract, chunk, embed and store an upload, all or nothing."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from chat.models import Room
from chatproject.errors import ApiError
from models_mgmt.embeddings import EmbeddingError, embedder
from search.chunking import chunk_pages, chunk_text
from search.extract import ACCEPTED, ExtractionError, extract, kind_of
from search.indexing import indexer, to_blob, vector_key
from search.models import Attachment, Document

logger = logging.getLogger(__name__)

HEAD_BYTES = 8192
EMBED_AT_UPLOAD_CHUNKS = 64  # chunks embedded before the upload answers; the rest by the indexing thread


def _clean_name(name: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    return "".join(ch for ch in base if ch.isprintable() and ch != "\x00")[:255] or "upload.txt"


def upload_attachment(*, user, room: Room, uploaded: UploadedFile) -> Attachment:
    """Store a file in a room with its chunks; refuse it whole (413, 415, 422) and keep nothing otherwise."""
    name = _clean_name(uploaded.name)
    if uploaded.size is not None and uploaded.size > settings.UPLOAD_MAX_BYTES:
        raise ApiError(f"Files may be at most {settings.UPLOAD_MAX_BYTES} bytes.", code="file_too_large",
                       status_code=413, details={"limit": settings.UPLOAD_MAX_BYTES, "size": uploaded.size})
    data = uploaded.read(settings.UPLOAD_MAX_BYTES + 1)
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise ApiError(f"Files may be at most {settings.UPLOAD_MAX_BYTES} bytes.", code="file_too_large",
                       status_code=413, details={"limit": settings.UPLOAD_MAX_BYTES})
    kind = kind_of(name, data[:HEAD_BYTES])
    if kind is None:
        raise ApiError("Only text, Markdown, code, CSV, JSON and PDF files can be added.",
                       code="unsupported_file_type", status_code=415, details={"accepted": ACCEPTED})
    try:
        extracted = extract(kind, data)
    except ExtractionError as exc:
        raise ApiError(str(exc), code="no_text", status_code=422) from exc
    sizes = {"max_tokens": settings.SEARCH_CHUNK_TOKENS, "overlap_tokens": settings.SEARCH_CHUNK_OVERLAP_TOKENS}
    chunks = chunk_pages(extracted.pages, **sizes) if extracted.pages is not None else chunk_text(extracted.text,
                                                                                                   **sizes)
    if not chunks:
        raise ApiError("The file has no text to search.", code="no_text", status_code=422)
    vectors: list[bytes | None] = [None] * len(chunks)
    try:  # embedded now, outside any transaction, so a slow model never holds the database
        head = embedder.embed([chunk.text for chunk in chunks[:EMBED_AT_UPLOAD_CHUNKS]])
        vectors[:len(head)] = [to_blob(vector) for vector in head]
        model = embedder.model_name
    except EmbeddingError as exc:
        logger.warning("upload stored without vectors for now: %s", exc.message)
        model = ""
    attachment = _store(user=user, room=room, name=name, kind=kind, content_type=uploaded.content_type or "",
                        data=data, pages=len(extracted.pages) if extracted.pages is not None else None,
                        chunks=chunks, vectors=vectors, model=model, text_chars=len(extracted.text))
    if any(vector is None for vector in vectors):
        transaction.on_commit(indexer.enqueue_documents)
    return attachment


def _store(*, user, room: Room, name: str, kind: str, content_type: str, data: bytes, pages: int | None,
           chunks: list, vectors: list[bytes | None], model: str, text_chars: int) -> Attachment:
    """The row, the bytes and the chunks together: if any part fails, the bytes are removed again."""
    attachment = Attachment(room=room, owner=user, name=name, kind=kind, content_type=content_type[:100],
                            size=len(data), pages=pages, chunk_count=len(chunks), text_chars=text_chars)
    attachment.file.save(name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            attachment.save()
            now = timezone.now()
            Document.objects.bulk_create([
                Document(room=room, attachment=attachment, role="file", ordinal=chunk.ordinal, text=chunk.text,
                         page=chunk.page, line_start=chunk.line_start, line_end=chunk.line_end,
                         created_at=attachment.created_at, vector=vector,
                         vector_key=vector_key(vector) if vector else None, embedding_model=model if vector else "",
                         indexed_at=now if vector else None)
                for chunk, vector in zip(chunks, vectors, strict=True)
            ], batch_size=200)
    except Exception:
        attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


@transaction.atomic
def delete_attachment(*, attachment: Attachment) -> None:
    """The row, its chunks (cascade) and, once committed, its bytes."""
    attachment.delete()
