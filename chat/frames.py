"""Validation of WebSocket frames from clients, with the same DRF fields (and limits) as the REST API."""

from __future__ import annotations

from rest_framework import serializers

from chat.serializers import MAX_FILES_PER_MESSAGE, GenerationOptionsSerializer, MessageContentMixin
from chatproject.validation import StrictBooleanField, StrictCharField, StrictUUIDField


class FrameOptionsSerializer(GenerationOptionsSerializer):
    system_prompt = StrictCharField(required=False, allow_blank=True, default="", max_length=20_000)


class FrameSerializer(serializers.Serializer):
    """Fields every write frame may carry; each frame type requires its own."""

    model = StrictCharField(required=False, allow_null=True, allow_blank=True, default=None, max_length=200)
    options = FrameOptionsSerializer(required=False, default=dict)


class SendFrameSerializer(MessageContentMixin, FrameSerializer):
    files = serializers.ListField(child=StrictUUIDField(), required=False, default=list,
                                 max_length=MAX_FILES_PER_MESSAGE, help_text="Ids of files uploaded to this room.")
    search_all_rooms = StrictBooleanField(required=False, default=False,
                                          help_text="Draw on passages of the sender's other rooms too.")


class EditFrameSerializer(MessageContentMixin, FrameSerializer):
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
