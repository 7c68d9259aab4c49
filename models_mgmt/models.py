"""Model management's own records: the hot slots that keep chosen models loaded, the Ollama configuration
mode, and staff's per-model defaults."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

HOT_SLOT_COUNT = 4
MIN_CONTEXT_LENGTH = 256
MAX_CONTEXT_LENGTH = 1_048_576
GENERATION_FIELDS = ("temperature", "top_p", "top_k", "repeat_penalty", "max_tokens")


class HotSlot(models.Model):
    """Slot 1–4 holds one model (by `provider/name`), which is kept loaded: Ollama `keep_alive: -1`, local
    llama.cpp kept in memory."""

    slot = models.PositiveSmallIntegerField(
        unique=True, validators=[MinValueValidator(1), MaxValueValidator(HOT_SLOT_COUNT)]
    )
    model = models.CharField(max_length=200, unique=True, help_text="provider/name, e.g. ollama/llama3.2:3b")
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    assigned_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slot"]
        constraints = [
            models.CheckConstraint(condition=models.Q(slot__gte=1, slot__lte=HOT_SLOT_COUNT),
                                   name="hot_slot_number_1_to_4"),
        ]

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.model}"


class OllamaMode(models.TextChoices):
    EFFICIENCY = "efficiency"
    BALANCED = "balanced"
    PERFORMANCE = "performance"


class OllamaConfig(models.Model):
    """The one row (pk 1) holding the Ollama configuration mode; blank means the environment's values apply
    (OLLAMA_KEEP_ALIVE, OLLAMA_NUM_CTX, and whatever `ollama serve` was started with)."""

    mode = models.CharField(max_length=16, choices=OllamaMode.choices, blank=True,
                            help_text="efficiency, balanced or performance; blank: the environment's values")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    detection = models.JSONField(default=dict, blank=True,
                                 help_text="The last auto-detect: the mode it picked, the facts and why")

    class Meta:
        verbose_name = "Ollama config"
        verbose_name_plural = "Ollama config"

    def __str__(self) -> str:
        return f"Ollama mode: {self.mode or 'environment'}"


def parse_keep_alive(value: str) -> str | int:
    """Ollama's keep_alive from text: whole seconds (-1: forever, 0: at once) or a duration such as 30s, 10m, 1h."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    number = text[:-1] if text[-1:] in ("s", "m", "h") else ""
    if not number or not number.replace(".", "", 1).isdigit():
        raise ValidationError("Write a duration such as 30s, 10m, 1h, or -1 for forever.", code="invalid")
    return text


def validate_keep_alive(value: str) -> None:
    if value:
        parse_keep_alive(value)


class ModelDefaults(models.Model):
    """Staff's defaults for one model, used under a room's own settings; a blank field leaves the server's."""

    model = models.CharField(max_length=200, unique=True,
                             help_text="provider/name (e.g. ollama/llama3.2:3b) or a plain name")
    context_length = models.PositiveIntegerField(
        null=True, blank=True,
        validators=[MinValueValidator(MIN_CONTEXT_LENGTH), MaxValueValidator(MAX_CONTEXT_LENGTH)],
        help_text="At most this many tokens of context (Ollama num_ctx; prompts are trimmed to it)")
    keep_alive = models.CharField(max_length=20, blank=True, validators=[validate_keep_alive],
                                  help_text="How long Ollama keeps it loaded after a reply: 30s, 10m, 1h, -1 forever")
    temperature = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    top_p = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    top_k = models.PositiveIntegerField(null=True, blank=True, validators=[MaxValueValidator(1000)])
    repeat_penalty = models.FloatField(null=True, blank=True,
                                       validators=[MinValueValidator(0.0), MaxValueValidator(3.0)])
    max_tokens = models.PositiveIntegerField(null=True, blank=True,
                                             validators=[MinValueValidator(1), MaxValueValidator(32768)])
    system_prompt = models.TextField(blank=True, max_length=20_000)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model defaults"
        verbose_name_plural = "model defaults"

    def __str__(self) -> str:
        return f"defaults for {self.model}"
