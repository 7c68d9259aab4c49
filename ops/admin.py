from django.contrib import admin, messages

from ops import services
from ops.models import AuditEvent, PanicState
from ops.panic import panic_state


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


@admin.register(PanicState)
class PanicStateAdmin(admin.ModelAdmin):
    """Shown, and switched only through its actions, so every change stops replies and is audited."""

    list_display = ("__str__", "reason", "triggered_by", "triggered_at", "wiped", "reset_by", "reset_at")
    readonly_fields = ("active", "reason", "triggered_by", "triggered_at", "wiped", "wipe_counts", "reset_by",
                       "reset_at")
    actions = ("switch_on", "switch_off")

    def get_queryset(self, request):
        panic_state()  # the row exists from the first look, so the actions have something to act on
        return super().get_queryset(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Trigger panic (stop every reply, refuse chat work; no wipe)")
    def switch_on(self, request, queryset) -> None:
        outcome = services.trigger_panic(actor=request.user, reason="Triggered from the Django admin")
        self.message_user(request, f"Panic is ON; {outcome.streams_stopped} replies asked to stop.",
                          messages.WARNING)

    @admin.action(description="Reset panic (allow chat work again)")
    def switch_off(self, request, queryset) -> None:
        services.reset_panic(actor=request.user)
        self.message_user(request, "Panic is off.", messages.SUCCESS)
