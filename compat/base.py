"""What every compatible view shares: Bearer tokens only, JSON whatever the client accepts, its API's error
shape, in the OpenAPI document too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from asgiref.sync import async_to_sync
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.models import ApiToken
from chatproject.errors import ApiError
from chatproject.parsers import JSONParser
from chatproject.schema import ApiAutoSchema, ApiErrorSerializer
from compat.runs import CompletionRun
from compat.serializers import CompletionCall
from models_mgmt.providers import GenerationOptions, ModelInfo, ProviderError
from models_mgmt.registry import registry


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """These clients send all kinds of Accept headers (`text/event-stream`, `application/x-ndjson`, none); the
    answer is JSON, or the stream they asked for in the body, whatever they say."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class UnlabelledJSONParser(JSONParser):
    """Ollama's own examples send JSON with curl's default form label, and its server reads the body as JSON
    whatever the label: so do these APIs."""

    media_type = "*/*"


class CompatSchema(ApiAutoSchema):
    """The project's schema, with its error envelope swapped for the API's own error shape."""

    error_serializer: type[serializers.Serializer]

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        envelope = self.resolve_serializer(ApiErrorSerializer, "response").ref
        ours = self.resolve_serializer(self.error_serializer, "response").ref
        for response in operation.get("responses", {}).values():
            content = response.get("content", {}).get("application/json")
            if content is not None and content.get("schema") == envelope:
                content["schema"] = ours
        return operation


class CompatApi(APIView):
    """Authenticated by an API token as a Bearer key (sessions and their CSRF play no part)."""

    authentication_classes = [BearerTokenAuthentication]
    parser_classes = [JSONParser, UnlabelledJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnyAcceptNegotiation
    error_handler: Callable

    def get_exception_handler(self) -> Callable:
        return type(self).error_handler


# Tokens of the model's window kept for the chat template around the prompt (as the prompt's fitting does).
TEMPLATE_TOKENS = 32


def within_window(options: GenerationOptions, model: ModelInfo) -> GenerationOptions:
    """A `max_tokens` that would leave the prompt no room in the model's window is lowered to half the window:
    these clients send one large limit whatever the model (a limit is a ceiling, and `length` says it was hit)."""
    if options.max_tokens + TEMPLATE_TOKENS < model.context_length:
        return options
    return replace(options, max_tokens=max(1, model.context_length // 2))


def begin(request: Request, call: CompletionCall, model: ModelInfo) -> CompletionRun:
    """Start the call's reply with `model` through the streaming seam, counted against the request's API token."""
    token_id = request.auth.pk if isinstance(request.auth, ApiToken) else None
    return async_to_sync(CompletionRun.begin)(user=request.user, token_id=token_id, turns=call.turns,
                                             model=model.qualified_name, options=within_window(call.options, model))


def catalogue() -> list[ModelInfo]:
    return async_to_sync(registry.list_models)()


def find_model(name: str | None) -> ModelInfo:
    """A catalogue model by its name (or `provider/name`), None for the default one; `name:latest` also finds
    `name`, as Ollama does."""
    candidates = [name, name.removesuffix(":latest")] if name else [None]
    for candidate in candidates:
        try:
            return async_to_sync(registry.resolve)(candidate)
        except ProviderError as exc:
            if exc.code != "model_not_found":
                raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
    raise ApiError(f"The model {name!r} does not exist.", code="model_not_found", status_code=404)
