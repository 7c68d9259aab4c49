"""The embedding module as the OpenAI- and Ollama-compatible APIs expose it: request shapes and one call."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import numpy as np
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatproject.errors import ApiError
from models_mgmt.embeddings import EmbeddingError, embedder
from models_mgmt.providers.base import estimate_tokens

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 100_000


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})
class EmbeddingInputField(serializers.Field):
    """A string or a list of strings (token arrays are refused: this server embeds text)."""

    default_error_messages = {
        "invalid": "input must be a string or a non-empty list of strings.",
        "too_many": f"input may hold at most {MAX_INPUTS} texts.",
        "too_long": f"each input may be at most {MAX_INPUT_CHARS} characters.",
        "unstorable": "input may not contain NUL characters or unpaired surrogates.",
    }

    def to_internal_value(self, data) -> list[str]:
        texts = [data] if isinstance(data, str) else data
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
            self.fail("invalid")
        if len(texts) > MAX_INPUTS:
            self.fail("too_many")
        if any(len(text) > MAX_INPUT_CHARS for text in texts):
            self.fail("too_long")
        try:
            for text in texts:
                text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("unstorable")
        return texts

    def to_representation(self, value):
        return value


class OpenAIEmbeddingRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = EmbeddingInputField()
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False, default="float")
    dimensions = serializers.IntegerField(required=False, min_value=1, max_value=65536)
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)


class OllamaEmbedRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = EmbeddingInputField()
    truncate = serializers.BooleanField(required=False, default=True)
    keep_alive = serializers.JSONField(required=False)
    options = serializers.DictField(required=False)
    dimensions = serializers.IntegerField(required=False, min_value=1, max_value=65536)


class OpenAIEmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(default="embedding")
    index = serializers.IntegerField()
    embedding = serializers.ListField(child=serializers.FloatField(), help_text="Or a base64 string of float32s.")


class OpenAIUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class OpenAIEmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIEmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = OpenAIUsageSerializer()


class OllamaEmbedResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    embeddings = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    total_duration = serializers.IntegerField(help_text="Nanoseconds.")
    load_duration = serializers.IntegerField()
    prompt_eval_count = serializers.IntegerField()


@dataclass(frozen=True)
class Embedded:
    model: str
    vectors: np.ndarray
    prompt_tokens: int
    seconds: float


def served_names() -> set[str]:
    """The names a client may ask for: the model as the engine calls it, or qualified with its engine."""
    engine = embedder.engine
    return {engine.model, embedder.model_name, engine.model.split("/")[-1]}


def embed_for_api(*, model: str, texts: list[str], dimensions: int | None = None) -> Embedded:
    """Embed with the module's engine; an unknown model is a 404, a failed engine a 503, in the caller's shape."""
    try:
        if model not in served_names():
            raise ApiError(f"The model {model!r} does not exist; this server embeds with {embedder.engine.model!r}.",
                           code="model_not_found", status_code=404)
        if dimensions is not None and dimensions != embedder.engine.dimension:
            raise ApiError(f"{embedder.engine.model} has {embedder.engine.dimension} dimensions.",
                           code="invalid_dimensions", status_code=400, details={"param": "dimensions"})
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        seconds = time.perf_counter() - started
    except EmbeddingError as exc:
        raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
    return Embedded(model=embedder.engine.model, vectors=vectors,
                    prompt_tokens=sum(estimate_tokens(text) for text in texts), seconds=seconds)


def openai_body(result: Embedded, *, encoding_format: str) -> dict:
    def encode(vector: np.ndarray):
        if encoding_format == "base64":
            return base64.b64encode(vector.astype(np.float32).tobytes()).decode()
        return vector.tolist()

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(result.vectors)],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


def ollama_body(result: Embedded) -> dict:
    return {"model": result.model, "embeddings": result.vectors.tolist(),
            "total_duration": int(result.seconds * 1e9), "load_duration": 0,
            "prompt_eval_count": result.prompt_tokens}
