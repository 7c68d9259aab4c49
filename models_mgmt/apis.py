"""Thin HTTP views for the model catalogue, preload and unload, hot slots and system memory (spec §3.3)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import IsStaff
from chatproject.schema import error_response
from models_mgmt import selectors, services
from models_mgmt.serializers import (
    HotSlotAssignResultSerializer,
    HotSlotAssignSerializer,
    HotSlotRemoveResultSerializer,
    HotSlotSerializer,
    HotSlotsLoadResultSerializer,
    ModelDefaultsDeleteResultSerializer,
    ModelDefaultsSerializer,
    ModelDefaultsSetResultSerializer,
    ModelDefaultsSetSerializer,
    ModelListSerializer,
    ModelsStatusSerializer,
    OllamaConfigSerializer,
    OllamaControlResultSerializer,
    OllamaControlSerializer,
    OllamaDetectResultSerializer,
    OllamaDetectSerializer,
    OllamaModeResultSerializer,
    OllamaModeSerializer,
    OllamaRestartSerializer,
    OllamaStatusSerializer,
    PreloadResultSerializer,
    PreloadSerializer,
    SystemMemorySerializer,
    UnloadResultSerializer,
)
from ops.panic import NotDuringPanic

STAFF = [permissions.IsAuthenticated, IsStaff]
# Loading takes memory and starts work, so it waits out a panic; unloading only frees, so it is always allowed.
STAFF_LOADS = [permissions.IsAuthenticated, IsStaff, NotDuringPanic]
BUDGET = error_response("The load would exceed the model memory budget (code memory_budget); details.unload "
                        "names the models to unload first.")
BACKEND = error_response("The model's server could not load it (code load_failed or backend_unavailable).")


def _is_staff(request: Request) -> bool:
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class PublicModelsApi(APIView):
    permission_classes = [permissions.AllowAny]


@extend_schema(tags=["chat-public"])
class ModelsListApi(PublicModelsApi):
    @extend_schema(operation_id="chat_models_list", responses=ModelListSerializer)
    def get(self, request: Request) -> Response:
        """Every model of every configured server in `results`, with what it is and whether it is loaded now, and
        in `servers` each server up or down with the reason.

        Served from the last listing; once that is older than MODEL_LIST_TTL_SECONDS a refresh runs in the
        background, so a dead server never slows this down.
        """
        return Response(ModelListSerializer(selectors.model_list(staff=_is_staff(request))).data)


@extend_schema(tags=["chat-public"])
class ModelsStatusApi(PublicModelsApi):
    @extend_schema(operation_id="chat_models_status", responses=ModelsStatusSerializer)
    def get(self, request: Request) -> Response:
        """Each server up or down (and why), the models loaded now with their memory and unload time, and the
        memory budget."""
        return Response(ModelsStatusSerializer(selectors.status(staff=_is_staff(request))).data)


@extend_schema(tags=["chat-public"])
class ModelsOrchestratorApi(PublicModelsApi):
    @extend_schema(operation_id="chat_models_orchestrator", responses=ModelListSerializer)
    def get(self, request: Request) -> Response:
        """Models fit to plan and route: chat models tuned to follow instructions, with a context window of at
        least 8192 tokens (their trained window); the same envelope as `chat_models_list`."""
        listing = selectors.model_list(staff=_is_staff(request), orchestrators_only=True)
        return Response(ModelListSerializer(listing).data)


@extend_schema(tags=["chat"])
class ModelPreloadApi(APIView):
    permission_classes = STAFF_LOADS

    @extend_schema(operation_id="chat_models_preload", request=PreloadSerializer,
                   responses={200: PreloadResultSerializer, 409: BUDGET, 503: BACKEND})
    def post(self, request: Request) -> Response:
        """Load a model and answer once it is ready: Ollama through an empty generate with `keep_alive`, a local
        GGUF loaded into llama.cpp. Staff only, audited."""
        data = PreloadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.preload_model(actor=request.user, name=data.validated_data["model"],
                                        keep_alive=data.validated_data.get("keep_alive"))
        return Response(PreloadResultSerializer(result).data)


@extend_schema(tags=["chat"])
class ModelUnloadApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_models_unload", request=None,
                   responses={200: UnloadResultSerializer,
                              409: error_response("The model is in a hot slot (code in_hot_slot), or its server "
                                                  "cannot unload (code not_supported).")})
    def post(self, request: Request, model_name: str) -> Response:
        """Free a model's memory: Ollama `keep_alive: 0`; a local model is freed after the reply running on it
        ends. Staff only, audited."""
        return Response(UnloadResultSerializer(services.unload_model(actor=request.user, name=model_name)).data)


@extend_schema(tags=["chat-public"])
class HotSlotsApi(PublicModelsApi):
    @extend_schema(operation_id="chat_models_hot_slots", responses=HotSlotSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The four hot slots, empty ones too, each with its model's live state."""
        return Response(HotSlotSerializer(selectors.hot_slot_rows(staff=_is_staff(request)), many=True).data)


@extend_schema(tags=["chat"])
class HotSlotApi(APIView):
    def get_permissions(self):
        return [permission() for permission in (STAFF_LOADS if self.request.method == "POST" else STAFF)]

    @extend_schema(operation_id="chat_models_hot_slot_assign", request=HotSlotAssignSerializer,
                   responses={200: HotSlotAssignResultSerializer, 409: BUDGET, 503: BACKEND})
    def post(self, request: Request, slot_number: int) -> Response:
        """Put a model in slot 1–4 and load it to stay loaded. Staff only, audited."""
        data = HotSlotAssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.assign_hot_slot(actor=request.user, slot_number=slot_number,
                                          name=data.validated_data["model"])
        return Response(HotSlotAssignResultSerializer(result).data)

    @extend_schema(operation_id="chat_models_hot_slot_remove", request=None,
                   responses={200: HotSlotRemoveResultSerializer})
    def delete(self, request: Request, slot_number: int) -> Response:
        """Empty a slot; its model then unloads when its keep-alive runs out, like any other. Staff only, audited."""
        return Response(HotSlotRemoveResultSerializer(
            services.remove_hot_slot(actor=request.user, slot_number=slot_number)).data)


@extend_schema(tags=["chat"])
class HotSlotsLoadApi(APIView):
    permission_classes = STAFF_LOADS

    @extend_schema(operation_id="chat_models_hot_slots_load", request=None,
                   responses={200: HotSlotsLoadResultSerializer})
    def post(self, request: Request) -> Response:
        """Load every slotted model to stay; each slot reports on its own. Staff only, audited."""
        return Response(HotSlotsLoadResultSerializer(services.load_hot_slots(actor=request.user)).data)


@extend_schema(tags=["chat"])
class SystemMemoryApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_system_memory", responses=SystemMemorySerializer)
    def get(self, request: Request) -> Response:
        """This worker's memory, the host's RAM and swap, each loaded model's memory, and GPU memory where
        nvidia-smi can read it. Staff only."""
        return Response(SystemMemorySerializer(selectors.system_memory()).data)


@extend_schema(tags=["chat"])
class ModelDefaultsListApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_models_defaults_list", responses=ModelDefaultsSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Every model's stored defaults: context cap, keep-alive, generation parameters and system prompt, used
        under a room's own settings. Staff only."""
        return Response(ModelDefaultsSerializer(selectors.model_defaults_rows(), many=True).data)


@extend_schema(tags=["chat"])
class ModelDefaultsApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_models_defaults_set", request=ModelDefaultsSetSerializer,
                   responses={200: ModelDefaultsSetResultSerializer,
                              400: error_response("A value is out of range, or the model is not in the catalogue "
                                                  "(code model_not_found).")})
    def put(self, request: Request, model_name: str) -> Response:
        """Store a model's defaults, replacing what was stored: a field left out or null is cleared. Staff only,
        audited."""
        data = ModelDefaultsSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row, created = services.set_model_defaults(actor=request.user, name=model_name, values=data.validated_data)
        row.created = created
        return Response(ModelDefaultsSetResultSerializer(row).data)

    @extend_schema(operation_id="chat_models_defaults_delete", request=None,
                   responses={200: ModelDefaultsDeleteResultSerializer,
                              404: error_response("No defaults are stored for the model.")})
    def delete(self, request: Request, model_name: str) -> Response:
        """Remove a model's defaults; the server's values apply again. Staff only, audited."""
        model = services.delete_model_defaults(actor=request.user, name=model_name)
        return Response(ModelDefaultsDeleteResultSerializer({"model": model, "deleted": True}).data)


NOT_CONFIGURED = ("No Ollama binary is configured (code not_configured), the binary is missing (binary_not_found), "
                  "another start, shutdown or restart is under way (operation_in_progress)")


@extend_schema(tags=["chat-public"])
class OllamaStatusApi(PublicModelsApi):
    @extend_schema(operation_id="chat_ollama_status", responses=OllamaStatusSerializer)
    def get(self, request: Request) -> Response:
        """The managed `ollama serve` (running, stopped, external or unmanaged; uptime, version, last exit) and
        each configured Ollama server's reachability. Staff also get the pid, addresses and the log's last lines."""
        return Response(OllamaStatusSerializer(selectors.ollama_status(staff=_is_staff(request))).data)


class OllamaControlApi(APIView):
    # Starting or stopping a server is not chat work, so it stays allowed while the panic switch is on.
    permission_classes = STAFF
    action = ""
    default_reason = ""
    input_serializer: type = OllamaControlSerializer

    def post(self, request: Request) -> Response:
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.control_ollama(actor=request.user, action=self.action,
                                         reason=data.validated_data.get("reason") or self.default_reason)
        return Response(OllamaControlResultSerializer(result).data)


@extend_schema(tags=["chat"])
class OllamaStartApi(OllamaControlApi):
    action, default_reason = "start", "Manual start"

    @extend_schema(operation_id="chat_ollama_start", request=OllamaControlSerializer,
                   responses={200: OllamaControlResultSerializer,
                              409: error_response(f"{NOT_CONFIGURED}, or a server already answers (already_running)."),
                              503: error_response("It exited or did not answer /api/version within "
                                                  "OLLAMA_START_TIMEOUT_SECONDS (start_failed, start_timeout); "
                                                  "details.log has the log's last lines.")})
    def post(self, request: Request) -> Response:
        """Start `ollama serve` (OLLAMA_BINARY) detached from this request and worker, with the configuration
        mode's server variables, and answer once `/api/version` does. Staff only, audited."""
        return super().post(request)


@extend_schema(tags=["chat"])
class OllamaShutdownApi(OllamaControlApi):
    action, default_reason = "shutdown", "Manual shutdown"

    @extend_schema(operation_id="chat_ollama_shutdown", request=OllamaControlSerializer,
                   responses={200: OllamaControlResultSerializer,
                              409: error_response(f"{NOT_CONFIGURED}, or nothing this app started is running "
                                                  "(not_running, not_managed).")})
    def post(self, request: Request) -> Response:
        """Stop the managed server: SIGTERM, then SIGKILL after OLLAMA_STOP_TIMEOUT_SECONDS. Staff only, audited."""
        return super().post(request)


@extend_schema(tags=["chat"])
class OllamaRestartApi(OllamaControlApi):
    action, default_reason, input_serializer = "restart", "Manual restart", OllamaRestartSerializer

    @extend_schema(operation_id="chat_ollama_restart", request=OllamaRestartSerializer,
                   responses={200: OllamaControlResultSerializer,
                              409: error_response(f"{NOT_CONFIGURED}, or an Ollama this app did not start answers "
                                                  "(already_running)."),
                              503: error_response("The new server did not come up (start_failed, start_timeout).")})
    def post(self, request: Request) -> Response:
        """Shut the managed server down (when it runs) and start it again, with the configuration mode's server
        variables; hot-slotted models are loaded again. Staff only, audited."""
        return super().post(request)


@extend_schema(tags=["chat"])
class OllamaConfigApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_ollama_config_get", responses=OllamaConfigSerializer)
    def get(self, request: Request) -> Response:
        """The configuration mode, its values, which apply to every request now and which `ollama serve` reads
        at start (and whether the running managed server has them), and every mode's values. Staff only."""
        return Response(OllamaConfigSerializer(selectors.ollama_config()).data)


@extend_schema(tags=["chat"])
class OllamaConfigModeApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_ollama_config_mode", request=OllamaModeSerializer,
                   responses=OllamaModeResultSerializer)
    def post(self, request: Request) -> Response:
        """Choose efficiency, balanced or performance: keep_alive and num_ctx apply to the next request, the
        server variables at the managed server's next start (`server` says which). Staff only, audited."""
        data = OllamaModeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(OllamaModeResultSerializer(
            services.set_ollama_mode(actor=request.user, mode=data.validated_data["mode"])).data)


@extend_schema(tags=["chat"])
class OllamaConfigDetectApi(APIView):
    permission_classes = STAFF

    @extend_schema(operation_id="chat_ollama_config_detect", request=OllamaDetectSerializer,
                   responses=OllamaDetectResultSerializer)
    def post(self, request: Request) -> Response:
        """Pick a mode from this host's RAM, CPU cores and GPUs (psutil; nvidia-smi when present), explain the
        choice, and store it unless `apply` is false. Staff only, audited."""
        data = OllamaDetectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(OllamaDetectResultSerializer(
            services.detect_ollama_mode(actor=request.user, apply=data.validated_data["apply"])).data)
