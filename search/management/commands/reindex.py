"""Backfill the search index: every message without index rows, every row without a current vector.

Resumable by construction: what is done is in the database, so a stopped run starts where it left off.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from tqdm import tqdm

from models_mgmt.embeddings import embedder
from search.indexing import embed_pending_documents, index_messages, pending_documents, pending_messages
from search.models import Document


class BarOutput:
    """tqdm's file: the command's stderr, without the line ending Django adds to each write."""

    def __init__(self, wrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class Command(BaseCommand):
    help = "Index messages and file chunks that are not indexed yet (resumable), with a progress bar."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch", type=int, default=128, help="Messages per step (default 128).")
        parser.add_argument("--rebuild", action="store_true",
                            help="Re-embed every row (after changing the engine or model), then backfill.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args, batch: int, rebuild: bool, no_progress: bool, **options) -> None:
        if rebuild:
            Document.objects.update(vector=None, vector_key=None, embedding_model="", indexed_at=None)
        messages, documents = pending_messages().count(), pending_documents().count()
        self.stdout.write(f"{messages} messages and {documents} rows to index with {embedder.model_name}")
        bar_output = BarOutput(self.stderr)
        with tqdm(total=messages, unit="msg", disable=no_progress, desc="messages", file=bar_output) as bar:
            while True:
                ids = list(pending_messages().order_by("created_at").values_list("pk", flat=True)[:batch])
                if not ids:
                    break
                index_messages(ids)
                bar.update(len(ids))
        with tqdm(total=pending_documents().count(), unit="row", disable=no_progress, desc="rows",
                  file=bar_output) as bar:
            while done := embed_pending_documents(batch):
                bar.update(done)
        self.stdout.write(self.style.SUCCESS(f"indexed: {messages} messages; nothing pending"))
