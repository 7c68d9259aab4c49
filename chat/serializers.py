"""Request and response shapes for rooms, messages, projects and sessions."""

from __future__ import annotations

import math

from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import serializers
from rest_framework.fields import ProhibitSurrogateCharactersValidator

from chat.models import ChatSession, Message, Project, Room


class RoomSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id", "name", "owner", "team", "project", "model", "agent", "system_prompt", "metadata", "tags",
            "pinned", "archived", "created_at", "last_activity", "message_count", "last_message_preview",
            "active_leaf",
        ]
        read_only_fields = fields

    def get_tags(self, room: Room) -> list[str]:
        return [tag.name for tag in room.tag_rows.all()]


class RoomWriteSerializer(serializers.Serializer):
    """Fields a client may set; lengths and sizes are checked by the service against live settings."""

    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True, max_length=10_000)
    metadata = serializers.JSONField(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50, allow_blank=False), required=False, max_length=20
    )
    project = serializers.UUIDField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    agent = serializers.CharField(required=False, allow_blank=True, max_length=100)
    system_prompt = serializers.CharField(required=False, allow_blank=True, max_length=20_000, trim_whitespace=False)
    pinned = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(required=False)


class RoomCreateSerializer(RoomWriteSerializer):
    team = serializers.IntegerField(required=False, allow_null=True, help_text="Team id; default your first team.")


class FreshRoomSerializer(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None)

    class Meta:
        model = Message
        fields = [
            "id", "room", "parent", "role", "content", "model", "status", "error", "author",
            "prompt_tokens", "completion_tokens", "time_to_first_token_ms", "tokens_per_second", "rating",
            "metadata", "created_at", "edited_at",
        ]
        read_only_fields = fields


class BranchMessageSerializer(MessageSerializer):
    sibling_ids = serializers.SerializerMethodField(help_text="Ids of this message and its alternatives, in order.")

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "sibling_ids"]
        read_only_fields = fields

    def get_sibling_ids(self, message: Message) -> list[str]:
        siblings = self.context.get("siblings", {})
        return [str(pk) for pk in siblings.get(message.pk, [message.pk])]


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class StopResultSerializer(serializers.Serializer):
    stopped = serializers.IntegerField()


class RoomImportSerializer(serializers.Serializer):
    """The JSON that rooms_export produces."""

    format = serializers.CharField()
    version = serializers.IntegerField()
    room = serializers.DictField()
    messages = serializers.ListField(child=serializers.DictField())
    active_leaf_id = serializers.CharField(required=False, allow_null=True)


class ProjectSerializer(serializers.ModelSerializer):
    room_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at", "last_chat_at", "room_count"]
        read_only_fields = ["id", "created_at", "last_chat_at", "room_count"]
        extra_kwargs = {"name": {"max_length": 100}}


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class SessionSerializer(serializers.ModelSerializer):
    room_id = serializers.UUIDField(source="room.id", read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = ChatSession
        fields = ["id", "room_id", "agent_state", "created_at", "last_seen_at", "expires_at"]
        read_only_fields = fields


class SessionCreateSerializer(serializers.Serializer):
    room_id = serializers.UUIDField()


class SessionResetSerializer(serializers.Serializer):
    agent = serializers.CharField(required=False, allow_blank=True, default="", help_text="Empty resets all agents.")


class ChatSessionCreateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, default="New Chat", max_length=10_000)
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class ChatSessionSerializer(RoomSerializer):
    """A room seen through the chat contract: `title` mirrors `name`."""

    title = serializers.CharField(source="name", read_only=True)

    class Meta(RoomSerializer.Meta):
        fields = [*RoomSerializer.Meta.fields, "title"]
        read_only_fields = fields


class GenerationOptionsSerializer(serializers.Serializer):
    """Sampling options shared by the SSE endpoint and the WebSocket `options` object."""

    temperature = serializers.FloatField(required=False, default=0.7, min_value=0.0, max_value=2.0)
    top_p = serializers.FloatField(required=False, default=0.9, min_value=0.0, max_value=1.0)
    top_k = serializers.IntegerField(required=False, default=40, min_value=0, max_value=1000)
    repeat_penalty = serializers.FloatField(required=False, default=1.1, min_value=0.0, max_value=3.0)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=32768)


class MessageSendSerializer(GenerationOptionsSerializer):
    content = serializers.CharField(trim_whitespace=False, max_length=1_000_000)
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    use_recursive = serializers.BooleanField(
        required=False, default=True, help_text="Accepted for compatibility; recursive prompting is not built yet."
    )

    def validate_content(self, value: str) -> str:
        from chat.services import validate_message_content

        if not value.strip():
            raise serializers.ValidationError("Message is empty.")
        try:
            return validate_message_content(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(exc.detail["content"]) from exc


class RatingSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=[1, -1, 0], help_text="1 thumbs up, -1 thumbs down, 0 clears.")


class BranchSwitchSerializer(serializers.Serializer):
    message_id = serializers.UUIDField(help_text="A message on the branch to show; its newest leaf becomes active.")


class ModelInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    qualified_name = serializers.CharField()
    provider = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    modified_at = serializers.CharField(allow_null=True)
    family = serializers.CharField()
    context_length = serializers.IntegerField()
    capabilities = serializers.ListField(child=serializers.CharField())
    default = serializers.BooleanField()


def _plain_float(field: serializers.FloatField, value):
    if type(value) not in (int, float) or not math.isfinite(value):
        return _REJECT
    value = float(value)
    return value if _in_range(field, value) else _REJECT


def _plain_int(field: serializers.IntegerField, value):
    return value if type(value) is int and _in_range(field, value) else _REJECT


def _plain_str(field: serializers.CharField, value):
    if type(value) is not str or "\x00" in value or (field.trim_whitespace and value != value.strip()):
        return _REJECT
    if (value == "" and not field.allow_blank) or (field.max_length is not None and len(value) > field.max_length):
        return _REJECT
    if field.min_length is not None and len(value) < field.min_length:
        return _REJECT
    try:
        value.encode("utf-8")  # lone surrogates: DRF rejects them
    except UnicodeEncodeError:
        return _REJECT
    return value


def _plain_bool(field: serializers.BooleanField, value):
    return value if type(value) is bool else _REJECT


def _in_range(field, value) -> bool:
    low, high = field.min_value, field.max_value
    return (low is None or value >= low) and (high is None or value <= high)


_REJECT = object()
_PLAIN_CHECKS = {
    serializers.FloatField: _plain_float,
    serializers.IntegerField: _plain_int,
    serializers.CharField: _plain_str,
    serializers.BooleanField: _plain_bool,
}


def plainly_valid(serializer_class: type[serializers.Serializer], data) -> dict | None:
    """The serializer's validated data for plainly valid input, without instantiating it; None: ask the serializer.

    A DRF serializer deep-copies all its declared fields on every instantiation, which was half the CPU of
    starting a stream over SSE. Valid requests are checked here against the same declared fields (limits,
    defaults, blank and null rules, `validate_<field>` methods), accepting only exact JSON types. Anything
    else (a string "0.5", a missing required field, any error) returns None, and the caller runs the real
    serializer, so errors and coercions stay DRF's own.
    """
    if not isinstance(data, dict) or serializer_class.validate is not serializers.Serializer.validate:
        return None
    validated = {}
    for name, field in serializer_class._declared_fields.items():
        if field.read_only or field.source != name and field.source is not None:
            return None
        if name not in data:
            if field.required or callable(field.default):
                return None
            if field.default is not serializers.empty:
                validated[name] = field.default
            continue
        value = data[name]
        if value is None:
            if not field.allow_null:
                return None
            validated[name] = None
            continue
        check = _PLAIN_CHECKS.get(type(field))
        if check is None or field.validators and any(
            not isinstance(v, (MaxLengthValidator, MinLengthValidator, MaxValueValidator, MinValueValidator,
                               ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator))
            for v in field.validators
        ):
            return None
        value = check(field, value)
        if value is _REJECT:
            return None
        validate_field = getattr(serializer_class, f"validate_{name}", None)
        if validate_field is not None:
            try:
                value = validate_field(None, value)  # these field validators do not use `self`
            except (serializers.ValidationError, ValueError):
                return None
        validated[name] = value
    return validated
