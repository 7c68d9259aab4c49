"""Files in rooms and the search index: one row per chunk of a message or a file, with its vector."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from chat.models import Message, Room


class AttachmentKind(models.TextChoices):
    TEXT = "text", "Text"
    MARKDOWN = "markdown", "Markdown"
    CODE = "code", "Code"
    CSV = "csv", "CSV"
    JSON = "json", "JSON"
    PDF = "pdf", "PDF"


class Attachment(models.Model):
    """A file uploaded into a room; its extracted text lives in its chunks, the bytes in Django's storage."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=16, choices=AttachmentKind.choices)
    size = models.PositiveBigIntegerField()
    pages = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    text_chars = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["room", "-created_at"], name="attachment_room_created")]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    """A searchable chunk: part of a message (most messages are one chunk) or of an attachment.

    The full-text index is kept by the database itself (an FTS5 table with triggers on SQLite, a GIN index on
    PostgreSQL, see migration 0002); `vector` holds the unit-length embedding as a float32 scale followed by
    one int8 code per dimension (`search.indexing.to_blob`).
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    attachment = models.ForeignKey(Attachment, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="chunks")
    role = models.CharField(max_length=16)  # the message's role, or "file"
    ordinal = models.PositiveIntegerField(default=0)  # chunk number within its message or file
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    line_start = models.PositiveIntegerField(null=True, blank=True)
    line_end = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)  # the source's time, for date filters
    vector = models.BinaryField(null=True, blank=True)
    # The vector's first 8 bytes as an integer (`search.indexing.vector_key`), so a search can tell from an index
    # alone, without reading rows, whether the vectors it keeps in memory are still the stored ones.
    vector_key = models.BigIntegerField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "search_document"
        ordering = ["room_id", "created_at", "ordinal"]
        indexes = [
            # Covers the vector scan's scope query (ids and keys of a user's rooms) so it never reads the rows.
            models.Index(fields=["room", "vector_key", "id"], name="document_room_vector"),
        ]

    def __str__(self) -> str:
        return f"{self.role} chunk {self.ordinal}: {self.text[:40]}"
