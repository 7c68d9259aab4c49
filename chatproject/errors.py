"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An API error with an explicit status, machine code and optional details."""

    def __init__(self, message: str, *, code: str, status_code: int = 400, details: dict | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.details = details or {}


class Conflict(ApiError):
    """409: the request clashes with the current state (a limit, a duplicate)."""

    def __init__(self, message: str, *, code: str = "conflict", details: dict | None = None):
        super().__init__(message, code=code, status_code=status.HTTP_409_CONFLICT, details=details)


def error_body(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    """Build the error envelope every client can rely on."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


_DEFAULT_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    423: "locked",
    429: "throttled",
    503: "service_unavailable",
}


def _first_message(detail: Any) -> str:
    """Pull the first human-readable message out of DRF's nested error detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def payload_too_large() -> ApiError:
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ApiError(
        f"The request body is larger than the {limit}-byte limit.",
        code="payload_too_large",
        status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        details={"limit_bytes": limit},
    )


def _is_too_big(exc: BaseException) -> bool:
    """Django's RequestDataTooBig, raised as such or wrapped by a parser (DRF turns parser errors into ParseError)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, RequestDataTooBig):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


# Seconds a client is told to wait after a 429 that names no time of its own (a limit on running replies).
DEFAULT_RETRY_AFTER_SECONDS = 5


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Wrap DRF's handler so every error answers in the envelope, keeping headers such as Retry-After."""
    if isinstance(exc, (RequestDataTooBig, exceptions.ParseError)) and _is_too_big(exc):
        exc = payload_too_large()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    status_code = response.status_code
    if isinstance(exc, ApiError):
        code, message, details = exc.error_code, str(exc.detail), exc.details
    elif isinstance(exc, exceptions.ValidationError):
        code = "validation_error"
        message = _first_message(exc.detail)
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    else:
        detail = getattr(exc, "detail", "")
        code = getattr(detail, "code", None) or _DEFAULT_CODES.get(status_code, "error")
        if isinstance(exc, exceptions.Throttled):
            code = "throttled"
        message = _first_message(detail) if detail else response.status_text
        details = {"retry_after": exc.wait} if isinstance(exc, exceptions.Throttled) and exc.wait else {}
    if status_code == 429 and "Retry-After" not in response:  # a limit that is not a throttle: e.g. streams
        response["Retry-After"] = str(details.get("retry_after") or DEFAULT_RETRY_AFTER_SECONDS)
    response.data = error_body(str(code), message, details)
    return response


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Django's 400s (a SuspiciousOperation outside DRF) in the API's error shape; an oversized body is a 413."""
    if exception is not None and _is_too_big(exception):
        error = payload_too_large()
        return JsonResponse(error_body(error.error_code, str(error.detail), error.details), status=error.status_code)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Answer unknown URLs with the error shape their clients parse: OpenAI's under /v1/, Ollama's under
    /ollama/, the API's own elsewhere."""
    if request.path.startswith("/v1/"):
        message = f"Invalid URL ({request.method} {request.path})"
        return JsonResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                       "code": None}}, status=404)
    if request.path.startswith("/ollama/"):
        return JsonResponse({"error": f"404 page not found: {request.path}"}, status=404)
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_500(request: HttpRequest) -> JsonResponse:
    """Answer crashes with the API's error shape and no internals."""
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
