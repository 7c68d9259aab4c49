"""Probes and the health summary: public, never throttled, and `/healthz` never touches the database."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import IsStaff
from chatproject.pagination import LimitOffsetPagination, paginate
from chatproject.schema import error_response
from ops import probes, selectors, services
from ops.panic import is_panicking, panic_state
from ops.serializers import (
    AuditEventSerializer,
    AuditQuerySerializer,
    PanicStateSerializer,
    PanicTriggerResultSerializer,
    PanicTriggerSerializer,
)


class ProbeApi(APIView):
    """No authentication or throttles: an orchestrator probes every few seconds with no credentials."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []


class HealthzApi(ProbeApi):
    @extend_schema(operation_id="ops_healthz", tags=["operations"],
                   responses={200: inline_serializer("Alive", {"status": serializers.CharField()})})
    def get(self, request: Request) -> Response:
        """Alive: the process serves requests."""
        return Response({"status": "ok"})


class ReadyzApi(ProbeApi):
    @extend_schema(
        operation_id="ops_readyz", tags=["operations"],
        responses={
            (status, "application/json"): inline_serializer(f"Readiness{status}", {
                "status": serializers.CharField(help_text="ready or not_ready"),
                "failed": serializers.ListField(child=serializers.CharField()),
                "checks": serializers.DictField(help_text="database, channel_layer, model_backend: {ok, error?}"),
            })
            for status in (200, 503)
        },
    )
    def get(self, request: Request) -> Response:
        """Ready (200) or not (503, naming the failed checks): database, channel layer, a model backend."""
        result = async_to_sync(probes.readiness)()
        return Response(result, status=200 if result["status"] == "ready" else 503)


class HealthCheckApi(ProbeApi):
    @extend_schema(
        operation_id="chat_health_check", tags=["chat-public"],
        responses={200: inline_serializer("HealthSummary", {
            "status": serializers.CharField(help_text="ok, or degraded when no model backend answers"),
            "version": serializers.CharField(),
            "providers": serializers.ListField(child=serializers.DictField()),
            "active_streams": serializers.IntegerField(), "panic": serializers.BooleanField(),
        })},
    )
    def get(self, request: Request) -> Response:
        """The summary for people: version, each backend's state, replies generating now, panic."""
        providers = async_to_sync(probes.provider_states)()
        return Response({
            "status": "ok" if any(provider["ok"] for provider in providers) else "degraded",
            "version": settings.APP_VERSION,
            "providers": providers,
            "active_streams": probes.active_streams(),
            "panic": is_panicking(),
        })


@extend_schema(tags=["admin"])
class AuditListApi(APIView):
    """The audit trail of staff actions: read-only, for staff."""

    permission_classes = [permissions.IsAuthenticated, IsStaff]
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="audit_list", parameters=[AuditQuerySerializer],
                   responses=AuditEventSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = AuditQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return paginate(self, request, selectors.audit_events(**params.validated_data), AuditEventSerializer)


STAFF_ONLY = error_response("Staff only (code permission_denied).")


@extend_schema(tags=["chat"])
class PanicStatusApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(operation_id="chat_panic_status", responses={200: PanicStateSerializer, 403: STAFF_ONLY})
    def get(self, request: Request) -> Response:
        """Whether panic is on, why, since when and by whom; and what the last wipe deleted."""
        return Response(PanicStateSerializer(panic_state()).data)


@extend_schema(tags=["chat"])
class PanicTriggerApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(operation_id="chat_panic_trigger", request=PanicTriggerSerializer,
                   responses={200: PanicTriggerResultSerializer, 403: STAFF_ONLY})
    def post(self, request: Request) -> Response:
        """Stop every running reply, refuse new chat work with 423 until reset; `wipe_data` deletes all chat data
        and `unload_models` frees the models' memory.

        Users, teams, API tokens and the audit trail are kept. Audited.
        """
        data = PanicTriggerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.trigger_panic(actor=request.user, **data.validated_data)
        return Response({**PanicStateSerializer(outcome.state).data, "streams_stopped": outcome.streams_stopped,
                         "deleted": outcome.deleted, "unloaded": outcome.unloaded})


@extend_schema(tags=["chat"])
class PanicResetApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(operation_id="chat_panic_reset", request=None,
                   responses={200: PanicStateSerializer, 403: STAFF_ONLY})
    def post(self, request: Request) -> Response:
        """Let chat work through again. Audited."""
        return Response(PanicStateSerializer(services.reset_panic(actor=request.user)).data)
