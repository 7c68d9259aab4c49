from django.contrib import admin

from models_mgmt.models import HotSlot
from ops.audit import AuditedModelAdmin


@admin.register(HotSlot)
class HotSlotAdmin(AuditedModelAdmin):
    """Slots edited here are kept loaded from the next keeper check (HOT_SLOT_CHECK_SECONDS) of each worker."""

    list_display = ("slot", "model", "assigned_by", "assigned_at")
    ordering = ("slot",)
    readonly_fields = ("assigned_at",)
