"""Teams and members with roles, and staff user administration with an audit trail."""

from __future__ import annotations

import pytest

from accounts.models import ApiToken, Membership, Role
from chat.models import Room
from ops.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MessageFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_and_list_teams(api):
    created = api.post("/api/v1/teams/", {"name": "Research"}, format="json")
    assert created.status_code == 201
    assert created.json()["role"] == "founder" and created.json()["member_count"] == 1
    names = [t["name"] for t in api.get("/api/v1/teams/").json()["results"]]
    assert names == ["Acme", "Research"]


def test_members_list_needs_membership(roles, team):
    listing = client_for(roles["other_user"]).get(f"/api/v1/teams/{team.pk}/members")
    assert listing.status_code == 200
    assert {m["username"] for m in listing.json()["results"]} == {"owner", "other", "teamadmin", "founder"}
    assert client_for(roles["other_team"]).get(f"/api/v1/teams/{team.pk}/members").status_code == 404


def test_admin_adds_existing_user_member_cannot(roles, team):
    newcomer = UserFactory(username="newcomer")
    denied = client_for(roles["other_user"]).post(
        f"/api/v1/teams/{team.pk}/members", {"identifier": "newcomer"}, format="json"
    )
    assert denied.status_code == 403
    added = client_for(roles["team_admin"]).post(
        f"/api/v1/teams/{team.pk}/members", {"identifier": "newcomer@example.com"}, format="json"
    )
    assert added.status_code == 201 and added.json()["member"]["role"] == "member"
    assert Membership.objects.filter(team=team, user=newcomer).exists()
    again = client_for(roles["team_admin"]).post(
        f"/api/v1/teams/{team.pk}/members", {"identifier": "newcomer"}, format="json"
    )
    assert again.status_code == 409
    missing = client_for(roles["team_admin"]).post(
        f"/api/v1/teams/{team.pk}/members", {"identifier": "nobody"}, format="json"
    )
    assert missing.status_code == 404


def test_admin_cannot_grant_founder(roles, team):
    response = client_for(roles["team_admin"]).patch(
        f"/api/v1/teams/{team.pk}/members/{roles['other_user'].pk}", {"role": "founder"}, format="json"
    )
    assert response.status_code == 403


def test_role_changes(roles, team):
    admin = client_for(roles["team_admin"])
    promoted = admin.patch(f"/api/v1/teams/{team.pk}/members/{roles['other_user'].pk}", {"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    bad = admin.patch(f"/api/v1/teams/{team.pk}/members/{roles['other_user'].pk}", {"role": "king"})
    assert bad.status_code == 400
    # The only founder cannot step down.
    founder = client_for(roles["founder"])
    last = founder.patch(f"/api/v1/teams/{team.pk}/members/{roles['founder'].pk}", {"role": "member"})
    assert last.status_code == 409 and last.json()["error"]["code"] == "last_founder"
    members = f"/api/v1/teams/{team.pk}/members"
    assert founder.patch(f"{members}/{roles['team_admin'].pk}", {"role": "founder"}).status_code == 200
    assert founder.patch(f"{members}/{roles['founder'].pk}", {"role": "member"}).status_code == 200


def test_remove_member_and_their_rooms_leave_the_team(roles, team):
    room = RoomFactory(owner=roles["other_user"], team=team)
    assert client_for(roles["other_user"]).delete(
        f"/api/v1/teams/{team.pk}/members/{roles['owner'].pk}"
    ).status_code == 403
    response = client_for(roles["team_admin"]).delete(f"/api/v1/teams/{team.pk}/members/{roles['other_user'].pk}")
    assert response.status_code == 204
    room.refresh_from_db()
    assert room.team is None
    # The founder no longer sees the former member's room.
    assert client_for(roles["founder"]).get(f"/api/v1/rooms/{room.pk}").status_code == 404


def test_member_can_leave(roles, team):
    assert client_for(roles["other_user"]).delete(
        f"/api/v1/teams/{team.pk}/members/{roles['other_user'].pk}"
    ).status_code == 204
    assert not Membership.objects.filter(team=team, user=roles["other_user"]).exists()


def test_admin_endpoints_are_staff_only(api):
    assert api.get("/api/v1/admin/users").status_code == 403
    assert api.get("/api/v1/admin/stats").status_code == 403


def test_admin_lists_searches_and_updates_users(db):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    target = UserFactory(username="target", email="target@corp.example")
    UserFactory(username="bystander")
    client = client_for(staff)
    found = client.get("/api/v1/admin/users", {"q": "corp.example"}).json()
    assert [u["username"] for u in found["results"]] == ["target"]
    client_for(target)  # give the target a live token
    deactivated = client.patch(f"/api/v1/admin/users/{target.pk}", {"is_active": False}, format="json")
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    assert not ApiToken.objects.filter(user=target).exists()
    assert client.get("/api/v1/admin/users", {"is_active": "false"}).json()["count"] == 1
    promoted = client.patch(f"/api/v1/admin/users/{target.pk}", {"is_active": True, "is_staff": True}, format="json")
    assert promoted.json()["is_staff"] is True and promoted.json()["is_active"] is True
    events = list(AuditEvent.objects.order_by("created_at").values_list("action", "details"))
    assert events == [
        ("user.update", {"before": {"is_active": True}, "after": {"is_active": False}}),
        ("user.update", {"before": {"is_active": False, "is_staff": False},
                         "after": {"is_active": True, "is_staff": True}}),
    ]
    assert client.patch("/api/v1/admin/users/999999", {"is_active": False}, format="json").status_code == 404
    assert client.patch(f"/api/v1/admin/users/{staff.pk}", {"is_active": False}, format="json").status_code == 409


def test_admin_stats(db):
    staff = UserFactory(is_staff=True)
    room = RoomFactory(owner=staff)
    MessageFactory(room=room, author=staff)
    MessageFactory(room=room, role="assistant", completion_tokens=12, prompt_tokens=30)
    stats = client_for(staff).get("/api/v1/admin/stats").json()
    assert stats["users"]["total"] == 1
    assert stats["rooms"]["total"] == Room.objects.count() == 1
    assert stats["messages"]["total"] == 2
    assert stats["messages"]["by_role"] == {"user": 1, "assistant": 1}
    assert stats["tokens"] == {"prompt": 30, "completion": 12}
    assert stats["top_users_last_7_days"] == [{"username": staff.username, "messages": 1}]


def test_roles_enum(roles):
    assert {m.role for m in Membership.objects.all()} == {Role.MEMBER, Role.ADMIN, Role.FOUNDER}
