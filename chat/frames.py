"""Validation of WebSocket frames from clients, with the same DRF fields (and limits) as the REST API."""

from __future__ import annotations

from rest_framework import serializers

from chat.serializers import GenerationOptionsSerializer
from chat.services import validate_message_content


class StrictUUIDField(serializers.UUIDField):
    """A UUID written as a string: DRF's field would also take an integer as one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text must be a JSON string: DRF's field would also turn a number into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class FrameOptionsSerializer(GenerationOptionsSerializer):
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)


class FrameSerializer(serializers.Serializer):
    """Fields every write frame may carry; each frame type requires its own."""

    model = StrictCharField(required=False, allow_null=True, allow_blank=True, default=None, max_length=200)
    options = FrameOptionsSerializer(required=False, default=dict)


class ContentMixin(serializers.Serializer):
    content = StrictCharField(trim_whitespace=False, max_length=1_000_000)

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Message is empty.")
        try:
            return validate_message_content(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(exc.detail["content"]) from exc


class SendFrameSerializer(ContentMixin, FrameSerializer):
    pass


class EditFrameSerializer(ContentMixin, FrameSerializer):
    message_id = StrictUUIDField()


class RegenerateFrameSerializer(FrameSerializer):
    message_id = StrictUUIDField(required=False, allow_null=True, default=None)


class DeleteFrameSerializer(serializers.Serializer):
    message_id = StrictUUIDField()


class StopFrameSerializer(serializers.Serializer):
    stream_id = StrictUUIDField(required=False, allow_null=True, default=None)


class ResumeFrameSerializer(serializers.Serializer):
    stream_id = StrictUUIDField(required=False, allow_null=True, default=None)
    last_seq = serializers.IntegerField(required=False, allow_null=True, default=0, min_value=0, max_value=2**53)


class TypingFrameSerializer(serializers.Serializer):
    is_typing = serializers.BooleanField(required=False, default=False)
