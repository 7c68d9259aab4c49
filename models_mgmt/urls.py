"""Model management routes, mounted under /api/v1/chat/ (spec §3.3)."""

from django.urls import path

from models_mgmt import apis

models_urlpatterns = [
    path("models", apis.ModelsListApi.as_view(), name="chat-models"),
    path("models/status", apis.ModelsStatusApi.as_view(), name="chat-models-status"),
    path("models/orchestrator-suitable", apis.ModelsOrchestratorApi.as_view(), name="chat-models-orchestrator"),
    path("models/preload", apis.ModelPreloadApi.as_view(), name="chat-models-preload"),
    # `path`: a qualified name (ollama/llama3.2:3b) has a slash in it.
    path("models/unload/<path:model_name>", apis.ModelUnloadApi.as_view(), name="chat-models-unload"),
    path("models/hot-slots", apis.HotSlotsApi.as_view(), name="chat-models-hot-slots"),
    path("models/hot-slots/<int:slot_number>", apis.HotSlotApi.as_view(), name="chat-models-hot-slot"),
    path("models/load-hot-slots", apis.HotSlotsLoadApi.as_view(), name="chat-models-hot-slots-load"),
    path("models/defaults", apis.ModelDefaultsListApi.as_view(), name="chat-models-defaults"),
    path("models/defaults/<path:model_name>", apis.ModelDefaultsApi.as_view(), name="chat-models-defaults-one"),
    path("system/memory", apis.SystemMemoryApi.as_view(), name="chat-system-memory"),
    path("ollama/server/status", apis.OllamaStatusApi.as_view(), name="chat-ollama-status"),
    path("ollama/server/start", apis.OllamaStartApi.as_view(), name="chat-ollama-start"),
    path("ollama/server/shutdown", apis.OllamaShutdownApi.as_view(), name="chat-ollama-shutdown"),
    path("ollama/server/restart", apis.OllamaRestartApi.as_view(), name="chat-ollama-restart"),
    path("ollama/config", apis.OllamaConfigApi.as_view(), name="chat-ollama-config"),
    path("ollama/config/mode", apis.OllamaConfigModeApi.as_view(), name="chat-ollama-config-mode"),
    path("ollama/config/auto-detect", apis.OllamaConfigDetectApi.as_view(), name="chat-ollama-config-detect"),
]
