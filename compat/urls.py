"""Routes of the compatible APIs: `openai_urlpatterns` under /v1/, `ollama_urlpatterns` under /ollama/api/."""

from django.urls import path

from compat import ollama_apis, openai_apis

openai_urlpatterns = [
    path("chat/completions", openai_apis.ChatCompletionsApi.as_view(), name="openai-chat-completions"),
    path("models", openai_apis.ModelsApi.as_view(), name="openai-models"),
    path("models/<path:model>", openai_apis.ModelDetailApi.as_view(), name="openai-model"),
    path("embeddings", openai_apis.EmbeddingsApi.as_view(), name="openai-embeddings"),
]

ollama_urlpatterns = [
    path("chat", ollama_apis.ChatApi.as_view(), name="ollama-chat"),
    path("generate", ollama_apis.GenerateApi.as_view(), name="ollama-generate"),
    path("tags", ollama_apis.TagsApi.as_view(), name="ollama-tags"),
    path("show", ollama_apis.ShowApi.as_view(), name="ollama-show"),
    path("ps", ollama_apis.PsApi.as_view(), name="ollama-ps"),
    path("version", ollama_apis.VersionApi.as_view(), name="ollama-version"),
    path("embed", ollama_apis.EmbedApi.as_view(), name="ollama-embed"),
]
