"""Middleware that works in both of Django's modes, so ASGI requests stay on the event loop."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


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


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, usable in an async middleware chain.

    WhiteNoise 6 is sync-only, and one sync-only middleware turns Django's whole ASGI chain sync: every API
    request (the SSE send among them) then hopped loop → thread → loop → thread. Static files are still
    served by WhiteNoise itself, from a worker thread; everything else passes straight through.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None):
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
