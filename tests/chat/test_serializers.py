"""Request serializers take strict JSON types and only text that every database can store."""

from __future__ import annotations

import pytest

from chat.serializers import MessageSendSerializer, RoomCreateSerializer, RoomImportSerializer, RoomWriteSerializer
from chatproject.validation import INT64_MAX


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"content": 5}, "content"),
        ({"content": "hi", "model": 1}, "model"),
        ({"content": "hi", "system_prompt": False}, "system_prompt"),
        ({"content": "hi", "use_recursive": "true"}, "use_recursive"),
        ({"content": "hi", "use_recursive": 1}, "use_recursive"),
        ({"content": "a\x00b"}, "content"),
        ({"content": "\ud800"}, "content"),
    ],
)
def test_message_send_is_strict(data, field):
    serializer = MessageSendSerializer(data=data)
    assert not serializer.is_valid()
    assert field in serializer.errors


def test_message_send_defaults():
    serializer = MessageSendSerializer(data={"content": "hi", "use_recursive": False})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["use_recursive"] is False
    assert "temperature" not in serializer.validated_data  # left to the room's, the user's or the server's default


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": 0}, "name"),
        ({"pinned": "maybe"}, "pinned"),
        ({"pinned": 5}, "pinned"),
        ({"archived": "false"}, "archived"),
        ({"tags": ["ok", 3]}, "tags"),
        ({"metadata": {"a": "\x00"}}, "metadata"),
        ({"metadata": {"\ud800": 1}}, "metadata"),
        ({"metadata": [[{"deep": ["\udc00"]}]]}, "metadata"),
    ],
)
def test_room_write_is_strict(data, field):
    serializer = RoomWriteSerializer(data=data, partial=True)
    assert not serializer.is_valid()
    assert list(serializer.errors) == [field]


def test_room_create_team_is_bounded():
    assert RoomCreateSerializer(data={"team": INT64_MAX}).is_valid()
    serializer = RoomCreateSerializer(data={"team": INT64_MAX + 1})
    assert not serializer.is_valid() and "team" in serializer.errors


def test_import_document_text_is_checked_everywhere():
    ok = {"format": "llm-chat-room", "version": 1, "room": {"name": "x"}, "messages": [{"content": "hi"}]}
    assert RoomImportSerializer(data=ok).is_valid()
    bad = {**ok, "messages": [{"content": "hi", "extra": {"k": ["fine", "bad\x00"]}}]}
    serializer = RoomImportSerializer(data=bad)
    assert not serializer.is_valid()
    assert "messages[0].extra.k[1]" in str(serializer.errors)
