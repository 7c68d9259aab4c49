"""The project's own middleware: a request id on every request, request metrics behind `/metrics`, and the
Content-Security-Policy header for the app's HTML pages (Django 5.2 has no CSP middleware of its own)."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest

from chatproject.logs import REQUEST_ID_HEADER, bind_request_id
from ops import metrics, performance


class SyncAndAsyncMiddleware:
    """Sync and async capable, as Django's docs show, so an ASGI request never hops to a thread for it.

    A subclass says what happens before the rest of the stack (`before`, whose result is handed to `after`) and
    what happens to the response (`after`).
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
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def __acall__(self, request):
        state = self.before(request)
        return self.after(request, await self.get_response(request), state)

    def before(self, request) -> Any:
        return None

    def after(self, request, response, state: Any):
        return response


class RequestIdMiddleware(SyncAndAsyncMiddleware):
    """Binds the caller's `X-Request-ID` (or a new one) to the request's log lines and echoes it back."""

    def before(self, request) -> str:
        return bind_request_id(request.headers.get(REQUEST_ID_HEADER))

    def after(self, request, response, state: str):
        response[REQUEST_ID_HEADER] = state
        return response


class MetricsMiddleware(SyncAndAsyncMiddleware):
    """Counts and times every request by its URL pattern (never the raw path), for `/metrics`.

    Early in MIDDLEWARE so the time covers the whole stack.
    """

    async def __acall__(self, request):
        if isinstance(request, ASGIRequest):
            # The server's own loop, known once a request runs on it (not a sync caller's one-request loop).
            performance.ensure_system_sampler()
        return await super().__acall__(request)

    def before(self, request) -> float:
        return time.perf_counter()

    def after(self, request, response, state: float):
        match = getattr(request, "resolver_match", None)
        if match is not None:
            route = match.route or match.view_name or "unnamed"
        elif request.path.startswith(settings.STATIC_URL):
            route = "static"
        else:
            route = "unmatched"
        metrics.observe_http(route=route, method=request.method or "", status=response.status_code,
                             seconds=time.perf_counter() - state)
        return response


class ContentSecurityPolicyMiddleware(SyncAndAsyncMiddleware):
    """The API docs and the Django admin bring their own inline scripts and are exempt."""

    def after(self, request, response, state: Any):
        if (
            settings.CSP_POLICY
            and "text/html" in response.get("Content-Type", "")
            and not request.path.startswith(tuple(settings.CSP_EXEMPT_PREFIXES))
        ):
            response.setdefault("Content-Security-Policy", settings.CSP_POLICY)
        return response
