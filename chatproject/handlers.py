"""Django's ASGI handler, without a reference cycle holding each finished request."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler


class ChatASGIHandler(ASGIHandler):
    """Django's handler, whose disconnect listener returns instead of raising when the client goes away.

    Daphne sends `http.disconnect` as soon as a response is complete, so Django's listener raised
    `RequestAborted` at the end of every request. Its traceback holds the handler's frame, which holds the
    task that holds the exception: a reference cycle that kept the whole request (request, response, session,
    DRF objects, about 250 objects a request) for the cyclic garbage collector, whose collections then took
    10-20 ms each, several a second under load. On Django 5.2 (pinned) the handler treats a listener that
    returned exactly like one that raised `RequestAborted`: a request still being processed is cancelled
    either way, which tests/test_handlers.py checks.
    """

    async def listen_for_disconnect(self, receive):
        message = await receive()
        if message["type"] != "http.disconnect":
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")
