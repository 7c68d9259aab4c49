"""Both compatible APIs through the official clients against the bundled model (llama.cpp in-process)."""

from __future__ import annotations

import ollama
import openai
import pytest

from chat.models import Message, Room
from compat.models import TokenUsage

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "Name three colours."}]


def test_openai_client_streamed_and_not(live, bearer, bundled):
    api = openai.OpenAI(base_url=f"{live.url}/v1", api_key=bearer, max_retries=0)
    completion = api.chat.completions.create(model=bundled, messages=ASK, max_tokens=12, temperature=0)
    assert completion.model == bundled and completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 12
    chunks = list(api.chat.completions.create(model="auto", messages=ASK, max_tokens=12, temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices == []
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]).strip()
    assert [chunk.choices[0].finish_reason for chunk in chunks[:-2]] == [None] * (len(chunks) - 2)
    assert chunks[-2].choices[0].finish_reason in ("stop", "length") and chunks[-1].usage.completion_tokens > 0
    assert not Room.objects.exists() and not Message.objects.exists()
    assert TokenUsage.objects.get(model=bundled).calls == 2


def test_a_long_reply_ends_with_length_and_a_stop_string_cuts_it(live, bearer, bundled):
    api = openai.OpenAI(base_url=f"{live.url}/v1", api_key=bearer, max_retries=0)
    story = [{"role": "user", "content": "Write a long story."}]
    api.chat.completions.create(model=bundled, messages=story, max_tokens=5, temperature=0)  # the same state next
    long = api.chat.completions.create(model=bundled, messages=story, max_tokens=5, temperature=0)
    assert long.choices[0].finish_reason == "length" and long.usage.completion_tokens == 5
    text = long.choices[0].message.content
    cut = api.chat.completions.create(model=bundled, messages=story, max_tokens=5, temperature=0,
                                      stop=[text[len(text) // 2:]])
    assert cut.choices[0].finish_reason == "stop" and text.startswith(cut.choices[0].message.content)
    assert len(cut.choices[0].message.content) < len(text)


def test_a_seed_repeats_a_sampled_reply(live, bearer, bundled):
    api = openai.OpenAI(base_url=f"{live.url}/v1", api_key=bearer, max_retries=0)

    def sample(seed: int) -> str:
        return api.chat.completions.create(model=bundled, messages=ASK, max_tokens=16, temperature=1.2, seed=seed,
                                           top_p=1.0).choices[0].message.content

    sample(7)  # llama.cpp reuses the evaluated prompt: the next two start from the same state
    assert sample(7) == sample(7)


async def test_openai_async_client(live, bearer, bundled):
    async with openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key=bearer, max_retries=0) as api:
        stream = await api.chat.completions.create(model=bundled, messages=ASK, max_tokens=8, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
        assert text.strip()
        assert [model.id async for model in api.models.list()] == ["auto", bundled]


def test_ollama_client_chat_and_generate(live, bearer, bundled):
    api = ollama.Client(host=f"{live.url}/ollama", headers={"Authorization": f"Bearer {bearer}"})
    assert [model.model for model in api.list().models] == [bundled]
    assert api.show(bundled).capabilities == ["completion"]
    whole = api.chat(model=bundled, messages=ASK, stream=False, options={"num_predict": 8, "temperature": 0})
    assert whole.message.content.strip() and whole.done_reason in ("stop", "length")
    assert whole.prompt_eval_count > 0 and 0 < whole.eval_count <= 8 and whole.eval_duration > 0
    parts = list(api.generate(model=bundled, prompt="Name three colours.", stream=True,
                              options={"num_predict": 8, "temperature": 0}))
    assert parts[-1].done and "".join(part.response for part in parts).strip()
