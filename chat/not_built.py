"""Spec routes that later work will build (§3.3 chat contract).

Until then they exist, are documented, and answer 501 with the error envelope.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.errors import error_body

# (route under /api/v1/chat/, method, operation id, public?)
NOT_BUILT: list[tuple[str, str, str, bool]] = [
    ("analytics", "get", "chat_analytics_get", False),
    ("sessions/<str:chat_id>/analytics", "get", "chat_analytics_session", False),
    ("data/export-to-chat", "post", "chat_export_data", False),
    ("adaptive-router/feedback", "post", "chat_router_feedback", False),
    ("adaptive-router/stats", "get", "chat_router_stats", False),
    ("adaptive-router/explain", "get", "chat_router_explain", False),
    ("router/mode", "get", "chat_router_mode_get", False),
    ("router/mode", "post", "chat_router_mode_set", False),
    ("recursive-prompt/execute", "post", "chat_recursive_execute", False),
    ("recursive-prompt/stats", "get", "chat_recursive_stats", False),
    ("learning/patterns", "get", "chat_learning_patterns", False),
    ("learning/recommendations", "get", "chat_learning_recommendations", False),
    ("learning/recommendations/<str:recommendation_id>/accept", "post", "chat_learning_accept", False),
    ("learning/recommendations/<str:recommendation_id>/reject", "post", "chat_learning_reject", False),
    ("learning/optimal-model/<str:task_type>", "get", "chat_learning_optimal", False),
    ("learning/track-usage", "post", "chat_learning_track", False),
]

NOT_IMPLEMENTED = OpenApiResponse(description="Not built yet: {error: {code: not_implemented}}.")


def _make_handler(operation_id: str):
    """A fresh function per operation: extend_schema stores its settings on the function object."""

    def handler(self, request: Request, **kwargs) -> Response:
        return Response(
            error_body("not_implemented", f"{operation_id} is not built yet.", {"operation_id": operation_id}),
            status=501,
        )

    return handler


def _view_for(route: str, entries: list[tuple[str, str, str]], public: bool) -> type[APIView]:
    """One APIView per route, with a documented 501 handler per (method, operation id, tag)."""
    attrs: dict = {}
    if public:
        attrs["permission_classes"] = [permissions.AllowAny]
    for method, operation_id, tag in entries:
        handler = extend_schema(
            operation_id=operation_id, tags=[tag], request=None, responses={501: NOT_IMPLEMENTED}
        )(_make_handler(operation_id))
        attrs[method] = handler
    name = "NotBuilt_" + "_".join(op for _m, op, _p in entries)
    return type(name, (APIView,), attrs)


def _patterns(rows: list[tuple[str, str, str, str, bool]]) -> list:
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    public: dict[str, bool] = {}
    for route, method, operation_id, tag, is_public in rows:
        grouped.setdefault(route, []).append((method, operation_id, tag))
        public[route] = public.get(route, True) and is_public
    return [path(route, _view_for(route, entries, public[route]).as_view()) for route, entries in grouped.items()]


def not_built_urlpatterns() -> list:
    """The chat contract's unbuilt routes, mounted under /api/v1/chat/."""
    return _patterns([(r, m, op, "chat-public" if pub else "chat", pub) for r, m, op, pub in NOT_BUILT])

