"""Content-Security-Policy for the app's own pages: scripts and styles only from this origin."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """Adds the CSP header to HTML pages; the API docs and Django admin bring their own inline scripts.

    Sync and async capable, so under ASGI a request never hops to a thread just to pass through it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self._add_header(request, self.get_response(request))

    async def _acall(self, request):
        return self._add_header(request, await self.get_response(request))

    @staticmethod
    def _add_header(request, response):
        if (
            settings.CSP_POLICY
            and "text/html" in response.get("Content-Type", "")
            and not request.path.startswith(tuple(settings.CSP_EXEMPT_PREFIXES))
        ):
            response.setdefault("Content-Security-Policy", settings.CSP_POLICY)
        return response
