"""Staff edits in the Django admin are in the audit trail with before and after; secrets never are."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership, Role, User
from chat.models import Room
from ops.models import AuditEvent
from tests.factories import PASSWORD, RoomFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser():
    boss = UserFactory(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    assert browser.login(username="root", password=PASSWORD)
    return boss, browser


def user_form(user: User, **changes) -> dict:
    form = {"username": user.username, "email": user.email, "first_name": "", "last_name": "",
            "is_active": "on" if user.is_active else "", "is_staff": "", "is_superuser": "",
            "email_verified": "", "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "10:00:00"}
    form.update(changes)
    return {key: value for key, value in form.items() if value != ""}


def test_a_user_changed_in_the_admin_is_audited_with_before_and_after(admin_browser):
    boss, browser = admin_browser
    target = UserFactory(username="target")
    response = browser.post(f"/admin/accounts/user/{target.pk}/change/", user_form(target, is_staff="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.accounts.user.change")
    assert event.actor == boss and event.target.startswith(f"accounts.user:{target.pk} ")
    assert event.details["before"]["is_staff"] is False and event.details["after"]["is_staff"] is True


def test_a_password_set_in_the_admin_is_audited_without_the_password(admin_browser):
    _boss, browser = admin_browser
    target = UserFactory(username="target")
    secret = "Another-long-passphrase-77"
    response = browser.post(f"/admin/accounts/user/{target.pk}/password/",
                            {"password1": secret, "password2": secret, "usable_password": "true"})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.check_password(secret)
    event = AuditEvent.objects.get(action="admin.accounts.user.password_change")
    assert secret not in str(event.details) and event.target.startswith("accounts.user:")


def test_deletes_and_inline_rows_are_audited(admin_browser):
    _boss, browser = admin_browser
    room = RoomFactory(name="doomed")
    response = browser.post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Room.objects.filter(pk=room.pk).exists()
    assert AuditEvent.objects.get(action="admin.chat.room.delete").target.endswith("doomed")

    team = TeamFactory(name="Blue")
    member = UserFactory(username="newbie")
    prefix = "memberships"
    response = browser.post(f"/admin/accounts/team/{team.pk}/change/", {
        "name": "Blue", "created_at_0": "2026-01-01", "created_at_1": "10:00:00",
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-user": str(member.pk), f"{prefix}-0-role": Role.MEMBER, f"{prefix}-0-team": str(team.pk),
        f"{prefix}-0-joined_at_0": "2026-01-02", f"{prefix}-0-joined_at_1": "10:00:00",
    })
    assert response.status_code == 302
    assert Membership.objects.filter(team=team, user=member).exists()
    added = AuditEvent.objects.get(action="admin.accounts.membership.add")
    assert added.details["parent"].startswith(f"accounts.team:{team.pk}")


def test_bulk_delete_action_audits_each_row(admin_browser):
    _boss, browser = admin_browser
    rooms = [RoomFactory(name=f"bulk {i}") for i in range(3)]
    response = browser.post("/admin/chat/room/", {"action": "delete_selected", "post": "yes",
                                                  "_selected_action": [str(r.pk) for r in rooms]})
    assert response.status_code == 302 and not Room.objects.exists()
    assert AuditEvent.objects.filter(action="admin.chat.room.delete").count() == 3
