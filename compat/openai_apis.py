"""The OpenAI-compatible API under `/v1/`: chat completions (streamed or not), models, embeddings."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from chatproject.errors import ApiError
from compat import openai_format
from compat.base import CompatApi, CompatSchema, begin, catalogue, find_model
from compat.errors import openai_exception_handler
from compat.serializers import (
    AUTO,
    ChatCompletionChunkSerializer,
    ChatCompletionRequestSerializer,
    ChatCompletionSerializer,
    OpenAIErrorSerializer,
    OpenAIModelListSerializer,
    OpenAIModelSerializer,
)
from models_mgmt.embeddings_api import (
    OpenAIEmbeddingListSerializer,
    OpenAIEmbeddingRequestSerializer,
    embed_for_api,
    openai_body,
)

TAGS = ["openai-compatible"]


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(OpenAIErrorSerializer, description=description)


class OpenAISchema(CompatSchema):
    error_serializer = OpenAIErrorSerializer


class OpenAIApi(CompatApi):
    error_handler = openai_exception_handler
    schema = OpenAISchema()


class ChatCompletionsApi(OpenAIApi):
    @extend_schema(
        operation_id="openai_chat_completions",
        tags=TAGS,
        request=ChatCompletionRequestSerializer,
        responses={
            (200, "application/json"): OpenApiResponse(ChatCompletionSerializer, description="stream false"),
            (200, "text/event-stream"): OpenApiResponse(
                ChatCompletionChunkSerializer,
                description="stream true: `data: {chunk}` events, then `data: [DONE]`. A reply that fails midway "
                "ends with `data: {error}` instead.",
            ),
            400: error("Invalid input or an unsupported option (`param` names it)."),
            401: error("No valid API token as the Bearer key (code `invalid_api_key`)."),
            404: error("Unknown model (code `model_not_found`)."),
            423: error("Refused while the panic switch is on (code `panic`)."),
            429: error("Rate limited, or `too_many_streams` (5 replies generating per user); see Retry-After."),
            503: error("No model backend could answer (`backend_unavailable`, `backend_error`, `no_backend`)."),
        },
    )
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        data = ChatCompletionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        call = data.call()
        run = begin(request, call, find_model(call.model))
        if not call.stream:
            return Response(openai_format.completion_body(run, async_to_sync(run.collect)()))
        response = StreamingHttpResponse(openai_format.completion_chunks(run, include_usage=call.include_usage),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


class ModelsApi(OpenAIApi):
    @extend_schema(operation_id="openai_models_list", tags=TAGS, responses=OpenAIModelListSerializer)
    def get(self, request: Request) -> Response:
        entries = [openai_format.auto_entry(), *(openai_format.model_entry(model) for model in catalogue())]
        return Response({"object": "list", "data": entries})


class ModelDetailApi(OpenAIApi):
    @extend_schema(operation_id="openai_models_get", tags=TAGS, responses={
        200: OpenAIModelSerializer, 404: error("Unknown model (code `model_not_found`)."),
    })
    def get(self, request: Request, model: str) -> Response:
        if model == AUTO:
            return Response(openai_format.auto_entry())
        for info in catalogue():
            if model in (info.name, info.qualified_name):
                return Response(openai_format.model_entry(info))
        raise ApiError(f"The model {model!r} does not exist.", code="model_not_found", status_code=404)


class EmbeddingsApi(OpenAIApi):
    @extend_schema(operation_id="openai_embeddings", tags=TAGS, request=OpenAIEmbeddingRequestSerializer, responses={
        200: OpenAIEmbeddingListSerializer,
        400: error("Invalid input (`param` names it)."),
        401: error("No valid API token as the Bearer key (code `invalid_api_key`)."),
        404: error("Not the embedding model this server runs (code `model_not_found`)."),
        503: error("The embedding engine is unavailable (code `embedding_unavailable`)."),
    })
    def post(self, request: Request) -> Response:
        data = OpenAIEmbeddingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = embed_for_api(model=values["model"], texts=values["input"], dimensions=values.get("dimensions"))
        return Response(openai_body(result, encoding_format=values["encoding_format"]))
