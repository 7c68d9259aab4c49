"""Browser checks for the chat page's extras: starters, timestamps, date groups, scroll-to-bottom, shortcuts,
deleting one message, continue, export and import."""

from __future__ import annotations

import json
import re

import pytest

from tests.ui.test_browser import FAKE, SHOTS, last_reply, register, send, server, sign_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]

pytestmark = pytest.mark.slow


def test_empty_chat_starters_timestamps_and_date_groups(server, new_page, fake):
    fake.configure(tokens=20, delay_ms=0, text="Here is a plan.", die_after=None)
    page = new_page()
    sign_in(page, server, register(server))
    page.get_by_label("Model", exact=True).select_option(FAKE)
    empty = page.locator("#messages .empty")
    expect(empty).to_contain_text("fake-llm:latest (ollama)")  # the current model
    starters = page.get_by_role("group", name="Starter prompts").get_by_role("button")
    expect(starters).to_have_count(4)
    starters.filter(has_text="Help me plan my week").click()
    expect(page.locator(".msg.user")).to_have_text(re.compile("Help me plan my week"))
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    stamp = page.locator(".msg.user time.when")
    expect(stamp).to_have_text(re.compile(r"^\d{1,2}:\d{2}"))
    assert re.match(r"\d{4}-\d{2}-\d{2}T", stamp.get_attribute("datetime"))
    expect(page.locator(".room-group h2").first).to_have_text("Today")
    assert page.errors == []


def test_scroll_button_shortcuts_and_help(server, new_page, fake):
    fake.configure(tokens=200, delay_ms=0, text="Line of text.\n\n" * 60, die_after=None)
    page = new_page(viewport={"width": 1000, "height": 600})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server, register(server))
    send(page, "Long, please.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    button = page.get_by_role("button", name="Scroll to the newest message")
    expect(button).to_be_hidden()  # at the bottom already
    page.locator("#messages").evaluate("m => { m.scrollTop = 0; }")
    expect(button).to_be_visible()
    button.click()
    expect(button).to_be_hidden()
    assert page.locator("#messages").evaluate("m => m.scrollHeight - m.scrollTop - m.clientHeight") < 5
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.locator("#room-title").click()
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Copy the last reply")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "keyboard-help-light-desktop.png"), animations="disabled")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.keyboard.press("Control+k")
    expect(page.get_by_label("Search chats")).to_be_focused()
    page.keyboard.press("Shift+Escape")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.press("Control+Shift+C")
    assert page.evaluate("navigator.clipboard.readText()").startswith("Line of text.")
    url = page.url
    page.keyboard.press("Control+Shift+O")
    expect(page).not_to_have_url(url)  # a new chat
    expect(page.locator(".msg")).to_have_count(0)
    assert page.errors == []


def test_delete_one_message_and_continue_a_cut_reply(server, new_page, fake):
    fake.configure(tokens=20, delay_ms=0, text="one two three four five six seven eight nine ten", die_after=None)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "Count.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page).get_by_role("button", name="Continue this reply")).to_have_count(0)  # it finished
    expect(page.locator("#room-title")).not_to_have_text(re.compile("^New [Cc]hat$"))  # no title change races
    page.get_by_role("button", name="Chat settings").click()
    page.get_by_role("dialog", name="Chat settings").get_by_label("Max tokens").fill("5")
    page.get_by_role("dialog", name="Chat settings").get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog", name="Chat settings")).to_be_hidden()
    send(page, "Count again.")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    more = last_reply(page).get_by_role("button", name="Continue this reply")
    expect(more).to_be_visible()  # stopped at its 5-token limit
    expect(page.get_by_role("button", name="Continue this reply")).to_have_count(1)  # on that reply only
    page.reload()  # the server stored why it ended, so the action is still offered
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".msg.assistant").first.get_by_role("button", name="Continue this reply")).to_have_count(0)
    more = last_reply(page).get_by_role("button", name="Continue this reply")
    expect(more).to_be_visible()
    page.get_by_label("Model", exact=True).select_option(FAKE)  # the continuation from the fake, not the bundled model
    more.click()
    expect(page.locator(".msg.user")).to_have_count(3)
    expect(page.locator(".msg.user").last).to_contain_text("Continue exactly where your last reply stopped")
    expect(page.locator(".msg.assistant")).to_have_count(3)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    # The continuation is cut at 5 tokens too: it now carries the action, and the reply it continued does not.
    expect(page.get_by_role("button", name="Continue this reply")).to_have_count(1)
    expect(last_reply(page).get_by_role("button", name="Continue this reply")).to_be_visible()
    # Delete the last reply: it goes, here and after a reload.
    last_reply(page).hover()
    last_reply(page).get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete message").get_by_role("button", name="Delete").click()
    expect(page.locator(".msg.assistant")).to_have_count(2)
    page.reload()
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".msg.user")).to_have_count(3)
    assert page.errors == []


def test_export_and_import(server, new_page, fake, tmp_path):
    fake.configure(tokens=20, delay_ms=0, text="Exported answer.", die_after=None)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "Export me.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#room-title")).not_to_have_text(re.compile("^New [Cc]hat$"))
    title = page.locator("#room-title").inner_text()
    item = page.locator(".room-item[aria-current=page]")
    for label, suffix in (("Export as Markdown", ".md"), ("Export as JSON", ".json")):
        item.hover()
        item.get_by_role("button", name=re.compile("^Actions for")).click()
        with page.expect_download() as download:
            page.get_by_role("menuitem", name=label).click()
        assert download.value.suggested_filename.endswith(suffix)
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        text = path.read_text()
        assert "Export me." in text and "Exported answer." in text
    data = json.loads((tmp_path / download.value.suggested_filename).read_text())
    data["room"]["name"] = "Imported copy"
    source = tmp_path / "import.json"
    source.write_text(json.dumps(data))
    page.locator("input[aria-label='Chat export to import']").set_input_files(str(source))
    expect(page.locator("#room-title")).to_have_text("Imported copy")
    expect(page.locator(".msg.assistant")).to_contain_text("Exported answer.")
    expect(page.locator(".room-item", has_text=title)).to_have_count(1)  # the original stays
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    page.locator("input[aria-label='Chat export to import']").set_input_files(str(bad))
    expect(page.get_by_role("alert").filter(has_text="is not a chat export")).to_be_visible()
    assert page.errors == []
