"""The Content-Security-Policy header for the app's HTML pages (Django 5.2 has no CSP middleware of its own),
and the request metrics behind `/metrics`."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest

from ops import metrics, performance


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


class MetricsMiddleware:
    """Counts and times every request by its URL pattern (never the raw path), for `/metrics`.

    First in MIDDLEWARE so the time covers the whole stack; sync and async capable like the one above.
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
        started = time.perf_counter()
        response = self.get_response(request)
        self.observe(request, response, started)
        return response

    async def __acall__(self, request):
        if isinstance(request, ASGIRequest):
            # The server's own loop, known once a request runs on it (not a sync caller's one-request loop).
            performance.ensure_system_sampler()
        started = time.perf_counter()
        response = await self.get_response(request)
        self.observe(request, response, started)
        return response

    @staticmethod
    def observe(request, response, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            route = match.route or match.view_name or "unnamed"
        elif request.path.startswith(settings.STATIC_URL):
            route = "static"
        else:
            route = "unmatched"
        metrics.observe_http(route=route, method=request.method or "", status=response.status_code,
                             seconds=time.perf_counter() - started)
