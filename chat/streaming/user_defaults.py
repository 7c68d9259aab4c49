"""What a reply uses where its request names nothing: the room's stored settings, then its user's defaults.

Precedence, highest first: options in the request > the room's `metadata.generation` and `system_prompt` >
the user's settings-page defaults > the server's defaults (filled in by `parse_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.selectors import current_preferences
from chat.models import Room
from chat.serializers import GenerationOptionsSerializer


@dataclass(frozen=True)
class ReplyDefaults:
    model: str = ""
    system_prompt: str = ""
    options: dict = field(default_factory=dict)

    def apply(self, explicit: dict | None) -> dict:
        """The request's options over these defaults; a null in the request means "not given"."""
        given = {key: value for key, value in (explicit or {}).items() if value is not None}
        return {**self.options, **given}


def valid_options(raw: object) -> dict:
    """The options of a stored mapping that pass the request's own checks; anything else is left out."""
    if not isinstance(raw, dict):
        return {}
    kept = {}
    for key, value in raw.items():
        if value is None:
            continue
        single = GenerationOptionsSerializer(data={key: value})
        if key in single.fields and single.is_valid():
            kept[key] = single.validated_data[key]
    return kept


def reply_defaults(*, user_id: int, room_id) -> ReplyDefaults:
    """Read fresh on every start, so a change on the settings page reaches sockets opened before it."""
    prefs = current_preferences(user_id)
    room = Room.objects.filter(pk=room_id).values("system_prompt", "metadata").first() or {}
    metadata = room.get("metadata") if isinstance(room.get("metadata"), dict) else {}
    return ReplyDefaults(
        model=prefs["default_model"],
        system_prompt=room.get("system_prompt") or prefs["system_prompt"],
        options={**valid_options(prefs["generation"]), **valid_options(metadata.get("generation"))},
    )
