"""Performance endpoints under /api/v1/chat/performance/: staff only, except thermal (any signed-in user).

Every user's replies are in the samples, so current, stats and history are operator data; the host's
temperatures and CPU frequency name no user, so anyone signed in may check for throttling.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import IsStaff
from ops import performance, performance_selectors, system
from ops.performance_serializers import (
    CurrentSerializer,
    HistoryQuerySerializer,
    HistorySerializer,
    ResetSerializer,
    StatsQuerySerializer,
    StatsSerializer,
    ThermalSerializer,
)


class StaffApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]


class PerformanceCurrentApi(StaffApi):
    @extend_schema(operation_id="chat_performance_current", tags=["chat"], responses=CurrentSerializer)
    def get(self, request: Request) -> Response:
        """The last minute, live: replies finished and their mean timings, replies running now, the host."""
        body = performance_selectors.current()
        body["system"] = performance.recent_system_sample()
        return Response(CurrentSerializer(body).data)


class PerformanceStatsApi(StaffApi):
    @extend_schema(operation_id="chat_performance_stats", tags=["chat"], parameters=[StatsQuerySerializer],
                   responses=StatsSerializer)
    def get(self, request: Request) -> Response:
        """Per model over the last `window` hours: count, error rate, p50/p95 time to first token and tokens/s."""
        params = StatsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        stats = performance_selectors.stats(hours=params.validated_data["window"],
                                            model=params.validated_data["model"])
        return Response(StatsSerializer(stats).data)


class PerformanceHistoryApi(StaffApi):
    @extend_schema(operation_id="chat_performance_history", tags=["chat"], parameters=[HistoryQuerySerializer],
                   responses=HistorySerializer)
    def get(self, request: Request) -> Response:
        """Per model, hourly or daily buckets over the last `days`: replies, errors, mean timings; the host too."""
        params = HistoryQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(HistorySerializer(performance_selectors.history(**params.validated_data)).data)


class PerformanceThermalApi(APIView):
    @extend_schema(operation_id="chat_performance_thermal", tags=["chat"], responses=ThermalSerializer)
    def get(self, request: Request) -> Response:
        """Temperatures and CPU frequency against its maximum; says "not available" where the OS exposes none."""
        return Response(ThermalSerializer(system.thermal()).data)


class PerformanceResetApi(StaffApi):
    @extend_schema(operation_id="chat_performance_reset", tags=["chat"], request=None, responses=ResetSerializer)
    def post(self, request: Request) -> Response:
        """Delete every performance and system sample (audited with the counts before and after)."""
        return Response(ResetSerializer(performance.reset_performance(actor=request.user)).data)
