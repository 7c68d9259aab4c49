"""Bad input gets a 400 in the error envelope, never a 500: ids past 64 bits, unvalidated query parameters,
text no database can store (NUL, lone surrogates), and values of the wrong JSON type."""

from __future__ import annotations

import json

import pytest

from chat import services
from chat.models import Room
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HUGE = 99999999999999999999999


def assert_400(response, field: str | None = None, code: str = "validation_error"):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    if field is not None:
        assert field in error["details"], error
    return error


def post_json(client, url: str, text: str, method: str = "POST"):
    """Send raw JSON text, so escapes such as \\ud800 and \\u0000 reach the parser as written."""
    return client.generic(method, url, text, content_type="application/json")


# --- integers out of the 64-bit range ---------------------------------------------------------------


def test_rooms_list_team_out_of_range(api):
    assert_400(api.get("/api/v1/rooms/", {"team": str(HUGE)}), "team")
    assert_400(api.get("/api/v1/rooms/", {"team": "abc"}), "team")


def test_rooms_list_team_in_range_still_scoped(api, roles, team):
    assert api.get("/api/v1/rooms/", {"team": "123456"}).status_code == 404
    founder = client_for(roles["founder"])
    assert founder.get("/api/v1/rooms/", {"team": str(team.pk)}).status_code == 200


def test_room_create_team_out_of_range(api):
    before = Room.objects.count()
    assert_400(post_json(api, "/api/v1/rooms/", json.dumps({"team": HUGE})), "team")
    assert Room.objects.count() == before


def test_cleanup_empty_minutes_out_of_range(api, user):
    for value in ("786494979030", str(HUGE), "-1", "x"):
        assert_400(api.post(f"/api/v1/rooms/cleanup-empty?older_than_minutes={value}"), "older_than_minutes")
    services.create_room(owner=user)
    services.create_room(owner=user)
    response = api.post("/api/v1/rooms/cleanup-empty?older_than_minutes=0")
    assert response.status_code == 200 and response.json() == {"count": 1}


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_team_member_id_out_of_range(roles, team, method):
    admin = client_for(roles["team_admin"])
    url = f"/api/v1/teams/{team.pk}/members/{HUGE}"
    response = getattr(admin, method)(url, {"role": "member"}, format="json")
    assert_400(response, "user_id")
    assert_400(getattr(admin, method)(f"/api/v1/teams/{HUGE}/members/1", {"role": "member"}, format="json"),
               "team_id")


def test_other_path_ids_out_of_range(api, user):
    assert_400(api.delete(f"/api/v1/auth/tokens/{HUGE}"), "token_id")
    assert_400(api.get(f"/api/v1/teams/{HUGE}/members"), "team_id")
    staff = UserFactory(is_staff=True)
    assert_400(client_for(staff).patch(f"/api/v1/admin/users/{HUGE}", {}, format="json"), "user_id")


def test_member_ids_in_range_still_404(roles, team):
    admin = client_for(roles["team_admin"])
    assert admin.delete(f"/api/v1/teams/{team.pk}/members/{2**63 - 1}").status_code == 404


# --- text no database can store -------------------------------------------------------------------


def _export(api, user) -> dict:
    room = services.create_room(owner=user, name="Trip", metadata={"k": "v"})
    services.append_message(room=room, role="user", content="hello", author=user)
    return api.get(f"/api/v1/rooms/{room.pk}/export").json()


@pytest.mark.parametrize("bad", ["\\ud800", "\\u0000", "a\\udfffb"])
@pytest.mark.parametrize(
    "place",
    ["room.name", "room.model", "room.metadata.value", "room.metadata.key", "message.content", "message.model",
     "message.status", "top.extra", "room.tags"],
)
def test_import_refuses_unstorable_text_anywhere(api, user, bad, place):
    document = _export(api, user)
    marker = "\u2603MARK\u2603"
    if place == "room.name":
        document["room"]["name"] = marker
    elif place == "room.model":
        document["room"]["model"] = marker
    elif place == "room.metadata.value":
        document["room"]["metadata"] = {"k": [1, {"deep": marker}]}
    elif place == "room.metadata.key":
        document["room"]["metadata"] = {marker: 1}
    elif place == "message.content":
        document["messages"][0]["content"] = marker
    elif place == "message.model":
        document["messages"][0]["model"] = marker
    elif place == "message.status":
        document["messages"][0]["status"] = marker
    elif place == "top.extra":
        document["note"] = marker
    elif place == "room.tags":
        document["room"]["tags"] = [marker]
    text = json.dumps(document).replace("\\u2603MARK\\u2603", bad)
    before = Room.objects.count()
    error = assert_400(post_json(api, "/api/v1/rooms/import", text))
    assert "NUL" in error["message"]
    assert Room.objects.count() == before


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["messages"][0].update(prompt_tokens=HUGE), None),
        (lambda d: d["messages"][0].update(time_to_first_token_ms=10**400), None),
        (lambda d: d["messages"][0].update(created_at="2020-02-30T10:00:00"), "messages"),
        (lambda d: d["messages"][0].update(created_at="0001-01-01T00:00:00+05:00"), "messages"),
        (lambda d: d["messages"][0].update(model="m" * 201), "messages"),
        (lambda d: d["messages"][0].update(model=5), "messages"),
        (lambda d: d["room"].update(model="m" * 201), "room"),
        (lambda d: d["room"].update(name=5), "room"),
        (lambda d: d["room"].update(pinned="maybe"), "room"),
        (lambda d: d["room"].update(pinned=5), "room"),
        (lambda d: d.update(version=HUGE), "version"),
    ],
)
def test_import_numbers_times_and_lengths_never_500(api, user, mutate, field):
    document = _export(api, user)
    mutate(document)
    response = api.post("/api/v1/rooms/import", document, format="json")
    if field is None:  # statistics that cannot be stored are dropped, as other malformed ones are
        assert response.status_code == 201, response.content
    else:
        assert_400(response, field)


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
def test_room_metadata_refuses_unstorable_text(api, user, bad):
    room = services.create_room(owner=user, name="Keep", metadata={"keep": True})
    for body in (f'{{"metadata": {{"k": "a{bad}b"}}}}', f'{{"metadata": {{"k{bad}": 1}}}}',
                 f'{{"metadata": {{"list": [[["{bad}"]]]}}}}'):
        assert_400(post_json(api, f"/api/v1/rooms/{room.pk}", body, method="PATCH"), "metadata")
        assert_400(post_json(api, "/api/v1/rooms/", body), "metadata")
    room.refresh_from_db()
    assert room.metadata == {"keep": True}
    assert Room.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
def test_room_text_fields_refuse_unstorable_text(api, bad):
    for field in ("name", "model", "agent", "system_prompt"):
        assert_400(post_json(api, "/api/v1/rooms/", f'{{"{field}": "a{bad}b"}}'), field)
    assert_400(post_json(api, "/api/v1/rooms/", f'{{"tags": ["a{bad}"]}}'), "tags")


def test_query_parameters_refuse_nul(api):
    for param in ("q", "tag", "sort", "project", "archived"):
        assert_400(api.get(f"/api/v1/rooms/?{param}=a%00b"), param)


def test_admin_user_search_refuses_nul(db):
    staff = client_for(UserFactory(is_staff=True))
    assert_400(staff.get("/api/v1/admin/users?q=a%00b"), "q")
    assert staff.get("/api/v1/admin/users?q=user").status_code == 200


# --- strict JSON types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 0}, "name"),
        ({"name": 1.5}, "name"),
        ({"name": True}, "name"),
        ({"model": 7}, "model"),
        ({"agent": False}, "agent"),
        ({"system_prompt": 3}, "system_prompt"),
        ({"tags": [1, 2]}, "tags"),
        ({"pinned": "maybe"}, "pinned"),
        ({"pinned": 5}, "pinned"),
        ({"pinned": 1}, "pinned"),
        ({"pinned": "true"}, "pinned"),
        ({"archived": "yes"}, "archived"),
        ({"archived": 0}, "archived"),
    ],
)
def test_room_create_and_update_are_strict(api, user, body, field):
    before = Room.objects.count()
    assert_400(api.post("/api/v1/rooms/", body, format="json"), field)
    assert Room.objects.count() == before
    room = services.create_room(owner=user, name="Keep")
    assert_400(api.patch(f"/api/v1/rooms/{room.pk}", body, format="json"), field)
    room.refresh_from_db()
    assert room.name == "Keep" and room.pinned is False and room.archived is False


def test_strict_fields_still_take_proper_values(api):
    created = api.post("/api/v1/rooms/", {"name": "0", "pinned": True, "archived": False}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "0" and created.json()["pinned"] is True


def test_other_writes_are_strict(api, user, roles, team):
    assert_400(api.post("/api/v1/projects/", {"name": 5}, format="json"), "name")
    assert_400(api.post("/api/v1/chat/sessions", {"title": 5}, format="json"), "title")
    assert_400(api.post("/api/v1/rooms/fresh", {"model": 5}, format="json"), "model")
    assert_400(api.post("/api/v1/auth/tokens", {"name": 12}, format="json"), "name")
    assert_400(api.post("/api/v1/teams/", {"name": 12}, format="json"), "name")
    admin = client_for(roles["team_admin"])
    assert_400(admin.post(f"/api/v1/teams/{team.pk}/members", {"identifier": 5}, format="json"), "identifier")
    staff = client_for(UserFactory(is_staff=True))
    target = UserFactory()
    assert_400(staff.patch(f"/api/v1/admin/users/{target.pk}", {"is_active": "false"}, format="json"), "is_active")
    target.refresh_from_db()
    assert target.is_active


def test_accounts_endpoints_are_strict(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register", {"username": 12345, "email": "a@example.com", "password": "x" * 20}, format="json"
    )
    assert_400(response, "username")
    assert_400(anon_client.post("/api/v1/auth/login", {"username": 1, "password": 2}, format="json"), "username")



def test_json_nested_too_deeply_is_a_parse_error(api):
    deep = "[" * 100_000 + "]" * 100_000
    response = post_json(api, "/api/v1/rooms/", '{"name": "x", "metadata": {"a": ' + deep + "}}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    assert not Room.objects.exists()
