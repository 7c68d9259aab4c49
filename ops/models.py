"""Operational records: the audit trail, the panic switch, and performance samples."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what to what, for actions an operator may have to account for."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_username} {self.action} {self.target}"


class PanicState(models.Model):
    """The one row (pk 1) every worker reads to know whether chat work is refused."""

    active = models.BooleanField(default=False)
    reason = models.CharField(max_length=500, blank=True)
    triggered_by = models.CharField(max_length=150, blank=True)
    triggered_at = models.DateTimeField(null=True, blank=True)
    wiped = models.BooleanField(default=False)
    wipe_counts = models.JSONField(default=dict, blank=True)
    reset_by = models.CharField(max_length=150, blank=True)
    reset_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "panic state"
        verbose_name_plural = "panic state"

    def __str__(self) -> str:
        return "panic ON" if self.active else "panic off"


class PerformanceSample(models.Model):
    """One finished reply's timings, whatever started it (browser, SSE or a compatible API)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=32)
    server = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.FloatField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "created_at"])]

    def __str__(self) -> str:
        return f"{self.model} {self.status} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class SystemSample(models.Model):
    """A periodic reading of the host: CPU, memory, load and the hottest sensor."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    cpu_percent = models.FloatField()
    memory_percent = models.FloatField()
    memory_used_bytes = models.BigIntegerField()
    load_1m = models.FloatField(null=True, blank=True)
    max_temperature_c = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"system at {self.created_at:%Y-%m-%d %H:%M:%S}"
