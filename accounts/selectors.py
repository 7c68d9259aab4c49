"""Reads for accounts and teams, scoped to the asking user."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from rest_framework import exceptions

from accounts.models import GENERATION_KEYS, THEMES, ApiToken, Membership, Team, User
from chatproject.validation import validated_id


def teams_of(user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).annotate(member_count=Count("memberships")).order_by("name")


def get_team_for_member(*, user, team_id) -> Team:
    """A team the user belongs to, else 404 (400 for an id no team can have)."""
    team = Team.objects.filter(pk=validated_id(team_id, "team_id"), memberships__user=user).first()
    if team is None:
        raise exceptions.NotFound("Team not found.")
    return team


def team_members(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("joined_at", "id")


def get_membership(*, team: Team, user_id) -> Membership:
    user_id = validated_id(user_id, "user_id")
    membership = Membership.objects.select_related("user", "team").filter(team=team, user_id=user_id).first()
    if membership is None:
        raise exceptions.NotFound("Member not found.")
    return membership


def preferences_of(user: User) -> dict:
    """A user's settings-page choices, every key present; unset values are "" or None (the server's defaults)."""
    stored = user.preferences if isinstance(user.preferences, dict) else {}
    generation = stored.get("generation") if isinstance(stored.get("generation"), dict) else {}
    theme = stored.get("theme")
    return {
        "default_model": str(stored.get("default_model") or ""),
        "system_prompt": str(stored.get("system_prompt") or ""),
        "theme": theme if theme in THEMES else "system",
        "generation": {key: generation.get(key) for key in GENERATION_KEYS},
    }


def current_preferences(user_id: int) -> dict:
    """The preferences as stored now, for callers holding a user object loaded earlier (a long-lived socket)."""
    stored = User.objects.filter(pk=user_id).values_list("preferences", flat=True).first()
    return preferences_of(User(pk=user_id, preferences=stored or {}))


def tokens_of(user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).prefetch_related("usage")


def get_token(*, user, token_id) -> ApiToken:
    token = tokens_of(user).filter(pk=validated_id(token_id, "token_id")).first()
    if token is None:
        raise exceptions.NotFound("Token not found.")
    return token


def admin_users(*, q: str = "", is_active: str | None = None, is_staff: str | None = None) -> QuerySet[User]:
    qs = User.objects.all().order_by("date_joined", "id")
    if q:
        qs = qs.filter(Q(username__icontains=q) | Q(email__icontains=q))
    for name, value in (("is_active", is_active), ("is_staff", is_staff)):
        if value not in (None, ""):
            qs = qs.filter(**{name: value.lower() in ("1", "true", "yes")})
    return qs.annotate(room_count=Count("rooms", filter=Q(rooms__is_deleted=False), distinct=True))


def usage_stats() -> dict:
    """Instance-wide counts for the admin dashboard."""
    from chat.models import Message, MessageRole, Room, Stream

    now = timezone.now()
    week_ago = now - timedelta(days=7)
    day_ago = now - timedelta(days=1)
    live_messages = Message.objects.filter(is_deleted=False)
    tokens = live_messages.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    top = (
        live_messages.filter(created_at__gte=week_ago, role=MessageRole.USER, author__isnull=False)
        .values("author__username")
        .annotate(messages=Count("id"))
        .order_by("-messages")[:10]
    )
    return {
        "users": {
            "total": User.objects.count(),
            "active": User.objects.filter(is_active=True).count(),
            "staff": User.objects.filter(is_staff=True).count(),
            "joined_last_7_days": User.objects.filter(date_joined__gte=week_ago).count(),
            "seen_last_7_days": User.objects.filter(last_login__gte=week_ago).count(),
        },
        "teams": Team.objects.count(),
        "rooms": {
            "total": Room.objects.filter(is_deleted=False).count(),
            "archived": Room.objects.filter(is_deleted=False, archived=True).count(),
            "active_last_7_days": Room.objects.filter(is_deleted=False, last_activity__gte=week_ago).count(),
        },
        "messages": {
            "total": live_messages.count(),
            "last_24_hours": live_messages.filter(created_at__gte=day_ago).count(),
            "by_role": {
                row["role"]: row["n"] for row in live_messages.values("role").annotate(n=Count("id")).order_by()
            },
        },
        "tokens": {"prompt": tokens["prompt"] or 0, "completion": tokens["completion"] or 0},
        "streams_running": Stream.objects.filter(finished_at__isnull=True).count(),
        "top_users_last_7_days": [{"username": row["author__username"], "messages": row["messages"]} for row in top],
    }
