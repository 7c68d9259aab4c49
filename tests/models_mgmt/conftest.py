"""Fixtures for model management: a staff client, and a managed `ollama serve` played by the stand-in binary."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from models_mgmt import ollama_server
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.procs import free_port

FAKE_BINARY = Path(__file__).resolve().parents[1] / "fakes" / "ollama-serve"


@pytest.fixture
def staff_api(db):
    return client_for(UserFactory(username="boss", is_staff=True))


@pytest.fixture
def managed(settings, tmp_path):
    """OLLAMA_BINARY is the stand-in on a free port; every process it starts is gone after the test."""
    url = f"http://127.0.0.1:{free_port()}"
    settings.OLLAMA_BINARY = str(FAKE_BINARY)
    settings.OLLAMA_URLS, settings.OLLAMA_MANAGED_URL = [url], ""
    settings.LOCAL_MODELS_ENABLED, settings.OPENAI_BASE_URL, settings.DEFAULT_MODEL = False, "", ""
    settings.OLLAMA_RUN_DIR = tmp_path
    settings.OLLAMA_START_TIMEOUT_SECONDS, settings.OLLAMA_STOP_TIMEOUT_SECONDS = 30, 5
    yield url
    state = ollama_server.read_state(tmp_path)
    process = ollama_server.process_of(state)
    if process is not None:
        os.killpg(state["pid"], signal.SIGKILL)
        process.wait(10)
