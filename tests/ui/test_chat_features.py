"""Browser checks for the chat screen's features: chat settings, reply details, code blocks, math."""

from __future__ import annotations

import re

import pytest

from tests.ui.test_browser import FAKE, SHOTS, last_reply, register, send, server, sign_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]

pytestmark = pytest.mark.slow


def test_chat_settings_are_stored_with_the_room_and_used_by_every_reply(server, new_page, fake):
    fake.configure(tokens=20, delay_ms=0, text="Arr, fine.", die_after=None)
    page = new_page()
    sign_in(page, server, register(server))
    send(page, "First.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#room-title")).to_have_text("First")  # titled: no title change races the settings
    page.get_by_role("button", name="Chat settings").click()
    panel = page.get_by_role("dialog", name="Chat settings")
    panel.get_by_label("System prompt").fill("You are a terse pirate.")
    panel.get_by_label("Temperature").fill("0.2")
    panel.get_by_label("Max tokens").fill("64")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat-settings-light-desktop.png"), animations="disabled")
    panel.get_by_role("button", name="Save").click()
    expect(panel).to_be_hidden()
    send(page, "Second.")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    request = fake.stats.last_request
    assert request["messages"][0] == {"role": "system", "content": "You are a terse pirate."}
    assert request["options"]["temperature"] == 0.2 and request["options"]["num_predict"] == 64
    page.reload()  # stored with the room: a regeneration after a reload uses them too
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    last_reply(page).hover()
    last_reply(page).get_by_role("button", name="Regenerate").click()
    expect(last_reply(page).locator(".branch")).to_have_text("2/2")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert fake.stats.last_request["options"]["temperature"] == 0.2
    page.get_by_role("button", name="Chat settings").click()
    expect(page.get_by_role("dialog", name="Chat settings").get_by_label("Max tokens")).to_have_value("64")


CODE = "Try:\n\n```python\nprint('hi')\n```\n\nEuler: $e^{i\\pi}+1=0$ and\n\n$$\\int_0^1 x\\,dx$$\n\nCosts $5 and $10."


def test_details_code_blocks_and_math(server, new_page, fake):
    fake.configure(tokens=400, delay_ms=0, text=CODE, die_after=None)
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server, register(server))
    send(page, "Show me.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    reply = last_reply(page)
    expect(reply.locator(".codeblock .lang")).to_have_text("python")
    reply.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print('hi')"
    expect(reply.locator("math")).to_have_count(2)  # inline and display math, as MathML
    expect(reply.locator(".content")).to_contain_text("Costs $5 and $10.")  # prices stay text
    reply.hover()
    reply.get_by_role("button", name="Details").click()
    details = reply.locator(".details")
    expect(details).to_contain_text("fake-llm")
    expect(details).to_contain_text(re.compile(r"Completion tokens\s*\d+"))
    expect(details).to_contain_text(re.compile(r"Tokens per second\s*[\d.]+"))
    page.screenshot(path=str(SHOTS / "chat-details-light-desktop.png"), animations="disabled")
    reply.get_by_role("button", name="Details").click()
    expect(details).to_have_count(0)
    assert page.errors == []
