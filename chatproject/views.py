"""Plain pages that are not part of the API."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    """Landing page linking to the API docs until the chat UI lands."""
    return render(request, "home.html")
