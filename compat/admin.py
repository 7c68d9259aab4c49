from django.contrib import admin

from compat.models import TokenUsage


@admin.register(TokenUsage)
class TokenUsageAdmin(admin.ModelAdmin):
    list_display = ("token", "model", "calls", "prompt_tokens", "completion_tokens", "last_used_at")
    search_fields = ("token__name", "token__user__username", "model")
    raw_id_fields = ("token",)
    readonly_fields = ("token", "model", "calls", "prompt_tokens", "completion_tokens", "last_used_at")
