"""The Content-Security-Policy header for the app's HTML pages (Django 5.2 has no CSP middleware of its own)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """Sync and async capable, as Django's docs show, so an ASGI request never hops to a thread for it.

    The API docs and the Django admin bring their own inline scripts and are exempt.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.add_header(request, self.get_response(request))

    async def __acall__(self, request):
        return self.add_header(request, await self.get_response(request))

    @staticmethod
    def add_header(request, response):
        if (
            settings.CSP_POLICY
            and "text/html" in response.get("Content-Type", "")
            and not request.path.startswith(tuple(settings.CSP_EXEMPT_PREFIXES))
        ):
            response.setdefault("Content-Security-Policy", settings.CSP_POLICY)
        return response
