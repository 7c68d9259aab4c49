"""Request and response shapes for rooms, messages, projects and sessions."""

from __future__ import annotations

from rest_framework import serializers

from accounts.serializers import GenerationDefaultsSerializer
from chat.models import ChatSession, Message, Project, Room
from chatproject.validation import (
    Int64Field,
    StorableJSONField,
    StrictBooleanField,
    StrictCharField,
    StrictModelSerializer,
    StrictUUIDField,
    validate_storable_json,
)

MAX_FILES_PER_MESSAGE = 20


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
    """Fields a client may set, with strict JSON types; lengths and sizes are checked by the service against
    live settings."""

    name = StrictCharField(required=False, allow_blank=True, trim_whitespace=True, max_length=10_000)
    metadata = StorableJSONField(required=False)
    tags = serializers.ListField(child=StrictCharField(max_length=50, allow_blank=False), required=False, max_length=20)
    project = serializers.UUIDField(required=False, allow_null=True)
    model = StrictCharField(required=False, allow_blank=True, max_length=200)
    agent = StrictCharField(required=False, allow_blank=True, max_length=100)
    system_prompt = StrictCharField(required=False, allow_blank=True, max_length=20_000, trim_whitespace=False)
    pinned = StrictBooleanField(required=False)
    archived = StrictBooleanField(required=False)

    def validate_metadata(self, value):
        """`metadata.generation` feeds every reply of the room, so it is checked as the user's own defaults are."""
        if not isinstance(value, dict) or "generation" not in value:
            return value
        if not isinstance(value["generation"], dict):
            raise serializers.ValidationError("generation must be an object of generation parameters.")
        checked = GenerationDefaultsSerializer(data=value["generation"])
        if not checked.is_valid():
            key, errors = next(iter(checked.errors.items()))
            raise serializers.ValidationError(f"generation.{key}: {errors[0]}")
        return value
        generation = value["generation"]
        if not isinstance(generation, dict):
            raise serializers.ValidationError("generation must be an object of generation parameters.")
        unknown = sorted(set(generation) - set(GenerationOptionsSerializer().fields))
        if unknown:
            raise serializers.ValidationError(f"generation has unknown keys: {', '.join(unknown)}.")
        given = {key: option for key, option in generation.items() if option is not None}
        options = GenerationOptionsSerializer(data=given)
        if not options.is_valid():
            key, errors = next(iter(options.errors.items()))
            raise serializers.ValidationError(f"generation.{key}: {errors[0]}")
        return value


class RoomCreateSerializer(RoomWriteSerializer):
    team = Int64Field(required=False, allow_null=True, help_text="Team id; default your first team.")


class RoomListQuerySerializer(serializers.Serializer):
    """Query parameters of rooms_list."""

    sort = StrictCharField(required=False, allow_blank=True)
    archived = StrictCharField(required=False, allow_blank=True, max_length=10)
    pinned = StrictCharField(required=False, allow_blank=True, max_length=10)
    tag = StrictCharField(required=False, allow_blank=True, max_length=50)
    project = StrictCharField(required=False, allow_blank=True, max_length=64)
    q = StrictCharField(required=False, allow_blank=True, max_length=200)
    team = Int64Field(required=False, allow_null=True, min_value=1)


CLEANUP_MAX_MINUTES = 100 * 365 * 24 * 60


class RoomCleanupQuerySerializer(serializers.Serializer):
    older_than_minutes = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=CLEANUP_MAX_MINUTES,
        help_text="Only rooms idle this long (default 0, at most 100 years).",
    )


class FreshRoomSerializer(serializers.Serializer):
    model = StrictCharField(required=False, allow_blank=True, max_length=200, default="")


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None)

    class Meta:
        model = Message
        fields = [
            "id", "room", "parent", "role", "content", "model", "status", "error", "author",
            "prompt_tokens", "completion_tokens", "time_to_first_token_ms", "tokens_per_second", "finish_reason",
            "rating", "metadata", "created_at", "edited_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"finish_reason": {"help_text": "Why a completed reply ended: `stop` (the model finished) or "
                                                       "`length` (it reached max tokens); blank otherwise."}}


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
    """The JSON that rooms_export produces; the import service checks its meaning (chat/transfer.py)."""

    format = StrictCharField()
    version = Int64Field()
    room = serializers.DictField(required=False, allow_null=True)
    messages = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    active_leaf_id = serializers.CharField(
        required=False, allow_null=True, help_text="A message id from the document (a string or a number)."
    )

    def validate(self, attrs: dict) -> dict:
        """No string anywhere in the document, keys included, may hold what a database cannot store."""
        validate_storable_json(self.initial_data)
        return attrs


class ProjectSerializer(StrictModelSerializer):
    room_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at", "last_chat_at", "room_count"]
        read_only_fields = ["id", "created_at", "last_chat_at", "room_count"]
        extra_kwargs = {"name": {"max_length": 100}}


class ProjectUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, required=False)
    description = StrictCharField(max_length=2000, required=False, allow_blank=True)


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
    agent = StrictCharField(required=False, allow_blank=True, default="", help_text="Empty resets all agents.")


class ChatSessionCreateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, default="New Chat", max_length=10_000)
    model = StrictCharField(required=False, allow_blank=True, default="", max_length=200)


class ChatSessionSerializer(RoomSerializer):
    """A room seen through the chat contract: `title` mirrors `name`."""

    title = serializers.CharField(source="name", read_only=True)

    class Meta(RoomSerializer.Meta):
        fields = [*RoomSerializer.Meta.fields, "title"]
        read_only_fields = fields


class GenerationOptionsSerializer(serializers.Serializer):
    """Sampling options shared by the SSE endpoint and the WebSocket `options` object.

    No defaults here: an option left out falls to the room's stored settings, then the user's, then the server's.
    """

    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, help_text="Server default 0.7.")
    top_p = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, help_text="Server default 0.9.")
    top_k = serializers.IntegerField(required=False, min_value=0, max_value=1000, help_text="Server default 40.")
    repeat_penalty = serializers.FloatField(required=False, min_value=0.0, max_value=3.0,
                                            help_text="Server default 1.1.")
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=32768)


class MessageContentMixin(serializers.Serializer):
    """A message's text, checked the same way wherever it arrives (REST, SSE, WebSocket)."""

    content = StrictCharField(trim_whitespace=False, max_length=1_000_000)

    def validate_content(self, value: str) -> str:
        from chat.services import validate_message_content

        if not value.strip():
            raise serializers.ValidationError("Message is empty.")
        try:
            return validate_message_content(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(exc.detail["content"]) from exc


class MessageSendSerializer(MessageContentMixin, GenerationOptionsSerializer):
    model = StrictCharField(required=False, allow_blank=True, default="", max_length=200)
    system_prompt = StrictCharField(required=False, allow_blank=True, default="", max_length=20_000)
    use_recursive = StrictBooleanField(
        required=False, default=True, help_text="Accepted for compatibility; recursive prompting is not built yet."
    )
    files = serializers.ListField(child=StrictUUIDField(), required=False, default=list,
                                 max_length=MAX_FILES_PER_MESSAGE,
                                 help_text="Ids of files uploaded to this room; their passages come first.")
    search_all_rooms = StrictBooleanField(required=False, default=False,
                                          help_text="Draw on passages of the sender's other rooms too.")


class RatingSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=[1, -1, 0], help_text="1 thumbs up, -1 thumbs down, 0 clears.")


class BranchSwitchSerializer(serializers.Serializer):
    message_id = serializers.UUIDField(help_text="A message on the branch to show; its newest leaf becomes active.")
