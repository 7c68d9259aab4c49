"""Rooms, their message trees, projects, live sessions and generation jobs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Project(models.Model):
    """A folder of rooms."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    last_chat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_chat_at", "-created_at"]

    def __str__(self) -> str:
        return self.name


class Room(models.Model):
    """One conversation: a tree of messages with an active branch ending at `active_leaf`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: every lookup by owner uses the leading column of `room_owner_activity`.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rooms",
                              db_index=False)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="rooms")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="rooms")
    name = models.CharField(max_length=100, default="New Chat")
    model = models.CharField(max_length=200, blank=True)
    agent = models.CharField(max_length=100, blank=True)
    system_prompt = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    is_deleted = models.BooleanField(default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_activity = models.DateTimeField(default=timezone.now, db_index=True)
    message_count = models.PositiveIntegerField(default=0)
    last_message_preview = models.CharField(max_length=200, blank=True)
    active_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-pinned", "-last_activity"]
        indexes = [models.Index(fields=["owner", "is_deleted", "-last_activity"], name="room_owner_activity")]

    def __str__(self) -> str:
        return self.name

    @property
    def group_name(self) -> str:
        """Channel-layer group every watcher of this room joins."""
        return f"room.{self.pk.hex}"


class RoomTag(models.Model):
    """A label on a room; a table rather than JSON so tag filters work on SQLite and PostgreSQL alike."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="tag_rows")
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["room", "name"], name="room_tag_unique")]

    def __str__(self) -> str:
        return self.name


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    CANCELLED = "cancelled", "Cancelled"
    ERROR = "error", "Error"
    INTERRUPTED = "interrupted", "Interrupted"


class FinishReason(models.TextChoices):
    STOP = "stop", "Stop"  # the model ended its reply, or hit a stop string
    LENGTH = "length", "Length"  # the reply reached max_tokens


class Message(models.Model):
    """One turn; edits and regenerations are siblings under the same parent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Served by `message_room_created` (room first): a second index would only cost every insert.
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages", db_index=False)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    # Blank until a reply completes, and for replies whose backend did not say why it ended.
    finish_reason = models.CharField(max_length=8, choices=FinishReason.choices, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True)  # -1 thumbs down, 1 thumbs up
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    is_deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["room", "created_at"], name="message_room_created")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class ChatSession(models.Model):
    """A user's live session in a room; it expires after a total lifetime or an idle spell."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    agent_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"session {self.pk} in {self.room_id}"

    @property
    def expires_at(self):
        """The earlier of the hard lifetime and the idle deadline."""
        hard = self.created_at + timedelta(seconds=settings.SESSION_TTL_SECONDS)
        idle = self.last_seen_at + timedelta(seconds=settings.SESSION_IDLE_SECONDS)
        return min(hard, idle)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class Stream(models.Model):
    """A generation job writing one assistant message; detached from whoever started it.

    A stateless completion (the OpenAI- and Ollama-compatible APIs) has no room and no message: its row is
    there so the per-user limit, stop and recovery treat it like any other reply.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="streams", null=True, blank=True)
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="stream", null=True, blank=True)
    # Served by `stream_user_running` (user first).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="streams",
                             db_index=False)
    model = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=100, blank=True)
    control_channel = models.CharField(max_length=200, blank=True)  # where stop/snapshot requests reach the job
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "finished_at"], name="stream_user_running")]

    def __str__(self) -> str:
        return f"stream {self.pk}"

    @property
    def is_running(self) -> bool:
        return self.finished_at is None
