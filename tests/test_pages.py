"""Server-rendered pages: sign in, sign up, waitlist, password reset, the chat shell and its CSP."""

from __future__ import annotations

import pytest
from django.test import AsyncClient, Client

from accounts.models import User, WaitlistEntry
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_chat_needs_sign_in():
    response = Client().get("/chat/")
    assert response.status_code == 302 and response["Location"].startswith("/signin/?next=/chat/")


def test_sign_in_by_username_or_email_then_chat_page():
    UserFactory(username="dora", email="dora@example.com")
    browser = Client()
    wrong = browser.post("/signin/", {"username": "dora", "password": "nope"})
    assert wrong.status_code == 400 and b"Wrong username/email or password." in wrong.content
    ok = browser.post("/signin/?next=/chat/", {"username": "dora@example.com", "password": PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == "/chat/"
    page = browser.get("/chat/")
    assert page.status_code == 200 and b'id="messages"' in page.content and "csrftoken" in page.cookies
    assert browser.post("/signout/").status_code == 302
    assert browser.get("/chat/").status_code == 302  # signed out
    assert Client().post("/signin/?next=//evil.example", {"username": "dora", "password": PASSWORD})["Location"] == (
        "/chat/"
    )


def test_sign_up_page_creates_the_first_user_as_founder():
    browser = Client()
    assert b'autocomplete="new-password"' in browser.get("/signup/").content
    bad = browser.post("/signup/", {"username": "ed", "email": "ed@example.com", "password": "123"})
    assert bad.status_code == 400 and b"too short" in bad.content
    ok = browser.post("/signup/", {"username": "ed", "email": "ed@example.com", "password": "a-long-passphrase-1"})
    assert ok.status_code == 302 and User.objects.get(username="ed").is_staff


def test_waitlist_page_when_sign_up_is_closed(settings):
    UserFactory()
    settings.SIGNUP_MODE = "waitlist"
    browser = Client()
    page = browser.get("/signup/")
    assert b"Join the waitlist" in page.content
    joined = browser.post("/signup/", {"email": "later@example.com", "note": "hi"})
    assert b"Thanks!" in joined.content and WaitlistEntry.objects.filter(email="later@example.com").exists()
    settings.SIGNUP_MODE = "invite"
    assert b"invitation only" in Client().get("/signup/").content


def test_password_reset_page_sends_mail(mailoutbox):
    UserFactory(email="fay@example.com")
    response = Client().post("/password-reset/", {"email": "fay@example.com"})
    assert b"on its way" in response.content and len(mailoutbox) == 1


@pytest.mark.parametrize("path", ["/signin/", "/signup/", "/password-reset/", "/chat/"])
def test_pages_carry_a_strict_csp(path):
    browser = Client()
    if path == "/chat/":
        browser.force_login(UserFactory())
    response = browser.get(path)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy and "unsafe-inline" not in policy
    assert b"<script>" not in response.content  # no inline scripts the policy would block


def test_api_docs_are_exempt_from_the_page_csp():
    assert "Content-Security-Policy" not in Client().get("/api/docs/")


@pytest.mark.asyncio
async def test_static_files_are_served_through_the_async_middleware_chain():
    response = await AsyncClient().get("/static/js/chat/socket.js")
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert b"WebSocket" in body


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sign_in_and_csrf_through_the_async_middleware_chain():
    """Under ASGI the middleware hooks run on the event loop; sessions, CSRF and headers must still work."""
    from asgiref.sync import sync_to_async

    await sync_to_async(UserFactory)(username="gil")
    browser = AsyncClient(enforce_csrf_checks=True)
    page = await browser.get("/signin/")
    token = page.cookies["csrftoken"].value
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
    forged = await browser.post("/signin/", {"username": "gil", "password": PASSWORD})
    assert forged.status_code == 403
    ok = await browser.post("/signin/?next=/chat/", {"username": "gil", "password": PASSWORD,
                                                      "csrfmiddlewaretoken": token})
    assert ok.status_code == 302 and ok["Location"] == "/chat/" and "sessionid" in ok.cookies
    chat = await browser.get("/chat/")
    assert chat.status_code == 200 and b'id="messages"' in chat.content
    assert chat["Vary"] and "Cookie" in chat["Vary"]
    # Session-authenticated API writes need the CSRF token too; with it they pass.
    csrf = chat.cookies.get("csrftoken", page.cookies["csrftoken"]).value
    refused = await browser.post("/api/v1/rooms/", {}, content_type="application/json")
    assert refused.status_code == 403
    created = await browser.post("/api/v1/rooms/", {}, content_type="application/json", headers={"X-CSRFToken": csrf})
    assert created.status_code == 201
    assert (await browser.get("/no-such-page")).status_code == 404


OPS_PAGES = ["/ops/performance/", "/ops/system/", "/ops/panic/"]


@pytest.mark.parametrize("path", OPS_PAGES)
def test_ops_pages_are_for_staff_only(path):
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and anonymous["Location"] == f"/signin/?next={path}"
    member = Client()
    member.force_login(UserFactory())
    refused = member.get(path)
    assert refused.status_code == 403 and b"Staff only" in refused.content and b"ops-main" not in refused.content
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    page = staff.get(path)
    assert page.status_code == 200 and b'id="ops-status"' in page.content and "csrftoken" in page.cookies
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and b"<script>" not in page.content and b' style="' not in page.content
    # Each ops page links to the others and to the Django admin.
    for link in [*OPS_PAGES, "/admin/"]:
        assert f'href="{link}"'.encode() in page.content


def test_chat_sidebar_links_to_ops_pages_for_staff_only():
    member = Client()
    member.force_login(UserFactory())
    assert b'aria-label="Operations"' not in member.get("/chat/").content
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    page = staff.get("/chat/").content
    assert b'aria-label="Operations"' in page and b'href="/ops/panic/"' in page


@pytest.mark.django_db
def test_api_root_lists_the_api_and_is_browsable():
    browser = Client()
    data = browser.get("/api/v1/", HTTP_ACCEPT="application/json")
    assert data.status_code == 200
    assert data.json()["links"]["rooms"].endswith("/api/v1/rooms/")
    html = browser.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and b"/api/v1/rooms/" in html.content


@pytest.mark.django_db
def test_a_fresh_install_opens_on_sign_up_and_names_the_first_account_admin():
    browser = Client()
    assert browser.get("/")["Location"] == "/signup/"
    assert browser.get("/signin/")["Location"] == "/signup/"
    page = browser.get("/signup/")
    assert b"first account becomes its administrator" in page.content
    UserFactory()
    assert browser.get("/")["Location"] == "/signin/"
    assert b"first account becomes" not in browser.get("/signup/").content


@pytest.mark.django_db
def test_a_refused_password_is_shown_at_its_field():
    page = Client().post("/signup/", {"username": "ann", "email": "ann@example.com", "password": "short"})
    assert page.status_code == 400
    html = page.content.decode()
    assert 'id="id_password-error"' in html and "too short" in html.split('id="id_password-error"')[1][:200]


def test_settings_page_needs_sign_in_and_shows_the_account():
    assert Client().get("/settings/")["Location"].startswith("/signin/?next=/settings/")
    user = UserFactory(username="sett", email="sett@example.com")
    user.preferences = {"theme": "dark"}
    user.save()
    browser = Client()
    browser.force_login(user)
    page = browser.get("/settings/")
    body = page.content.decode()
    assert page.status_code == 200 and "csrftoken" in page.cookies
    assert 'data-theme-preference="dark"' in body and 'value="sett@example.com"' in body
    assert 'src="/static/js/settings/main.js"' in body and "<script>" not in body and "style=" not in body
    assert 'href="/settings/"' in browser.get("/chat/").content.decode()
