"""The Ollama-compatible API through the official `ollama` client (sync and async), against the fake Ollama."""

from __future__ import annotations

import json
import time

import httpx
import ollama
import pytest

from chat.models import Message, Room, Stream
from compat.models import TokenUsage

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
TWENTY = "".join(f"t{i} " for i in range(20))
DURATIONS = ("total_duration", "prompt_eval_duration", "eval_duration")


def client(live, key: str | None) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return ollama.Client(host=f"{live.url}/ollama", headers=headers)


def assert_final(part, *, prompt: int = 7, completion: int = 20, reason: str = "stop") -> None:
    assert part.done is True and part.done_reason == reason
    assert (part.prompt_eval_count, part.eval_count) == (prompt, completion)
    assert all(isinstance(getattr(part, name), int) for name in DURATIONS)
    assert part.total_duration >= part.prompt_eval_duration > 0
    assert part.total_duration == part.prompt_eval_duration + part.eval_duration


def test_chat_streamed_and_not(live, bearer, fake_ollama):
    api = client(live, bearer)
    whole = api.chat(model="fake-llm:latest", messages=HELLO, stream=False,
                     options={"temperature": 0.1, "num_predict": 50, "stop": ["END"], "seed": 7, "num_ctx": 8192})
    assert whole.message.role == "assistant" and whole.message.content == TWENTY
    assert whole.model == "fake-llm:latest"
    assert_final(whole)
    sent = fake_ollama.stats.last_request
    expected = {"temperature": 0.1, "num_predict": 50, "stop": ["END"], "seed": 7}
    assert {key: sent["options"].get(key) for key in expected} == expected and sent["messages"] == HELLO
    parts = list(api.chat(model="fake-llm:latest", messages=HELLO, stream=True))
    assert all(not part.done for part in parts[:-1]) and parts[-1].message.content == ""
    assert "".join(part.message.content for part in parts) == TWENTY
    assert_final(parts[-1])
    assert not Room.objects.exists() and not Message.objects.exists()


def test_generate_streamed_and_not(live, bearer, fake_ollama):
    api = client(live, bearer)
    whole = api.generate(model="fake-coder:7b", prompt="hi", system="Be brief.", stream=False,
                         options={"num_predict": 4})
    assert whole.response == "t0 t1 t2 t3 "
    assert_final(whole, completion=4, reason="length")
    assert fake_ollama.stats.last_request["messages"] == HELLO
    parts = list(api.generate(model="fake-coder:7b", prompt="hi", stream=True))
    assert "".join(part.response for part in parts) == TWENTY
    assert_final(parts[-1])


def test_nothing_to_answer_says_the_model_is_ready(live, bearer, fake_ollama):
    api = client(live, bearer)
    loaded = api.generate(model="fake-llm:latest", prompt="", stream=False)
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    assert api.chat(model="fake-llm:latest", messages=[], stream=False).done_reason == "load"
    assert fake_ollama.stats.started == 0


def test_the_raw_ndjson_stream(live, bearer, fake_ollama):
    response = httpx.post(f"{live.url}/ollama/api/chat", headers={"Authorization": f"Bearer {bearer}"},
                          json={"model": "fake-llm:latest", "messages": HELLO})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(set(line) == {"model", "created_at", "message", "done"} and not line["done"] for line in lines[:-1])
    assert lines[-1]["done"] is True and set(lines[-1]) == {
        "model", "created_at", "message", "done", "done_reason", "total_duration", "prompt_eval_count",
        "prompt_eval_duration", "eval_count", "eval_duration"}


def test_latest_and_auto_find_models(live, bearer, fake_ollama):
    fake_ollama.configure(models=["fake-llm"])
    api = client(live, bearer)
    assert api.chat(model="fake-llm:latest", messages=HELLO, stream=False).model == "fake-llm"
    assert api.generate(model="auto", prompt="hi", stream=False).model == "fake-llm"


def test_a_name_without_its_tag_means_latest(live, bearer, fake_ollama):
    api = client(live, bearer)
    assert api.chat(model="fake-llm", messages=HELLO, stream=False).model == "fake-llm:latest"
    assert api.show("fake-llm").modelinfo is not None
    with pytest.raises(ollama.ResponseError) as refused:
        api.chat(model="fake-coder", messages=HELLO, stream=False)  # only fake-coder:7b exists
    assert refused.value.status_code == 404


async def test_the_async_client(live, bearer, fake_ollama):
    api = ollama.AsyncClient(host=f"{live.url}/ollama", headers={"Authorization": f"Bearer {bearer}"})
    parts = [part async for part in await api.chat(model="fake-llm:latest", messages=HELLO, stream=True)]
    assert "".join(part.message.content for part in parts) == TWENTY
    assert (await api.generate(model="fake-llm:latest", prompt="hi", stream=False)).response == TWENTY
    assert [model.model for model in (await api.list()).models] == ["fake-llm:latest", "fake-coder:7b"]


def test_list_show_ps_and_version(live, bearer, fake_ollama):
    api = client(live, bearer)
    models = api.list().models
    assert [model.model for model in models] == ["fake-llm:latest", "fake-coder:7b"]
    assert models[0].size > 0 and models[0].details.family and models[0].modified_at
    assert models[0].details.parameter_size and models[0].details.quantization_level and models[0].digest
    shown = api.show("fake-coder:7b")
    assert shown.capabilities == ["completion"]  # what this API serves: tools would be refused
    architecture = shown.modelinfo["general.architecture"]
    context = shown.modelinfo[f"{architecture}.context_length"]
    assert shown.modelinfo["general.name"] == "fake-coder:7b" and context > 0
    with pytest.raises(ollama.ResponseError) as unknown:
        api.show("nope")
    assert unknown.value.status_code == 404
    assert api.ps().models == []
    fake_ollama.configure(tokens=2000, delay_ms=5)
    with httpx.stream("POST", f"{live.url}/ollama/api/chat", headers={"Authorization": f"Bearer {bearer}"},
                      json={"model": "fake-coder:7b", "messages": HELLO}) as running:
        lines = running.iter_lines()  # kept: a closed iterator closes the response, which stops the reply
        next(lines)
        assert [(model.model, model.context_length) for model in api.ps().models] == [("fake-coder:7b", context)]
    version = httpx.get(f"{live.url}/ollama/api/version")  # public, as Ollama's is
    assert version.status_code == 200 and version.json() == {"version": "0.1.0"}


def test_calls_need_an_api_token(live, bearer, fake_ollama):
    for key in (None, "lcp_wrong"):
        with pytest.raises(ollama.ResponseError) as refused:
            client(live, key).chat(model="fake-llm:latest", messages=HELLO, stream=False)
        assert refused.value.status_code == 401
        with pytest.raises(ollama.ResponseError):
            client(live, key).list()
    assert fake_ollama.stats.started == 0


def test_errors_in_ollamas_shape(live, bearer, fake_ollama):
    api = client(live, bearer)
    with pytest.raises(ollama.ResponseError) as unknown:
        api.chat(model="nope", messages=HELLO, stream=False)
    assert unknown.value.status_code == 404 and "nope" in unknown.value.error
    with pytest.raises(ollama.ResponseError) as streamed_unknown:
        list(api.generate(model="nope", prompt="hi", stream=True))
    assert streamed_unknown.value.status_code == 404
    for extra in ({"format": "json"}, {"tools": [{"type": "function", "function": {"name": "f"}}]},
                  {"options": {"mirostat": 2}}, {"think": True}):
        with pytest.raises(ollama.ResponseError) as refused:
            api.chat(model="fake-llm:latest", messages=HELLO, stream=False, **extra)
        assert refused.value.status_code == 400, extra
    with pytest.raises(ollama.ResponseError) as image:
        api.chat(model="fake-llm:latest", messages=[{"role": "user", "content": "x", "images": [b"\x89PNG"]}])
    assert image.value.status_code == 400
    raw = httpx.post(f"{live.url}/ollama/api/generate", headers={"Authorization": f"Bearer {bearer}"},
                     json={"model": "fake-llm:latest", "prompt": "x", "context": [1, 2]})
    assert raw.status_code == 400 and set(raw.json()) == {"error"}
    embed = httpx.post(f"{live.url}/ollama/api/embed", headers={"Authorization": f"Bearer {bearer}"},
                       json={"model": "fake-llm:latest", "input": "x"})
    assert embed.status_code == 404 and set(embed.json()) == {"error"}  # a chat model does not embed here
    assert fake_ollama.stats.started == 0


def test_a_backend_failing_midway_raises_in_the_client(live, bearer, fake_ollama):
    fake_ollama.configure(die_after=2)
    seen = []
    with pytest.raises(ollama.ResponseError):
        for part in client(live, bearer).chat(model="fake-llm:latest", messages=HELLO, stream=True):
            seen.append(part.message.content)
    assert "".join(seen) == "t0 t1 "


def test_a_disconnect_cancels_the_upstream_request_within_a_second(live, bearer, fake_ollama):
    fake_ollama.configure(tokens=5000, delay_ms=10)
    with httpx.stream("POST", f"{live.url}/ollama/api/generate", headers={"Authorization": f"Bearer {bearer}"},
                      json={"model": "fake-llm:latest", "prompt": "hi"}) as response:
        lines = response.iter_lines()
        while "t3 " not in next(lines):
            pass
        closed_at = time.monotonic()
    deadline = closed_at + 3
    while not fake_ollama.stats.aborted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_ollama.stats.aborted == 1 and fake_ollama.stats.aborted_at - closed_at < 1.0
    while not TokenUsage.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert TokenUsage.objects.get().calls == 1  # the call still counts
    assert Stream.objects.get().finished_at is not None


def test_a_body_is_json_whatever_its_label(live, bearer, fake_ollama):
    """As Ollama's own curl examples send it: `curl -d '{...}'` labels the body form-encoded."""
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = httpx.post(f"{live.url}/ollama/api/generate", content=json.dumps(
            {"model": "fake-llm:latest", "prompt": "hi", "stream": False}),
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": content_type})
        assert response.status_code == 200 and response.json()["response"] == TWENTY, content_type
    unlabelled = httpx.post(f"{live.url}/v1/chat/completions", content=json.dumps(
        {"model": "fake-llm:latest", "messages": HELLO}), headers={"Authorization": f"Bearer {bearer}"})
    assert unlabelled.status_code == 200 and unlabelled.json()["choices"][0]["message"]["content"] == TWENTY
