"""chat_tokens_count: exact with a local GGUF model's own tokenizer, an estimate elsewhere."""

from __future__ import annotations

import pytest

from tests.conftest import client_for
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db

TEXT = "The quick brown fox jumps over the lazy dog. " * 4


def test_exact_for_the_bundled_model(settings, user):
    settings.LOCAL_MODELS_ENABLED, settings.OLLAMA_URLS, settings.OPENAI_BASE_URL = True, [], ""
    settings.DEFAULT_MODEL = ""
    room = RoomFactory(owner=user)
    body = client_for(user).post(f"/api/v1/chat/sessions/{room.pk}/token-count", {"text": TEXT}).json()
    assert body["exact"] is True and body["provider"] == "local" and body["model"] == "smollm2-135m-instruct"
    assert 30 < body["count"] < 60 and body["context_length"] > 0


def test_an_estimate_for_ollama(fake_ollama, user):
    room = RoomFactory(owner=user, model="fake-llm:latest")
    body = client_for(user).post(f"/api/v1/chat/sessions/{room.pk}/token-count", {"text": TEXT}).json()
    assert body == {"count": (len(TEXT) + 3) // 4, "exact": False, "model": "fake-llm:latest", "provider": "ollama",
                    "context_length": body["context_length"]}


def test_scope_and_input(fake_ollama, roles):
    room = RoomFactory(owner=roles["owner"], model="fake-llm:latest")
    url = f"/api/v1/chat/sessions/{room.pk}/token-count"
    assert client_for(roles["founder"]).post(url, {"text": "hi"}).status_code == 200  # reading is enough
    assert client_for(roles["other_user"]).post(url, {"text": "hi"}).status_code == 404
    owner = client_for(roles["owner"])
    assert owner.post(url, {}).status_code == 400
    assert owner.post(url, {"text": 5}).status_code == 400
    assert owner.post(url, {"text": "hi", "model": "no-such-model"}).status_code == 400
    assert owner.post(url, {"text": ""}).json()["count"] == 0
