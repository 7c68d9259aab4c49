"""Scoped reads: founders read their team's rooms, nobody else reads anyone else's."""

from __future__ import annotations

import pytest
from rest_framework import exceptions

from chat import selectors, services
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db


def test_readable_rooms(roles, team):
    room = RoomFactory(owner=roles["owner"], team=team)
    assert selectors.get_room_for_read(user=roles["owner"], room_id=room.pk) == room
    assert selectors.get_room_for_read(user=roles["founder"], room_id=room.pk) == room
    for name in ("other_user", "team_admin", "other_team"):
        with pytest.raises(exceptions.NotFound):
            selectors.get_room_for_read(user=roles[name], room_id=room.pk)


def test_founder_reads_but_cannot_write(roles, team):
    room = RoomFactory(owner=roles["owner"], team=team)
    with pytest.raises(exceptions.PermissionDenied):
        selectors.get_room_for_write(user=roles["founder"], room_id=room.pk)


def test_deleted_rooms_and_bad_ids_are_404(user):
    room = services.create_room(owner=user)
    services.soft_delete_room(room=room)
    with pytest.raises(exceptions.NotFound):
        selectors.get_room_for_read(user=user, room_id=room.pk)
    with pytest.raises(exceptions.NotFound):
        selectors.get_room_for_read(user=user, room_id="not-a-uuid")


def test_branch_skips_deleted_but_keeps_chain(user):
    room = services.create_room(owner=user)
    first = services.append_message(room=room, role="user", content="a")
    middle = services.append_message(room=room, role="assistant", content="b")
    services.append_message(room=room, role="user", content="c")
    middle.is_deleted = True
    middle.save()
    assert [m.pk for m in selectors.active_branch(room).messages][0] == first.pk
    assert [m.content for m in selectors.active_branch(room).messages] == ["a", "c"]
