"""Thin HTTP views for accounts, tokens, teams and user administration."""

from __future__ import annotations

from django.contrib.auth import login as django_login
from django.contrib.auth import logout as django_logout
from django.contrib.auth import update_session_auth_hash
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiToken
from accounts.serializers import (
    AccountDeleteSerializer,
    AdminStatsSerializer,
    AdminUserSerializer,
    AdminUsersQuerySerializer,
    AdminUserUpdateSerializer,
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuthResultSerializer,
    DetailSerializer,
    EmailVerifySerializer,
    InviteResultSerializer,
    LoginSerializer,
    MemberInviteSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    PasswordChangedSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetRequestSerializer,
    PreferencesSerializer,
    PreferencesUpdateSerializer,
    ProfileUpdateSerializer,
    RegisterSerializer,
    TeamCreateSerializer,
    TeamSerializer,
    UserSerializer,
    WaitlistEntrySerializer,
    WaitlistJoinSerializer,
)
from chatproject.pagination import LimitOffsetPagination, paginate
from chatproject.schema import error_response
from chatproject.throttling import AuthRateThrottle, PerIPRateThrottle
from chatproject.validation import validated_id


class PublicAuthView(APIView):
    """Credential endpoints: no login needed, no session CSRF, tighter per-IP throttle."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [PerIPRateThrottle, AuthRateThrottle]


@extend_schema(tags=["auth"])
class RegisterApi(PublicAuthView):
    @extend_schema(
        operation_id="auth_register",
        request=RegisterSerializer,
        responses={
            201: AuthResultSerializer,
            403: error_response("Sign-up is closed (code signup_closed)."),
            409: error_response("The username or email is taken (codes username_taken, email_taken)."),
        },
    )
    def post(self, request: Request) -> Response:
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.register_user(**data.validated_data)
        django_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": UserSerializer(user).data, "token": token}, status=status.HTTP_201_CREATED)


@extend_schema(tags=["auth"])
class LoginApi(PublicAuthView):
    @extend_schema(
        operation_id="auth_login",
        request=LoginSerializer,
        responses={
            200: AuthResultSerializer,
            401: error_response("Wrong username/email or password (code invalid_credentials)."),
            403: error_response("The account is deactivated (code account_inactive)."),
            429: error_response(
                "Too many attempts from this address (code throttled), or too many failed logins for this "
                "account (code too_many_login_failures); Retry-After says how many seconds to wait."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.authenticate_credentials(
            identifier=data.validated_data["username"], password=data.validated_data["password"]
        )
        django_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        agent = request.headers.get("User-Agent", "")[:60]
        _token, raw = services.issue_sign_in_token(user=user, name=f"login {agent}".strip())
        return Response({"user": UserSerializer(user).data, "token": raw})


@extend_schema(tags=["auth"])
class LogoutApi(APIView):
    @extend_schema(operation_id="auth_logout", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            services.revoke_api_token(token=request.auth)
        django_logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"])
class MeApi(APIView):
    @extend_schema(operation_id="auth_me", responses=UserSerializer)
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)

    @extend_schema(
        operation_id="auth_me_update",
        request=ProfileUpdateSerializer,
        responses={200: UserSerializer, 400: error_response("Field errors in details, e.g. a taken email.")},
        description="Change the email address (verified again) and the display names; the username is fixed.",
    )
    def patch(self, request: Request) -> Response:
        data = ProfileUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(UserSerializer(services.update_profile(user=request.user, **data.validated_data)).data)


@extend_schema(tags=["auth"])
class PasswordChangeApi(APIView):
    throttle_classes = [PerIPRateThrottle, AuthRateThrottle]

    @extend_schema(
        operation_id="auth_password_change",
        request=PasswordChangeSerializer,
        responses={200: PasswordChangedSerializer, 400: error_response("Wrong current password or a weak new one.")},
        description="This session stays signed in; other browser sessions end. API tokens stay valid unless "
        "`revoke_tokens` is true.",
    )
    def post(self, request: Request) -> Response:
        data = PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        keep = request.auth if isinstance(request.auth, ApiToken) else None
        revoked = services.change_password(user=request.user, keep_token=keep, **data.validated_data)
        if keep is None:  # signed in by session cookie: keep this session valid under the new password hash
            update_session_auth_hash(request, request.user)
        return Response({"detail": "Password changed.", "revoked_tokens": revoked})


@extend_schema(tags=["auth"])
class PreferencesApi(APIView):
    @extend_schema(operation_id="auth_preferences_get", responses=PreferencesSerializer)
    def get(self, request: Request) -> Response:
        return Response(selectors.preferences_of(request.user))

    @extend_schema(
        operation_id="auth_preferences_update",
        request=PreferencesUpdateSerializer,
        responses={200: PreferencesSerializer, 400: error_response("Field errors in details.")},
        description="A partial update; inside `generation`, null gives a parameter back to the server's default.",
    )
    def patch(self, request: Request) -> Response:
        data = PreferencesUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.update_preferences(user=request.user, changes=data.validated_data))


@extend_schema(tags=["auth"])
class TokensApi(APIView):
    pagination_class = LimitOffsetPagination
    @extend_schema(operation_id="auth_tokens_list", responses=ApiTokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginate(self, request, selectors.tokens_of(request.user), ApiTokenSerializer)

    @extend_schema(
        operation_id="auth_token_create", request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer}
    )
    def post(self, request: Request) -> Response:
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.create_api_token(user=request.user, **data.validated_data)
        token.token = raw
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["auth"])
class TokenDetailApi(APIView):
    @extend_schema(operation_id="auth_token_revoke", responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        services.revoke_api_token(token=selectors.get_token(user=request.user, token_id=token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"])
class PasswordResetRequestApi(PublicAuthView):
    @extend_schema(
        operation_id="auth_password_reset_request",
        request=PasswordResetRequestSerializer,
        responses={202: DetailSerializer},
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.request_password_reset(email=data.validated_data["email"])
        return Response(
            {"detail": "If an account uses that address, a reset link is on its way."}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema(tags=["auth"])
class PasswordResetConfirmApi(PublicAuthView):
    @extend_schema(
        operation_id="auth_password_reset_confirm", request=PasswordResetConfirmSerializer, responses=DetailSerializer
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.confirm_password_reset(**data.validated_data)
        return Response({"detail": "Password changed; sign in with the new one."})


@extend_schema(tags=["auth"])
class EmailVerifyApi(PublicAuthView):
    @extend_schema(operation_id="auth_email_verify", request=EmailVerifySerializer, responses=UserSerializer)
    def post(self, request: Request) -> Response:
        data = EmailVerifySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(UserSerializer(services.verify_email(token=data.validated_data["token"])).data)


@extend_schema(tags=["auth"])
class AccountDeleteApi(APIView):
    @extend_schema(operation_id="auth_account_delete", request=AccountDeleteSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        data = AccountDeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.delete_account(user=request.user, password=data.validated_data["password"])
        django_logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"])
class WaitlistJoinApi(PublicAuthView):
    @extend_schema(
        operation_id="auth_waitlist_join",
        request=WaitlistJoinSerializer,
        responses={
            201: WaitlistEntrySerializer,
            409: error_response("No waitlist here, or the email has an account (waitlist_closed, email_taken)."),
        },
    )
    def post(self, request: Request) -> Response:
        data = WaitlistJoinSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.join_waitlist(**data.validated_data)
        return Response(WaitlistEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


# --- teams -----------------------------------------------------------------------------------------


@extend_schema(tags=["teams"])
class TeamsApi(APIView):
    pagination_class = LimitOffsetPagination
    @extend_schema(operation_id="teams_list", responses=TeamSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginate(self, request, selectors.teams_of(request.user), TeamSerializer)

    @extend_schema(operation_id="teams_create", request=TeamCreateSerializer, responses={201: TeamSerializer})
    def post(self, request: Request) -> Response:
        data = TeamCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.create_team(user=request.user, name=data.validated_data["name"])
        team = selectors.teams_of(request.user).get(pk=team.pk)
        return Response(TeamSerializer(team, context={"request": request}).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["teams"])
class TeamMembersApi(APIView):
    pagination_class = LimitOffsetPagination
    @extend_schema(operation_id="team_members_list", responses=MemberSerializer(many=True))
    def get(self, request: Request, team_id: int) -> Response:
        team = selectors.get_team_for_member(user=request.user, team_id=team_id)
        return paginate(self, request, selectors.team_members(team), MemberSerializer)

    @extend_schema(
        operation_id="team_members_invite",
        request=MemberInviteSerializer,
        responses={
            201: InviteResultSerializer,
            202: InviteResultSerializer,
            409: error_response("Already a member (code already_member)."),
        },
        description="Adds an existing user at once (201) or emails an invite to a new address (202).",
    )
    def post(self, request: Request, team_id: int) -> Response:
        team = selectors.get_team_for_member(user=request.user, team_id=team_id)
        data = MemberInviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership, _raw = services.invite_member(team=team, actor=request.user, **data.validated_data)
        if membership is not None:
            return Response({"status": "added", "member": MemberSerializer(membership).data}, status=201)
        return Response({"status": "invited", "email": data.validated_data["identifier"]}, status=202)


@extend_schema(tags=["teams"])
class TeamMemberDetailApi(APIView):
    @extend_schema(
        operation_id="team_member_update",
        request=MemberUpdateSerializer,
        responses={200: MemberSerializer, 409: error_response("A team needs a founder (code last_founder).")},
    )
    def patch(self, request: Request, team_id: int, user_id: int) -> Response:
        team = selectors.get_team_for_member(user=request.user, team_id=team_id)
        membership = selectors.get_membership(team=team, user_id=user_id)
        data = MemberUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.update_member_role(membership=membership, actor=request.user, **data.validated_data)
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="team_member_remove",
        responses={204: None, 409: error_response("A team needs at least one founder (code last_founder).")},
    )
    def delete(self, request: Request, team_id: int, user_id: int) -> Response:
        team = selectors.get_team_for_member(user=request.user, team_id=team_id)
        membership = selectors.get_membership(team=team, user_id=user_id)
        services.remove_member(membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- admin -----------------------------------------------------------------------------------------


class IsStaff(permissions.BasePermission):
    message = "Staff only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


@extend_schema(tags=["admin"])
class AdminUsersApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]
    pagination_class = LimitOffsetPagination

    @extend_schema(
        operation_id="admin_users_list",
        parameters=[
            OpenApiParameter("q", str, description="Search username and email."),
            OpenApiParameter("is_active", bool),
            OpenApiParameter("is_staff", bool),
        ],
        responses=AdminUserSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        params = AdminUsersQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        qs = selectors.admin_users(**params.validated_data)
        return paginate(self, request, qs, AdminUserSerializer)


@extend_schema(tags=["admin"])
class AdminUserDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(
        operation_id="admin_user_update",
        request=AdminUserUpdateSerializer,
        responses={
            200: AdminUserSerializer,
            404: OpenApiResponse(description="No such user"),
            409: error_response("You cannot deactivate or demote yourself (self_deactivation, self_demotion)."),
        },
    )
    def patch(self, request: Request, user_id: int) -> Response:
        user = selectors.admin_users().filter(pk=validated_id(user_id, "user_id")).first()
        if user is None:
            raise NotFound("User not found.")
        data = AdminUserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.admin_update_user(actor=request.user, user=user, changes=data.validated_data)
        return Response(AdminUserSerializer(selectors.admin_users().get(pk=user.pk)).data)


@extend_schema(tags=["admin"])
class AdminStatsApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(operation_id="admin_stats", responses=AdminStatsSerializer)
    def get(self, request: Request) -> Response:
        return Response(selectors.usage_stats())

