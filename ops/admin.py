from django.contrib import admin

from ops.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_username", "action", "target")
    list_filter = ("action",)
    search_fields = ("actor_username", "action", "target")
    readonly_fields = ("actor", "actor_username", "action", "target", "details", "created_at")
