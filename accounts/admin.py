from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import ApiToken, Membership, Team, TeamInvite, User, WaitlistEntry
from ops.audit import AuditedModelAdmin, action_of, target_of
from ops.services import record_audit_event


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(User)
class UserAdmin(AuditedModelAdmin, BaseUserAdmin):
    list_display = ("username", "email", "email_verified", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "email_verified", "memberships__team")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Verification", {"fields": ("email_verified",)}))

    def log_change(self, request, obj, message):
        """The password form saves outside save_model; it is audited here, without any value."""
        if request.path.rstrip("/").endswith("/password"):
            record_audit_event(actor=request.user, action=action_of(obj, "password_change"), target=target_of(obj))
        return super().log_change(request, obj, message)


@admin.register(Team)
class TeamAdmin(AuditedModelAdmin):
    list_display = ("name", "is_default", "created_at")
    list_filter = ("is_default",)
    search_fields = ("name",)
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    list_display = ("user", "team", "role", "joined_at")
    list_filter = ("role", "team")
    search_fields = ("user__username", "user__email", "team__name")
    autocomplete_fields = ("user", "team")


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    list_display = ("name", "user", "key_prefix", "created_at", "last_used_at", "expires_at")
    search_fields = ("name", "user__username", "key_prefix")
    readonly_fields = ("key_hash", "key_prefix", "created_at", "last_used_at")


@admin.register(TeamInvite)
class TeamInviteAdmin(AuditedModelAdmin):
    list_display = ("email", "team", "role", "created_at", "accepted_at")
    list_filter = ("role", "team")
    search_fields = ("email",)
    readonly_fields = ("token_hash",)


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(AuditedModelAdmin):
    list_display = ("email", "name", "created_at", "invited")
    list_filter = ("invited",)
    search_fields = ("email", "name")
