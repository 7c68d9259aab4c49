"""The audit trail: staff list and filter it through the API and see it in the Django admin, and nobody edits it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ops.models import AuditEvent
from ops.services import record_audit_event
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


@pytest.fixture
def trail(staff):
    old = record_audit_event(actor=staff, action="user.update", target="user 7", details={"is_active": [True, False]})
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    record_audit_event(actor=staff, action="user.update", target="user 8")
    record_audit_event(actor=None, action="panic.trigger", target="instance")
    return staff


def test_staff_list_the_trail_newest_first_with_filters(trail):
    api = client_for(trail)
    everything = api.get("/api/v1/admin/audit").json()
    assert everything["count"] == 3
    assert [e["action"] for e in everything["results"]] == ["panic.trigger", "user.update", "user.update"]
    assert api.get("/api/v1/admin/audit", {"action": "user."}).json()["count"] == 2
    assert api.get("/api/v1/admin/audit", {"actor": "BOSS"}).json()["count"] == 2
    assert api.get("/api/v1/admin/audit", {"target": "user 7"}).json()["results"][0]["details"] == {
        "is_active": [True, False]}
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert api.get("/api/v1/admin/audit", {"since": since}).json()["count"] == 2
    assert api.get("/api/v1/admin/audit", {"until": since}).json()["count"] == 1


def test_a_bad_filter_is_a_400(trail):
    response = client_for(trail).get("/api/v1/admin/audit", {"since": "yesterday"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_only_staff_may_read_it(trail, anon_client):
    assert client_for(UserFactory()).get("/api/v1/admin/audit").status_code == 403
    assert anon_client.get("/api/v1/admin/audit").status_code == 401


def test_the_django_admin_shows_it_but_allows_no_edits(trail):
    browser = Client()
    assert browser.login(username="boss", password=PASSWORD)
    event = AuditEvent.objects.first()
    assert browser.get("/admin/ops/auditevent/").status_code == 200
    assert browser.get(f"/admin/ops/auditevent/{event.pk}/change/").status_code == 200  # viewable
    assert browser.get("/admin/ops/auditevent/add/").status_code == 403
    assert browser.post(f"/admin/ops/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert browser.post(f"/admin/ops/auditevent/{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert AuditEvent.objects.filter(action="forged").count() == 0 and AuditEvent.objects.count() == 3
