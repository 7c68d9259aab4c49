"""Browser checks for the chat screen's reported bugs: each drives the page as a person would."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.ui.test_browser import (
    FAKE,
    answer_dialog,
    last_reply,
    register,
    room_action,
    send,
    server,
    sign_in,
    wait_until_searchable,
)

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]  # the module-scoped live server, shared with test_browser.py

pytestmark = pytest.mark.slow


def open_room(page, fake, text: str = "Hello?") -> None:
    fake.configure(tokens=20, delay_ms=0, text="Fine, thanks.", die_after=None)
    send(page, text, model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#room-title")).not_to_have_text(re.compile("^New [Cc]hat$"))  # titled from the exchange
    expect(page.locator(".room-item[aria-current=page]")).not_to_contain_text(re.compile("^New [Cc]hat$"))


def test_long_words_wrap_and_your_links_are_links(server, new_page, fake):
    page = new_page(viewport={"width": 1094, "height": 800})
    sign_in(page, server, register(server))
    url = "https://example.com/" + "a" * 300
    open_room(page, fake, f"See {url} and {'x' * 300}")
    width = page.locator("#messages").evaluate("m => [m.scrollWidth, m.clientWidth]")
    assert width[0] <= width[1] + 1, width
    link = page.locator(".msg.user").last.locator("a")
    expect(link).to_have_attribute("href", url)
    expect(link).to_have_attribute("rel", "noopener noreferrer")


def test_a_failed_reply_keeps_its_reason_and_can_be_retried(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    fake.configure(tokens=50, delay_ms=5, text=None, die_after=3)
    send(page, "Fail, please.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "error", timeout=15_000)
    expect(last_reply(page).locator(".reply-error")).to_contain_text(re.compile(r"\w{4,}"))
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_count(0)
    reason = last_reply(page).locator(".reply-error p").inner_text()
    page.reload()
    expect(last_reply(page).locator(".reply-error p")).to_have_text(reason)
    fake.configure(die_after=None, text="Now it works.")
    last_reply(page).get_by_role("button", name="Retry").click()
    expect(last_reply(page)).to_contain_text("Now it works.", timeout=15_000)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def test_other_tabs_follow_renames_and_model_switches(server, new_page, fake):
    username = register(server)
    first, second = new_page(), new_page()
    sign_in(first, server, username)
    open_room(first, fake, "Shared room")
    sign_in(second, server, username)
    second.goto(first.url)
    expect(second.locator("#conn")).to_have_attribute("data-state", "open")
    title = first.locator("#room-title").inner_text()
    room_action(first, title, "Rename")
    answer_dialog(first, "Renamed elsewhere")
    expect(second.locator("#room-title")).to_have_text("Renamed elsewhere")
    expect(second.locator(".room-item[aria-current=page]")).to_contain_text("Renamed elsewhere")
    first.get_by_label("Model", exact=True).select_option("ollama/fake-coder:7b")
    expect(second.get_by_label("Model", exact=True)).to_have_value("ollama/fake-coder:7b")


def test_keyboard_reaches_the_composer_and_escape_stops(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    fake.configure(tokens=5, delay_ms=0, text="Short answer.", die_after=None)
    for n in range(6):  # twelve messages
        send(page, f"Question {n}", model=FAKE)
        expect(page.locator(".msg")).to_have_count(2 * n + 2)
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # opening a chat focuses the composer
    page.get_by_label("Search chats").focus()
    for _ in range(24):  # the sidebar, the top bar, one message and its buttons, the model and switch, the composer
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "prompt":
            break
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    # A skip link is the first stop on the page, and it leads to the composer.
    first = page.evaluate("document.querySelector('a[href], button, input, select, textarea').className")
    assert first == "skip-link"
    page.get_by_role("link", name="Skip to message box").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    # Escape stops a reply; Stop keeps the focus in the composer.
    fake.configure(tokens=400, delay_ms=30, text=None)
    send(page, "Long one", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t3 ", timeout=15_000)
    page.keyboard.press("Escape")
    expect(last_reply(page)).to_have_attribute("data-status", "cancelled", timeout=5_000)
    send(page, "Another long one", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t3 ", timeout=15_000)
    page.get_by_role("button", name="Stop generating").click()
    expect(last_reply(page)).to_have_attribute("data-status", "cancelled", timeout=5_000)
    expect(page.get_by_label("Message", exact=True)).to_be_focused()


def test_sidebar_titles_menus_projects_without_prompts(server, new_page, fake):
    page = new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"window.{dialog.type} was used"))
    sign_in(page, server, register(server))
    open_room(page, fake, "Write a long essay about rivers")
    item = page.locator(".room-item[aria-current=page]")
    width = "document.querySelector('.room-item[aria-current=page] .open').getBoundingClientRect().width"
    page.wait_for_timeout(300)  # the list settles after the room is titled
    before = page.evaluate(width)
    item.hover()
    assert page.evaluate(width) == before  # the actions do not squeeze the title
    page.get_by_role("button", name="New project").click()
    answer_dialog(page, "Rivers")
    expect(page.get_by_label("Project", exact=True).locator("option:checked")).to_have_text("Rivers")
    page.get_by_label("Project", exact=True).select_option(label="All chats")
    title = page.locator("#room-title").inner_text()
    page.locator(".room-item[aria-current=page]").get_by_role("button", name=re.compile("^Actions for")).click()
    page.get_by_role("menuitem", name="Move to project").click()
    page.locator("dialog[open] select").select_option(label="Rivers")
    answer_dialog(page)
    page.get_by_label("Project", exact=True).select_option(label="Rivers")
    expect(page.locator(".room-item")).to_have_count(1)
    page.get_by_role("button", name="Rename project").click()
    answer_dialog(page, "Streams")
    expect(page.get_by_label("Project", exact=True).locator("option:checked")).to_have_text("Streams")
    page.get_by_role("button", name="Delete project").click()
    answer_dialog(page)
    expect(page.get_by_label("Project", exact=True).locator("option", has_text="Streams")).to_have_count(0)
    expect(page.locator(".room-item", has_text=title)).to_have_count(1)  # its chats stay


def test_phone_sidebar_shows_full_titles_and_large_targets(server, new_page, fake):
    page = new_page(viewport={"width": 390, "height": 844})
    sign_in(page, server, register(server))
    open_room(page, fake, "Revert the last commit safely")
    expect(page.get_by_label("Message", exact=True)).not_to_have_attribute("placeholder", re.compile("Shift"))
    sizes = page.locator(".msg .meta button, #toggle-sidebar, #send").evaluate_all(
        "els => els.filter(e => e.offsetParent)"
        ".map(e => [e.getAttribute('aria-label'), e.getBoundingClientRect().height])")
    assert sizes and all(height >= 44 for _, height in sizes), sizes
    page.get_by_role("button", name="Show chats").click()
    open_button = page.locator(".room-item[aria-current=page] .open")
    assert open_button.bounding_box()["width"] > 200
    expect(page.locator(".room-item[aria-current=page]")).to_have_count(1)
    assert page.locator(".room-item .actions").count() == 0


def test_composer_grows_with_its_text(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    box = page.get_by_label("Message", exact=True)
    box.fill("one\ntwo\nthree\nfour\nfive\nsix")
    box.dispatch_event("input")
    assert box.bounding_box()["height"] > 120


TABLE_REPLY = "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n```js\nlet x = 1;\n```\n\nend"


def test_markdown_tables_quotes_code_and_cursor(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    fake.configure(tokens=400, delay_ms=0, text=TABLE_REPLY, die_after=None)
    send(page, "Show markdown.", model=FAKE)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    styles = page.evaluate("""() => {
      const reply = [...document.querySelectorAll('.msg.assistant')].pop();
      const style = (selector) => getComputedStyle(reply.querySelector(selector));
      return {td: style('td').borderTopStyle, quote: parseFloat(style('blockquote').borderLeftWidth),
              codePad: style('pre code').paddingTop, codeBg: style('pre code').backgroundColor};
    }""")
    assert styles["td"] == "solid" and styles["quote"] >= 2, styles
    assert styles["codePad"] == "0px" and styles["codeBg"] == "rgba(0, 0, 0, 0)", styles  # one box, not two
    fake.configure(tokens=400, delay_ms=30, text=None)
    send(page, "Stream slowly.", model=FAKE)
    expect(last_reply(page).locator(".content")).to_contain_text("t3 ", timeout=15_000)
    cursor = page.evaluate(
        "(() => { const reply = [...document.querySelectorAll('.msg.assistant')].pop();"
        " const p = reply.querySelector('.content > p:last-child');"
        " return p ? getComputedStyle(p, '::after').content : ''; })()")
    assert "▍" in cursor  # the cursor sits at the end of the text, not on a line of its own
    page.keyboard.press("Escape")


def test_going_back_to_an_earlier_question_shows_the_reply_you_picked(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    fake.configure(tokens=50, delay_ms=0, text="Answer A1.", die_after=None)
    send(page, "Question?", model=FAKE)
    expect(last_reply(page)).to_contain_text("Answer A1.")
    fake.configure(text="Answer A2.")
    last_reply(page).get_by_role("button", name="Regenerate").click()
    expect(last_reply(page)).to_contain_text("Answer A2.")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    last_reply(page).get_by_role("button", name="Previous version").click()
    expect(last_reply(page)).to_contain_text("Answer A1.")
    fake.configure(text="Answer B.")
    page.locator(".msg.user").last.get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("Question, edited?")
    page.get_by_role("button", name="Save and submit").click()
    expect(last_reply(page)).to_contain_text("Answer B.")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.locator(".msg.user").last.get_by_role("button", name="Previous version").click()
    expect(page.locator(".msg.user").last).to_contain_text("Question?")
    expect(last_reply(page)).to_contain_text("Answer A1.")  # the one picked there, not the newest


def luminance(rgb: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted([luminance(a), luminance(b)], reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_dark_buttons_look_active_and_copy_says_so(server, new_page, fake):
    page = new_page(color_scheme="dark")
    sign_in(page, server, register(server))
    open_room(page, fake)
    for selector in ("#send", "#new-chat"):
        colours = page.locator(selector).evaluate(
            "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
        assert luminance(colours[0]) < 0.3 and contrast(*colours) >= 4.5, (selector, colours)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    last_reply(page).hover()
    last_reply(page).get_by_role("button", name="Copy").click()
    expect(last_reply(page).get_by_role("button", name="Copied")).to_have_count(1)
    expect(page.locator("#announce")).to_have_text("Copied")


def test_api_root_answers(server):
    response = httpx.get(f"{server}/api/v1/", headers={"Accept": "application/json"})
    assert response.status_code == 200 and "rooms" in response.json()["links"]



def test_a_founder_reads_a_members_chat_without_write_controls(server, new_page, fake):
    member = register(server)
    page = new_page()
    sign_in(page, server, member)
    open_room(page, fake, "A member's question")
    room = page.url
    founder = new_page()
    sign_in(founder, server, "root")  # the first account founded the team every later sign-up joins
    founder.goto(room)
    expect(founder.locator(".msg.user").first).to_contain_text("A member's question")
    expect(founder.locator(".msg.user .author").first).to_have_text(member)
    expect(founder.locator(".msg.user").first).to_have_attribute("aria-label", f"Message from {member}")
    prompt = founder.get_by_label("Message", exact=True)
    expect(prompt).to_be_disabled()
    expect(prompt).to_have_attribute("placeholder", re.compile(f"Only {member} can write in this chat"))
    expect(founder.get_by_role("button", name="Send")).to_be_disabled()
    for write in ("Edit", "Regenerate", "Delete", "Good reply"):
        expect(founder.get_by_role("button", name=write, exact=True)).to_have_count(0)
    expect(last_reply(founder).get_by_role("button", name="Copy")).to_have_count(1)
    wait_until_searchable(founder, server, "member question")  # then the founder's search says whose it is
    founder.get_by_label("Search chats").fill("member question")
    expect(founder.locator(".hit-room").first).to_have_text(re.compile(f"\\({member}'s\\)$"))
    founder.get_by_label("Search chats").fill("")
    founder.get_by_role("button", name="+ New chat").click()  # their own chat: writable again
    expect(founder.get_by_label("Message", exact=True)).to_be_enabled()
    expect(founder.locator(".msg.user .author")).to_have_count(0)
    assert founder.errors == [] and page.errors == []


def test_the_echo_of_an_earlier_model_choice_does_not_turn_the_picker_back(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    open_room(page, fake)
    held = []
    page.route(re.compile(r".*/api/v1/rooms/[0-9a-f-]+$"),
               lambda route: held.append(route) if route.request.method == "PATCH" else route.continue_())
    picker = page.get_by_label("Model", exact=True)
    picker.select_option("ollama/fake-coder:7b")
    picker.select_option(FAKE)  # changed again before the first choice reached the server
    page.wait_for_timeout(200)
    assert len(held) == 2
    held[0].continue_()  # the first choice lands now: its room_updated echo names fake-coder
    page.wait_for_timeout(500)
    expect(picker).to_have_value(FAKE)
    held[1].continue_()
    page.wait_for_timeout(300)
    page.unroute(re.compile(r".*/api/v1/rooms/[0-9a-f-]+$"))
    expect(picker).to_have_value(FAKE)
    page.reload()
    expect(page.get_by_label("Model", exact=True)).to_have_value(FAKE)
    assert page.errors == []


def test_enter_submits_an_edit_and_shift_enter_adds_a_line(server, new_page, fake):
    page = new_page()
    sign_in(page, server, register(server))
    open_room(page, fake, "First wording")
    page.locator(".msg.user").last.get_by_role("button", name="Edit").click()
    box = page.get_by_label("Edit message")
    box.fill("Second wording")
    box.press("Shift+Enter")
    box.type("on two lines")
    box.press("Enter")
    expect(page.locator(".msg.user").last).to_contain_text("Second wording\non two lines")
    expect(page.locator(".msg.user").last.locator(".branch")).to_have_text("2/2")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert page.errors == []
