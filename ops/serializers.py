"""Shapes of the audit trail's list and its filters."""

from __future__ import annotations

from rest_framework import serializers

from chatproject.validation import StrictCharField
from ops.models import AuditEvent


class AuditQuerySerializer(serializers.Serializer):
    action = StrictCharField(required=False, allow_blank=True, max_length=64, default="",
                             help_text="An action or its prefix, e.g. `user.`.")
    actor = StrictCharField(required=False, allow_blank=True, max_length=150, default="",
                            help_text="The acting user's username.")
    target = StrictCharField(required=False, allow_blank=True, max_length=200, default="",
                             help_text="Part of the target's description.")
    since = serializers.DateTimeField(required=False, allow_null=True, default=None)
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "actor_username", "action", "target", "details"]
