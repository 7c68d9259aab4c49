"""URL map: pages, the Django admin, the versioned API and its docs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts import views as account_views
from accounts.urls import admin_urlpatterns, auth_urlpatterns, team_urlpatterns
from chat.urls import chat_urlpatterns, project_urlpatterns, room_urlpatterns, session_urlpatterns
from chatproject.views import (
    ApiRootView,
    chat_page,
    home,
    ops_panic_page,
    ops_performance_page,
    ops_system_page,
    settings_page,
)
from compat.urls import ollama_urlpatterns, openai_urlpatterns
from models_mgmt.views import ops_models_page
from ops.apis import AuditListApi, HealthzApi, ReadyzApi
from ops.metrics_api import MetricsApi

api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("auth/", include(auth_urlpatterns)),
    path("teams/", include(team_urlpatterns)),
    path("admin/audit", AuditListApi.as_view(), name="audit-list"),
    path("admin/", include(admin_urlpatterns)),
    path("rooms/", include(room_urlpatterns)),
    path("projects/", include(project_urlpatterns)),
    path("session/", include(session_urlpatterns)),
    path("chat/", include(chat_urlpatterns)),
]

urlpatterns = [
    path("", home, name="home"),
    path("chat/", chat_page, name="chat"),
    path("chat/<str:room_id>/", chat_page, name="chat-room"),
    path("settings/", settings_page, name="settings"),
    path("ops/performance/", ops_performance_page, name="ops-performance"),
    path("ops/models/", ops_models_page, name="ops-models"),
    path("ops/system/", ops_system_page, name="ops-system"),
    path("ops/panic/", ops_panic_page, name="ops-panic"),
    path("signin/", account_views.signin_page, name="signin"),
    path("signup/", account_views.signup_page, name="signup"),
    path("signout/", account_views.signout, name="signout"),
    path("password-reset/", account_views.password_reset_page, name="password-reset"),
    path("admin/", admin.site.urls),
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/accounts/reset/done/"),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("accounts/verify-email/<str:token>/", account_views.verify_email_page, name="verify-email"),
    path("v1/", include(openai_urlpatterns)),
    path("ollama/api/", include(ollama_urlpatterns)),
]

handler400 = "chatproject.errors.json_400"
handler404 = "chatproject.errors.json_404"
handler500 = "chatproject.errors.json_500"
