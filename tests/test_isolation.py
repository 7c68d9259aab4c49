"""Isolation matrix: every object endpoint for anonymous, owner, other user, other team, team admin, founder.

Owners succeed; the founder of the room's team may read (never write); everyone else gets 404 (401 when
anonymous), so nobody can even learn that another user's object exists.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.services import create_api_token
from chat import services
from chat.models import Room
from tests.conftest import client_for
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "owner", "other_user", "other_team", "team_admin", "founder"]

# (operation id, method, path template, body, owner's status, founder's status)
ROOM_ENDPOINTS = [
    ("rooms_get", "get", "/api/v1/rooms/{room}", None, 200, 200),
    ("rooms_history", "get", "/api/v1/rooms/{room}/history", None, 200, 200),
    ("rooms_export", "get", "/api/v1/rooms/{room}/export", None, 200, 200),
    ("chat_sessions_get", "get", "/api/v1/chat/sessions/{room}", None, 200, 200),
    ("rooms_update", "patch", "/api/v1/rooms/{room}", {"name": "renamed"}, 200, 403),
    ("rooms_delete", "delete", "/api/v1/rooms/{room}", None, 204, 403),
    ("rooms_messages_clear", "post", "/api/v1/rooms/{room}/messages/clear", None, 200, 403),
    ("rooms_title_generate", "post", "/api/v1/rooms/{room}/title", None, 200, 403),
    ("chat_sessions_delete", "delete", "/api/v1/chat/sessions/{room}", None, 204, 403),
    ("session_create", "post", "/api/v1/session/", {"room_id": "{room}"}, 201, 403),
    ("messages_rate", "post", "/api/v1/rooms/{room}/messages/{reply}/rating", {"rating": 1}, 200, 403),
    ("rooms_branch_switch", "post", "/api/v1/rooms/{room}/branch", {"message_id": "{reply}"}, 200, 403),
]

SESSION_ENDPOINTS = [
    ("session_get", "get", "/api/v1/session/{session}", None, 200),
    ("session_reset", "post", "/api/v1/session/{session}/reset", {}, 200),
    ("session_stop", "post", "/api/v1/session/{session}/stop", None, 200),
    ("session_history_clear", "post", "/api/v1/session/{session}/clear", None, 200),
    ("session_delete", "delete", "/api/v1/session/{session}", None, 204),
]

OWNED_ENDPOINTS = [
    ("projects_update", "patch", "/api/v1/projects/{project}", {"name": "x"}, 200),
    ("projects_delete", "delete", "/api/v1/projects/{project}", None, 204),
    ("auth_token_revoke", "delete", "/api/v1/auth/tokens/{token}", None, 204),
]


def _client(actor: str, roles: dict) -> APIClient:
    return APIClient() if actor == "anonymous" else client_for(roles[actor])


def _call(client: APIClient, method: str, path: str, body, ids: dict):
    path = path.format(**ids)
    if isinstance(body, dict):
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


@pytest.fixture
def owned(roles, team):
    owner = roles["owner"]
    room = services.create_room(owner=owner, name="Secret plans")
    services.append_message(room=room, role="user", content="the launch code is 1234", author=owner)
    reply = services.append_message(room=room, role="assistant", content="noted")
    session = services.create_session(user=owner, room=room)
    token, _ = create_api_token(user=owner, name="cli")
    project = ProjectFactory(owner=owner)
    return {"room": room.pk, "session": session.pk, "project": project.pk, "token": token.pk, "reply": reply.pk}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("op", "method", "path", "body", "owner_status", "founder_status"), ROOM_ENDPOINTS)
def test_room_endpoints(roles, owned, actor, op, method, path, body, owner_status, founder_status):
    expected = {"anonymous": 401, "owner": owner_status, "founder": founder_status}.get(actor, 404)
    response = _call(_client(actor, roles), method, path, body, owned)
    assert response.status_code == expected, (op, actor, response.content)
    if expected in (401, 403, 404):
        assert response.json()["error"]["code"]
        assert "launch code" not in response.content.decode()
        room = Room.objects.get(pk=owned["room"])
        assert room.name == "Secret plans" and not room.is_deleted and room.message_count == 2


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("op", "method", "path", "body", "owner_status"), SESSION_ENDPOINTS + OWNED_ENDPOINTS)
def test_personal_object_endpoints(roles, owned, actor, op, method, path, body, owner_status):
    expected = {"anonymous": 401, "owner": owner_status}.get(actor, 404)  # founder rights cover rooms only
    response = _call(_client(actor, roles), method, path, body, owned)
    assert response.status_code == expected, (op, actor, response.content)


@pytest.mark.parametrize("actor", ACTORS)
def test_collections_only_show_your_own(roles, owned, actor):
    client = _client(actor, roles)
    for path in ("/api/v1/rooms/", "/api/v1/chat/sessions", "/api/v1/projects/", "/api/v1/auth/tokens"):
        response = client.get(path)
        if actor == "anonymous":
            assert response.status_code == 401
            continue
        ids = {item["id"] for item in response.json()["results"]}
        mine = actor == "owner"
        for key in ("room", "project", "token"):
            assert (owned[key] in ids or str(owned[key]) in ids) == (mine and key in _collection_keys(path)), (
                path, actor, key,
            )


def _collection_keys(path: str) -> set[str]:
    if "projects" in path:
        return {"project"}
    if "tokens" in path:
        return {"token"}
    return {"room"}


@pytest.mark.parametrize("actor", ACTORS)
def test_founder_lists_team_rooms(roles, owned, team, actor):
    response = _client(actor, roles).get("/api/v1/rooms/", {"team": team.pk})
    expected = {"anonymous": 401, "founder": 200}.get(actor, 404)
    assert response.status_code == expected
    if expected == 200:
        assert str(owned["room"]) in {r["id"] for r in response.json()["results"]}


# (operation id, method, path, body, {actor: status}); the team is the cast's shared team.
TEAM_ENDPOINTS = [
    ("team_members_list", "get", "/api/v1/teams/{team}/members", None,
     {"owner": 200, "other_user": 200, "team_admin": 200, "founder": 200}),
    ("team_members_invite", "post", "/api/v1/teams/{team}/members", {"identifier": "invitee"},
     {"owner": 403, "other_user": 403, "team_admin": 201, "founder": 201}),
    ("team_member_update", "patch", "/api/v1/teams/{team}/members/{member}", {"role": "admin"},
     {"owner": 403, "other_user": 403, "team_admin": 200, "founder": 200}),  # no self-promotion
    ("team_member_remove", "delete", "/api/v1/teams/{team}/members/{member}", None,
     {"owner": 403, "other_user": 204, "team_admin": 204, "founder": 204}),  # members may leave
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("op", "method", "path", "body", "statuses"), TEAM_ENDPOINTS)
def test_team_endpoints(roles, team, actor, op, method, path, body, statuses):
    UserFactory(username="invitee")
    expected = statuses.get(actor, 401 if actor == "anonymous" else 404)
    ids = {"team": team.pk, "member": roles["other_user"].pk}  # the member being changed is "other_user"
    response = _call(_client(actor, roles), method, path, body, ids)
    assert response.status_code == expected, (op, actor, response.content)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("get", "/api/v1/admin/users", None), ("get", "/api/v1/admin/stats", None),
     ("patch", "/api/v1/admin/users/{member}", {"is_active": False})],
)
def test_admin_endpoints_need_staff(roles, actor, method, path, body):
    expected = 401 if actor == "anonymous" else 403
    response = _call(_client(actor, roles), method, path, body, {"member": roles["other_user"].pk})
    assert response.status_code == expected
