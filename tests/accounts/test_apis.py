"""Accounts over HTTP: register, login, tokens, password reset, verification, deletion, waitlist."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Membership, Role, Team, User, WaitlistEntry
from accounts.services import create_api_token
from chat.models import Message, Room
from tests.conftest import client_for
from tests.factories import PASSWORD, MessageFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def register(client: APIClient, username: str, email: str | None = None, password: str = PASSWORD, **extra):
    body = {"username": username, "email": email or f"{username}@example.com", "password": password, **extra}
    return client.post("/api/v1/auth/register", body, format="json")


@pytest.mark.django_db(transaction=True)  # mail is sent on commit
def test_first_user_founds_default_team_and_is_staff(anon_client, mailoutbox):
    response = register(anon_client, "alice")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("lcp_")
    assert body["user"]["teams"] == [{"id": Team.objects.get().id, "name": "Default", "role": "founder"}]
    alice = User.objects.get(username="alice")
    assert alice.is_staff and alice.is_superuser
    assert [m.subject for m in mailoutbox] == ["Confirm your email address"]


def test_later_users_join_default_team_as_members(anon_client):
    register(anon_client, "alice")
    response = register(APIClient(), "bob")
    assert response.status_code == 201
    assert response.json()["user"]["teams"][0]["role"] == "member"
    assert not User.objects.get(username="bob").is_staff


def test_register_rejects_weak_password_and_duplicates(anon_client):
    weak = register(anon_client, "carol", password="password")
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "validation_error"
    assert "password" in weak.json()["error"]["details"]
    assert register(anon_client, "carol").status_code == 201
    dup = register(APIClient(), "CAROL", email="other@example.com")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "username_taken"
    dup_email = register(APIClient(), "carol2", email="Carol@Example.com")
    assert dup_email.status_code == 409 and dup_email.json()["error"]["code"] == "email_taken"


def test_register_validates_shape(anon_client):
    response = anon_client.post("/api/v1/auth/register", {"username": "bad name!", "email": "nope"}, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {"username", "email", "password"} <= set(details)


def test_login_by_username_or_email_sets_session_and_token(anon_client):
    UserFactory(username="dave", email="dave@example.com")
    by_name = anon_client.post("/api/v1/auth/login", {"username": "dave", "password": PASSWORD}, format="json")
    assert by_name.status_code == 200
    assert "sessionid" in by_name.cookies
    # The session cookie alone authenticates the browser.
    assert anon_client.get("/api/v1/auth/me").json()["username"] == "dave"
    by_email = APIClient().post(
        "/api/v1/auth/login", {"username": "DAVE@example.com", "password": PASSWORD}, format="json"
    )
    assert by_email.status_code == 200
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Bearer {by_email.json()['token']}")
    assert token_client.get("/api/v1/auth/me").json()["username"] == "dave"


def test_sign_in_tokens_expire_and_expired_ones_are_dropped(anon_client, settings):
    settings.SIGN_IN_TOKEN_DAYS = 30
    registered = anon_client.post("/api/v1/auth/register", {"username": "erin", "email": "erin@example.com",
                                                            "password": PASSWORD}, format="json")
    erin = User.objects.get(username="erin")
    sign_up = ApiToken.objects.get(user=erin)
    assert registered.status_code == 201 and sign_up.name == "sign-up"
    assert timedelta(days=29) < sign_up.expires_at - timezone.now() <= timedelta(days=30)
    kept, _raw = create_api_token(user=erin, name="my script")  # made on the settings page: no expiry
    ApiToken.objects.filter(pk=sign_up.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    login = APIClient().post("/api/v1/auth/login", {"username": "erin", "password": PASSWORD}, format="json")
    assert login.status_code == 200
    names = sorted(ApiToken.objects.filter(user=erin).values_list("name", flat=True))
    assert names == ["login", "my script"]  # the expired sign-up token is gone, the deliberate one stays
    assert ApiToken.objects.get(pk=kept.pk).expires_at is None


def test_login_failures(anon_client):
    UserFactory(username="erin", is_active=False)
    wrong = anon_client.post("/api/v1/auth/login", {"username": "erin", "password": "nope"}, format="json")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    inactive = anon_client.post("/api/v1/auth/login", {"username": "erin", "password": PASSWORD}, format="json")
    assert inactive.status_code == 403 and inactive.json()["error"]["code"] == "account_inactive"
    unknown = anon_client.post("/api/v1/auth/login", {"username": "ghost", "password": PASSWORD}, format="json")
    assert unknown.status_code == 401


def test_anonymous_gets_401_with_bearer_challenge(anon_client):
    response = anon_client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer lcp_not-a-real-token")
    assert bad.get("/api/v1/auth/me").status_code == 401


def test_logout_revokes_the_token_used(user):
    _token, raw = create_api_token(user=user, name="cli")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_token_create_list_revoke(api, user):
    created = api.post("/api/v1/auth/tokens", {"name": "laptop", "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    stored = ApiToken.objects.get(pk=created.json()["id"])
    assert stored.key_hash != raw and raw not in stored.key_hash  # only the hash is stored
    listing = api.get("/api/v1/auth/tokens").json()
    assert "token" not in listing["results"][0]  # never shown again
    assert {t["name"] for t in listing["results"]} == {"laptop", "test"}
    laptop = APIClient()
    laptop.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert laptop.get("/api/v1/auth/me").status_code == 200
    assert api.delete(f"/api/v1/auth/tokens/{stored.pk}").status_code == 204
    assert laptop.get("/api/v1/auth/me").status_code == 401


def test_cannot_revoke_someone_elses_token(api):
    stranger_token, _ = create_api_token(
        user=UserFactory(), name="theirs"
    )
    assert api.delete(f"/api/v1/auth/tokens/{stranger_token.pk}").status_code == 404
    assert ApiToken.objects.filter(pk=stranger_token.pk).exists()


def test_expired_token_is_refused(user):
    token, raw = create_api_token(user=user, name="old", expires_in_days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/auth/me").status_code == 401


def test_password_reset_round_trip(anon_client, mailoutbox):
    UserFactory(username="frank", email="frank@example.com")
    assert anon_client.post("/api/v1/auth/password/reset", {"email": "nobody@example.com"}).status_code == 202
    assert mailoutbox == []  # no mail, and the same answer: nothing leaks
    assert anon_client.post("/api/v1/auth/password/reset", {"email": "frank@example.com"}).status_code == 202
    body = mailoutbox[0].body
    uid = re.search(r"uid=(\S+)", body).group(1)
    token = re.search(r"token=(\S+)", body).group(1)
    assert f"/accounts/reset/{uid}/{token}/" in body
    weak = anon_client.post(
        "/api/v1/auth/password/reset/confirm", {"uid": uid, "token": token, "new_password": "123"}, format="json"
    )
    assert weak.status_code == 400
    ok = anon_client.post(
        "/api/v1/auth/password/reset/confirm",
        {"uid": uid, "token": token, "new_password": "a-brand-new-passphrase-9"},
        format="json",
    )
    assert ok.status_code == 200
    again = anon_client.post(
        "/api/v1/auth/password/reset/confirm",
        {"uid": uid, "token": token, "new_password": "another-new-passphrase-9"},
        format="json",
    )
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    login = anon_client.post(
        "/api/v1/auth/login", {"username": "frank", "password": "a-brand-new-passphrase-9"}, format="json"
    )
    assert login.status_code == 200


def test_password_reset_link_page_works(anon_client, mailoutbox):
    UserFactory(username="gina", email="gina@example.com")
    anon_client.post("/api/v1/auth/password/reset", {"email": "gina@example.com"})
    link = re.search(r"http://\S+/accounts/reset/\S+", mailoutbox[0].body).group(0)
    path = link.split("8000", 1)[1]
    browser = Client()
    page = browser.get(path, follow=True)
    assert page.status_code == 200 and b"new password" in page.content.lower()


@pytest.mark.django_db(transaction=True)  # mail is sent on commit
def test_email_verification(anon_client, mailoutbox):
    register(anon_client, "hank")
    link = re.search(r"/accounts/verify-email/(\S+)/", mailoutbox[0].body)
    token = link.group(1)
    assert anon_client.post("/api/v1/auth/email/verify", {"token": "garbage"}).status_code == 400
    response = anon_client.post("/api/v1/auth/email/verify", {"token": token}, format="json")
    assert response.status_code == 200 and response.json()["email_verified"] is True
    assert User.objects.get(username="hank").email_verified


@pytest.mark.django_db(transaction=True)  # mail is sent on commit
def test_email_verification_page(anon_client, mailoutbox):
    register(anon_client, "ivy")
    path = re.search(r"(/accounts/verify-email/\S+/)", mailoutbox[0].body).group(1)
    assert b"Email confirmed" in Client().get(path).content
    assert Client().get("/accounts/verify-email/bad/").status_code == 400


def test_account_deletion_removes_rooms_and_messages(user):
    room = RoomFactory(owner=user)
    MessageFactory(room=room)
    client = client_for(user)
    wrong = client.post("/api/v1/auth/account/delete", {"password": "nope"}, format="json")
    assert wrong.status_code == 403
    assert client.post("/api/v1/auth/account/delete", {"password": PASSWORD}, format="json").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Room.objects.filter(pk=room.pk).exists()
    assert not Message.objects.filter(room_id=room.pk).exists()


def test_founder_deleting_account_hands_team_to_next_member(roles, team):
    founder = roles["founder"]
    assert client_for(founder).post(
        "/api/v1/auth/account/delete", {"password": PASSWORD}, format="json"
    ).status_code == 204
    assert Membership.objects.filter(team=team, role=Role.FOUNDER).get().user == roles["team_admin"]


def test_waitlist_mode(anon_client, settings):
    register(anon_client, "root")  # the first user can always sign up
    settings.SIGNUP_MODE = "waitlist"
    closed = register(APIClient(), "late")
    assert closed.status_code == 403 and closed.json()["error"]["code"] == "signup_closed"
    joined = anon_client.post("/api/v1/auth/waitlist", {"email": "Late@Example.com", "note": "please"}, format="json")
    assert joined.status_code == 201
    assert anon_client.post("/api/v1/auth/waitlist", {"email": "late@example.com"}, format="json").status_code == 201
    assert WaitlistEntry.objects.count() == 1
    settings.SIGNUP_MODE = "open"
    assert anon_client.post("/api/v1/auth/waitlist", {"email": "x@example.com"}).json()["error"]["code"] == (
        "waitlist_closed"
    )


@pytest.mark.django_db(transaction=True)  # mail is sent on commit
def test_invite_mode_requires_invite_and_invite_joins_team(anon_client, settings, mailoutbox):
    founder_resp = register(anon_client, "boss")
    founder = User.objects.get(username="boss")
    team_id = founder_resp.json()["user"]["teams"][0]["id"]
    settings.SIGNUP_MODE = "invite"
    assert register(APIClient(), "newbie").status_code == 403
    invited = client_for(founder).post(
        f"/api/v1/teams/{team_id}/members", {"identifier": "newbie@example.com", "role": "admin"}, format="json"
    )
    assert invited.status_code == 202 and invited.json()["status"] == "invited"
    raw = re.search(r"invite=(\S+)", mailoutbox[-1].body).group(1)
    wrong_email = register(APIClient(), "sneaky", invite_token=raw)
    assert wrong_email.status_code == 400 and wrong_email.json()["error"]["code"] == "invalid_invite"
    ok = register(APIClient(), "newbie", invite_token=raw)
    assert ok.status_code == 201
    assert ok.json()["user"]["teams"] == [{"id": team_id, "name": "Default", "role": "admin"}]
    assert ok.json()["user"]["email_verified"] is True
    reused = register(APIClient(), "newbie2", email="newbie@example.com", invite_token=raw)
    assert reused.status_code == 400


def test_token_of_a_deactivated_user_is_refused_and_use_is_recorded(user):
    token, raw = create_api_token(user=user, name="cli")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/auth/me").json()["username"] == user.username
    token.refresh_from_db()
    assert token.last_used_at is not None
    User.objects.filter(pk=user.pk).update(is_active=False)
    refused = client.get("/api/v1/auth/me")
    assert refused.status_code == 401
