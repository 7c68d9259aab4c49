"""What each API token's compatible calls have used, per model."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import ApiToken


class TokenUsage(models.Model):
    """Running totals of one token's calls to one model through the OpenAI- and Ollama-compatible APIs."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="usage")
    model = models.CharField(max_length=200)
    calls = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_used_at", "model"]
        constraints = [models.UniqueConstraint(fields=["token", "model"], name="token_usage_unique")]

    def __str__(self) -> str:
        return f"{self.token} on {self.model}: {self.calls} calls"
