"""`/metrics`: the Prometheus text format, for loopback clients (by default) or holders of `METRICS_TOKEN`."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from chatproject.schema import error_response
from ops import metrics

METRICS_AUTH = "metrics-token"


class MetricsTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <METRICS_TOKEN>`; a scraper is no user, so API tokens and sessions do not apply."""

    def authenticate(self, request: Request):
        expected = settings.METRICS_TOKEN
        parts = get_authorization_header(request).split()
        if not expected or len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        if not hmac.compare_digest(parts[1], expected.encode()):
            raise exceptions.AuthenticationFailed("Invalid metrics token.")
        return AnonymousUser(), METRICS_AUTH

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="metrics"'


class MetricsTokenScheme(OpenApiAuthenticationExtension):
    """Defined beside the class it documents: the URL map imports this module before any schema is built."""

    target_class = MetricsTokenAuthentication
    name = "metricsToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "The METRICS_TOKEN setting (not an API token)."}


def is_loopback_client(request: Request) -> bool:
    """The client address as the throttles see it (X-Forwarded-For only as far as TRUSTED_PROXY_COUNT says)."""
    try:
        address = ipaddress.ip_address(BaseThrottle().get_ident(request))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class MetricsAccess(permissions.BasePermission):
    message = "Metrics are served to loopback clients or with the metrics token."

    def has_permission(self, request: Request, view) -> bool:
        if request.auth == METRICS_AUTH:
            return True
        return settings.METRICS_LOOPBACK_OPEN and is_loopback_client(request)


class MetricsApi(APIView):
    """Not throttled: a scraper asks every few seconds."""

    authentication_classes = [MetricsTokenAuthentication]
    permission_classes = [MetricsAccess]
    throttle_classes: list = []

    def perform_content_negotiation(self, request: Request, force: bool = False):
        """Errors are JSON whatever a scraper accepts; the metrics themselves bypass the renderers."""
        return super().perform_content_negotiation(request, force=True)

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> None:
        """401 (asking for the token) only where a token is configured; otherwise nothing would help: 403."""
        if settings.METRICS_TOKEN:
            raise exceptions.NotAuthenticated("Send Authorization: Bearer <METRICS_TOKEN>.")
        raise exceptions.PermissionDenied(message)

    @extend_schema(
        operation_id="ops_metrics", tags=["operations"], auth=[{"metricsToken": []}, {}],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="The Prometheus text format."),
            401: error_response("A metrics token is configured and none, or a wrong one, was sent."),
            403: error_response("Not a loopback client, and no metrics token is configured."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        """Prometheus metrics of every worker: HTTP, WebSockets, replies, GenAI timings and tokens, panic."""
        body, content_type = metrics.exposition()
        return HttpResponse(body, content_type=content_type)
