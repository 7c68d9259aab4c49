"""Model management's own records: the hot slots that keep chosen models loaded."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

HOT_SLOT_COUNT = 4


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
