"""The database side of a reply: CPU per reply of its start and finish transactions, as the database thread
runs them (`chat.broadcast._run_batch`, batches of concurrent calls), on a throw-away SQLite file.

    .venv/bin/python bench/db_bench.py [--batch 10] [--rounds 150] [--statements]

Each round makes 50 fresh rooms (not timed), then starts a reply in each, `--batch` starts per transaction,
and finishes them the same way (800 characters of text each). Reports the process CPU per reply over the
measured rounds, after 20 rounds of warm-up; `--statements` also times each kind of statement (per reply,
including the driver call). Run it pinned to one CPU (`taskset -c 1`) and alternate with the other checkout:
on a shared VM one run moves by 10–20%.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS_PER_ROUND = 50
WARM_UP_ROUNDS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10, help="starts (and finishes) per transaction")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--statements", action="store_true", help="time each kind of statement")
    args = parser.parse_args()

    directory = tempfile.mkdtemp()
    os.environ.update(DATABASE_URL=f"sqlite:///{directory}/bench.sqlite3",
                      DJANGO_SETTINGS_MODULE="chatproject.settings", STREAMS_PER_USER="1000000")
    os.environ.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from chat import broadcast, generation, sql
    from models_mgmt.providers import Usage
    from tests.factories import RoomFactory, UserFactory

    statements: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    if args.statements:
        run_statement = sql._run

        def timed(statement: str, params: list, result: str):
            began = time.perf_counter()
            try:
                return run_statement(statement, params, result)
            finally:
                entry = statements[" ".join(statement.split()[:3])[:48]]
                entry[0] += 1
                entry[1] += time.perf_counter() - began

        sql._run = timed

    user = UserFactory()

    def one_round() -> float:
        rooms = [RoomFactory(owner=user) for _ in range(ROOMS_PER_ROUND)]
        began = time.process_time()
        for first in range(0, ROOMS_PER_ROUND, args.batch):
            starts = [(generation.send_user_message, {"room": room, "user": user, "content": "bench", "model": "m",
                                                       "max_turns": 1025}) for room in rooms[first:first + args.batch]]
            finishes = []
            for ok, started, _messages in broadcast._run_batch(starts):
                assert ok, started
                finishes.append((generation.finish_stream, {
                    "stream_id": started.stream.pk, "message_id": started.assistant.pk,
                    "room_id": started.stream.room_id, "text": "x" * 800, "status": "complete",
                    "usage": Usage(1, 200), "ttft_ms": 1.0, "tokens_per_second": 100.0}))
            for ok, value, _messages in broadcast._run_batch(finishes):
                assert ok, value
        return time.process_time() - began

    for _ in range(WARM_UP_ROUNDS):
        one_round()
    statements.clear()
    spent = sum(one_round() for _ in range(args.rounds))
    replies = args.rounds * ROOMS_PER_ROUND
    print(f"batch {args.batch}: {spent / replies * 1e6:.0f} µs of CPU per reply (start and finish), "
          f"{replies} replies")
    for kind, (count, seconds) in sorted(statements.items(), key=lambda item: -item[1][1]):
        print(f"  {kind:48} {count / replies:4.1f} per reply  {seconds / count * 1e6:6.1f} µs each")


if __name__ == "__main__":
    main()
