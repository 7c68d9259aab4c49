"""Browser checks for files in the composer: attach, drop, paste, progress, refusals, chips, the room's files."""

from __future__ import annotations

import re

import pytest

from tests.ui.test_browser import FAKE, last_reply, register, send, server, sign_in, wait_until_searchable

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]

pytestmark = pytest.mark.slow

NOTES = b"# Deployment notes\n\nThe staging cluster is called Bluefin and restarts every Tuesday at 04:00.\n"


def ready_page(page, server, fake):
    fake.configure(tokens=20, delay_ms=0, text="Noted.", die_after=None)
    sign_in(page, server, register(server))
    page.get_by_label("Model", exact=True).select_option(FAKE)


def chip(page, name):
    return page.locator("#chips .chip", has_text=name)


def test_attached_files_upload_with_progress_and_go_with_the_message(server, new_page, fake):
    page = new_page()
    ready_page(page, server, fake)
    held = []
    page.route(re.compile(r".*/upload$"), lambda route: held.append(route))
    page.locator("#file-input").set_input_files(
        [{"name": "notes.md", "mimeType": "text/markdown", "buffer": NOTES},
         {"name": "other.txt", "mimeType": "text/plain", "buffer": b"Nothing to see here.\n"}])
    # While the upload is on its way the chip shows its progress and Send waits for it.
    expect(chip(page, "notes.md")).to_have_attribute("data-state", "uploading")
    expect(chip(page, "notes.md").locator("progress")).to_be_visible()
    page.get_by_label("Message", exact=True).fill("When does Bluefin restart?")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.get_by_role("alert").filter(has_text="finish uploading")).to_be_visible()
    expect(page.locator(".msg.user")).to_have_count(0)
    page.wait_for_timeout(100)
    for route in held:
        route.continue_()
    page.unroute(re.compile(r".*/upload$"))
    expect(chip(page, "notes.md")).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(chip(page, "other.txt")).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(chip(page, "notes.md")).to_contain_text(re.compile(r"\d+ B"))
    page.get_by_role("button", name="Remove other.txt").click()  # removable: only notes.md goes
    expect(page.locator("#chips .chip")).to_have_count(1)
    page.get_by_label("Message", exact=True).press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#chips")).to_be_hidden()
    sent = page.locator(".msg.user").last.get_by_role("list", name="Files sent")
    expect(sent).to_have_text("notes.md")
    system = fake.stats.last_request["messages"][0]
    assert system["role"] == "system" and "staging cluster is called Bluefin" in system["content"]
    expect(last_reply(page).locator(".citations")).to_contain_text("notes.md")
    page.reload()  # stored with the message
    expect(page.locator(".msg.user").last.get_by_role("list", name="Files sent")).to_have_text("notes.md")
    assert page.errors == []


def test_refused_files_say_why_in_the_composer(server, new_page, fake):
    page = new_page()
    ready_page(page, server, fake)
    picker = page.locator("#file-input")
    problem = page.locator("#upload-error")
    picker.set_input_files([{"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n" + bytes(64)}])
    expect(problem).to_contain_text("photo.png: this type of file is not supported")
    picker.set_input_files([{"name": "empty.txt", "mimeType": "text/plain", "buffer": b"   \n"}])
    expect(problem).to_contain_text("empty.txt has no text to read")
    picker.set_input_files([{"name": "huge.txt", "mimeType": "text/plain", "buffer": b"a" * (20 * 1024 * 1024 + 10)}])
    expect(problem).to_contain_text("huge.txt is too large", timeout=30_000)
    expect(page.locator("#chips .chip")).to_have_count(0)  # nothing refused waits to be sent
    page.get_by_role("button", name="Files in this chat").click()
    expect(page.get_by_role("dialog", name="Files in this chat")).to_contain_text("No files in this chat yet.")
    page.keyboard.press("Escape")
    page.get_by_label("Message", exact=True).fill("Never mind the files.")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(problem).to_be_hidden()  # the refusal went with the message it was meant for


def test_drop_and_paste_attach_files_and_the_room_lists_them(server, new_page, fake):
    page = new_page()
    ready_page(page, server, fake)
    send(page, "Start.")  # the room exists and has a title
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.evaluate("""() => {
      const data = new DataTransfer();
      data.items.add(new File(["Dropped text about otters.\\n"], "dropped.md", { type: "text/markdown" }));
      const zone = document.querySelector(".chat");
      zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: data, bubbles: true, cancelable: true }));
      window.hinted = zone.classList.contains("dropping");
      zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }""")
    assert page.evaluate("window.hinted") is True
    expect(chip(page, "dropped.md")).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator(".chat")).not_to_have_class(re.compile("dropping"))
    page.get_by_label("Message", exact=True).focus()
    page.evaluate("""() => {
      const data = new DataTransfer();
      data.items.add(new File(["a,b\\n1,2\\n"], "pasted.csv", { type: "text/csv" }));
      const paste = new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
      document.getElementById("prompt").dispatchEvent(paste);
    }""")
    expect(chip(page, "pasted.csv")).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.get_by_label("Message", exact=True)).to_have_value("")  # a file paste adds no text
    page.get_by_role("button", name="Files in this chat").click()
    panel = page.get_by_role("dialog", name="Files in this chat")
    expect(panel.locator(".file-row")).to_have_count(2)
    link = panel.get_by_role("link", name="dropped.md")
    expect(link).to_have_attribute("href", re.compile(r"/api/v1/rooms/[0-9a-f-]+/files/[0-9a-f-]+/content$"))
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "dropped.md"
    panel.get_by_role("button", name="Delete pasted.csv").click()
    page.get_by_role("dialog", name="Delete file").get_by_role("button", name="Delete").click()
    expect(panel.locator(".file-row")).to_have_count(1)
    expect(chip(page, "pasted.csv")).to_have_count(0)  # a deleted file no longer waits to be sent
    panel.get_by_role("button", name="Close").click()
    expect(page.get_by_role("button", name="Files in this chat")).to_be_focused()
    assert page.errors == []


def test_search_other_chats_draws_on_another_chat_and_its_source_opens_it(server, new_page, fake):
    page = new_page()
    ready_page(page, server, fake)
    page.get_by_label("Message", exact=True).fill("Our ferry to the island of Hvar leaves Split at 7:15.")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    trip = page.url
    said = page.locator(".msg.user").last.get_attribute("data-message-id")
    wait_until_searchable(page, server, "ferry Hvar")
    page.get_by_label("Search chats").fill("ferry Hvar")
    expect(page.locator(".hit-group .hit").first).to_be_visible()
    page.get_by_label("Search chats").fill("")

    page.get_by_role("button", name="+ New chat").click()
    page.wait_for_url(lambda url: url != trip)
    page.get_by_label("Model", exact=True).select_option(FAKE)
    page.get_by_label("Search other chats").check()
    page.get_by_label("Message", exact=True).fill("When does the ferry from Split to Hvar leave?")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert "from the user's other chats" in fake.stats.last_request["messages"][0]["content"]
    source = last_reply(page).get_by_role("button", name="Open source 1")
    expect(source).to_contain_text(re.compile(r'\[1\] the chat ".+", user message of \d{4}-\d\d-\d\d'))
    expect(page.get_by_label("Search other chats")).to_be_checked()  # it stays on for the next question

    source.click()  # opens the other chat at the message
    page.wait_for_url(trip)
    expect(page.locator(f'.msg[data-message-id="{said}"]')).to_have_css("outline-style", "solid")

    page.goto(f"{trip}?message={said}")  # the source's link, opened directly
    expect(page.locator(f'.msg[data-message-id="{said}"]')).to_have_css("outline-style", "solid")
    assert page.errors == []
