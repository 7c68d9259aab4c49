"""Pages that are not part of the API."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie


def home(request: HttpRequest) -> HttpResponse:
    return redirect("chat" if request.user.is_authenticated else "signin")


@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest, room_id: str = "") -> HttpResponse:
    """The chat app; everything after the first paint comes from the API and the WebSocket."""
    return render(request, "app/chat.html", {"room_id": room_id})


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
