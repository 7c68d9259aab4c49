"""Input and output shapes of search, files, index statistics, embedding info and token counting."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatproject.validation import StrictCharField, StrictUUIDField
from search.models import Attachment
from search.selectors import Hit, SearchFilters

ROLES = ["user", "assistant", "system", "file"]
MODES = ["hybrid", "fulltext", "vector"]


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date or date-time; a date means its start (or, with `end_of_day`, its end) in UTC."""

    default_error_messages = {"invalid": "Use an ISO 8601 date (2026-01-31) or date-time."}

    def __init__(self, *, end_of_day: bool = False, **kwargs) -> None:
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
            if value is None:
                day = parse_date(data.strip())
                if day is None:
                    self.fail("invalid")
                value = datetime.combine(day, time.max if self.end_of_day else time.min)
        except ValueError:
            self.fail("invalid")
        return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class SearchQuerySerializer(serializers.Serializer):
    q = StrictCharField(max_length=500, help_text="Words or a question; matched by words and by meaning.")
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=50)
    room = StrictUUIDField(required=False, help_text="Only this room.")
    project = StrictUUIDField(required=False, help_text="Only rooms of this project.")
    date_from = DateOrDateTimeField(required=False, help_text="Written on or after (ISO date or date-time).")
    date_to = DateOrDateTimeField(required=False, end_of_day=True, help_text="Written on or before.")
    role = serializers.ChoiceField(choices=ROLES, required=False, help_text="Messages of this role, or files.")
    mode = serializers.ChoiceField(choices=MODES, required=False, default="hybrid",
                                   help_text="hybrid (default), or one ranking alone.")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        if not attrs["q"].strip():
            raise serializers.ValidationError({"q": ["Type something to search for."]})
        return attrs

    def filters(self) -> SearchFilters:
        data = self.validated_data
        return SearchFilters(room=data.get("room"), project=data.get("project"), date_from=data.get("date_from"),
                             date_to=data.get("date_to"), role=data.get("role"))


class AneSearchQuerySerializer(serializers.Serializer):
    q = StrictCharField(max_length=2000)
    limit = serializers.IntegerField(required=False, default=8, min_value=1, max_value=50)
    room = StrictUUIDField(required=False)
    kind = serializers.ChoiceField(choices=["message", "chunk"], required=False,
                                   help_text="Only messages, or only file chunks.")


class FileRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


def link_for(hit: Hit) -> str:
    document = hit.document
    if document.attachment_id:
        return f"/chat/{document.room_id}/?file={document.attachment_id}&chunk={document.ordinal}"
    return f"/chat/{document.room_id}/?message={document.message_id}#message-{document.message_id}"


class SearchHitSerializer(serializers.Serializer):
    """One hit: a message (or part of a long one) or a chunk of a file."""

    kind = serializers.SerializerMethodField()
    room = serializers.SerializerMethodField()
    message_id = serializers.UUIDField(source="document.message_id", allow_null=True)
    file = serializers.SerializerMethodField()
    chunk = serializers.SerializerMethodField()
    role = serializers.CharField(source="document.role")
    snippet = serializers.CharField(help_text="HTML: the text escaped, the matched terms in <mark>.")
    score = serializers.FloatField(help_text="Reciprocal rank fusion of the two rankings.")
    fulltext_rank = serializers.IntegerField(allow_null=True)
    vector_rank = serializers.IntegerField(allow_null=True)
    similarity = serializers.FloatField(allow_null=True, help_text="Cosine similarity to the query.")
    created_at = serializers.DateTimeField(source="document.created_at")
    link = serializers.SerializerMethodField(help_text="Opens the room at this message or passage.")

    def get_kind(self, hit: Hit) -> str:
        return "chunk" if hit.document.attachment_id else "message"

    # Plain dicts: a nested serializer per hit copies its fields every time, most of what serialising took.
    def get_room(self, hit: Hit) -> dict:
        room = hit.document.room
        return {"id": str(hit.document.room_id), "name": room.name, "owner": room.owner.username}

    def get_file(self, hit: Hit) -> dict | None:
        attachment = hit.document.attachment
        return {"id": str(attachment.pk), "name": attachment.name} if attachment is not None else None

    def get_chunk(self, hit: Hit) -> dict:
        document = hit.document
        return {"ordinal": document.ordinal, "page": document.page, "line_start": document.line_start,
                "line_end": document.line_end}

    def get_link(self, hit: Hit) -> str:
        return link_for(hit)


class AneHitSerializer(SearchHitSerializer):
    text = serializers.CharField(source="document.text", help_text="The whole chunk, for a prompt.")


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    count = serializers.IntegerField()
    results = SearchHitSerializer(many=True)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class AneResultSerializer(SearchResultSerializer):
    results = AneHitSerializer(many=True)


class AneStatsSerializer(serializers.Serializer):
    documents = serializers.IntegerField(help_text="Index rows (message parts and file chunks) you can read.")
    vectors = serializers.IntegerField()
    messages = serializers.IntegerField()
    chunks = serializers.IntegerField(help_text="Of which file chunks.")
    pending = serializers.IntegerField(help_text="Messages and rows still waiting to be indexed.")
    last_indexed = serializers.DateTimeField(allow_null=True)
    model = serializers.CharField()
    dimension = serializers.IntegerField()
    size_on_disk_bytes = serializers.IntegerField(help_text="Text and vectors of these rows.")
    vector_index = serializers.CharField()


class ThroughputSerializer(serializers.Serializer):
    texts_per_second = serializers.FloatField()
    batch_size = serializers.IntegerField()
    texts = serializers.IntegerField()
    seconds = serializers.FloatField()


class EmbeddingInfoSerializer(serializers.Serializer):
    engine = serializers.CharField()
    model = serializers.CharField()
    device = serializers.CharField()
    dimension = serializers.IntegerField()
    batch_size = serializers.IntegerField()
    max_tokens = serializers.IntegerField()
    throughput = ThroughputSerializer()


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)


class AttachmentSerializer(serializers.ModelSerializer):
    indexed_chunks = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "room", "name", "content_type", "kind", "size", "pages", "chunk_count", "text_chars",
                  "indexed_chunks", "created_at"]
        read_only_fields = fields

    def get_indexed_chunks(self, attachment: Attachment) -> int:
        return attachment.chunks.filter(vector__isnull=False).count()


class PassageSerializer(serializers.Serializer):
    file = FileRefSerializer(source="attachment")
    ordinal = serializers.IntegerField()
    page = serializers.IntegerField(allow_null=True)
    line_start = serializers.IntegerField(allow_null=True)
    line_end = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()


class TokenCountSerializer(serializers.Serializer):
    text = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=1_000_000)
    model = StrictCharField(required=False, allow_blank=True, max_length=200,
                            help_text="Default: the room's model (or the default model).")


class TokenCountResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    exact = serializers.BooleanField(help_text="True when the model's own tokenizer counted (local GGUF models).")
    model = serializers.CharField()
    provider = serializers.CharField()
    context_length = serializers.IntegerField()
