"""OpenAPI generation: every operation documents the error envelope for the errors it can answer.

`ApiAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) extends drf-spectacular's AutoSchema through its
public `get_operation` and `resolve_serializer`: after the stock operation is built it adds, where missing,
  - 400 for writes and for operations that take query (other than paging) or integer path parameters,
  - 413 for writes (a body over DATA_UPLOAD_MAX_MEMORY_SIZE),
  - 401 and 403 for operations that need a login,
  - 404 for paths with an id in them,
  - 429 (with Retry-After) for throttled views,
each answering `{"error": {"code", "message", "details"}}`. A view declares the others it can answer (409,
413, 423, 503 ...) in `extend_schema(responses=...)`, with or without a body; any 4xx or 5xx declared without
a body gets the envelope too (`error_response` builds such a declaration).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

WRITE_METHODS = {"POST", "PUT", "PATCH"}

DEFAULT_DESCRIPTIONS = {
    "400": "Invalid input (code `validation_error` or a more specific one); `details` names the fields.",
    "401": "No valid session or Bearer token (code `not_authenticated`).",
    "403": "Not allowed (code `permission_denied` or a more specific one).",
    "404": "No such object, or not one of yours (code `not_found`).",
    "409": "Clashes with the current state (code `conflict` or a more specific one).",
    "413": "The request body is over the size limit (code `payload_too_large`).",
    "423": "Chat work is refused while the panic switch is on (code `panic`).",
    "429": "Rate limited (code `throttled`); Retry-After says how many seconds to wait.",
    "503": "A backend is down (code `service_unavailable`).",
}


class ApiErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. validation_error, not_found.")
    message = serializers.CharField(help_text="A human-readable sentence.")
    details = serializers.DictField(help_text="Field errors or other particulars; may be empty.")


class ApiErrorSerializer(serializers.Serializer):
    """The error envelope every API error answers with."""

    error = ApiErrorBodySerializer()


def error_response(description: str) -> OpenApiResponse:
    """Declare an error status in `extend_schema(responses=...)`: the envelope, with this description."""
    return OpenApiResponse(response=ApiErrorSerializer, description=description)


class ApiAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        envelope = self.resolve_serializer(ApiErrorSerializer, "response").ref
        responses = operation.setdefault("responses", {})
        for code, response in responses.items():
            if code[0] in "45" and "content" not in response:
                response["content"] = {"application/json": {"schema": envelope}}
        for code in self.error_codes(operation):
            if code not in responses:
                responses[code] = {
                    "description": DEFAULT_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": envelope}},
                }
            if code == "429":
                responses[code].setdefault("headers", {})["Retry-After"] = {
                    "schema": {"type": "integer"}, "description": "Seconds to wait before trying again.",
                }
        return operation

    def error_codes(self, operation: dict) -> list[str]:
        """The generic errors this operation can answer, judged from the view and the stock operation."""
        codes = []
        parameters = operation.get("parameters", [])
        paging = self.paging_parameters()
        takes_input = self.method in WRITE_METHODS or any(
            (p.get("in") == "query" and p.get("name") not in paging)
            or (p.get("in") == "path" and p.get("schema", {}).get("type") == "integer")
            for p in parameters
        )
        if takes_input:
            codes.append("400")
        security = operation.get("security")
        if security and {} not in security:
            codes += ["401", "403"]
        if any(p.get("in") == "path" for p in parameters):
            codes.append("404")
        if self.method in WRITE_METHODS:
            codes.append("413")
        if self.method in WRITE_METHODS and any(
            getattr(permission, "refused_during_panic", False) for permission in self.view.get_permissions()
        ):
            codes.append("423")
        if self.view.get_throttles():
            codes.append("429")
        return codes

    def paging_parameters(self) -> set[str]:
        """Query parameters the view's paginator reads; it answers bad values with its defaults, not a 400."""
        pagination_class = getattr(self.view, "pagination_class", None)
        if pagination_class is None:
            return set()
        paginator = pagination_class()
        names = ("limit_query_param", "offset_query_param", "page_query_param", "page_size_query_param",
                 "cursor_query_param")
        return {getattr(paginator, name) for name in names if getattr(paginator, name, None)}
