"""Room export (JSON keeps the whole tree, Markdown the active branch) and JSON import."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions

from chat.models import Message, MessageRole, MessageStatus, Room
from chat.selectors import active_branch
from chat.services import create_room, refresh_room_summary, validate_message_content

EXPORT_FORMAT = "llm-chat-room"
EXPORT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_room_json(room: Room) -> dict:
    """Everything needed to rebuild the room elsewhere: settings, every live message, the active leaf."""
    messages = list(Message.objects.filter(room=room).order_by("created_at", "id"))
    by_id = {message.pk: message for message in messages}

    def live_parent(message: Message):
        """Skip deleted ancestors so exported children still hang off something that is exported."""
        parent = by_id.get(message.parent_id)
        while parent is not None and parent.is_deleted:
            parent = by_id.get(parent.parent_id)
        return parent.pk if parent else None

    leaf = by_id.get(room.active_leaf_id)
    while leaf is not None and leaf.is_deleted:
        leaf = by_id.get(leaf.parent_id)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "room": {
            "name": room.name,
            "model": room.model,
            "agent": room.agent,
            "system_prompt": room.system_prompt,
            "metadata": room.metadata,
            "tags": [tag.name for tag in room.tag_rows.all()],
            "pinned": room.pinned,
            "created_at": _iso(room.created_at),
        },
        "active_leaf_id": str(leaf.pk) if leaf else None,
        "messages": [
            {
                "id": str(message.pk),
                "parent_id": str(parent) if (parent := live_parent(message)) else None,
                "role": message.role,
                "content": message.content,
                "model": message.model,
                "status": message.status,
                "prompt_tokens": message.prompt_tokens,
                "completion_tokens": message.completion_tokens,
                "time_to_first_token_ms": message.time_to_first_token_ms,
                "tokens_per_second": message.tokens_per_second,
                "rating": message.rating,
                "created_at": _iso(message.created_at),
                "edited_at": _iso(message.edited_at),
            }
            for message in messages
            if not message.is_deleted
        ],
    }


_ROLE_TITLES = {MessageRole.USER: "User", MessageRole.ASSISTANT: "Assistant", MessageRole.SYSTEM: "System"}


def export_room_markdown(room: Room) -> str:
    """A readable transcript of the active branch."""
    lines = [f"# {room.name}", ""]
    if room.model:
        lines.append(f"- Model: {room.model}")
    lines.append(f"- Created: {room.created_at:%Y-%m-%d %H:%M} UTC")
    if room.system_prompt:
        lines += ["", "## System prompt", "", room.system_prompt]
    for message in active_branch(room).messages:
        title = _ROLE_TITLES.get(message.role, message.role.title())
        if message.role == MessageRole.ASSISTANT and message.model:
            title += f" ({message.model})"
        if message.status != MessageStatus.COMPLETE:
            title += f" [{message.status}]"
        lines += ["", f"## {title}", "", message.content]
    return "\n".join(lines).rstrip() + "\n"


def _bad(message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({"messages": [message]})


@transaction.atomic
def import_room(*, owner, data: dict) -> Room:
    """Rebuild an exported room under new ids for `owner`; the tree, active branch and timings survive."""
    if data.get("format") != EXPORT_FORMAT:
        raise exceptions.ValidationError({"format": [f"Expected format '{EXPORT_FORMAT}'."]})
    if data.get("version") != EXPORT_VERSION:
        raise exceptions.ValidationError({"version": [f"Only version {EXPORT_VERSION} can be imported."]})
    room_data = data.get("room") or {}
    if not isinstance(room_data, dict):
        raise exceptions.ValidationError({"room": ["Expected an object."]})
    raw_messages = data.get("messages") or []
    if not isinstance(raw_messages, list):
        raise _bad("Expected a list.")
    if len(raw_messages) > settings.IMPORT_MAX_MESSAGES:
        raise _bad(f"{len(raw_messages)} messages; at most {settings.IMPORT_MAX_MESSAGES} can be imported.")
    tags = room_data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise exceptions.ValidationError({"room": ["tags must be a list of strings."]})
    room = create_room(
        owner=owner,
        name=str(room_data.get("name") or "Imported chat"),
        metadata=room_data.get("metadata") or {},
        tags=tags,
        model=str(room_data.get("model") or ""),
        agent=str(room_data.get("agent") or ""),
        system_prompt=str(room_data.get("system_prompt") or ""),
    )
    if room_data.get("pinned") is True:
        room.pinned = True
        room.save(update_fields=["pinned"])

    new_ids: dict[str, uuid.UUID] = {}
    rows: list[Message] = []
    now = timezone.now()
    for index, item in enumerate(raw_messages):
        if not isinstance(item, dict):
            raise _bad(f"Message {index} is not an object.")
        old_id = str(item.get("id") or index)
        if old_id in new_ids:
            raise _bad(f"Message {index} repeats id {old_id}.")
        role = item.get("role")
        if role not in MessageRole.values:
            raise _bad(f"Message {index} has role {role!r}; expected one of {', '.join(MessageRole.values)}.")
        content = item.get("content")
        if not isinstance(content, str):
            raise _bad(f"Message {index} has no text content.")
        validate_message_content(content, field="messages")
        parent_ref = item.get("parent_id")
        if parent_ref is not None and str(parent_ref) not in new_ids:
            raise _bad(f"Message {index} names parent {parent_ref}, which does not come before it.")
        status = item.get("status") or MessageStatus.COMPLETE
        if status not in MessageStatus.values:
            raise _bad(f"Message {index} has unknown status {status!r}.")
        if status == MessageStatus.STREAMING:
            status = MessageStatus.INTERRUPTED  # nothing is generating it here
        created_at = parse_datetime(str(item.get("created_at") or "")) or now
        edited_at = parse_datetime(str(item.get("edited_at") or "")) if item.get("edited_at") else None
        new_id = uuid.uuid4()
        new_ids[old_id] = new_id
        rows.append(
            Message(
                id=new_id,
                room=room,
                parent_id=new_ids[str(parent_ref)] if parent_ref is not None else None,
                author=owner if role == MessageRole.USER else None,
                role=role,
                content=content,
                model=str(item.get("model") or ""),
                status=status,
                prompt_tokens=_optional_int(item.get("prompt_tokens")),
                completion_tokens=_optional_int(item.get("completion_tokens")),
                time_to_first_token_ms=_optional_float(item.get("time_to_first_token_ms")),
                tokens_per_second=_optional_float(item.get("tokens_per_second")),
                rating=item.get("rating") if item.get("rating") in (-1, 1) else None,
                created_at=created_at,
                edited_at=edited_at,
            )
        )
    Message.objects.bulk_create(rows)
    leaf_ref = data.get("active_leaf_id")
    if leaf_ref is not None and str(leaf_ref) not in new_ids:
        raise exceptions.ValidationError({"active_leaf_id": ["Names a message that is not in the export."]})
    room.active_leaf_id = new_ids[str(leaf_ref)] if leaf_ref is not None else (rows[-1].pk if rows else None)
    refresh_room_summary(room)
    return room


def _optional_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _optional_float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
