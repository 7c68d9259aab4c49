"""Search at 100k messages (latency, index size and memory, quality on a labelled set, indexing throughput),
and a reply's time to first token with background indexing on and off.

    .venv/bin/python bench/search_bench.py                      # SQLite: corpus, latency, size, quality, throughput
    .venv/bin/python bench/search_bench.py --database postgres  # the same on a throw-away PostgreSQL database
    .venv/bin/python bench/search_bench.py --parts ttft         # two Uvicorn servers, indexing on and off

The corpus (`bench/search_corpus.py`) is 100k generated messages in 1,000 rooms of 10 users, with 60 planted
"needle" messages, each the one relevant answer to a labelled query. Every message goes through the index's
own chunking and writes (full-text rows by trigger or GIN index); its vector is MiniLM's, computed once per
distinct text and kept in `--vector-cache` so a second database (or run) does not embed 100k texts again.
Indexing throughput is measured separately, through the indexing thread's own function (`index_pending`,
real embeddings) on `--throughput-messages` new messages added to the full index. Search latency goes
through `chat_search_semantic` with Django's test client, as a user who reads 100 rooms (10k messages).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from bench.search_corpus import LABELLED, TOPICS, corpus, filler  # noqa: E402

PARTS = ("corpus", "ttft")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def setup_django(database: str, tmp: str) -> str | None:
    """Point Django at a fresh SQLite file or a throw-away PostgreSQL database; returns the latter's name."""
    name = None
    if database == "postgres":
        server = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
        name = f"{os.environ.get('BENCH_DB_PREFIX', '')}searchbench_{os.getpid()}"  # a prefix keeps checkouts apart
        subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
        url = f"{server}/{name}"
    else:
        url = f"sqlite:///{tmp}/bench.sqlite3"
    os.environ.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "LOG_LEVEL": "CRITICAL",
        "LOCAL_MODELS_ENABLED": "false", "SEARCH_INDEXING": "false", "HOT_SLOT_CHECK_SECONDS": "0",
        "SYSTEM_SAMPLE_SECONDS": "0", "THROTTLE_USER_RATE": "1000000/min", "THROTTLE_IP_RATE": "1000000/min",
        "DB_POOL": "false",
    })
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return name


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def vectors_for(texts: list[str], cache: Path) -> dict[str, bytes]:
    """Each distinct text's MiniLM vector as stored bytes, embedding only what the cache lacks (the cache keeps
    float16 vectors, so it outlives a change of the stored format)."""
    import numpy as np

    from models_mgmt.embeddings import embedder
    from search.indexing import to_blob

    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as stored:
            known = dict(zip(stored["keys"], stored["vectors"], strict=True))
    missing = sorted({text for text in texts if text_key(text) not in known})
    started = time.perf_counter()
    for first in range(0, len(missing), 512):
        batch = missing[first:first + 512]
        for text, vector in zip(batch, embedder.embed(batch), strict=True):
            known[text_key(text)] = vector.astype(np.float16)
        done = first + len(batch)
        print(f"  embedded {done}/{len(missing)} ({done / (time.perf_counter() - started):.0f}/s)", flush=True)
    if missing:
        keys = np.array(list(known))
        np.savez(cache, keys=keys, vectors=np.stack([known[key] for key in keys]))
    wanted = {text_key(text) for text in texts}
    return {key: to_blob(known[key].astype(np.float32)) for key in wanted}


def database_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size('search_document')")
            return int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return int(pages * cursor.fetchone()[0])


def load_corpus(args) -> tuple[list, dict[int, tuple[int, str]], dict]:
    """Users, rooms and messages written, then indexed with cached vectors; returns the users, the needles'
    (user, message id) by labelled index, and the sizes measured."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import User
    from chat.models import Message, Room
    from search.indexing import draft_documents, with_vectors, write_message_documents
    from search.models import Document

    rows, needles = corpus(users=args.users, rooms=args.rooms, messages=args.messages)
    vectors = vectors_for([text for *_x, text in rows], Path(args.vector_cache))
    started = time.perf_counter()
    users = [User.objects.create_user(username=f"bench{i}", email=f"bench{i}@example.com",
                                      password="bench-passphrase-long") for i in range(args.users)]
    rooms = Room.objects.bulk_create([Room(owner=users[r % args.users], name=f"Room {r}")
                                      for r in range(args.rooms)])
    base = timezone.now() - timedelta(days=365)
    ids: list = []
    for first in range(0, len(rows), 5000):
        batch = [Message(room=rooms[room], author=users[user] if role == "user" else None, role=role, content=text,
                         created_at=base + timedelta(minutes=first + i))
                 for i, (user, room, role, text) in enumerate(rows[first:first + 5000])]
        ids.extend(message.pk for message in Message.objects.bulk_create(batch))
    before = database_bytes()
    for first in range(0, len(ids), 2000):
        batch = ids[first:first + 2000]
        drafts = draft_documents(batch)  # the indexer's own steps, with cached vectors for its embedding
        documents = [document for _content, chunks in drafts.values() for document in chunks]
        unseen = [d.text for d in documents if text_key(d.text) not in vectors]  # chunked: texts of its own
        if unseen:
            vectors.update(vectors_for(unseen, Path(args.vector_cache)))
        with_vectors(documents, [vectors[text_key(document.text)] for document in documents])
        write_message_documents(batch, drafts)
        print(f"  indexed {first + 2000}/{len(ids)}", flush=True)
    sizes = {"documents": Document.objects.count(), "index_bytes": database_bytes() - before,
             "load_s": round(time.perf_counter() - started, 1)}
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # what autovacuum does within a minute of a load (visibility, stats)
    return users, {n: (rows[slot][0], ids[slot]) for slot, n in needles.items()}, sizes


def measure_quality(users, needles) -> dict:
    """MRR@10 and recall@10 of full text, vectors and hybrid over the labelled queries, overall and by kind."""
    from models_mgmt.embeddings import embedder
    from search.selectors import hybrid_search, readable_documents

    vectors = embedder.embed([query for _k, _n, query in LABELLED])
    out: dict = {}
    for mode in ("fulltext", "vector", "hybrid"):
        ranks: list[tuple[str, int | None]] = []
        for n, (kind, _needle, query) in enumerate(LABELLED):
            user, message_id = needles[n]
            result = hybrid_search(scope=readable_documents(users[user]), query=query, limit=10, mode=mode,
                                   query_vector=vectors[n])
            found = [i for i, hit in enumerate(result.hits, start=1) if hit.document.message_id == message_id]
            ranks.append((kind, found[0] if found else None))
        row = {}
        for kind in ("all", "kw", "sem", "mix"):
            chosen = [rank for k, rank in ranks if kind in ("all", k)]
            row[kind] = {"mrr10": round(sum(1 / r for r in chosen if r) / len(chosen), 3),
                         "recall10": round(sum(1 for r in chosen if r) / len(chosen), 3)}
        out[mode] = row
    return out


def measure_latency(users, requests: int) -> dict:
    """`chat_search_semantic` through Django's stack, as one of the users (10k readable messages)."""
    import psutil
    from django.test import Client

    from models_mgmt.embeddings import embedder
    from search.models import Document
    from search.selectors import hybrid_search, readable_documents

    rng = random.Random(7)
    words = sorted({word for subjects in TOPICS.values() for subject in subjects for word in subject.split()
                    if len(word) > 3})
    queries = [query for _k, _n, query in LABELLED]
    queries += [" ".join(rng.sample(words, rng.choice((1, 2, 3)))) for _ in range(requests)]
    embedder.embed(["warm up"])
    process = psutil.Process()
    out: dict = {}
    for mode in ("hybrid", "fulltext", "vector"):
        client = Client()
        client.force_login(users[0])
        times, parts = [], {}
        rss_before = process.memory_info().rss
        for i in range(requests):
            if i % 20 == 0:
                client.force_login(users[i % len(users)])
            started = time.perf_counter()
            response = client.get("/api/v1/chat/search", {"q": queries[i % len(queries)], "limit": 20, "mode": mode})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
            for key, value in response.json()["timings_ms"].items():
                parts.setdefault(key, []).append(value)
        out[mode] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1),
                     "max_ms": round(max(times), 1),
                     "parts_p50_ms": {k: round(statistics.median(v), 1) for k, v in parts.items()},
                     "rss_growth_mb": round((process.memory_info().rss - rss_before) / 2**20, 1)}
        print(f"  {mode}: {out[mode]}", flush=True)
    tracemalloc.start()
    hybrid_search(scope=readable_documents(users[0]), query="async function keeps failing", limit=20)
    out["peak_alloc_one_search_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    everything = []  # a reader of the whole index (a founder of every room), beyond what one user reads
    for query in queries[:30]:
        started = time.perf_counter()
        hybrid_search(scope=Document.objects.all(), query=query, limit=20)
        everything.append((time.perf_counter() - started) * 1000)
    out["whole_index_hybrid_p50_ms"] = round(statistics.median(everything), 1)
    return out


def measure_throughput(users, count: int) -> dict:
    """New messages indexed by the indexing thread's own loop (chunk, write, embed, store), on the full index."""
    from chat.models import Message, Room
    from search.indexing import index_pending

    rng = random.Random(99)
    rooms = list(Room.objects.order_by("created_at")[:50])
    Message.objects.bulk_create([Message(room=rooms[i % len(rooms)], role="user" if i % 2 == 0 else "assistant",
                                         content=filler(rng, "user" if i % 2 == 0 else "assistant"))
                                 for i in range(count)])
    started = time.perf_counter()
    while index_pending():
        pass
    elapsed = time.perf_counter() - started
    return {"messages": count, "seconds": round(elapsed, 1), "messages_per_s": round(count / elapsed, 1)}


def corpus_part(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        database = setup_django(args.database, tmp)
        try:
            from models_mgmt.embeddings import embedder

            print(f"corpus: {args.messages} messages, {args.rooms} rooms, {args.users} users on {args.database}",
                  flush=True)
            users, needles, sizes = load_corpus(args)
            print(f"  {sizes}", flush=True)
            result = {"database": args.database, "messages": args.messages, "rooms": args.rooms, "users": args.users,
                      "embedding": {"model": embedder.model_name, "device": embedder.engine.device},
                      **sizes, "index_mb_per_100k": round(sizes["index_bytes"] / 2**20 * 100_000 / args.messages, 1)}
            result["latency"] = measure_latency(users, args.requests)
            result["quality"] = measure_quality(users, needles)
            print(f"  quality: {json.dumps(result['quality'])}", flush=True)
            result["throughput"] = measure_throughput(users, args.throughput_messages)
            print(f"  throughput: {result['throughput']}", flush=True)
            return result
        finally:
            if database:
                from django.db import connections

                connections.close_all()
                server = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
                subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"],
                               check=False)


async def ttft_part(args) -> dict:
    """Replies over the WebSocket to two Uvicorn workers, one indexing in the background and one not, in
    alternating bursts; each message is chat-sized text, so the indexing thread has real work at each start."""
    import psutil

    from bench import stream_bench as sb
    from tests.procs import free_port, wait_for_http

    sb.Server.kind = "uvicorn"
    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.ollama", "--port", str(fake_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_for_http(f"{fake_url}/api/tags", fake)
    pin = sb.pinning("auto", 1)
    rng = random.Random(5)
    env = {"OLLAMA_URLS": fake_url, "LOCAL_MODELS_ENABLED": "false"}
    results: dict = {"on": {}, "off": {}}
    try:
        with sb.Server({**env, "SEARCH_INDEXING": "true"}) as on, sb.Server({**env, "SEARCH_INDEXING": "false"}) as off:
            servers = {"on": on, "off": off}
            if pin is not None:
                for server in servers.values():
                    for process in server.ps.processes:
                        sb.pin_process(process, pin[0])
                sb.pin_process(psutil.Process(), pin[1])
                sb.pin_process(psutil.Process(fake.pid), pin[1])

            async def burst(server, streams: int) -> list:
                rooms = await server.new_rooms(streams)
                sockets = [await sb.open_ws(server, room) for room in rooms]
                for other in servers.values():
                    await sb.quiesce(other, limit=30.0)  # the other's indexing must not eat into this burst
                go = asyncio.Event()
                runs = [sb.one_ws(server, room, ws=ws, go=go, content=filler(rng, "user"))
                        for room, ws in zip(rooms, sockets, strict=True)]
                go.set()
                return await asyncio.gather(*runs)

            sb.configure_fake(fake_url, 0, tokens=5)
            for server in servers.values():  # warm up: code paths, and the embedding model loaded
                await burst(server, 5)
            for streams, gap_ms, bursts in ((1, 20, args.ttft_bursts * 4), (10, 20, args.ttft_bursts)):
                sb.configure_fake(fake_url, gap_ms, tokens=50)
                ttfts: dict[str, list[float]] = {"on": [], "off": []}
                for i in range(bursts):
                    for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
                        replies = await burst(servers[name], streams)
                        ttfts[name] += [(arrivals[0] - start) * 1000 for start, arrivals, _ in replies if arrivals]
                for name, values in ttfts.items():
                    results[name][f"{streams}x{gap_ms}ms"] = {
                        "replies": len(values), "ttft_p50_ms": round(statistics.median(values), 1),
                        "ttft_p95_ms": round(percentile(values, 0.95), 1)}
                print(f"  ttft {streams} streams: on {results['on'][f'{streams}x{gap_ms}ms']} "
                      f"off {results['off'][f'{streams}x{gap_ms}ms']}", flush=True)
    finally:
        fake.terminate()
        fake.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=["corpus"])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=1_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200, help="search requests per mode")
    parser.add_argument("--throughput-messages", type=int, default=1_000)
    parser.add_argument("--ttft-bursts", type=int, default=6)
    parser.add_argument("--vector-cache", default=str(Path(tempfile.gettempdir()) / "search-bench-vectors.npz"))
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    result: dict = {}
    if "corpus" in args.parts:
        result["corpus"] = corpus_part(args)
    if "ttft" in args.parts:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
        result["ttft"] = asyncio.run(ttft_part(args))
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
