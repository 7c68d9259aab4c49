"""The settings page's API: profile, password change and preferences, and the defaults reaching the backend."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services import create_api_token, update_preferences
from chat import services as chat_services
from chat.models import Room
from chat.streaming import jobs
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.chat.wsutil import connect, frames_until, is_end
from tests.conftest import client_for
from tests.factories import PASSWORD, RoomFactory, UserFactory

NEW_PASSWORD = "a-brand-new-passphrase-7"


@pytest.mark.django_db
def test_preferences_start_empty_and_update_partially(api, user):
    got = api.get("/api/v1/auth/preferences")
    assert got.status_code == 200
    assert got.json() == {"default_model": "", "system_prompt": "", "theme": "system", "generation": {
        "temperature": None, "top_p": None, "top_k": None, "repeat_penalty": None, "max_tokens": None}}
    changed = api.patch("/api/v1/auth/preferences", {"theme": "dark", "generation": {"temperature": 0.2, "top_k": 7}},
                        format="json")
    assert changed.status_code == 200 and changed.json()["theme"] == "dark"
    again = api.patch("/api/v1/auth/preferences", {"generation": {"temperature": None}, "default_model": "m:1"},
                      format="json").json()
    assert again["generation"]["temperature"] is None and again["generation"]["top_k"] == 7
    assert again["theme"] == "dark" and again["default_model"] == "m:1"
    user.refresh_from_db()
    assert user.preferences["generation"]["top_k"] == 7


@pytest.mark.django_db
@pytest.mark.parametrize("body, field", [
    ({"theme": "purple"}, "theme"),
    ({"generation": {"temperature": 2.5}}, "generation"),
    ({"generation": {"top_k": "40"}}, "generation"),
    ({"generation": {"top_p": True}}, "generation"),
    ({"generation": {"seed": 1}}, "generation"),
    ({"default_model": 5}, "default_model"),
    ({"system_prompt": "x" * 20_001}, "system_prompt"),
    ({"colour": "red"}, "colour"),
])
def test_preferences_validation_is_a_400_at_the_field(api, body, field):
    response = api.patch("/api/v1/auth/preferences", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


@pytest.mark.django_db
def test_preferences_are_per_user_and_need_sign_in(api, anon_client):
    api.patch("/api/v1/auth/preferences", {"system_prompt": "Mine."}, format="json")
    other = client_for(UserFactory())
    assert other.get("/api/v1/auth/preferences").json()["system_prompt"] == ""
    assert anon_client.get("/api/v1/auth/preferences").status_code == 401
    assert anon_client.patch("/api/v1/auth/preferences", {}, format="json").status_code == 401


@pytest.mark.django_db
def test_profile_update_checks_email_at_the_field(api, user):
    UserFactory(email="taken@example.com")
    taken = api.patch("/api/v1/auth/me", {"email": "TAKEN@example.com"}, format="json")
    assert taken.status_code == 400 and "email" in taken.json()["error"]["details"]
    bad = api.patch("/api/v1/auth/me", {"email": "not-an-address"}, format="json")
    assert bad.status_code == 400 and "email" in bad.json()["error"]["details"]
    assert api.patch("/api/v1/auth/me", {"username": "renamed"}, format="json").status_code == 400
    ok = api.patch("/api/v1/auth/me", {"email": "new@example.com", "first_name": " Ada ", "last_name": "L"},
                   format="json")
    assert ok.status_code == 200
    assert ok.json()["email"] == "new@example.com" and ok.json()["first_name"] == "Ada"
    user.refresh_from_db()
    assert user.email == "new@example.com" and user.email_verified is False and user.username == "owner"


@pytest.mark.django_db
def test_password_change_keeps_this_session_and_ends_the_others():
    user = UserFactory(username="pw")
    here, elsewhere = Client(), Client()
    for browser in (here, elsewhere):
        assert browser.post("/signin/", {"username": "pw", "password": PASSWORD}).status_code == 302
    wrong = here.post("/api/v1/auth/password/change", {"current_password": "nope", "new_password": NEW_PASSWORD},
                      content_type="application/json")
    assert wrong.status_code == 400 and "current_password" in wrong.json()["error"]["details"]
    weak = here.post("/api/v1/auth/password/change", {"current_password": PASSWORD, "new_password": "123"},
                     content_type="application/json")
    assert weak.status_code == 400 and "new_password" in weak.json()["error"]["details"]
    differ = here.post("/api/v1/auth/password/change", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                         "new_password_confirm": NEW_PASSWORD + "x"},
                       content_type="application/json")
    assert differ.status_code == 400 and "new_password_confirm" in differ.json()["error"]["details"]
    _token, raw = create_api_token(user=user, name="script")
    ok = here.post("/api/v1/auth/password/change", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                     "new_password_confirm": NEW_PASSWORD},
                   content_type="application/json")
    assert ok.status_code == 200 and ok.json()["revoked_tokens"] == 0
    assert here.get("/api/v1/auth/me").status_code == 200  # this session stays signed in
    assert elsewhere.get("/api/v1/auth/me").status_code in (401, 403)  # the other one ended
    assert Client().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200  # tokens stay
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.django_db
def test_password_change_can_revoke_every_other_token():
    user = UserFactory()
    create_api_token(user=user, name="old one")
    caller = client_for(user)
    response = caller.post("/api/v1/auth/password/change", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "revoke_tokens": True}, format="json")
    assert response.status_code == 200 and response.json()["revoked_tokens"] == 1
    assert ApiToken.objects.filter(user=user).count() == 1  # the caller's own token is kept
    assert caller.get("/api/v1/auth/me").status_code == 200


@pytest.mark.django_db
def test_new_rooms_take_the_default_model(user):
    blank = chat_services.create_room(owner=user)
    assert blank.model == ""
    update_preferences(user=user, changes={"default_model": "fake-llm:latest"})
    fresh, created = chat_services.get_or_create_fresh_room(owner=user)
    assert not created and fresh.pk == blank.pk and fresh.model == "fake-llm:latest"  # the blank chat took it
    assert chat_services.create_room(owner=user).model == "fake-llm:latest"
    assert chat_services.create_room(owner=user, model="other:1").model == "other:1"


# --- the defaults reaching the backend -------------------------------------------------------------------


@pytest.fixture
async def drain_jobs():
    yield
    for job in list(jobs.JOBS.values()):
        job.request_stop()
        if job.task:
            await asyncio.wait_for(job.task, 5)


def _user_with_defaults() -> tuple[User, Room]:
    user = UserFactory()
    update_preferences(user=user, changes={
        "system_prompt": "User default prompt.", "default_model": "fake-llm:latest",
        "generation": {"temperature": 0.25, "top_k": 9, "max_tokens": 33},
    })
    return user, RoomFactory(owner=user, model="")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_replies_use_user_defaults_under_room_and_request(fake_ollama, drain_jobs):
    user, room = await sync_to_async(_user_with_defaults)()
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "One"})
    await frames_until(ws, is_end)
    sent = fake_ollama.stats.last_request
    assert sent["model"] == "fake-llm:latest"
    assert sent["messages"][0] == {"role": "system", "content": "User default prompt."}
    assert sent["options"]["temperature"] == 0.25 and sent["options"]["top_k"] == 9
    assert sent["options"]["num_predict"] == 33 and sent["options"]["top_p"] == 0.9  # server default fills in

    # The room's own settings come next, over the user's; the socket was opened before they changed.
    await sync_to_async(Room.objects.filter(pk=room.pk).update)(
        system_prompt="Room prompt.", metadata={"generation": {"temperature": 0.5, "top_k": "bad"}})
    await ws.send_json_to({"type": "send_message", "content": "Two"})
    await frames_until(ws, is_end)
    sent = fake_ollama.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "Room prompt."}
    assert sent["options"]["temperature"] == 0.5 and sent["options"]["top_k"] == 9  # a bad stored value is skipped

    # Options in the request win over both.
    await ws.send_json_to({"type": "send_message", "content": "Three",
                           "options": {"temperature": 1.5, "system_prompt": "Asked for."}})
    await frames_until(ws, is_end)
    sent = fake_ollama.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "Asked for."}
    assert sent["options"]["temperature"] == 1.5 and sent["options"]["num_predict"] == 33
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sse_replies_use_user_defaults(fake_ollama):
    user, room = await sync_to_async(_user_with_defaults)()
    _t, token = await sync_to_async(create_api_token)(user=user, name="sse")
    response = await BearerClient(token).post(f"/api/v1/chat/sessions/{room.pk}/messages",
                                              {"content": "hi", "top_k": 3}, content_type="application/json")
    events = parse_sse(await read(response))
    assert events[-1][0] == "done", events[-1]
    sent = fake_ollama.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "User default prompt."}
    assert sent["options"]["temperature"] == 0.25 and sent["options"]["top_k"] == 3
