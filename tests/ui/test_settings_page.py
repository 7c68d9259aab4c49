"""Browser check of the settings page: profile, password, API tokens, chat defaults reaching a new chat, theme."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.ui.test_browser import FAKE, PASSWORD, SHOTS, last_reply, register, send, server, sign_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["server"]

pytestmark = pytest.mark.slow

NEW_PASSWORD = "settings-new-passphrase-5"


def test_settings_page(server, new_page, fake):
    fake.configure(tokens=10, delay_ms=0, text="Fine.", die_after=None)
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    username = register(server)
    sign_in(page, server, username)
    page.get_by_role("link", name="Settings").click()
    page.wait_for_url(f"{server}/settings/")
    expect(page.locator("#profile-username")).to_have_text(username)

    # Profile: a bad address is reported at the field, a good one is saved.
    page.get_by_label("Email").fill("not-an-address")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#profile-email-error")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Email").fill(f"{username}-new@example.com")
    page.get_by_label("First name").fill("Ada")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#profile-form .status")).to_have_text("Profile saved.")

    # Chat defaults: a model and parameters, used by the next new chat.
    page.get_by_label("Default model").select_option(FAKE)
    page.get_by_label("Default system prompt").fill("Answer like a sailor.")
    page.get_by_label("Temperature").fill("0.35")
    page.get_by_label("Max tokens").fill("77")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#defaults-form .status")).to_have_text("Defaults saved.")

    # API tokens: shown once, works as a Bearer token, listed, then revoked.
    page.get_by_label("Token name").fill("laptop script")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("New token")).to_have_value(re.compile(r"^lcp_"))
    raw = page.get_by_label("New token").input_value()
    assert raw.startswith("lcp_")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    bearer = {"Authorization": f"Bearer {raw}"}
    assert httpx.get(f"{server}/api/v1/auth/me", headers=bearer).json()["first_name"] == "Ada"
    row = page.locator("#token-rows tr", has_text="laptop script")
    expect(row).to_contain_text(raw[:8])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "settings-light-desktop.png"), full_page=True, animations="disabled")
    row.get_by_role("button", name="Revoke laptop script").click()
    dialog = page.get_by_role("dialog", name="Revoke token?")
    dialog.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    assert httpx.get(f"{server}/api/v1/auth/me", headers=bearer).status_code == 401

    # Theme: stored with the account, so a fresh browser gets it too.
    page.get_by_label("Dark").check()
    expect(page.locator("#theme-form .status")).to_have_text("Theme saved.")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")

    # Password: a wrong current one is reported at the field; then the new one signs in elsewhere.
    page.get_by_label("Current password").fill("wrong-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-current_password-error")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-form .status")).to_have_text("Password changed.")

    # This browser stays signed in; a new chat uses the defaults.
    page.get_by_role("link", name="Back to chat").click()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    page.locator("#new-chat").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value(FAKE)
    send(page, "Hello.")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    request = fake.stats.last_request
    assert request["messages"][0] == {"role": "system", "content": "Answer like a sailor."}
    assert request["options"]["temperature"] == 0.35 and request["options"]["num_predict"] == 77
    assert page.errors == []

    other = new_page(color_scheme="light")
    other.goto(f"{server}/signin/")
    other.get_by_label("Username or email").fill(username)
    other.get_by_label("Password").fill(NEW_PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.wait_for_url(re.compile(r".*/chat/[0-9a-f-]+/$"))
    expect(other.locator("html")).to_have_attribute("data-theme", "dark")
    assert other.errors == []
