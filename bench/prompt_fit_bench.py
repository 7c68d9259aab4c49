"""Prompt assembly in long chats: reading the active branch and fitting it to the bundled model's window.

Builds one room per size on a fresh SQLite file (one linear chain of ~45-token turns), then times
`writes.branch_turns` (the branch read inside a reply's start transaction, which reads at most
`jobs.max_prompt_turns(model)` turns; also timed without that cap) and `jobs.fit_to_context` (token counting
with the bundled model's tokenizer, on its thread). Run from the repository root:

    .venv/bin/python bench/prompt_fit_bench.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
_tmp = tempfile.TemporaryDirectory()
os.environ.update({
    "DATABASE_URL": f"sqlite:///{_tmp.name}/bench.sqlite3",
    "DJANGO_SETTINGS_MODULE": "chatproject.settings",
    "LOG_LEVEL": "WARNING",
    "OLLAMA_URLS": "",
    "OPENAI_BASE_URL": "",
})
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from chat.models import Message, Room  # noqa: E402
from chat.streaming import jobs, parse_options, writes  # noqa: E402
from models_mgmt.providers import ChatTurn  # noqa: E402
from models_mgmt.registry import registry  # noqa: E402

SIZES = (20, 200, 2000)
REPEATS = 7


def build_room(owner, size: int) -> tuple[Room, uuid.UUID]:
    room = Room.objects.create(owner=owner, name=f"{size} messages")
    now, parent, messages = timezone.now(), None, []
    for i in range(size):
        message = Message(id=uuid.uuid4(), room=room, parent_id=parent, role="user" if i % 2 == 0 else "assistant",
                          content=("word " * 40) + str(i), created_at=now + timedelta(microseconds=i),
                          status="complete")
        messages.append(message)
        parent = message.pk
    Message.objects.bulk_create(messages)
    return room, parent


def time_branch(room: Room, leaf, max_turns: int | None) -> tuple[float, list]:
    samples, turns = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        turns = writes.branch_turns(room_id=room.id, parent_id=leaf, system_prompt="Be brief.",
                                         max_turns=max_turns)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), turns


async def main() -> None:
    owner = await sync_to_async(get_user_model().objects.create_user)("bench", password="x")
    model = await registry.resolve(None)
    options = parse_options({})
    await jobs.fit_to_context([ChatTurn("user", "warm up")], model, options)  # loads the model
    print(f"model {model.name} ({model.provider}), context {model.context_length}, max_tokens {options.max_tokens}")
    for size in SIZES:
        room, leaf = await sync_to_async(build_room)(owner, size)
        uncapped_ms, _all = await sync_to_async(time_branch)(room, leaf, None)
        branch_ms, turns = await sync_to_async(time_branch)(room, leaf, jobs.max_prompt_turns(model))
        samples, fitted = [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            fitted = await jobs.fit_to_context(turns, model, options)
            samples.append((time.perf_counter() - start) * 1000)
        print(f"{size:>5} messages: branch read {branch_ms:.2f} ms ({len(turns)} turns; {uncapped_ms:.2f} ms "
              f"uncapped), fit {statistics.median(samples):.2f} ms ({len(fitted)} turns kept)")


if __name__ == "__main__":
    call_command("migrate", verbosity=0)
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # llama-cpp-python's finaliser raises during interpreter shutdown; nothing is left to clean
