"""Request and response shapes for accounts, tokens, teams and user administration."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiToken, Membership, Role, Team, User


class UserSerializer(serializers.ModelSerializer):
    teams = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "email", "email_verified", "is_staff", "date_joined", "teams"]
        read_only_fields = fields

    def get_teams(self, user) -> list[dict]:
        return [
            {"id": m.team_id, "name": m.team.name, "role": m.role}
            for m in user.memberships.select_related("team").order_by("joined_at", "id")
        ]


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
    )
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    invite_token = serializers.CharField(required=False, allow_blank=True, default="")


class AuthResultSerializer(serializers.Serializer):
    user = UserSerializer()
    token = serializers.CharField()


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="Username or email address.")
    password = serializers.CharField(write_only=True, style={"input_type": "password"})


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "key_prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650, allow_null=True)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class PasswordResetRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField()
    token = serializers.CharField()
    new_password = serializers.CharField(write_only=True, style={"input_type": "password"})


class EmailVerifySerializer(serializers.Serializer):
    token = serializers.CharField()


class AccountDeleteSerializer(serializers.Serializer):
    password = serializers.CharField(write_only=True, style={"input_type": "password"})


class WaitlistJoinSerializer(serializers.Serializer):
    email = serializers.EmailField()
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class WaitlistEntrySerializer(serializers.Serializer):
    email = serializers.EmailField()
    created_at = serializers.DateTimeField()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class TeamSerializer(serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "is_default", "created_at", "member_count", "role"]
        read_only_fields = ["id", "is_default", "created_at", "member_count", "role"]

    def get_role(self, team) -> str | None:
        request = self.context.get("request")
        membership = team.memberships.filter(user=request.user).first() if request else None
        return membership.role if membership else None


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "joined_at"]
        read_only_fields = fields


class MemberInviteSerializer(serializers.Serializer):
    identifier = serializers.CharField(max_length=254, help_text="Username or email address.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InviteResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["added", "invited"])
    member = MemberSerializer(required=False, allow_null=True)
    email = serializers.EmailField(required=False)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AdminUserSerializer(serializers.ModelSerializer):
    room_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = User
        fields = [
            "id", "username", "email", "email_verified", "is_active", "is_staff", "is_superuser",
            "date_joined", "last_login", "room_count",
        ]
        read_only_fields = fields


class AdminUserUpdateSerializer(serializers.Serializer):
    is_active = serializers.BooleanField(required=False)
    is_staff = serializers.BooleanField(required=False, help_text="Promote to (or demote from) staff.")


class AdminStatsSerializer(serializers.Serializer):
    users = serializers.DictField()
    teams = serializers.IntegerField()
    rooms = serializers.DictField()
    messages = serializers.DictField()
    tokens = serializers.DictField()
    streams_running = serializers.IntegerField()
    top_users_last_7_days = serializers.ListField(child=serializers.DictField())

