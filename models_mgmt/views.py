"""The staff Models page: a template whose script drives the model management API with the session cookie."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chatproject.views import staff_page


@staff_page
def ops_models_page(request: HttpRequest) -> HttpResponse:
    """The catalogue with live state, hot slots, each Ollama server's controls and the configuration mode."""
    return render(request, "ops/models.html", {"ops_section": "models"})
