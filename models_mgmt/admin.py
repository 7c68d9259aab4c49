from django.contrib import admin

from models_mgmt import selectors, services
from models_mgmt.models import HotSlot, ModelDefaults, OllamaConfig
from models_mgmt.modes import MODES
from ops.audit import AuditedModelAdmin


@admin.register(HotSlot)
class HotSlotAdmin(AuditedModelAdmin):
    """Slots edited here are kept loaded from the next keeper check (HOT_SLOT_CHECK_SECONDS) of each worker."""

    list_display = ("slot", "model", "assigned_by", "assigned_at")
    ordering = ("slot",)
    readonly_fields = ("assigned_at",)


@admin.register(OllamaConfig)
class OllamaConfigAdmin(AuditedModelAdmin):
    """The one configuration row: a mode chosen here applies at each worker's next keeper check, and its server
    variables at the managed server's next start."""

    list_display = ("__str__", "mode", "updated_by", "updated_at")
    fields = ("mode", "updated_by", "updated_at", "detection")
    readonly_fields = ("updated_by", "updated_at", "detection")

    def has_add_permission(self, request) -> bool:
        return not OllamaConfig.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        obj.pk, obj.updated_by = 1, request.user
        super().save_model(request, obj, form, change)
        if services.apply_ollama_config(MODES.get(obj.mode)):
            selectors.catalogue(refresh=True)  # this worker at once; the others at their keeper's next check


@admin.register(ModelDefaults)
class ModelDefaultsAdmin(AuditedModelAdmin):
    """Defaults edited here apply at once in this worker, and in the others within their cache's few seconds."""

    list_display = ("model", "context_length", "keep_alive", "temperature", "max_tokens", "updated_by", "updated_at")
    search_fields = ("model",)
    readonly_fields = ("updated_by", "updated_at")

    def save_model(self, request, obj, form, change) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
        selectors.DEFAULTS_CACHE.forget()

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        selectors.DEFAULTS_CACHE.forget()

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        selectors.DEFAULTS_CACHE.forget()
