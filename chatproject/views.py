"""Pages that are not part of the API."""

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
