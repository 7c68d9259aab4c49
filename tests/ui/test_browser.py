"""The chat UI in a real browser: Debian's Chromium driven by Playwright against a real Daphne server.

The server runs in its own process on a fresh SQLite file with the bundled model and the fake Ollama, so
these tests see exactly what a person would. Screenshots of the main views go to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.procs import daphne_on_fresh_database

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a-long-browser-passphrase"
FAKE = "ollama/fake-llm:latest"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(fake):
    """A real ASGI server on a throw-away database, independent of the test database."""
    with daphne_on_fresh_database(fake.url) as (base, _folder):
        # The first account founds the instance; the tests below are ordinary later sign-ups.
        httpx.post(f"{base}/api/v1/auth/register",
                   json={"username": "root", "email": "root@example.com", "password": PASSWORD}).raise_for_status()
        yield base


_users = iter(range(1, 10_000))


def register(server: str) -> str:
    username = f"user{next(_users)}"
    httpx.post(f"{server}/api/v1/auth/register",
               json={"username": username, "email": f"{username}@example.com", "password": PASSWORD}).raise_for_status()
    return username


def sign_in(page, server: str, username: str) -> None:
    page.goto(f"{server}/signin/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f-]+/$"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")


def send(page, text: str, model: str | None = None) -> None:
    if model:
        page.get_by_label("Model", exact=True).select_option(model)
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def wait_until_searchable(page, server: str, query: str) -> None:
    """Messages are indexed in the background, in a quiet moment after a reply: wait until search finds one."""
    deadline = time.monotonic() + 60
    while not page.request.get(f"{server}/api/v1/chat/search", params={"q": query}).json()["count"]:
        assert time.monotonic() < deadline, f"{query!r} not searchable within 60 s"
        page.wait_for_timeout(200)


def last_reply(page):
    return page.locator(".msg.assistant").last


def test_sign_up_and_sign_in(server, new_page):
    page = new_page()
    page.goto(f"{server}/signup/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert").first).to_contain_text("too short")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r".*/chat/"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/signin/"))
    sign_in(page, server, "newcomer")
    assert page.errors == []


def test_bundled_model_reply_streams_in(server, new_page):
    page = new_page()
    sign_in(page, server, register(server))
    page.get_by_role("button", name="+ New chat").click()
    send(page, "Name three colours.", model="local/smollm2-135m-instruct")
    expect(page.locator(".msg.user").last).to_have_text(re.compile("Name three colours."), timeout=15_000)
    expect(last_reply(page)).to_have_class(re.compile("streaming"), timeout=30_000)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=90_000)
    assert last_reply(page).locator(".content").inner_text().strip()
    # The first exchange named the room, and the sidebar shows it.
    expect(page.locator("#room-title")).to_have_text("Name three colours")
    expect(page.locator(".room-item[aria-current=page]")).to_contain_text("Name three colours")
    assert page.errors == []


def test_stop_keeps_the_partial_reply(server, new_page, fake):
    fake.configure(tokens=400, delay_ms=30, text=None)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "Write a lot.", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t5 ", timeout=15_000)
    page.get_by_role("button", name="Stop generating").click()
    expect(last_reply(page)).to_have_attribute("data-status", "cancelled", timeout=5_000)
    partial = last_reply(page).locator(".content").inner_text()
    assert "t5" in partial and "t399" not in partial
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-status", "cancelled")
    assert last_reply(page).locator(".content").inner_text() == partial
    expect(last_reply(page)).to_contain_text("cancelled")


def test_regenerate_and_switch_branches(server, new_page, fake):
    fake.configure(tokens=50, delay_ms=0, text="The first answer.")
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "Question?", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page)).to_contain_text("The first answer.")
    fake.configure(text="A second answer.")
    last_reply(page).get_by_role("button", name="Regenerate").click()
    expect(last_reply(page)).to_contain_text("A second answer.", timeout=10_000)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page).locator(".branch")).to_have_text("2/2")
    last_reply(page).get_by_role("button", name="Previous version").click()
    expect(last_reply(page).locator(".branch")).to_have_text("1/2")
    expect(last_reply(page)).to_contain_text("The first answer.")
    last_reply(page).get_by_role("button", name="Good reply").click()
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_attribute("aria-pressed", "true")
    page.reload()  # the chosen branch and the rating are stored
    expect(last_reply(page)).to_contain_text("The first answer.")
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_attribute("aria-pressed", "true")


def test_reload_mid_stream_continues_the_text(server, new_page, fake):
    fake.configure(tokens=120, delay_ms=40, text=None)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "Count for me.", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t10 ", timeout=15_000)
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    text = last_reply(page).locator(".content").inner_text()
    assert text.split() == [f"t{i}" for i in range(120)]  # nothing lost, nothing doubled


def room_action(page, room_name: str, action: str) -> None:
    """Open the room's action menu in the sidebar and pick one."""
    page.get_by_role("button", name=f"Actions for {room_name}").click()
    page.get_by_role("menuitem", name=action, exact=True).click()


def answer_dialog(page, value: str | None = None, button: str | None = None) -> None:
    """Fill and submit the page's open dialog (rename, new project, move, delete)."""
    dialog = page.locator("dialog[open]")
    if value is not None:
        dialog.get_by_role("textbox").fill(value)
    dialog.get_by_role("button", name=button or re.compile("Save|Create|Move|Delete")).click()
    expect(page.locator("dialog[open]")).to_have_count(0)


def test_sidebar_and_editing(server, new_page, fake):
    fake.configure(tokens=50, delay_ms=0, text="An answer.")
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "alpha question", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    first_room = page.url
    # Edit the question: the edit becomes a new version with its own reply.
    page.locator(".msg.user").last.get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("alpha question, edited")
    page.get_by_role("button", name="Save and submit").click()
    expect(page.locator(".msg.user").last).to_contain_text("alpha question, edited")
    expect(page.locator(".msg.user").last.locator(".branch")).to_have_text("2/2")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    # A second room, then rename, pin, search, archive and delete from the sidebar.
    page.get_by_role("button", name="+ New chat").click()
    send(page, "beta question", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator(".room-item")).to_have_count(2)
    room_action(page, "Beta question", "Rename")
    answer_dialog(page, "Renamed beta")
    expect(page.locator("#room-title")).to_have_text("Renamed beta")
    room_action(page, "Renamed beta", "Pin")
    expect(page.locator(".room-item").first).to_contain_text("★ Renamed beta")
    page.get_by_label("Search chats").fill("alpha")
    expect(page.locator(".room-item")).to_have_count(1)
    page.get_by_label("Search chats").fill("")
    expect(page.locator(".room-item")).to_have_count(2)
    room_action(page, "Alpha question", "Archive")
    expect(page.locator(".room-item")).to_have_count(1)
    page.get_by_label("Show archived").check()
    expect(page.locator(".room-item")).to_have_count(2)
    room_action(page, "Alpha question", "Delete")
    answer_dialog(page)
    expect(page.locator(".room-item")).to_have_count(1)
    page.goto(first_room)  # a deleted room: the page says so and opens another
    expect(page.get_by_role("alert")).to_contain_text("Room not found")
    expect(page).not_to_have_url(first_room)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    # Projects: create one; a new chat lands in it and the filter shows only its rooms.
    page.goto(f"{server}/chat/")
    page.get_by_role("button", name="New project").click()
    answer_dialog(page, "Thesis")
    expect(page.get_by_label("Project", exact=True)).to_have_value(re.compile(".+"))
    expect(page.locator(".room-item")).to_have_count(0)
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator(".room-item")).to_have_count(1)
    assert page.errors == []


XSS = (
    'Look: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
    "[click](javascript:window.__xss=3) <svg onload=\"window.__xss=4\"></svg> **bold**"
)


def test_xss_payloads_stay_inert(server, new_page, fake):
    fake.configure(tokens=200, delay_ms=0, text=XSS)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, XSS, model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator(".msg script").count() == 0
    assert page.locator(".msg [onerror], .msg [onload]").count() == 0
    hrefs = page.locator(".msg a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not any(href and href.startswith("javascript:") for href in hrefs)
    expect(page.locator(".msg.user").last).to_contain_text("<script>window.__xss=2</script>")  # shown as text
    expect(last_reply(page).locator("strong")).to_have_text("bold")  # Markdown still renders
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert page.evaluate("window.__xss") is None


def test_two_tabs_of_one_user_see_the_same_stream(server, new_page, fake):
    fake.configure(tokens=60, delay_ms=25, text=None)
    username = register(server)
    first, second = new_page(), new_page()
    sign_in(first, server, username)
    sign_in(second, server, username)
    second.goto(first.url)
    expect(second.locator("#conn")).to_have_attribute("data-state", "open")
    send(first, "Both of you, watch.", model=FAKE)
    expect(second.locator(".msg.assistant").last).to_have_class(re.compile("streaming"), timeout=10_000)
    for page in (first, second):
        expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete", timeout=20_000)
    texts = [page.locator(".msg.assistant").last.locator(".content").inner_text() for page in (first, second)]
    assert texts[0] == texts[1] == " ".join(f"t{i}" for i in range(60))


CODE_REPLY = (
    "Here is a **Python** example:\n\n```python\ndef greet(name: str) -> str:\n    return f\"Hello, {name}!\"\n```\n\n"
    "- It takes a *name*\n- It returns a greeting"
)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("form", "viewport"), [("desktop", {"width": 1280, "height": 800}),
                                                 ("phone", {"width": 390, "height": 844})])
def test_screenshots(server, new_page, fake, theme, form, viewport):
    fake.configure(tokens=400, delay_ms=0, text=CODE_REPLY)
    page = new_page(viewport=viewport, color_scheme=theme)
    sign_in(page, server, register(server))
    send(page, "Show me a small Python function.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page).locator("pre code.hljs")).to_have_count(1)  # highlighted
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"chat-{theme}-{form}.png"), animations="disabled")
    if form == "phone":
        page.get_by_role("button", name="Show chats").click()
        expect(page.locator("#sidebar")).to_have_class(re.compile("open"))
        page.screenshot(path=str(SHOTS / f"sidebar-{theme}-phone.png"), animations="disabled")
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).not_to_have_class(re.compile("open"))
        expect(page.get_by_role("button", name="Show chats")).to_be_focused()
    if form == "desktop" and theme == "light":
        signin = new_page(viewport=viewport, color_scheme=theme)
        signin.goto(f"{server}/signin/")
        signin.screenshot(path=str(SHOTS / "signin-light-desktop.png"), animations="disabled")
