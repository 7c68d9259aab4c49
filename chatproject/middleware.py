"""Content-Security-Policy for the app's own pages: scripts and styles only from this origin."""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """Adds the CSP header to HTML pages; the API docs and Django admin bring their own inline scripts."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.CSP_POLICY
            and "text/html" in response.get("Content-Type", "")
            and not request.path.startswith(tuple(settings.CSP_EXEMPT_PREFIXES))
        ):
            response.setdefault("Content-Security-Policy", settings.CSP_POLICY)
        return response
