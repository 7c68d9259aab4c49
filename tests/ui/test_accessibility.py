"""axe-core, from npm (`make assets` installs it into node_modules), run in Chromium on the sign-in, chat and
settings pages: none may have a serious or critical accessibility violation."""

from __future__ import annotations

import re

import pytest

from tests.ui.test_browser import CODE_REPLY, FAKE, ROOT, SHOTS, last_reply, register, send, server, sign_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not AXE.exists(), reason=f"{AXE} missing (make assets installs it)"),
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def serious_violations(page) -> list[str]:
    """Inject axe-core through the DevTools protocol (the page's CSP stays as served) and list each serious or
    critical violation with the elements it names, so a failure says what to fix."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} -> "
        + "; ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        for violation in results["violations"] if violation["impact"] in ("serious", "critical")
    ]


def assert_accessible(page) -> None:
    found = serious_violations(page)
    assert found == [], "\n".join(found)


def test_axe_reports_something_on_a_broken_page(new_page):
    """The check itself can fail: an unlabelled field and an image without text are caught."""
    page = new_page()
    page.set_content("<html lang='en'><title>x</title><main><input><img src='x.png'></main></html>")
    found = serious_violations(page)
    assert any(line.startswith("label ") for line in found), found
    assert any(line.startswith("image-alt ") for line in found), found


def test_sign_in_page(server, new_page):
    for theme in ("light", "dark"):
        page = new_page(color_scheme=theme)
        page.goto(f"{server}/signin/")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert_accessible(page)
        page.get_by_label("Username or email").fill("nobody")
        page.get_by_label("Password").fill("wrong-password-here")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert").first).to_be_visible()  # the page with its error, too
        assert_accessible(page)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("form", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_chat_page(server, new_page, fake, theme, form, viewport):
    fake.configure(tokens=400, delay_ms=0, text=CODE_REPLY, die_after=None)
    page = new_page(viewport=viewport, color_scheme=theme)
    sign_in(page, server, register(server))
    page.get_by_label("Model", exact=True).select_option(FAKE)
    expect(page.get_by_role("group", name="Starter prompts")).to_be_visible()
    assert_accessible(page)  # the empty chat
    send(page, "Show me a small Python function.")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#room-title")).not_to_have_text(re.compile("^New [Cc]hat$"))
    send(page, "And another one, please.")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    last_reply(page).hover()  # its actions shown
    last_reply(page).get_by_role("button", name="Details").click()
    expect(last_reply(page).locator(".details")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Chat settings").click()
    expect(page.get_by_role("dialog", name="Chat settings")).to_be_visible()
    assert_accessible(page)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Chat settings")).to_be_hidden()
    if form == "phone":
        page.get_by_role("button", name="Show chats").click()
        expect(page.locator("#sidebar")).to_have_class(re.compile("open"))
        expect(page.locator("#sidebar .room-item").first).to_be_visible()
    else:
        page.locator("#room-title").click()
        page.keyboard.press("?")
        expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    assert_accessible(page)
    assert page.errors == []


@pytest.mark.parametrize(("theme", "form", "viewport"), [("light", "desktop", DESKTOP), ("dark", "desktop", DESKTOP),
                                                         ("light", "phone", PHONE), ("dark", "phone", PHONE)])
def test_settings_page(server, new_page, theme, form, viewport):
    page = new_page(viewport=viewport, color_scheme=theme)
    sign_in(page, server, register(server))
    page.goto(f"{server}/settings/")
    expect(page.get_by_role("button", name="Save profile")).to_be_visible()
    assert_accessible(page)
    if (theme, form) == ("light", "phone"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "settings-light-phone.png"), animations="disabled")
    page.get_by_label("Email").fill("not-an-address")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#profile-email-error")).to_be_visible()  # with an error at its field, too
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("New token")).to_have_value(re.compile(r"^lcp_"))
    assert_accessible(page)
    assert page.errors == []
