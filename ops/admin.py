from django.contrib import admin

from ops.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_username", "action", "target")
    list_filter = ("action",)
    search_fields = ("actor_username", "action", "target")
    readonly_fields = ("actor", "actor_username", "action", "target", "details", "created_at")

    # The trail is evidence: nobody adds to it, edits it or deletes from it by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
