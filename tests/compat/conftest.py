"""A live server for the official clients: Uvicorn serving Django's ASGI handler in a thread of the test process,
so it shares the test database and the settings each test changes."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from django.core.asgi import get_asgi_application

from accounts.services import create_api_token
from chat.models import Stream
from compat.runs import DRAINING
from tests.factories import UserFactory
from tests.procs import free_port


class LiveServer:
    def __init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=self.port, lifespan="off",
                                log_level="warning", loop="asyncio", ws="none", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="compat-live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server_thread(django_db_setup):
    """Started once the test database exists, and stopped before it goes."""
    server = LiveServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(live_server_thread, transactional_db):
    """The server, with a database whose rows it sees (committed at once). Replies a test left running end
    before its rows are flushed."""
    yield live_server_thread
    deadline = time.monotonic() + 10
    while (DRAINING or Stream.objects.filter(finished_at__isnull=True).exists()) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def bearer(live) -> str:
    """A raw API token of a fresh user."""
    return create_api_token(user=UserFactory(username="compat"), name="compat")[1]


@pytest.fixture
def bundled(settings):
    """The bundled model as the only backend."""
    settings.LOCAL_MODELS_ENABLED = True
    settings.OLLAMA_URLS = []
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    return "smollm2-135m-instruct"
