"""`chat_messages_send`: post a message and stream the reply as server-sent events."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import permissions, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from chat import selectors, streaming
from chat.models import FinishReason
from chat.serializers import MessageSendSerializer
from chat.streaming.sse import sse_stream
from chatproject.schema import error_response
from ops.panic import NotDuringPanic


class EventStreamNegotiation(DefaultContentNegotiation):
    """Clients of an event stream ask for `text/event-stream` (EventSource-style libraries always do): the
    stream is the answer to that, and an error before the stream starts is JSON, as for every other client.
    DRF alone would refuse such a request with 406, having no renderer of that type."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if "text/event-stream" in request.META.get("HTTP_ACCEPT", ""):
            renderer = next(renderer for renderer in renderers if renderer.media_type == "application/json")
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)


class StreamStartEventSerializer(serializers.Serializer):
    """`event: start`"""

    stream_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    model = serializers.CharField()


class StreamTokenEventSerializer(serializers.Serializer):
    """`event: token`, one per delta; `seq` counts tokens so far."""

    seq = serializers.IntegerField()
    delta = serializers.CharField()


class StreamUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)


class StreamTimingsSerializer(serializers.Serializer):
    time_to_first_token_ms = serializers.FloatField(allow_null=True)
    tokens_per_second = serializers.FloatField(allow_null=True)
    total_ms = serializers.FloatField(allow_null=True)


class StreamDoneEventSerializer(serializers.Serializer):
    """`event: done`, the last event of a reply that did not fail."""

    status = serializers.ChoiceField(choices=["complete", "cancelled", "interrupted"])
    finish_reason = serializers.ChoiceField(
        choices=FinishReason.choices, allow_blank=True,
        help_text="`length`: the reply reached max tokens; blank unless complete.",
    )
    usage = StreamUsageSerializer()
    timings = StreamTimingsSerializer()


class StreamErrorEventSerializer(serializers.Serializer):
    """`event: error`, the last event of a reply whose backend failed; the partial text is kept."""

    code = serializers.CharField()
    message = serializers.CharField()


STREAM_EVENT = PolymorphicProxySerializer(
    component_name="ChatStreamEvent",
    serializers=[StreamStartEventSerializer, StreamTokenEventSerializer, StreamDoneEventSerializer,
                 StreamErrorEventSerializer],
    resource_type_field_name=None,
)


@extend_schema(tags=["chat"])
class MessageSendApi(APIView):
    """DRF's own request handling (auth, throttles, errors); the reply starts on the event loop and streams from it."""

    content_negotiation_class = EventStreamNegotiation
    permission_classes = [permissions.IsAuthenticated, NotDuringPanic]

    @extend_schema(
        operation_id="chat_messages_send",
        request=MessageSendSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                STREAM_EVENT,
                description="An event stream: `event: start`, `event: token` per delta, then `event: done` or "
                "`event: error`. Each event's `data:` line is one JSON object of the matching schema.",
            ),
            409: error_response("`reply_in_progress`: a reply is still generating in this room."),
            503: error_response("`no_backend` or `backend_unavailable`: no model server can take the reply."),
        },
    )
    def post(self, request: Request, chat_id: str) -> StreamingHttpResponse:
        data = MessageSendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        reply = async_to_sync(streaming.start_reply)(
            user=request.user, room=selectors.room_id_or_404(chat_id), action="send", content=values.pop("content"),
            model=values.pop("model") or None, system_prompt=values.pop("system_prompt"), files=values.pop("files"),
            search_all_rooms=values.pop("search_all_rooms"), options=values, subscribe=True,
        )
        response = StreamingHttpResponse(sse_stream(reply), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
