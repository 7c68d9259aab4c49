"""Writes of the compatible APIs: counting a finished call against its API token."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from compat.models import TokenUsage


@transaction.atomic
def record_usage(*, token_id: int, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> None:
    """One more call of `model` with this token, and its tokens (a backend that gave no count adds none)."""
    prompt, completion, now = prompt_tokens or 0, completion_tokens or 0, timezone.now()
    TokenUsage.objects.update_or_create(
        token_id=token_id,
        model=model,
        defaults={"calls": F("calls") + 1, "prompt_tokens": F("prompt_tokens") + prompt,
                  "completion_tokens": F("completion_tokens") + completion, "last_used_at": now},
        create_defaults={"calls": 1, "prompt_tokens": prompt, "completion_tokens": completion, "last_used_at": now},
    )
