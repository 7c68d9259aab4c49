"""Bearer token authentication against hashed API tokens."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, hash_secret


def user_for_raw_token(raw: str) -> tuple[object, ApiToken] | None:
    """Resolve a raw token to (user, token) or None; used by REST and WebSocket auth alike."""
    if not raw:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_secret(raw)).first()
    if token is None or token.is_expired or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`; a missing header falls through to session auth."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header; use 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Token contains invalid characters.") from exc
        resolved = user_for_raw_token(raw)
        if resolved is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return resolved

    def authenticate_header(self, request) -> str:
        return self.keyword
