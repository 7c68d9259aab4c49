"""Shapes of the audit trail (its list and filters) and of the panic switch."""

from __future__ import annotations

from rest_framework import serializers

from chatproject.validation import StrictBooleanField, StrictCharField
from ops.models import AuditEvent, PanicState


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


class PanicTriggerSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=500, default="",
                             help_text="Why: shown to users and kept in the audit trail.")
    wipe_data = StrictBooleanField(required=False, default=False,
                                   help_text="Also delete every room, message and file, irrecoverably.")
    unload_models = StrictBooleanField(required=False, default=False,
                                       help_text="Also free the memory of every loaded model once stopped.")


class PanicStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = PanicState
        fields = ["active", "reason", "triggered_by", "triggered_at", "wiped", "wipe_counts", "reset_by", "reset_at"]


class PanicTriggerResultSerializer(PanicStateSerializer):
    streams_stopped = serializers.IntegerField(help_text="Replies that were generating and were stopped.")
    deleted = serializers.DictField(child=serializers.IntegerField(),
                                    help_text="With wipe_data: rows deleted per model.")
    unloaded = serializers.ListField(child=serializers.CharField(),
                                     help_text="With unload_models: the models freed, as `provider: name`.")

    class Meta(PanicStateSerializer.Meta):
        fields = [*PanicStateSerializer.Meta.fields, "streams_stopped", "deleted", "unloaded"]
