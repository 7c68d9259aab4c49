"""Fixtures the browser tests share: the fake Ollama, Debian's Chromium through Playwright, fresh pages."""

from __future__ import annotations

import os

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def fake():
    from tests.fakes.ollama import FakeOllama

    server = FakeOllama().start_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(viewport=None, color_scheme="light"):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, color_scheme=color_scheme)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
