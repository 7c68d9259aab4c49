"""WebSocket auth: `Authorization: Bearer` (clients that can set headers), `?token=` (browsers' WebSocket API
cannot), or the session cookie."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from accounts.authentication import user_for_raw_token


@database_sync_to_async
def _resolve(raw: str):
    return user_for_raw_token(raw)


def raw_token_of(scope) -> str:
    """The Bearer header wins over `?token=`; either keeps the token out of the cookie's way."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            keyword, _, raw = value.decode("latin-1").partition(" ")
            if keyword.lower() == "bearer":
                return raw.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [""])[0]


class TokenAuthMiddleware(BaseMiddleware):
    """A valid token wins over the cookie session; an invalid one leaves the user anonymous.

    The token's id goes into the scope as `auth_token_id`, so revoking that token ends this socket.
    """

    async def __call__(self, scope, receive, send):
        raw = raw_token_of(scope)
        if raw:
            resolved = await _resolve(raw)
            user, token = resolved if resolved else (AnonymousUser(), None)
            scope = dict(scope, user=user, auth_token_id=token.pk if token else None)
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - mirrors Channels' AuthMiddlewareStack name
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
