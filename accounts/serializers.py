"""Request and response shapes for accounts, tokens, teams and user administration."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import THEMES, ApiToken, Membership, Role, Team, User
from chatproject.validation import StrictBooleanField, StrictCharField, StrictEmailField, StrictRegexField


class UserSerializer(serializers.ModelSerializer):
    teams = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id", "username", "email", "email_verified", "first_name", "last_name", "is_staff", "date_joined", "teams",
        ]
        read_only_fields = fields

    def get_teams(self, user) -> list[dict]:
        return [
            {"id": m.team_id, "name": m.team.name, "role": m.role}
            for m in user.memberships.select_related("team").order_by("joined_at", "id")
        ]


class RegisterSerializer(serializers.Serializer):
    username = StrictRegexField(
        r"^[\w.@+-]+\Z",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
    )
    email = StrictEmailField()
    password = StrictCharField(write_only=True, style={"input_type": "password"})
    invite_token = StrictCharField(required=False, allow_blank=True, default="")


class AuthResultSerializer(serializers.Serializer):
    user = UserSerializer()
    token = serializers.CharField()


class LoginSerializer(serializers.Serializer):
    username = StrictCharField(help_text="Username or email address.")
    password = StrictCharField(write_only=True, style={"input_type": "password"})


class ApiTokenUsageSerializer(serializers.Serializer):
    """A token's calls to one model through the OpenAI- and Ollama-compatible APIs."""

    model = serializers.CharField()
    calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    last_used_at = serializers.DateTimeField()


class ApiTokenSerializer(serializers.ModelSerializer):
    usage = ApiTokenUsageSerializer(many=True, read_only=True, help_text="Compatible-API usage, by model.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "usage"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100)
    expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650, allow_null=True)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class PasswordResetRequestSerializer(serializers.Serializer):
    email = StrictEmailField()


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = StrictCharField()
    token = StrictCharField()
    new_password = StrictCharField(write_only=True, style={"input_type": "password"})


class EmailVerifySerializer(serializers.Serializer):
    token = StrictCharField()


class AccountDeleteSerializer(serializers.Serializer):
    password = StrictCharField(write_only=True, style={"input_type": "password"})


class WaitlistJoinSerializer(serializers.Serializer):
    email = StrictEmailField()
    name = StrictCharField(max_length=150, required=False, allow_blank=True, default="")
    note = StrictCharField(max_length=1000, required=False, allow_blank=True, default="")


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
    name = StrictCharField(max_length=100)


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "joined_at"]
        read_only_fields = fields


class MemberInviteSerializer(serializers.Serializer):
    identifier = StrictCharField(max_length=254, help_text="Username or email address.")
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
    is_active = StrictBooleanField(required=False)
    is_staff = StrictBooleanField(required=False, help_text="Promote to (or demote from) staff.")


class AdminStatsSerializer(serializers.Serializer):
    users = serializers.DictField()
    teams = serializers.IntegerField()
    rooms = serializers.DictField()
    messages = serializers.DictField()
    tokens = serializers.DictField()
    streams_running = serializers.IntegerField()
    top_users_last_7_days = serializers.ListField(child=serializers.DictField())


class AdminUsersQuerySerializer(serializers.Serializer):
    """Query parameters of admin_users_list."""

    q = StrictCharField(required=False, allow_blank=True, max_length=254, default="")
    is_active = StrictCharField(required=False, allow_blank=True, max_length=10, allow_null=True, default=None)
    is_staff = StrictCharField(required=False, allow_blank=True, max_length=10, allow_null=True, default=None)


# --- the settings page ------------------------------------------------------------------------------


class StrictFieldsMixin:
    """Refuses keys the serializer does not know, so a misspelt setting is an error instead of a silent no-op."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictNumberMixin:
    """Only JSON numbers: strings such as "0.5" and booleans are refused instead of converted."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError("Must be a number.")
        return super().to_internal_value(data)


class StrictFloatField(StrictNumberMixin, serializers.FloatField):
    pass


class StrictIntegerField(StrictNumberMixin, serializers.IntegerField):
    pass


class ProfileUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    email = StrictEmailField(required=False)
    first_name = StrictCharField(required=False, allow_blank=True, max_length=150)
    last_name = StrictCharField(required=False, allow_blank=True, max_length=150)


class PasswordChangeSerializer(StrictFieldsMixin, serializers.Serializer):
    current_password = StrictCharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})
    new_password = StrictCharField(write_only=True, trim_whitespace=False, max_length=4096,
                                   style={"input_type": "password"})
    new_password_confirm = StrictCharField(required=False, write_only=True, trim_whitespace=False, max_length=4096,
                                           style={"input_type": "password"}, help_text="When given, must match.")
    revoke_tokens = StrictBooleanField(required=False, default=False,
                                       help_text="Also revoke every API token except the one making this call.")

    def validate(self, attrs: dict) -> dict:
        confirm = attrs.pop("new_password_confirm", None)
        if confirm is not None and confirm != attrs["new_password"]:
            raise serializers.ValidationError({"new_password_confirm": ["The two new passwords differ."]})
        return attrs


class PasswordChangedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    revoked_tokens = serializers.IntegerField()


class GenerationDefaultsSerializer(StrictFieldsMixin, serializers.Serializer):
    """The user's sampling defaults; null leaves a parameter to the server. Bounds match the chat options."""

    temperature = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_k = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    repeat_penalty = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=3.0)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=32768)


class PreferencesSerializer(serializers.Serializer):
    default_model = serializers.CharField(help_text="Model for new chats and chats naming none; empty: the server's.")
    system_prompt = serializers.CharField(help_text="Used when a chat has no system prompt of its own.")
    theme = serializers.ChoiceField(choices=THEMES)
    generation = GenerationDefaultsSerializer()


class PreferencesUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    default_model = StrictCharField(required=False, allow_blank=True, max_length=200)
    system_prompt = StrictCharField(required=False, allow_blank=True, max_length=20_000, trim_whitespace=False)
    theme = serializers.ChoiceField(choices=THEMES, required=False)
    generation = GenerationDefaultsSerializer(required=False)
