from django.urls import path

from accounts import apis

auth_urlpatterns = [
    path("register", apis.RegisterApi.as_view(), name="auth-register"),
    path("login", apis.LoginApi.as_view(), name="auth-login"),
    path("logout", apis.LogoutApi.as_view(), name="auth-logout"),
    path("me", apis.MeApi.as_view(), name="auth-me"),
    path("preferences", apis.PreferencesApi.as_view(), name="auth-preferences"),
    path("password/change", apis.PasswordChangeApi.as_view(), name="auth-password-change"),
    path("tokens", apis.TokensApi.as_view(), name="auth-tokens"),
    path("tokens/<int:token_id>", apis.TokenDetailApi.as_view(), name="auth-token-detail"),
    path("password/reset", apis.PasswordResetRequestApi.as_view(), name="auth-password-reset"),
    path("password/reset/confirm", apis.PasswordResetConfirmApi.as_view(), name="auth-password-reset-confirm"),
    path("email/verify", apis.EmailVerifyApi.as_view(), name="auth-email-verify"),
    path("account/delete", apis.AccountDeleteApi.as_view(), name="auth-account-delete"),
    path("waitlist", apis.WaitlistJoinApi.as_view(), name="auth-waitlist"),
]

team_urlpatterns = [
    path("", apis.TeamsApi.as_view(), name="teams"),
    path("<int:team_id>/members", apis.TeamMembersApi.as_view(), name="team-members"),
    path("<int:team_id>/members/<int:user_id>", apis.TeamMemberDetailApi.as_view(), name="team-member-detail"),
]

admin_urlpatterns = [
    path("users", apis.AdminUsersApi.as_view(), name="admin-users"),
    path("users/<int:user_id>", apis.AdminUserDetailApi.as_view(), name="admin-user-detail"),
    path("stats", apis.AdminStatsApi.as_view(), name="admin-stats"),
]
