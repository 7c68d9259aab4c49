"""Fixtures for search, files and RAG: real MiniLM embeddings, indexing run inline where a test needs it."""

from __future__ import annotations

import pytest

from search.indexing import index_pending


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded bytes go to a folder of the test's own, so a test can see exactly what is stored."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def index_all():
    """Index everything pending now, with the very functions the indexing thread runs."""

    def run() -> None:
        while index_pending():
            pass

    return run


def stored_files(media_root) -> list:
    return [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []
