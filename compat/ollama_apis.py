"""The Ollama-compatible API under `/ollama/api/`: chat and generate (NDJSON streams or one object), tags,
show, ps, version, embed. Every call but `version` needs an API token as a Bearer key."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response

from compat import ollama_format, selectors
from compat.base import CompatApi, CompatSchema, begin, catalogue, find_model
from compat.errors import ollama_exception_handler
from compat.serializers import (
    OllamaCallSerializer,
    OllamaChatResponseSerializer,
    OllamaChatSerializer,
    OllamaErrorSerializer,
    OllamaGenerateResponseSerializer,
    OllamaGenerateSerializer,
    OllamaPsSerializer,
    OllamaShowRequestSerializer,
    OllamaShowSerializer,
    OllamaTagsSerializer,
    OllamaVersionSerializer,
)
from models_mgmt.embeddings_api import (
    OllamaEmbedRequestSerializer,
    OllamaEmbedResponseSerializer,
    embed_for_api,
    ollama_body,
)

TAGS = ["ollama-compatible"]


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(OllamaErrorSerializer, description=description)


CALL_ERRORS = {
    400: error("Invalid input or an unsupported option."),
    401: error("No valid API token as the Bearer key."),
    404: error("Unknown model."),
    423: error("Refused while the panic switch is on."),
    429: error("Rate limited, or 5 replies already generating for this user; see Retry-After."),
    503: error("No model backend could answer."),
}


class OllamaSchema(CompatSchema):
    error_serializer = OllamaErrorSerializer


class OllamaApi(CompatApi):
    error_handler = ollama_exception_handler
    schema = OllamaSchema()


def answer(request: Request, data: OllamaCallSerializer, kind: str) -> Response | StreamingHttpResponse:
    """Start the reply and answer with its NDJSON stream, or with one object once it is done; a call with
    nothing to answer only says the model is ready, as Ollama does."""
    data.is_valid(raise_exception=True)
    call = data.call()
    model = find_model(call.model)
    if not call.turns:
        return Response(ollama_format.loaded_body(kind, model.name))
    run = begin(request, call, model)
    if not call.stream:
        outcome = async_to_sync(run.collect)()
        return Response(ollama_format.final_body(kind, run, outcome, outcome.text))
    response = StreamingHttpResponse(ollama_format.ndjson_stream(kind, run), content_type="application/x-ndjson")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class ChatApi(OllamaApi):
    @extend_schema(operation_id="ollama_chat", tags=TAGS, request=OllamaChatSerializer, responses={
        (200, "application/x-ndjson"): OpenApiResponse(
            OllamaChatResponseSerializer,
            description="stream true (the default): one object per line, the last with `done` true, its counts "
            "and durations; a reply that fails midway ends with an `{error}` line. stream false: one object.",
        ),
        **CALL_ERRORS,
    })
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        return answer(request, OllamaChatSerializer(data=request.data), "chat")


class GenerateApi(OllamaApi):
    @extend_schema(operation_id="ollama_generate", tags=TAGS, request=OllamaGenerateSerializer, responses={
        (200, "application/x-ndjson"): OpenApiResponse(
            OllamaGenerateResponseSerializer,
            description="As api/chat, with the text in `response`.",
        ),
        **CALL_ERRORS,
    })
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        return answer(request, OllamaGenerateSerializer(data=request.data), "generate")


class TagsApi(OllamaApi):
    @extend_schema(operation_id="ollama_tags", tags=TAGS, responses=OllamaTagsSerializer)
    def get(self, request: Request) -> Response:
        return Response({"models": [ollama_format.tag_entry(model) for model in catalogue()]})


class ShowApi(OllamaApi):
    @extend_schema(operation_id="ollama_show", tags=TAGS, request=OllamaShowRequestSerializer, responses={
        200: OllamaShowSerializer, 404: error("Unknown model."),
    })
    def post(self, request: Request) -> Response:
        data = OllamaShowRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = find_model(data.validated_data.get("model") or data.validated_data["name"])
        return Response(ollama_format.show_body(model))


class PsApi(OllamaApi):
    @extend_schema(operation_id="ollama_ps", tags=TAGS, responses=OllamaPsSerializer)
    def get(self, request: Request) -> Response:
        running = selectors.running_models()
        models = [ollama_format.running_entry(model, running[model.name])
                  for model in catalogue() if model.name in running]
        return Response({"models": models})


class VersionApi(OllamaApi):
    """Public, as Ollama's is: clients probe it before they send a key."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(operation_id="ollama_version", tags=TAGS, responses=OllamaVersionSerializer)
    def get(self, request: Request) -> Response:
        return Response({"version": settings.APP_VERSION})


class EmbedApi(OllamaApi):
    @extend_schema(operation_id="ollama_embed", tags=TAGS, request=OllamaEmbedRequestSerializer, responses={
        200: OllamaEmbedResponseSerializer,
        400: error("Invalid input."),
        401: error("No valid API token as the Bearer key."),
        404: error("Not the embedding model this server runs."),
        503: error("The embedding engine is unavailable."),
    })
    def post(self, request: Request) -> Response:
        data = OllamaEmbedRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return Response(ollama_body(embed_for_api(model=values["model"], texts=values["input"],
                                                  dimensions=values.get("dimensions"))))
