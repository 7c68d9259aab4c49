from django.contrib import admin

from chat.models import ChatSession, Message, Project, Room, RoomTag, Stream
from ops.audit import AuditedModelAdmin


class RoomTagInline(admin.TabularInline):
    model = RoomTag
    extra = 0


@admin.register(Room)
class RoomAdmin(AuditedModelAdmin):
    list_display = ("name", "owner", "team", "model", "message_count", "pinned", "archived", "is_deleted",
                    "last_activity")
    list_filter = ("archived", "pinned", "is_deleted", "team", "model")
    search_fields = ("name", "owner__username", "last_message_preview")
    raw_id_fields = ("owner", "project", "active_leaf")
    date_hierarchy = "created_at"
    inlines = [RoomTagInline]


@admin.register(Message)
class MessageAdmin(AuditedModelAdmin):
    list_display = ("short", "role", "room", "model", "status", "created_at", "is_deleted")
    list_filter = ("role", "status", "is_deleted", "model")
    search_fields = ("content", "room__name", "room__owner__username")
    raw_id_fields = ("room", "parent", "author")
    date_hierarchy = "created_at"

    @admin.display(description="content")
    def short(self, message: Message) -> str:
        return message.content[:80]


@admin.register(Project)
class ProjectAdmin(AuditedModelAdmin):
    list_display = ("name", "owner", "team", "created_at", "last_chat_at")
    list_filter = ("team",)
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(ChatSession)
class ChatSessionAdmin(AuditedModelAdmin):
    list_display = ("id", "user", "room", "created_at", "last_seen_at")
    list_filter = ("created_at",)
    search_fields = ("user__username", "room__name")
    raw_id_fields = ("room", "user")


@admin.register(Stream)
class StreamAdmin(AuditedModelAdmin):
    list_display = ("id", "user", "room", "model", "started_at", "finished_at", "cancel_requested", "worker")
    list_filter = ("cancel_requested", "model")
    search_fields = ("user__username", "room__name")
    raw_id_fields = ("room", "message", "user")
