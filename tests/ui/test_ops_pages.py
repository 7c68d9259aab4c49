"""The staff pages (performance, system, panic) in Debian's Chromium against a real Daphne server.

The server runs on a throw-away SQLite file with the fake Ollama. The first account is the instance owner
(staff); later sign-ups are ordinary members. Screenshots of the three pages go to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.procs import daphne_on_fresh_database
from tests.ui.test_accessibility import AXE, serious_violations

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a-long-ops-passphrase"
FAKE = "ollama/fake-llm:latest"
FAKE_MODEL = "fake-llm:latest"  # the model as samples name it; the provider is a column of its own
STAFF = "owner"
MEMBER = "member"
OPS_PAGES = ["/ops/performance/", "/ops/system/", "/ops/panic/"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(fake):
    """A real ASGI server on its own database: the panic tests here must not stop other modules' replies."""
    with daphne_on_fresh_database(fake.url) as (base, _folder):
        for username in (STAFF, MEMBER):
            httpx.post(f"{base}/api/v1/auth/register", json={
                "username": username, "email": f"{username}@example.com", "password": PASSWORD,
            }).raise_for_status()
        yield base


@pytest.fixture
def open_page(new_page):
    """A fresh page that also records console errors (a CSP violation or a failed request shows up there)."""

    def make(**kwargs):
        page = new_page(**kwargs)
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        return page

    return make


def sign_in(page, server: str, username: str) -> None:
    page.goto(f"{server}/signin/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f-]+/$"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")


def reply_to(page, text: str) -> None:
    replies = page.locator(".msg.assistant").count()
    page.get_by_label("Model", exact=True).select_option(FAKE)
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator(".msg.assistant")).to_have_count(replies + 1)
    expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete", timeout=20_000)


def wait_for_samples(page, server: str, count: int) -> None:
    """A reply's sample is written just after its stream ends; wait until the API counts them all."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        models = page.request.get(f"{server}/api/v1/chat/performance/stats?window=1").json()["models"]
        if sum(model["count"] for model in models) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} performance samples after 10 s")


def assert_clean(page) -> None:
    assert page.errors == [] and page.console_errors == []


def test_members_and_visitors_cannot_open_ops_pages(server, open_page):
    visitor = open_page()
    for path in OPS_PAGES:
        visitor.goto(f"{server}{path}")
        assert visitor.url == f"{server}/signin/?next={path}"
    member = open_page()
    sign_in(member, server, MEMBER)
    expect(member.get_by_role("navigation", name="Operations")).to_have_count(0)
    for path in OPS_PAGES:
        response = member.goto(f"{server}{path}")
        assert response.status == 403
        expect(member.get_by_role("heading", name="Staff only")).to_be_visible()
        expect(member.locator("#ops-status")).to_have_count(0)
    assert member.errors == []


def test_performance_page_charts_replies_per_model(server, open_page, fake):
    fake.configure(tokens=40, delay_ms=5, text=None)
    page = open_page(color_scheme="dark")
    sign_in(page, server, STAFF)
    for question in ("One?", "Two?", "Three?"):
        reply_to(page, question)
    wait_for_samples(page, server, 3)
    # The chat sidebar leads staff to the ops pages.
    page.get_by_role("navigation", name="Operations").get_by_role("link", name="Performance").click()
    page.wait_for_url(f"{server}/ops/performance/")
    expect(page.get_by_role("heading", name="Performance", level=1)).to_be_visible()
    expect(page.locator("#live-replies")).to_have_text(re.compile(r"^[1-9]\d*$"))
    for chart in ("#ttft-chart", "#tps-chart"):
        expect(page.locator(f"{chart} canvas")).to_have_count(1)
        expect(page.locator(f"{chart} .u-legend")).to_contain_text(f"{FAKE_MODEL} (ollama)")
        assert page.locator(f"{chart} canvas").bounding_box()["width"] > 200
    expect(page.locator("#history-empty")).to_be_hidden()
    stats = page.locator("#stats-body tr", has_text=FAKE_MODEL)
    expect(stats).to_have_count(1)
    expect(stats.locator("td").nth(1)).to_have_text("ollama")
    expect(stats.locator("td").nth(2)).to_have_text("3")
    expect(stats.locator("td").nth(3)).to_have_text("0%")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ops-performance-dark-desktop.png"), animations="disabled", full_page=True)
    # Another period redraws; the theme toggle redraws in the other theme's colours.
    page.get_by_label("Period").select_option("7")
    expect(page.locator("#ttft-chart .u-legend")).to_contain_text(f"{FAKE_MODEL} (ollama)")
    page.get_by_role("button", name="Switch to light theme").click()
    expect(page.locator("#tps-chart canvas")).to_have_count(1)
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    # Reset asks first; cancelling keeps everything.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Reset performance data…").click()
    expect(stats).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset performance data…").click()
    expect(page.locator("#ops-status")).to_contain_text("Deleted 3 performance samples")
    expect(page.locator("#stats-empty")).to_be_visible()
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#ttft-chart canvas")).to_have_count(0)
    assert_clean(page)


def test_system_page_shows_host_thermal_health_and_readiness(server, open_page):
    page = open_page()
    sign_in(page, server, STAFF)
    page.goto(f"{server}/ops/system/")
    expect(page.locator("#memory-text")).to_contain_text("used of")
    expect(page.locator("#cpu-text")).to_have_text(re.compile(r"%$"))
    expect(page.locator("#thermal-message")).to_have_text(
        re.compile(r"^(Throttling (likely|not likely)|Not available|No temperature sensors)"))
    expect(page.locator("#throttling")).not_to_have_text("–")
    expect(page.locator("#frequency-text")).not_to_have_text("–")
    expect(page.locator("#ready-status")).to_have_text("Ready")
    checks = page.locator("#checks-body")
    for name in ("database", "channel layer", "model backend"):
        expect(checks.locator("tr", has_text=name).locator("td").nth(1)).to_have_text("ok")
    expect(page.locator("#health-status")).to_have_text("OK")
    expect(page.locator("#providers-body tr", has_text="ollama").locator("td").nth(1)).to_have_text("answering")
    expect(page.locator("#health-panic")).to_have_text("off")
    expect(page.get_by_role("link", name="System")).to_have_attribute("aria-current", "page")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ops-system-light-desktop.png"), animations="disabled", full_page=True)
    assert_clean(page)


def room_count(page, server: str) -> int:
    return page.request.get(f"{server}/api/v1/rooms/").json()["count"]


def test_panic_page_triggers_wipes_only_when_confirmed_and_resets(server, open_page):
    chat = open_page()
    sign_in(chat, server, STAFF)
    expect(chat.locator("#panic-banner")).to_be_hidden()
    page = open_page()
    sign_in(page, server, STAFF)
    rooms = room_count(page, server)
    assert rooms >= 1
    page.goto(f"{server}/ops/panic/")
    expect(page.locator("#panic-state")).to_have_text("OFF")
    expect(page.locator("#panic-banner")).to_be_hidden()
    trigger = page.get_by_role("button", name="Trigger panic…")

    # No reason: refused before anything is asked or sent.
    trigger.click()
    expect(page.get_by_role("alert").filter(has_text="Give a reason")).to_be_visible()
    expect(page.get_by_label(re.compile("^Reason"))).to_be_focused()

    # A wipe without typing WIPE: refused, nothing triggered, nothing deleted.
    page.get_by_label(re.compile("^Reason")).fill("Testing the wipe guard")
    expect(page.get_by_label("Type WIPE to confirm the wipe")).to_be_hidden()
    page.get_by_label("Also delete all chat data").check()
    expect(page.get_by_text("Deleted, for every user:")).to_be_visible()
    expect(page.get_by_text("Kept:")).to_be_visible()
    page.get_by_label("Type WIPE to confirm the wipe").fill("wipe please")
    trigger.click()
    expect(page.locator("#trigger-error")).to_contain_text("Nothing was triggered and nothing was deleted")
    expect(page.get_by_label("Type WIPE to confirm the wipe")).to_be_focused()
    expect(page.locator("#panic-state")).to_have_text("OFF")
    assert room_count(page, server) == rooms

    # A plain trigger with a reason, confirmed: ON, the banner here and on the open chat page.
    page.get_by_label("Also delete all chat data").uncheck()
    page.get_by_label(re.compile("^Reason")).fill("A model misbehaves")
    page.once("dialog", lambda dialog: dialog.dismiss())
    trigger.click()
    expect(page.locator("#panic-state")).to_have_text("OFF")  # cancelled at the dialog
    page.once("dialog", lambda dialog: dialog.accept())
    trigger.click()
    expect(page.locator("#panic-state")).to_have_text("ON")
    expect(page.locator("#panic-reason")).to_have_text("A model misbehaves")
    expect(page.locator("#panic-triggered")).to_contain_text(f"by {STAFF}")
    expect(page.locator("#panic-banner")).to_be_visible()
    expect(chat.locator("#panic-banner")).to_be_visible()
    for control in ("#room-title", "#new-chat", "#theme-toggle"):  # the banner pushes the page down, covers nothing
        assert chat.locator(control).evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"), control
    chat.get_by_label("Message", exact=True).fill("Sent during the panic")
    chat.get_by_label("Message", exact=True).press("Enter")
    expect(chat.locator(".toast").filter(has_text="panic")).to_be_visible()
    expect(chat.get_by_label("Message", exact=True)).to_have_value("Sent during the panic")  # refused, not lost
    assert room_count(page, server) == rooms
    fresh = open_page()
    sign_in(fresh, server, STAFF)
    fresh.goto(f"{server}/ops/system/")
    expect(fresh.locator("#panic-banner")).to_be_visible()
    expect(fresh.locator("#health-panic")).to_have_text("ON")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "ops-panic-light-desktop.png"), animations="disabled", full_page=True)

    # Reset: OFF, and the banner goes everywhere.
    page.get_by_role("button", name="Reset the panic switch").click()
    expect(page.locator("#panic-state")).to_have_text("OFF")
    expect(page.locator("#panic-reset-info")).to_contain_text(f"by {STAFF}")
    expect(page.locator("#panic-banner")).to_be_hidden()
    expect(chat.locator("#panic-banner")).to_be_hidden()
    expect(page.get_by_role("button", name="Reset the panic switch")).to_be_hidden()

    # With WIPE typed, the wipe happens and its counts show; users stay (this page is still signed in).
    page.get_by_label(re.compile("^Reason")).fill("Wipe everything")
    page.get_by_label("Also delete all chat data").check()
    page.get_by_label("Type WIPE to confirm the wipe").fill("WIPE")
    page.once("dialog", lambda dialog: dialog.accept())
    trigger.click()
    expect(page.locator("#panic-state")).to_have_text("ON")
    expect(page.locator("#panic-wipe")).to_contain_text(re.compile(r"deleted .*\d+ room"))
    assert room_count(page, server) == 0
    page.get_by_role("button", name="Reset the panic switch").click()
    expect(page.locator("#panic-state")).to_have_text("OFF")
    expect(page.locator("#panic-banner")).to_be_hidden()
    for checked in (page, fresh):
        assert_clean(checked)


@pytest.mark.skipif(not AXE.exists(), reason=f"{AXE} missing (make assets installs it)")
def test_ops_pages_have_no_serious_accessibility_violations(server, open_page):
    for theme, size in (("light", {"width": 1280, "height": 800}), ("dark", {"width": 390, "height": 844})):
        page = open_page(color_scheme=theme, viewport=size)
        sign_in(page, server, STAFF)
        for path in [*OPS_PAGES, "/ops/models/"]:
            page.goto(f"{server}{path}")
            expect(page.locator("main")).to_be_visible()
            page.wait_for_load_state("networkidle")  # the page's first refresh has filled its tables
            found = serious_violations(page)
            assert found == [], f"{path} ({theme}):\n" + "\n".join(found)
        assert_clean(page)
