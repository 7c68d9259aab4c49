"""Room export (JSON keeps the whole tree, Markdown the active branch) and JSON import."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions

from chat.models import FinishReason, Message, MessageRole, MessageStatus, Room
from chat.selectors import active_branch
from chat.services import create_room, refresh_room_summary, validate_message_content
from search import hooks as search_hooks

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
                "finish_reason": message.finish_reason,
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
    pinned = room_data.get("pinned")
    if pinned is not None and not isinstance(pinned, bool):
        raise exceptions.ValidationError({"room": ["pinned must be true or false."]})
    tags = room_data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) and len(tag) <= 50 for tag in tags):
        raise exceptions.ValidationError({"room": ["tags must be a list of strings of at most 50 characters."]})
    room = create_room(
        owner=owner,
        name=_room_text(room_data, "name", 10_000) or "Imported chat",
        metadata=room_data.get("metadata") or {},
        tags=tags,
        model=_room_text(room_data, "model", 200),
        agent=_room_text(room_data, "agent", 100),
        system_prompt=_room_text(room_data, "system_prompt", 20_000),
    )
    if pinned:
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
        created_at = _timestamp(item, "created_at", index) or now
        edited_at = _timestamp(item, "edited_at", index)
        model = item.get("model") or ""
        if not isinstance(model, str) or len(model) > 200:
            raise _bad(f"Message {index} has a model that is not a string of at most 200 characters.")
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
                model=model,
                status=status,
                prompt_tokens=_optional_int(item.get("prompt_tokens")),
                completion_tokens=_optional_int(item.get("completion_tokens")),
                time_to_first_token_ms=_optional_float(item.get("time_to_first_token_ms")),
                tokens_per_second=_optional_float(item.get("tokens_per_second")),
                # Kept only on a complete reply, and only a known one: older exports have none; Continue must not guess.
                finish_reason=(item.get("finish_reason") if status == MessageStatus.COMPLETE
                               and item.get("finish_reason") in FinishReason.values else ""),
                rating=item.get("rating") if item.get("rating") in (-1, 1) else None,
                created_at=created_at,
                edited_at=edited_at,
            )
        )
    Message.objects.bulk_create(rows)
    search_hooks.messages_saved(row.pk for row in rows)  # searchable once the import commits, like any message
    leaf_ref = data.get("active_leaf_id")
    if leaf_ref is not None and str(leaf_ref) not in new_ids:
        raise exceptions.ValidationError({"active_leaf_id": ["Names a message that is not in the export."]})
    room.active_leaf_id = new_ids[str(leaf_ref)] if leaf_ref is not None else (rows[-1].pk if rows else None)
    refresh_room_summary(room)
    return room


def _room_text(room_data: dict, key: str, max_length: int) -> str:
    """A text setting of the exported room: a string (or nothing) no longer than its column allows."""
    value = room_data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise exceptions.ValidationError({"room": [f"{key} must be a string of at most {max_length} characters."]})
    return value


def _timestamp(item: dict, key: str, index: int) -> datetime | None:
    """An ISO 8601 time from the export (naive ones are UTC), or None when absent or unreadable as one."""
    raw = item.get(key)
    if not raw:
        return None
    try:
        value = parse_datetime(str(raw))
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # well-formed but impossible, or out of range in UTC
        raise _bad(f"Message {index} has an invalid {key}.") from exc
    return value


# The columns' ranges (PositiveIntegerField holds up to 2**31 - 1 on every database).
_MAX_TOKENS = 2**31 - 1


def _optional_int(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TOKENS:
        return value
    return None


def _optional_float(value) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None
