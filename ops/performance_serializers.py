"""Query parameters of the performance endpoints: bounded, so a request never asks the database for years."""

from __future__ import annotations

from rest_framework import serializers

from chatproject.validation import StrictCharField

MAX_WINDOW_HOURS = 24 * 90
MAX_HISTORY_DAYS = 365


class StatsQuerySerializer(serializers.Serializer):
    window = serializers.IntegerField(required=False, default=24, min_value=1, max_value=MAX_WINDOW_HOURS,
                                      help_text="Hours back from now (default 24, at most 2160).")
    model = StrictCharField(required=False, allow_blank=True, max_length=200, default="",
                            help_text="Only this model.")


class HistoryQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, default=7, min_value=1, max_value=MAX_HISTORY_DAYS,
                                    help_text="Days back from now (default 7, at most 365).")
    bucket = serializers.ChoiceField(choices=["hour", "day"], required=False, default="hour",
                                     help_text="Bucket size (default hour).")
    model = StrictCharField(required=False, allow_blank=True, max_length=200, default="",
                            help_text="Only this model.")


class SystemSampleSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    cpu_percent = serializers.FloatField()
    memory_percent = serializers.FloatField()
    memory_used_bytes = serializers.IntegerField()
    load_1m = serializers.FloatField(allow_null=True)
    max_temperature_c = serializers.FloatField(allow_null=True)


class CurrentSerializer(serializers.Serializer):
    window_seconds = serializers.IntegerField()
    since = serializers.DateTimeField()
    replies = serializers.IntegerField(help_text="Replies that finished in the window.")
    statuses = serializers.DictField(child=serializers.IntegerField(), help_text="Those replies by final status.")
    errors = serializers.IntegerField()
    active_streams = serializers.IntegerField(help_text="Replies generating now, on every worker.")
    mean_ttft_ms = serializers.FloatField(allow_null=True)
    mean_tokens_per_second = serializers.FloatField(allow_null=True)
    completion_tokens = serializers.IntegerField()
    system = SystemSampleSerializer(allow_null=True, help_text="The newest system sample, or a fresh one.")


class ModelStatsSerializer(serializers.Serializer):
    model = serializers.CharField()
    provider = serializers.CharField()
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(help_text="errors / count; an error is a reply that ended in `error`.")
    ttft_ms_p50 = serializers.FloatField(allow_null=True)
    ttft_ms_p95 = serializers.FloatField(allow_null=True)
    tokens_per_second_p50 = serializers.FloatField(allow_null=True)
    tokens_per_second_p95 = serializers.FloatField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    window_hours = serializers.IntegerField()
    since = serializers.DateTimeField()
    models = ModelStatsSerializer(many=True)


class ModelBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    mean_ttft_ms = serializers.FloatField(allow_null=True)
    mean_tokens_per_second = serializers.FloatField(allow_null=True)


class ModelHistorySerializer(serializers.Serializer):
    model = serializers.CharField()
    provider = serializers.CharField()
    buckets = ModelBucketSerializer(many=True)


class SystemBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    samples = serializers.IntegerField()
    mean_cpu_percent = serializers.FloatField(allow_null=True)
    mean_memory_percent = serializers.FloatField(allow_null=True)
    max_temperature_c = serializers.FloatField(allow_null=True)


class HistorySerializer(serializers.Serializer):
    days = serializers.IntegerField()
    bucket = serializers.CharField()
    since = serializers.DateTimeField()
    retention_days = serializers.IntegerField(help_text="Samples older than this are pruned (0: kept).")
    models = ModelHistorySerializer(many=True)
    system = SystemBucketSerializer(many=True)


class SensorSerializer(serializers.Serializer):
    chip = serializers.CharField()
    label = serializers.CharField()
    current_c = serializers.FloatField()
    high_c = serializers.FloatField(allow_null=True)
    critical_c = serializers.FloatField(allow_null=True)


class CpuFrequencySerializer(serializers.Serializer):
    current_mhz = serializers.FloatField()
    min_mhz = serializers.FloatField(allow_null=True)
    max_mhz = serializers.FloatField(allow_null=True)
    ratio_of_max = serializers.FloatField(allow_null=True)


class ThermalSerializer(serializers.Serializer):
    available = serializers.BooleanField(help_text="False where the OS exposes no sensors and no maximum frequency.")
    throttling = serializers.ChoiceField(choices=["likely", "not likely", "unknown", "not available"])
    message = serializers.CharField()
    sensors = SensorSerializer(many=True)
    max_temperature_c = serializers.FloatField(allow_null=True)
    cpu_frequency = CpuFrequencySerializer(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())


class SampleCountsSerializer(serializers.Serializer):
    performance_samples = serializers.IntegerField()
    system_samples = serializers.IntegerField()


class ResetSerializer(serializers.Serializer):
    before = SampleCountsSerializer()
    after = SampleCountsSerializer()
