"""Requests of the OpenAI- and Ollama-compatible APIs, checked field by field, and the documented responses.

An option this server cannot honour (several choices, tools, log probabilities, a structured output format, an
argument it does not know) is a 400 naming it, never silently ignored: the caller would get something other
than what it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatproject.validation import Int64Field, StrictBooleanField, StrictCharField, is_storable_text
from models_mgmt.providers import ChatTurn, GenerationOptions

MAX_MESSAGES = 4096  # far beyond any context window; the body's size limit applies as well
MAX_STOP_STRINGS = 4
MAX_GENERATED_TOKENS = 32768
TOOLS_UNSUPPORTED = "Tools are not supported: no model backend here runs tools."
AUTO = "auto"


@dataclass(frozen=True)
class CompletionCall:
    """What a validated request asks for, in the streaming seam's terms."""

    model: str | None  # None: the default model (what `auto` picks until the adaptive router exists)
    turns: list[ChatTurn]
    options: GenerationOptions
    stream: bool
    include_usage: bool = False


def check_text(value: str) -> str:
    if not is_storable_text(value):
        raise serializers.ValidationError("Text may not contain NUL characters or unpaired surrogates.")
    if len(value) > settings.MESSAGE_MAX_CHARS:
        raise serializers.ValidationError(
            f"Message is {len(value)} characters; the limit is {settings.MESSAGE_MAX_CHARS}."
        )
    return value


def model_wanted(name: str) -> str | None:
    return None if name == AUTO else name


def generation_options(
    *, temperature: float | None, top_p: float | None, top_k: int | None, repeat_penalty: float | None,
    max_tokens: int | None, stop: list[str] | None, seed: int | None,
) -> GenerationOptions:
    """Options the caller left out take the chat's defaults."""
    defaults = GenerationOptions()
    return GenerationOptions(
        temperature=defaults.temperature if temperature is None else temperature,
        top_p=defaults.top_p if top_p is None else top_p,
        top_k=defaults.top_k if top_k is None else top_k,
        repeat_penalty=defaults.repeat_penalty if repeat_penalty is None else repeat_penalty,
        max_tokens=max_tokens or settings.DEFAULT_MAX_TOKENS,
        stop=tuple(stop or ()),
        seed=seed,
        given=frozenset(name for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
                        ("repeat_penalty", repeat_penalty), ("max_tokens", max_tokens)) if value is not None),
    )


class KnownKeysSerializer(serializers.Serializer):
    """Refuses any key it does not declare, naming it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: ["Unrecognized request argument; this server does not support it."]}
                )
        return super().to_internal_value(data)


def refuse_unless(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise serializers.ValidationError({field: [message]})


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                                       "maxItems": MAX_STOP_STRINGS}]})
class StopField(serializers.Field):
    """One stop string or a list of up to four."""

    def to_internal_value(self, data: Any) -> list[str]:
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
            raise serializers.ValidationError("Expected a non-empty string or a list of them.")
        if len(items) > MAX_STOP_STRINGS:
            raise serializers.ValidationError(f"At most {MAX_STOP_STRINGS} stop strings.")
        for item in items:
            if not is_storable_text(item):
                raise serializers.ValidationError("Text may not contain NUL characters or unpaired surrogates.")
        return items

    def to_representation(self, value: list[str]) -> list[str]:
        return value


# --- OpenAI ----------------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [
    {"type": "string"},
    {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string", "enum": ["text"]},
                                                                  "text": {"type": "string"}},
                                "required": ["type", "text"]}},
], "nullable": True})
class OpenAIContentField(serializers.Field):
    """A message's text: a string, or a list of `text` parts (joined by new lines). Images and audio are
    refused: no model here reads them."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return check_text(data)
        if isinstance(data, list):
            texts = []
            for part in data:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise serializers.ValidationError("Only text content parts ({type: text, text}) are supported.")
                texts.append(part["text"])
            return check_text("\n".join(texts))
        raise serializers.ValidationError("Expected a string or a list of text parts.")

    def to_representation(self, value: str) -> str:
        return value


class OpenAIMessageSerializer(serializers.Serializer):
    """One turn. Fields the API's own responses carry (`refusal`, `annotations` ...) may be sent back as they
    came; tool calls and tool results are refused."""

    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool", "function"])
    content = OpenAIContentField(required=False, allow_null=True, default=None)
    name = StrictCharField(required=False, max_length=64)
    tool_calls = serializers.ListField(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        """As in OpenAI's API, only an assistant turn may come without content."""
        if attrs.get("content") is None and attrs["role"] != "assistant":
            raise serializers.ValidationError({"content": f"A {attrs['role']} message needs content."})
        return attrs

    def validate_role(self, value: str) -> str:
        if value in ("tool", "function"):
            raise serializers.ValidationError(TOOLS_UNSUPPORTED)
        return "system" if value == "developer" else value

    def validate_tool_calls(self, value: list | None) -> list | None:
        if value:
            raise serializers.ValidationError(TOOLS_UNSUPPORTED)
        return value


class StreamOptionsSerializer(KnownKeysSerializer):
    include_usage = StrictBooleanField(required=False, default=False)


class ChatCompletionRequestSerializer(KnownKeysSerializer):
    """`POST /v1/chat/completions`. `top_k` and `repeat_penalty` are extensions (llama.cpp's server has them)."""

    model = StrictCharField(max_length=200, help_text="A model's name from `/v1/models`, or `auto`.")
    messages = serializers.ListField(child=OpenAIMessageSerializer(), min_length=1, max_length=MAX_MESSAGES)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    repeat_penalty = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=3.0)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_GENERATED_TOKENS)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                     max_value=MAX_GENERATED_TOKENS)
    stop = StopField(required=False, allow_null=True)
    seed = Int64Field(required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="Only 1.")
    user = StrictCharField(required=False, allow_blank=True, max_length=256)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0,
                                               help_text="Only 0 (use `repeat_penalty`).")
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0,
                                              help_text="Only 0 (use `repeat_penalty`).")
    logprobs = StrictBooleanField(required=False, allow_null=True, help_text="Only false.")
    top_logprobs = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=20,
                                            help_text="Only 0.")
    logit_bias = serializers.DictField(required=False, allow_null=True, help_text="Only empty.")
    tools = serializers.ListField(required=False, allow_null=True, help_text="Only empty: no backend runs tools.")
    tool_choice = serializers.JSONField(required=False, allow_null=True, help_text="Only `none`.")
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True)
    functions = serializers.ListField(required=False, allow_null=True, help_text="Only empty.")
    function_call = serializers.JSONField(required=False, allow_null=True, help_text="Only `none`.")
    response_format = serializers.DictField(required=False, allow_null=True, help_text="Only {type: text}.")
    store = StrictBooleanField(required=False, allow_null=True, help_text="Only false: completions are not stored.")

    def validate(self, attrs: dict) -> dict:
        refuse_unless((attrs.get("n") or 1) == 1, "n", "Only one choice per request (n=1) is supported.")
        refuse_unless(not attrs.get("tools") and attrs.get("tool_choice") in (None, "none"), "tools",
                      TOOLS_UNSUPPORTED)
        refuse_unless(not attrs.get("functions") and attrs.get("function_call") in (None, "none"), "functions",
                      TOOLS_UNSUPPORTED)
        for penalty in ("frequency_penalty", "presence_penalty"):
            refuse_unless(not attrs.get(penalty), penalty, f"{penalty} is not supported; use repeat_penalty.")
        refuse_unless(not attrs.get("logprobs") and not attrs.get("top_logprobs"), "logprobs",
                      "Log probabilities are not supported.")
        refuse_unless(not attrs.get("logit_bias"), "logit_bias", "logit_bias is not supported.")
        response_format = attrs.get("response_format") or {"type": "text"}
        refuse_unless(response_format.get("type") == "text", "response_format",
                      "Only text responses are supported (response_format {type: text}).")
        refuse_unless(not attrs.get("store"), "store", "Completions are not stored by this server.")
        refuse_unless(attrs.get("stream_options") is None or bool(attrs.get("stream")), "stream_options",
                      "stream_options is only allowed when stream is true.")
        return attrs

    def call(self) -> CompletionCall:
        data = self.validated_data
        turns = [ChatTurn(role=message["role"], content=message["content"] or "") for message in data["messages"]]
        options = generation_options(
            temperature=data.get("temperature"), top_p=data.get("top_p"), top_k=data.get("top_k"),
            repeat_penalty=data.get("repeat_penalty"),
            max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"), stop=data.get("stop"),
            seed=data.get("seed"),
        )
        stream_options = data.get("stream_options") or {}
        return CompletionCall(model=model_wanted(data["model"]), turns=turns, options=options,
                              stream=bool(data.get("stream")), include_usage=bool(stream_options.get("include_usage")))


class OpenAIErrorBodySerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, rate_limit_error, "
                                           "locked_error, not_implemented_error or server_error.")
    code = serializers.CharField(help_text="e.g. invalid_api_key, model_not_found, too_many_streams, panic.")
    param = serializers.CharField(allow_null=True, help_text="The request field the error is about.")


class OpenAIErrorSerializer(serializers.Serializer):
    """OpenAI's error shape."""

    error = OpenAIErrorBodySerializer()


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField(help_text="The provider: local, ollama, openai; `router` for `auto`.")


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField()
    refusal = serializers.CharField(allow_null=True)


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class ChatCompletionSerializer(serializers.Serializer):
    """`chat.completion` (stream false)."""

    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = CompletionChoiceSerializer(many=True)
    usage = UsageSerializer()


class ChunkDeltaSerializer(serializers.Serializer):
    role = serializers.CharField(required=False, help_text="Only in the first chunk.")
    content = serializers.CharField(required=False)


class ChunkChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    delta = ChunkDeltaSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"], allow_null=True,
                                            help_text="Null until the last choice chunk.")


class ChatCompletionChunkSerializer(serializers.Serializer):
    """One `data:` line of the stream (stream true); the stream ends with `data: [DONE]`."""

    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion.chunk")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = ChunkChoiceSerializer(many=True, help_text="Empty in the usage chunk.")
    usage = UsageSerializer(required=False, allow_null=True,
                            help_text="With stream_options.include_usage: null, then the totals in the last chunk.")


# --- Ollama ----------------------------------------------------------------------------------------------


class OllamaOptionsSerializer(KnownKeysSerializer):
    """Sampling options, plus the model-loading settings Ollama clients send (`num_ctx`, `num_gpu` ...), which
    are this server's configuration: accepted, not applied."""

    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    repeat_penalty = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=3.0)
    num_predict = serializers.IntegerField(required=False, allow_null=True, min_value=-2,
                                           max_value=MAX_GENERATED_TOKENS,
                                           help_text="Tokens to generate; -1 or -2: the server's default.")
    stop = StopField(required=False, allow_null=True)
    seed = Int64Field(required=False, allow_null=True)
    num_ctx = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    num_batch = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    num_gpu = serializers.IntegerField(required=False, allow_null=True, min_value=-1)
    main_gpu = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    num_thread = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    use_mmap = StrictBooleanField(required=False, allow_null=True)
    use_mlock = StrictBooleanField(required=False, allow_null=True)
    low_vram = StrictBooleanField(required=False, allow_null=True)


def options_from(data: dict | None) -> GenerationOptions:
    data = data or {}
    predict = data.get("num_predict")
    return generation_options(
        temperature=data.get("temperature"), top_p=data.get("top_p"), top_k=data.get("top_k"),
        repeat_penalty=data.get("repeat_penalty"), max_tokens=predict if predict and predict > 0 else None,
        stop=data.get("stop"), seed=data.get("seed"),
    )


class OllamaMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant", "tool"])
    content = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    thinking = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    images = serializers.ListField(required=False, allow_null=True, help_text="Only empty: no model reads images.")
    tool_calls = serializers.ListField(required=False, allow_null=True, help_text="Only empty.")

    def validate_role(self, value: str) -> str:
        if value == "tool":
            raise serializers.ValidationError(TOOLS_UNSUPPORTED)
        return value

    def validate_content(self, value: str) -> str:
        return check_text(value)

    def validate_images(self, value: list | None) -> list | None:
        if value:
            raise serializers.ValidationError("Images are not supported: no model here reads them.")
        return value

    def validate_tool_calls(self, value: list | None) -> list | None:
        if value:
            raise serializers.ValidationError(TOOLS_UNSUPPORTED)
        return value


class OllamaCallSerializer(KnownKeysSerializer):
    """What `api/chat` and `api/generate` share. `keep_alive` is accepted and not applied: how long a model
    stays loaded is this server's configuration."""

    model = StrictCharField(max_length=200, help_text="A model's name from `api/tags`, or `auto`.")
    stream = StrictBooleanField(required=False, allow_null=True, default=True)
    options = OllamaOptionsSerializer(required=False, allow_null=True)
    format = serializers.JSONField(required=False, allow_null=True, help_text="Only empty: no structured output.")
    keep_alive = serializers.JSONField(required=False, allow_null=True)
    think = serializers.JSONField(required=False, allow_null=True, help_text="Only false.")

    def validate_format(self, value: Any) -> Any:
        if value:
            raise serializers.ValidationError("Structured output (format) is not supported.")
        return value

    def validate_think(self, value: Any) -> Any:
        if value:
            raise serializers.ValidationError("Thinking is not supported by the models here.")
        return value

    def base_call(self, turns: list[ChatTurn]) -> CompletionCall:
        data = self.validated_data
        stream = data.get("stream")
        return CompletionCall(model=model_wanted(data["model"]), turns=turns, options=options_from(data.get("options")),
                              stream=True if stream is None else stream)


class OllamaChatSerializer(OllamaCallSerializer):
    """`POST /ollama/api/chat`; no messages only answers that the model is ready (done_reason `load`)."""

    messages = serializers.ListField(child=OllamaMessageSerializer(), required=False, default=list,
                                     max_length=MAX_MESSAGES)
    tools = serializers.ListField(required=False, allow_null=True, help_text="Only empty.")

    def validate_tools(self, value: list | None) -> list | None:
        if value:
            raise serializers.ValidationError(TOOLS_UNSUPPORTED)
        return value

    def call(self) -> CompletionCall:
        turns = [ChatTurn(role=m["role"], content=m["content"]) for m in self.validated_data["messages"]]
        return self.base_call(turns)


class OllamaGenerateSerializer(OllamaCallSerializer):
    """`POST /ollama/api/generate`: `system` and `prompt` become a system and a user turn; an empty prompt only
    answers that the model is ready (done_reason `load`)."""

    prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    system = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    suffix = StrictCharField(required=False, allow_blank=True, help_text="Only empty.")
    template = StrictCharField(required=False, allow_blank=True, help_text="Only empty.")
    context = serializers.ListField(required=False, allow_null=True, help_text="Only empty.")
    raw = StrictBooleanField(required=False, allow_null=True, help_text="Only false.")
    images = serializers.ListField(required=False, allow_null=True, help_text="Only empty.")

    def validate_prompt(self, value: str) -> str:
        return check_text(value)

    def validate_system(self, value: str) -> str:
        return check_text(value)

    def validate(self, attrs: dict) -> dict:
        for name in ("suffix", "template"):
            refuse_unless(not attrs.get(name), name, f"{name} is not supported.")
        refuse_unless(not attrs.get("context"), "context", "context is not supported; send the conversation "
                      "to api/chat instead.")
        refuse_unless(not attrs.get("raw"), "raw", "Raw prompts are not supported.")
        refuse_unless(not attrs.get("images"), "images", "Images are not supported: no model here reads them.")
        return attrs

    def call(self) -> CompletionCall:
        data = self.validated_data
        if not data["prompt"]:
            return self.base_call([])
        turns = [ChatTurn(role="system", content=data["system"])] if data["system"] else []
        turns.append(ChatTurn(role="user", content=data["prompt"]))
        return self.base_call(turns)


class OllamaShowRequestSerializer(KnownKeysSerializer):
    """`POST /ollama/api/show`: `model` (older clients send `name`)."""

    model = StrictCharField(required=False, max_length=200)
    name = StrictCharField(required=False, max_length=200)
    verbose = StrictBooleanField(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        refuse_unless(bool(attrs.get("model") or attrs.get("name")), "model", "This field is required.")
        return attrs


class OllamaErrorSerializer(serializers.Serializer):
    """Ollama's error shape."""

    error = serializers.CharField()


class OllamaDetailsSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="gguf for the bundled llama.cpp models, empty when unknown.")
    family = serializers.CharField()
    families = serializers.ListField(child=serializers.CharField(), allow_null=True)
    parameter_size = serializers.CharField(help_text="e.g. 135M, 7.6B; empty when unknown.")
    quantization_level = serializers.CharField(help_text="e.g. Q4_K_M; empty when unknown.")


class OllamaTagSerializer(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.CharField()
    modified_at = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(allow_null=True)
    digest = serializers.CharField(help_text="The backend's digest of the model; empty when it gives none.")
    details = OllamaDetailsSerializer()


class OllamaTagsSerializer(serializers.Serializer):
    models = OllamaTagSerializer(many=True)


class OllamaRunningSerializer(OllamaTagSerializer):
    context_length = serializers.IntegerField()
    replies = serializers.IntegerField(help_text="Replies generating now with this model, on every worker.")


class OllamaPsSerializer(serializers.Serializer):
    models = OllamaRunningSerializer(many=True)


class OllamaShowSerializer(serializers.Serializer):
    details = OllamaDetailsSerializer()
    model_info = serializers.DictField(help_text="general.architecture, general.name, <architecture>.context_length.")
    capabilities = serializers.ListField(child=serializers.CharField(), help_text="completion and/or embedding.")
    modified_at = serializers.CharField(allow_null=True)


class OllamaVersionSerializer(serializers.Serializer):
    version = serializers.CharField()


class OllamaChatMessageOutSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField()


class OllamaResponseSerializer(serializers.Serializer):
    """One NDJSON line (stream true) or the whole answer (stream false). Only the last object (`done` true)
    has `done_reason`, the counts and the durations (nanoseconds)."""

    model = serializers.CharField()
    created_at = serializers.CharField()
    done = serializers.BooleanField()
    done_reason = serializers.ChoiceField(choices=["stop", "length", "load"], required=False)
    total_duration = serializers.IntegerField(required=False)
    prompt_eval_count = serializers.IntegerField(required=False)
    prompt_eval_duration = serializers.IntegerField(required=False, help_text="Time to the first token.")
    eval_count = serializers.IntegerField(required=False)
    eval_duration = serializers.IntegerField(required=False)


class OllamaChatResponseSerializer(OllamaResponseSerializer):
    message = OllamaChatMessageOutSerializer()


class OllamaGenerateResponseSerializer(OllamaResponseSerializer):
    response = serializers.CharField()
