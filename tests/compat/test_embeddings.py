"""/v1/embeddings and /ollama/api/embed on the embedding module, through the official clients."""

from __future__ import annotations

import httpx
import numpy as np
import ollama
import openai
import pytest


def test_openai_client_embeds_with_the_bundled_minilm(live, bearer):
    api = openai.OpenAI(base_url=f"{live.url}/v1", api_key=bearer, max_retries=0)
    texts = ["How do I bake bread?", "A sourdough loaf recipe", "Kernel panic at boot"]
    answer = api.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    vectors = np.array([row.embedding for row in answer.data])
    assert [row.index for row in answer.data] == [0, 1, 2] and vectors.shape == (3, 384)
    assert answer.model == "all-MiniLM-L6-v2" and answer.usage.prompt_tokens > 0
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    encoded = api.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input="hello")
    assert len(encoded.data[0].embedding) == 384  # the client asks for base64 and decodes it
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model="all-MiniLM-L6-v2", input=[])
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model="all-MiniLM-L6-v2", input="x", dimensions=256)


def test_ollama_client_embeds_with_the_bundled_minilm(live, bearer):
    api = ollama.Client(host=f"{live.url}/ollama", headers={"Authorization": f"Bearer {bearer}"})
    answer = api.embed(model="all-MiniLM-L6-v2", input=["first text", "second text"])
    assert len(answer.embeddings) == 2 and len(answer.embeddings[0]) == 384
    assert answer.model == "all-MiniLM-L6-v2" and answer.prompt_eval_count > 0
    single = api.embed(model="all-MiniLM-L6-v2", input="just one")
    assert np.isclose(np.linalg.norm(single.embeddings[0]), 1.0, atol=1e-4)
    with pytest.raises(ollama.ResponseError) as unknown:
        api.embed(model="nomic-embed-text", input="x")
    assert unknown.value.status_code == 404


def test_embeddings_need_a_token(live):
    response = httpx.post(f"{live.url}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x"})
    assert response.status_code == 401 and "error" in response.json()
    response = httpx.post(f"{live.url}/ollama/api/embed", json={"model": "all-MiniLM-L6-v2", "input": "x"})
    assert response.status_code == 401 and set(response.json()) == {"error"}
