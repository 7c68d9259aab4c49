"""Pages that are not part of the API."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    return redirect("signin" if get_user_model().objects.exists() else "signup")


@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest, room_id: str = "") -> HttpResponse:
    """The chat app; everything after the first paint comes from the API and the WebSocket."""
    return render(request, "app/chat.html", {"room_id": room_id})


@login_required
@ensure_csrf_cookie
def settings_page(request: HttpRequest) -> HttpResponse:
    """Profile, password, API tokens, chat defaults and theme; the page script saves each through the API."""
    return render(request, "settings.html")


def staff_page(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Anonymous visitors go to sign in; signed-in users who are not staff get a plain 403 page."""

    @login_required
    @ensure_csrf_cookie
    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        if not request.user.is_staff:
            return render(request, "ops/forbidden.html", status=403)
        return view(request)

    return guarded


@staff_page
def ops_performance_page(request: HttpRequest) -> HttpResponse:
    """Time to first token and tokens per second per model, over time and in the last minute."""
    return render(request, "ops/performance.html", {"ops_section": "performance"})


@staff_page
def ops_system_page(request: HttpRequest) -> HttpResponse:
    """Memory, CPU, temperatures, backends and readiness of this instance."""
    return render(request, "ops/system.html", {"ops_section": "system"})


@staff_page
def ops_panic_page(request: HttpRequest) -> HttpResponse:
    """The panic switch: its state, a guarded trigger (with an optional wipe) and reset."""
    return render(request, "ops/panic.html", {"ops_section": "panic"})


class ApiRootView(APIView):
    """The API's front door: where each group of endpoints starts, browsable in a web browser."""

    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []

    @extend_schema(operation_id="api_root", responses={200: OpenApiTypes.OBJECT}, tags=["meta"])
    def get(self, request: Request) -> Response:
        links = {
            "auth": "auth-me", "rooms": "rooms", "projects": "projects", "models": "chat-models",
            "search": "chat-search", "schema": "schema", "docs": "swagger-ui",
        }
        found = {}
        for label, name in links.items():
            try:
                found[label] = reverse(name, request=request)
            except NoReverseMatch:
                continue
        return Response({"version": "v1", "links": found})
