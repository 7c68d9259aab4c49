"""Middleware that works in both of Django's modes, so ASGI requests stay on the event loop."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import clickjacking, common, csrf, security
from whitenoise.middleware import WhiteNoiseMiddleware


class _BothModes:
    """Sync and async capable, so under ASGI a request never hops to a thread just to pass through."""

    sync_capable = True
    async_capable = True

    def _set_mode(self, get_response) -> None:
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        return self._acall(request) if self.is_async else self._call(request)


class ContentSecurityPolicyMiddleware(_BothModes):
    """Adds the CSP header to HTML pages; the API docs and Django admin bring their own inline scripts."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._set_mode(get_response)

    def _call(self, request):
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


class StaticFilesMiddleware(_BothModes, WhiteNoiseMiddleware):
    """WhiteNoise, usable in an async middleware chain.

    WhiteNoise 6 is sync-only, and one sync-only middleware turns Django's whole ASGI chain sync: every API
    request (the SSE send among them) then hopped loop → thread → loop → thread. Static files are still
    served by WhiteNoise itself, from a worker thread; everything else passes straight through.
    """

    def __init__(self, get_response=None):
        super().__init__(get_response)
        self._set_mode(get_response)

    def _call(self, request):
        return WhiteNoiseMiddleware.__call__(self, request)

    async def _acall(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


class _OnTheLoop:
    """Run a Django middleware's hooks on the event loop instead of one thread hop per hook.

    Under ASGI, Django calls each `process_request`/`process_view`/`process_response` of its built-in
    middleware through sync_to_async: thirteen hops to a thread per request with our list, the largest
    cost of an SSE request before the view ran. The hooks below only read headers and cookies and set
    lazy attributes (no database or file access), so they run inline.
    """

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(_OnTheLoop, security.SecurityMiddleware):
    pass


class CommonMiddleware(_OnTheLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(_OnTheLoop, csrf.CsrfViewMiddleware):
    async def aprocess_view(self, request, callback, callback_args, callback_kwargs):
        return csrf.CsrfViewMiddleware.process_view(self, request, callback, callback_args, callback_kwargs)

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode:  # the handler adapts process_view by its kind: give it the coroutine
            self.process_view = self.aprocess_view


class AuthenticationMiddleware(_OnTheLoop, auth_middleware.AuthenticationMiddleware):
    def process_response(self, request, response):
        """Lets go of `request.user`/`auser` once the response is made: both are closures over the request, a
        reference cycle that kept every finished request for the cyclic garbage collector."""
        request.__dict__.pop("auser", None)
        request.__dict__.pop("user", None)
        return response


class MessageMiddleware(_OnTheLoop, messages_middleware.MessageMiddleware):
    def process_response(self, request, response):
        """Stores the messages, then lets go of the storage, which points back at the request: a reference
        cycle that kept every finished request for the cyclic garbage collector."""
        response = super().process_response(request, response)
        request.__dict__.pop("_messages", None)
        return response


class XFrameOptionsMiddleware(_OnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass


class SessionMiddleware(sessions_middleware.SessionMiddleware):
    """Sessions load lazily (the view's database thread reads them); only saving one needs the thread."""

    async def __acall__(self, request):
        self.process_request(request)
        response = await self.get_response(request)
        session = request.session
        if session.modified or (settings.SESSION_SAVE_EVERY_REQUEST and not session.is_empty()):
            return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return self.process_response(request, response)
