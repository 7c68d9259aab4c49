"""The OpenAI-compatible API through the official `openai` client (sync and async), against the fake Ollama."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from django.core.cache import cache

from accounts.services import create_api_token
from chat.models import Message, Room, Stream
from compat.models import TokenUsage
from ops.models import PanicState, PerformanceSample
from ops.panic import CACHE_KEY
from tests.factories import UserFactory

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
TWENTY = "".join(f"t{i} " for i in range(20))


def client(live, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)


def async_client(live, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)


def sse_events(body: str) -> list:
    """Each `data:` payload of an event stream, parsed (`[DONE]` kept as the string)."""
    events = []
    for block in body.strip().split("\n\n"):
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_a_completion_with_its_usage_and_no_room(live, bearer, fake_ollama):
    completion = client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO,
                                                               temperature=0.2, top_p=0.5, max_tokens=100,
                                                               stop=["\n\n", "END"], seed=42)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "fake-llm:latest"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == TWENTY
    assert choice.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        7, 20, 27)
    sent = fake_ollama.stats.last_request
    assert sent["messages"] == HELLO
    expected = {"temperature": 0.2, "top_p": 0.5, "num_predict": 100, "stop": ["\n\n", "END"], "seed": 42}
    assert {key: sent["options"].get(key) for key in expected} == expected
    assert not Room.objects.exists() and not Message.objects.exists()  # stateless
    stream = Stream.objects.get()
    assert stream.room_id is None and stream.message_id is None and stream.finished_at is not None
    sample = PerformanceSample.objects.get()  # the same performance samples as the chat's replies
    assert (sample.model, sample.status, sample.completion_tokens) == ("fake-llm:latest", "complete", 20)


def test_max_tokens_ends_with_length(live, bearer, fake_ollama):
    completion = client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO,
                                                               max_completion_tokens=5)
    assert completion.choices[0].message.content == "t0 t1 t2 t3 t4 "
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 5


def test_a_limit_beyond_the_window_is_lowered_to_half_of_it(live, bearer, fake_ollama):
    completion = client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO,
                                                               max_tokens=32768)
    assert completion.choices[0].message.content == TWENTY
    window = fake_ollama.stats.last_request["options"]["num_ctx"]
    assert fake_ollama.stats.last_request["options"]["num_predict"] == window // 2


def test_streamed_chunks_follow_openai_exactly(live, bearer, fake_ollama):
    stream = client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO, stream=True,
                                                           stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.role is None for chunk in chunks[1:-1])
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-2])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert chunks[-1].usage.total_tokens == 27
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == TWENTY
    assert len({(chunk.id, chunk.created, chunk.model, chunk.object) for chunk in chunks}) == 1


def test_the_raw_stream_ends_with_done(live, bearer, fake_ollama):
    response = httpx.post(f"{live.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bearer}"},
                          json={"model": "fake-llm:latest", "messages": HELLO, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    first, *middle, last = events[:-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(set(chunk["choices"][0]["delta"]) == {"content"} for chunk in middle)
    assert [chunk["choices"][0]["finish_reason"] for chunk in [first, *middle]] == [None] * (len(middle) + 1)
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all("usage" not in chunk for chunk in events[:-1])  # only with include_usage


def test_auto_picks_the_default_model(live, bearer, fake_ollama):
    completion = client(live, bearer).chat.completions.create(model="auto", messages=HELLO)
    assert completion.model == "fake-llm:latest"


async def test_the_async_client_streams_and_completes(live, bearer, fake_ollama):
    async with async_client(live, bearer) as api:
        completion = await api.chat.completions.create(model="fake-coder:7b", messages=HELLO)
        assert completion.choices[0].message.content == TWENTY and completion.model == "fake-coder:7b"
        stream = await api.chat.completions.create(model="fake-llm:latest", messages=HELLO, stream=True,
                                                   stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TWENTY
    assert chunks[-1].usage.prompt_tokens == 7


def test_models_are_the_catalogue_and_auto(live, bearer, fake_ollama):
    api = client(live, bearer)
    ids = [model.id for model in api.models.list()]
    assert ids == ["auto", "fake-llm:latest", "fake-coder:7b"]
    model = api.models.retrieve("fake-coder:7b")
    assert (model.id, model.object, model.owned_by) == ("fake-coder:7b", "model", "ollama") and model.created > 0
    assert api.models.retrieve("auto").owned_by == "router"
    with pytest.raises(openai.NotFoundError) as missing:
        api.models.retrieve("nope")
    assert missing.value.body["code"] == "model_not_found"


def test_errors_are_the_clients_own_exceptions(live, bearer, fake_ollama):
    with pytest.raises(openai.AuthenticationError) as unauthorised:
        client(live, "lcp_wrong").chat.completions.create(model="fake-llm:latest", messages=HELLO)
    assert unauthorised.value.status_code == 401 and unauthorised.value.body["code"] == "invalid_api_key"
    api = client(live, bearer)
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model="no-such-model", messages=HELLO)
    assert unknown.value.body == {"message": "The model 'no-such-model' does not exist.",
                                  "type": "invalid_request_error", "code": "model_not_found", "param": "model"}
    refused = {
        "n": {"n": 2},
        "tools": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        "temperature": {"temperature": 5},
        "frequency_penalty": {"frequency_penalty": 0.5},
        "logprobs": {"logprobs": True},
        "response_format": {"response_format": {"type": "json_object"}},
        "best_of": {"extra_body": {"best_of": 2}},
    }
    for param, extra in refused.items():
        with pytest.raises(openai.BadRequestError) as bad:
            api.chat.completions.create(model="fake-llm:latest", messages=HELLO, **extra)
        assert bad.value.body["param"] == param and bad.value.body["type"] == "invalid_request_error", param
    for empty in ({"role": "user", "content": None}, {"role": "user"}, {"role": "system", "content": None}):
        with pytest.raises(openai.BadRequestError) as missing:
            api.chat.completions.create(model="fake-llm:latest", messages=[empty, *HELLO])
        assert missing.value.body["param"] == "messages", empty
    with pytest.raises(openai.BadRequestError) as image:
        api.chat.completions.create(model="fake-llm:latest", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}])
    assert image.value.body["param"] == "messages"
    assert fake_ollama.stats.started == 0 and not Stream.objects.exists()


def test_bad_json_and_methods_answer_in_openai_shape(live, bearer):
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    broken = httpx.post(f"{live.url}/v1/chat/completions", headers=headers, content=b"{nope")
    assert broken.status_code == 400 and set(broken.json()["error"]) == {"message", "type", "code", "param"}
    listing = httpx.get(f"{live.url}/v1/chat/completions", headers=headers)
    assert listing.status_code == 405 and listing.json()["error"]["type"] == "invalid_request_error"
    not_a_list = httpx.post(f"{live.url}/v1/chat/completions", headers=headers, json=[1])
    assert not_a_list.status_code == 400


def test_the_sixth_concurrent_stream_gets_429(live, bearer, fake_ollama):
    fake_ollama.configure(tokens=2000, delay_ms=5)
    api = client(live, bearer)
    streams = [api.chat.completions.create(model="fake-llm:latest", messages=HELLO, stream=True) for _ in range(5)]
    for stream in streams:
        next(iter(stream))
    with pytest.raises(openai.RateLimitError) as limited:
        api.chat.completions.create(model="fake-llm:latest", messages=HELLO)
    assert limited.value.body["code"] == "too_many_streams" and limited.value.body["type"] == "rate_limit_error"
    assert int(limited.value.response.headers["Retry-After"]) > 0
    for stream in streams:
        stream.close()


def test_panic_refuses_with_423_and_stops_running_calls(live, bearer, fake_ollama):
    fake_ollama.configure(tokens=2000, delay_ms=5)
    api = client(live, bearer)
    running = api.chat.completions.create(model="fake-llm:latest", messages=HELLO, stream=True)
    chunks = iter(running)
    next(chunks)
    PanicState.objects.update_or_create(pk=1, defaults={"active": True})
    cache.delete(CACHE_KEY)
    from chat.services import stop_every_stream

    assert stop_every_stream() == 1
    with pytest.raises(openai.APIError) as stopped:
        for _chunk in chunks:
            pass
    assert "panic" in str(stopped.value).lower()
    with pytest.raises(openai.APIStatusError) as locked:
        api.chat.completions.create(model="fake-llm:latest", messages=HELLO)
    assert locked.value.status_code == 423 and locked.value.body["code"] == "panic"


def test_a_backend_failing_midway_raises_in_the_client(live, bearer, fake_ollama):
    fake_ollama.configure(die_after=3)
    stream = client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO, stream=True)
    seen = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "t0 t1 t2 " and "error" in str(failed.value).lower()
    with pytest.raises(openai.APIStatusError) as before_any_text:
        fake_ollama.configure(die_after=0)
        client(live, bearer).chat.completions.create(model="fake-llm:latest", messages=HELLO)
    assert before_any_text.value.status_code == 503 and before_any_text.value.body["code"] == "backend_error"


def test_a_disconnect_cancels_the_upstream_request_within_a_second(live, bearer, fake_ollama):
    fake_ollama.configure(tokens=5000, delay_ms=10)
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bearer}"},
                      json={"model": "fake-llm:latest", "messages": HELLO, "stream": True}) as response:
        lines = response.iter_lines()
        while "t3 " not in next(lines):
            pass
        closed_at = time.monotonic()
    deadline = closed_at + 3
    while not fake_ollama.stats.aborted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_ollama.stats.aborted == 1 and fake_ollama.stats.completed == 0
    assert fake_ollama.stats.aborted_at - closed_at < 1.0
    while Stream.objects.filter(finished_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Stream.objects.get().finished_at is not None


def test_usage_is_counted_per_token_and_model_and_listed(live, bearer, fake_ollama):
    api = client(live, bearer)
    for model in ("fake-llm:latest", "fake-llm:latest", "fake-coder:7b"):
        api.chat.completions.create(model=model, messages=HELLO, max_tokens=4)
    list(api.chat.completions.create(model="fake-coder:7b", messages=HELLO, stream=True))
    rows = {row.model: (row.calls, row.prompt_tokens, row.completion_tokens) for row in TokenUsage.objects.all()}
    assert rows == {"fake-llm:latest": (2, 14, 8), "fake-coder:7b": (2, 14, 24)}
    tokens = httpx.get(f"{live.url}/api/v1/auth/tokens", headers={"Authorization": f"Bearer {bearer}"}).json()
    usage = {row["model"]: row for row in tokens["results"][0]["usage"]}
    assert usage["fake-coder:7b"]["calls"] == 2 and usage["fake-coder:7b"]["completion_tokens"] == 24
    other = create_api_token(user=UserFactory(), name="other")[1]
    client(live, other).chat.completions.create(model="fake-llm:latest", messages=HELLO)
    assert TokenUsage.objects.count() == 3


def test_embeddings_of_an_unknown_model_answer_404_in_openai_shape(live, bearer):
    with pytest.raises(openai.NotFoundError) as missing:
        client(live, bearer).embeddings.create(model="auto", input="hello")
    assert missing.value.body["code"] == "model_not_found"


def test_calls_run_concurrently(live, bearer, fake_ollama):
    """Two non-streamed calls of one user overlap rather than queue behind each other."""
    fake_ollama.configure(tokens=20, delay_ms=20)
    api = client(live, bearer)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        api.chat.completions.create(model="fake-llm:latest", messages=HELLO))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    first, second = Stream.objects.order_by("started_at")
    assert second.started_at < first.finished_at


def test_an_endpoint_not_served_answers_in_the_clients_error_shape(live, bearer, fake_ollama):
    api = client(live, bearer)
    with pytest.raises(openai.NotFoundError) as legacy:
        api.completions.create(model="fake-llm:latest", prompt="Hello")  # the legacy completions endpoint
    assert legacy.value.body == {"message": "Invalid URL (POST /v1/completions)", "type": "invalid_request_error",
                                 "param": None, "code": None}
    ollama_side = httpx.post(f"{live.url}/ollama/api/pull", json={"model": "x"})
    assert ollama_side.status_code == 404 and ollama_side.json() == {"error": "404 page not found: /ollama/api/pull"}


def test_an_assistant_turn_may_come_without_content(live, bearer, fake_ollama):
    reply = client(live, bearer).chat.completions.create(
        model="fake-llm:latest", messages=[*HELLO, {"role": "assistant", "content": None}, *HELLO])
    assert reply.choices[0].message.content
