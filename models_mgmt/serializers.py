"""Shapes of the model management API: catalogue rows, server state, hot slots, memory, and their inputs."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from chatproject.validation import StrictBooleanField, StrictCharField
from models_mgmt.models import ModelDefaults, parse_keep_alive
from models_mgmt.modes import MODES


class CatalogueModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    qualified_name = serializers.CharField(help_text="provider/name: unique across providers")
    provider = serializers.CharField(help_text="local, ollama or openai")
    server = serializers.CharField(help_text="The server's label: local, ollama-1, ollama-2 ..., openai")
    server_url = serializers.CharField(allow_null=True, help_text="Staff only: the server's address or file")
    servers = serializers.ListField(child=serializers.CharField(), help_text="Every server that has the model")
    size = serializers.IntegerField(allow_null=True, help_text="Bytes on disk")
    modified_at = serializers.CharField(allow_null=True)
    family = serializers.CharField()
    parameter_size = serializers.CharField()
    quantization = serializers.CharField()
    context_length = serializers.IntegerField(help_text="The window prompts are trimmed to")
    max_context_length = serializers.IntegerField(allow_null=True, help_text="The window the model was trained for")
    capabilities = serializers.ListField(child=serializers.CharField(),
                                         help_text="chat, embed, tools, vision ..., and orchestrator")
    instruct = serializers.BooleanField()
    default = serializers.BooleanField()
    loaded = serializers.BooleanField()
    loaded_on = serializers.ListField(child=serializers.CharField())
    memory_bytes = serializers.IntegerField(help_text="Memory the loaded model takes (Ollama's size from /api/ps)")
    vram_bytes = serializers.IntegerField(help_text="Of which on a GPU (size_vram)")
    expires_at = serializers.CharField(allow_null=True, help_text="When it unloads unless used again")
    hot_slot = serializers.IntegerField(allow_null=True)


class ServerStateSerializer(serializers.Serializer):
    provider = serializers.CharField()
    server = serializers.CharField()
    url = serializers.CharField(allow_null=True, help_text="Staff only")
    ok = serializers.BooleanField()
    error = serializers.CharField(help_text="Why it is down, e.g. 'no answer within 2 s', 'connection refused'")
    models = serializers.IntegerField()
    loaded = serializers.IntegerField()
    elapsed_ms = serializers.FloatField()


class LoadedModelSerializer(serializers.Serializer):
    model = serializers.CharField()
    provider = serializers.CharField()
    server = serializers.CharField()
    size = serializers.IntegerField()
    size_vram = serializers.IntegerField()
    expires_at = serializers.CharField(allow_null=True)
    context_length = serializers.IntegerField(allow_null=True)
    hot_slot = serializers.IntegerField(allow_null=True)


class MemoryBudgetSerializer(serializers.Serializer):
    budget_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()


class ModelListSerializer(serializers.Serializer):
    results = CatalogueModelSerializer(many=True)
    servers = ServerStateSerializer(many=True, help_text="Every configured server, up or down and why: a down "
                                                          "server's models are missing from `results`")
    listed_at = serializers.FloatField(help_text="Unix time of the listing served")
    refreshing = serializers.BooleanField(help_text="A background refresh is running")


class ModelsStatusSerializer(serializers.Serializer):
    listed_at = serializers.FloatField(help_text="Unix time of the listing served")
    age_seconds = serializers.FloatField()
    refreshing = serializers.BooleanField(help_text="A background refresh is running")
    servers = ServerStateSerializer(many=True)
    loaded = LoadedModelSerializer(many=True)
    memory = MemoryBudgetSerializer()


class PreloadSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="provider/name or name")
    keep_alive = serializers.CharField(required=False, max_length=20,
                                       help_text="Ollama keep_alive, e.g. 10m or -1 (forever); default the server's")

    def validate_keep_alive(self, value: str) -> str | int:
        try:
            return parse_keep_alive(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class PreloadResultSerializer(serializers.Serializer):
    model = serializers.CharField()
    loaded = serializers.BooleanField()
    servers = serializers.ListField(child=serializers.CharField())
    keep_alive = serializers.JSONField(allow_null=True)
    elapsed_ms = serializers.FloatField()


class UnloadResultSerializer(serializers.Serializer):
    model = serializers.CharField()
    unloaded = serializers.BooleanField(help_text="False when no server held it")
    servers = serializers.ListField(child=serializers.CharField())


class HotSlotSerializer(serializers.Serializer):
    slot = serializers.IntegerField()
    model = serializers.CharField(allow_null=True)
    assigned_by = serializers.CharField(allow_null=True, help_text="Staff only")
    assigned_at = serializers.DateTimeField(allow_null=True)
    available = serializers.BooleanField(allow_null=True, help_text="The model is in the catalogue")
    loaded = serializers.BooleanField()
    memory_bytes = serializers.IntegerField()
    expires_at = serializers.CharField(allow_null=True)


class HotSlotAssignSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="provider/name or name")


class HotSlotAssignResultSerializer(serializers.Serializer):
    slot = serializers.IntegerField()
    model = serializers.CharField()
    replaced = serializers.CharField(allow_null=True)
    loaded = serializers.BooleanField()
    servers = serializers.ListField(child=serializers.CharField())


class HotSlotRemoveResultSerializer(serializers.Serializer):
    slot = serializers.IntegerField()
    model = serializers.CharField()
    removed = serializers.BooleanField()


class HotSlotLoadRowSerializer(serializers.Serializer):
    slot = serializers.IntegerField()
    model = serializers.CharField()
    ok = serializers.BooleanField()
    servers = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField()


class HotSlotsLoadResultSerializer(serializers.Serializer):
    slots = HotSlotLoadRowSerializer(many=True)


class GpuMemorySerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    free_bytes = serializers.IntegerField()


class SystemMemorySerializer(serializers.Serializer):
    process = serializers.DictField(help_text="pid, rss_bytes of the worker that answered")
    system = serializers.DictField(help_text="total_bytes, available_bytes, used_bytes, percent")
    swap = serializers.DictField(help_text="total_bytes, used_bytes, percent")
    models = LoadedModelSerializer(many=True)
    models_total_bytes = serializers.IntegerField()
    budget_bytes = serializers.IntegerField()
    gpus = GpuMemorySerializer(many=True)


class OllamaProbeSerializer(serializers.Serializer):
    server = serializers.CharField(help_text="ollama-1, ollama-2, ... (ollama-managed for a managed address not "
                                             "in OLLAMA_URLS)")
    url = serializers.CharField(allow_null=True, help_text="Staff only")
    managed = serializers.BooleanField(help_text="The address the managed `ollama serve` listens on")
    reachable = serializers.BooleanField(help_text="`/api/version` answered within MODEL_SERVER_TIMEOUT_SECONDS")
    version = serializers.CharField(allow_null=True)
    error = serializers.CharField(help_text="Why it is unreachable: 'connection refused', 'no answer within 2 s'")
    elapsed_ms = serializers.FloatField()


class OllamaExitSerializer(serializers.Serializer):
    code = serializers.IntegerField(allow_null=True, help_text="Exit status (negative: the signal that ended it); "
                                                               "null when another worker started it")
    at = serializers.CharField()
    reason = serializers.CharField(help_text="'shutdown: <reason>', 'failed to start: ...' or 'exited on its own'")
    killed = serializers.BooleanField(help_text="It ignored SIGTERM for OLLAMA_STOP_TIMEOUT_SECONDS and was killed")


class OllamaStatusSerializer(serializers.Serializer):
    managed = serializers.BooleanField(help_text="OLLAMA_BINARY is set: this app starts and stops `ollama serve`")
    state = serializers.ChoiceField(choices=["running", "stopped", "external", "unmanaged"],
                                    help_text="running: started by this app; stopped; external: an Ollama this app "
                                              "did not start answers at the managed address; unmanaged: no binary "
                                              "configured")
    message = serializers.CharField()
    server = serializers.CharField(allow_null=True, help_text="Label of the managed server")
    url = serializers.CharField(allow_null=True, help_text="Staff only")
    pid = serializers.IntegerField(allow_null=True, help_text="Staff only")
    started_at = serializers.CharField(allow_null=True)
    uptime_seconds = serializers.FloatField(allow_null=True)
    version = serializers.CharField(allow_null=True, help_text="What the managed server's /api/version says")
    started_by = serializers.CharField(allow_null=True, help_text="Staff only")
    environment = serializers.DictField(child=serializers.CharField(), allow_null=True,
                                        help_text="Staff only: the OLLAMA_* variables it was started with")
    last_exit = OllamaExitSerializer(allow_null=True)
    log_file = serializers.CharField(allow_null=True, help_text="Staff only")
    log_tail = serializers.ListField(child=serializers.CharField(), help_text="Staff only: the log's last lines")
    servers = OllamaProbeSerializer(many=True, help_text="Every configured Ollama server's reachability")


class OllamaControlSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=500, required=False, help_text="Kept in the audit trail and the status")


class OllamaRestartSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=500, required=False, default="Manual restart",
                             help_text="Kept in the audit trail and the status")


class OllamaControlResultSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["start", "shutdown", "restart"])
    reason = serializers.CharField()
    previous_pid = serializers.IntegerField(allow_null=True, help_text="The process that was stopped, if any")
    status = OllamaStatusSerializer()


class ModeValuesSerializer(serializers.Serializer):
    keep_alive = serializers.CharField(help_text="Sent with every request: how long an idle model stays loaded")
    num_ctx = serializers.IntegerField(help_text="Sent with every request: the context window (at most the model's)")
    num_parallel = serializers.IntegerField(help_text="OLLAMA_NUM_PARALLEL, read by `ollama serve` at start")
    max_loaded_models = serializers.IntegerField(help_text="OLLAMA_MAX_LOADED_MODELS, read by `ollama serve` at start")
    description = serializers.CharField()


class PerRequestSerializer(serializers.Serializer):
    keep_alive = serializers.CharField(allow_null=True, help_text="null: the server's own default")
    num_ctx = serializers.IntegerField()


class ServerApplySerializer(serializers.Serializer):
    managed = serializers.BooleanField()
    state = serializers.CharField(help_text="running, stopped or unmanaged")
    restart_required = serializers.BooleanField(help_text="The running managed server has other values")
    applies = serializers.ChoiceField(choices=["in_effect", "next_start", "restart", "outside"],
                                      help_text="in_effect: the running server has them; next_start; restart: after "
                                                "chat_ollama_restart; outside: set them where Ollama is started")
    message = serializers.CharField()


class DetectionSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=list(MODES))
    explanation = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    facts = serializers.DictField(help_text="ram_bytes, cpus, gpus [{name, total_bytes}]")
    at = serializers.CharField()


class OllamaConfigSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=list(MODES), allow_null=True,
                                   help_text="null: no mode chosen, the environment's values apply")
    values = ModeValuesSerializer(allow_null=True)
    per_request = PerRequestSerializer(help_text="In effect now for every request to Ollama")
    server_environment = serializers.DictField(child=serializers.CharField(),
                                               help_text="What a managed `ollama serve` is started with")
    server = ServerApplySerializer()
    modes = serializers.DictField(child=ModeValuesSerializer(), help_text="Every mode and its values")
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    detection = DetectionSerializer(allow_null=True, help_text="The last auto-detect")


class OllamaModeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=list(MODES))


class OllamaModeResultSerializer(OllamaConfigSerializer):
    previous_mode = serializers.CharField(allow_null=True)


class OllamaDetectSerializer(serializers.Serializer):
    apply = StrictBooleanField(required=False, default=True,
                               help_text="Store the picked mode (default); false only explains the choice")


class OllamaDetectResultSerializer(serializers.Serializer):
    detection = DetectionSerializer()
    applied = serializers.BooleanField()
    config = OllamaModeResultSerializer()


class ModelDefaultsSerializer(serializers.ModelSerializer):
    """One model's defaults; each is used when neither the request nor the room sets that value."""

    updated_by = serializers.CharField(source="updated_by.username", allow_null=True, read_only=True, default=None)

    class Meta:
        model = ModelDefaults
        fields = ["model", "context_length", "keep_alive", "temperature", "top_p", "top_k", "repeat_penalty",
                  "max_tokens", "system_prompt", "updated_by", "updated_at"]
        read_only_fields = ["model", "updated_at"]


class ModelDefaultsSetSerializer(serializers.ModelSerializer):
    """The whole set of defaults for a model: a field left out or null is cleared (the server's value applies)."""

    class Meta:
        model = ModelDefaults
        fields = ["context_length", "keep_alive", "temperature", "top_p", "top_k", "repeat_penalty", "max_tokens",
                  "system_prompt"]
        extra_kwargs = {"keep_alive": {"allow_null": True}, "system_prompt": {"allow_null": True}}

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(str(key) for key in self.initial_data if key not in self.fields)
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        return {key: ("" if value is None and key in ("keep_alive", "system_prompt") else value)
                for key, value in attrs.items()}


class ModelDefaultsSetResultSerializer(ModelDefaultsSerializer):
    created = serializers.BooleanField(help_text="No defaults were stored for the model before")

    class Meta(ModelDefaultsSerializer.Meta):
        fields = [*ModelDefaultsSerializer.Meta.fields, "created"]


class ModelDefaultsDeleteResultSerializer(serializers.Serializer):
    model = serializers.CharField()
    deleted = serializers.BooleanField()
