"""Room, message-tree and session services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import exceptions

from chat import services
from chat.models import ChatSession, Message, Room, Stream
from chat.selectors import active_branch
from chatproject.errors import Conflict
from tests.factories import ProjectFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_room_defaults_to_primary_team(user, team):
    room = services.create_room(owner=user, name="  ", tags=["Work", "work ", "ideas"])
    assert room.name == "New Chat" and room.team == team
    assert [t.name for t in room.tag_rows.all()] == ["ideas", "work"]


def test_room_limit_counts_active_rooms_only(user, settings):
    settings.ROOMS_PER_USER = 2
    first = services.create_room(owner=user)
    services.create_room(owner=user)
    with pytest.raises(Conflict):
        services.create_room(owner=user)
    services.update_room(room=first, changes={"archived": True})
    services.create_room(owner=user)  # archiving frees a slot
    with pytest.raises(Conflict):
        services.update_room(room=first, changes={"archived": False})


def test_name_and_metadata_limits(user, settings):
    with pytest.raises(exceptions.ValidationError):
        services.create_room(owner=user, name="x" * 101)
    with pytest.raises(exceptions.ValidationError):
        services.create_room(owner=user, metadata={"blob": "x" * 10_300})
    with pytest.raises(exceptions.ValidationError):
        services.create_room(owner=user, metadata=["not", "a", "dict"])
    settings.ROOM_NAME_MAX_CHARS = 5
    with pytest.raises(exceptions.ValidationError):
        services.create_room(owner=user, name="Too long")


def test_message_length_limit(user, settings):
    room = services.create_room(owner=user)
    settings.MESSAGE_MAX_CHARS = 10
    with pytest.raises(exceptions.ValidationError):
        services.append_message(room=room, role="user", content="x" * 11)
    assert not Message.objects.filter(room=room).exists()


def test_append_builds_a_tree_and_tracks_the_active_branch(user):
    room = services.create_room(owner=user)
    question = services.append_message(room=room, role="user", content="What is 2+2?", author=user)
    first = services.append_message(room=room, role="assistant", content="5")
    second = services.append_message(room=room, role="assistant", content="4", parent=question)
    branch = active_branch(room)
    assert [m.content for m in branch.messages] == ["What is 2+2?", "4"]
    assert branch.siblings[second.pk] == [first.pk, second.pk]
    room.refresh_from_db()
    assert room.message_count == 3 and room.last_message_preview == "4"


def test_clear_and_soft_delete(user):
    room = services.create_room(owner=user)
    services.append_message(room=room, role="user", content="hi")
    assert services.clear_room_messages(room=room) == 1
    room.refresh_from_db()
    assert room.message_count == 0 and room.active_leaf is None
    services.soft_delete_room(room=room)
    room.refresh_from_db()
    assert room.is_deleted and room.deleted_at is not None


def test_soft_delete_flags_running_streams(user):
    room = services.create_room(owner=user)
    reply = services.append_message(room=room, role="assistant", content="partial", status="streaming")
    stream = Stream.objects.create(room=room, message=reply, user=user)
    assert services.request_stop(room=room) == 1
    stream.refresh_from_db()
    assert stream.cancel_requested


def test_fresh_room_reuses_empty_room(user):
    room, created = services.get_or_create_fresh_room(owner=user)
    assert created
    again, created_again = services.get_or_create_fresh_room(owner=user)
    assert again.pk == room.pk and not created_again
    services.append_message(room=room, role="user", content="now it has a message")
    third, created_third = services.get_or_create_fresh_room(owner=user)
    assert created_third and third.pk != room.pk


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("how do I reverse a list in python? I tried everything", "How do I reverse a list in python"),
        ("**Explain** `asyncio` event loops in detail please, with examples of tasks and futures",
         "Explain asyncio event loops in detail please…"),
        ("   ", "New Chat"),
    ],
)
def test_title_from_text(text, title):
    assert services.title_from_text(text) == title


def test_cleanup_empty_rooms_keeps_newest(user):
    old = services.create_room(owner=user, name="old")
    Room.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    newest = services.create_room(owner=user, name="new")
    busy = services.create_room(owner=user, name="busy")
    services.append_message(room=busy, role="user", content="hello")
    other_users_room = RoomFactory(owner=UserFactory())
    assert services.cleanup_empty_rooms(owner=user) == 1
    old.refresh_from_db(), newest.refresh_from_db(), other_users_room.refresh_from_db()
    assert old.is_deleted and not newest.is_deleted and not other_users_room.is_deleted


def test_delete_project_keeps_rooms(user):
    project = ProjectFactory(owner=user)
    room = services.create_room(owner=user, project=project)
    services.delete_project(project=project)
    room.refresh_from_db()
    assert room.project is None and not room.is_deleted


def test_session_expiry_rules(user, settings):
    room = services.create_room(owner=user)
    session = services.create_session(user=user, room=room)
    assert not session.is_expired
    session.last_seen_at = timezone.now() - timedelta(seconds=settings.SESSION_IDLE_SECONDS + 1)
    assert session.is_expired
    fresh = services.touch_session(session=session)
    assert not fresh.is_expired
    fresh.created_at = timezone.now() - timedelta(seconds=settings.SESSION_TTL_SECONDS + 1)
    assert fresh.is_expired  # activity does not extend the hard lifetime
    fresh.save()
    assert services.delete_expired_sessions() == 1
    assert not ChatSession.objects.exists()


def test_reset_session_one_agent_or_all(user):
    session = services.create_session(user=user, room=services.create_room(owner=user))
    session.agent_state = {"coder": {"step": 2}, "writer": {"draft": "x"}}
    session.save()
    services.reset_session(session=session, agent="coder")
    assert session.agent_state == {"writer": {"draft": "x"}}
    services.reset_session(session=session)
    assert session.agent_state == {}
