"""URL map: pages, the Django admin, the versioned API and its docs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.urls import admin_urlpatterns, auth_urlpatterns, team_urlpatterns
from accounts.views import verify_email_page
from chat.urls import chat_urlpatterns, project_urlpatterns, room_urlpatterns, session_urlpatterns
from chatproject.views import home

api_v1 = [
    path("auth/", include(auth_urlpatterns)),
    path("teams/", include(team_urlpatterns)),
    path("admin/", include(admin_urlpatterns)),
    path("rooms/", include(room_urlpatterns)),
    path("projects/", include(project_urlpatterns)),
    path("session/", include(session_urlpatterns)),
    path("chat/", include(chat_urlpatterns)),
]

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
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
    path("accounts/verify-email/<str:token>/", verify_email_page, name="verify-email"),
]

handler404 = "chatproject.errors.json_404"
handler500 = "chatproject.errors.json_500"
