"""WebSocket auth: the session cookie (browsers) or `?token=` (clients that cannot set headers)."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from accounts.authentication import user_for_raw_token


@database_sync_to_async
def _user_from_token(raw: str):
    resolved = user_for_raw_token(raw)
    return resolved[0] if resolved else None


class QueryTokenAuthMiddleware(BaseMiddleware):
    """A valid `?token=` wins over the cookie session; an invalid one leaves the user anonymous."""

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode())
        raw = (query.get("token") or [""])[0]
        if raw:
            from django.contrib.auth.models import AnonymousUser

            user = await _user_from_token(raw)
            scope = dict(scope, user=user or AnonymousUser())
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - mirrors Channels' AuthMiddlewareStack name
    return AuthMiddlewareStack(QueryTokenAuthMiddleware(inner))
