"""Errors in each compatible API's own shape, with the statuses its clients expect.

OpenAI: `{"error": {"message", "type", "code", "param"}}`; Ollama: `{"error": "message"}`. Both start from the
project's handler (which picks the status, the code and Retry-After) and only reshape its body.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from chatproject.errors import ApiError, api_exception_handler

# A reply that failed once started: the backend's error code decides the status.
PROVIDER_STATUS = {"model_not_found": 404, "context_too_small": 400}

# OpenAI's `type` by status; every 4xx not named is the caller's request.
OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    423: "locked_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
}

# OpenAI's own codes for what the project calls otherwise.
OPENAI_CODES = {"not_authenticated": "invalid_api_key", "authentication_failed": "invalid_api_key"}


def provider_failure(code: str, message: str) -> ApiError:
    """The error a call answers when its reply failed in the backend (unknown there, unreachable, too long)."""
    return ApiError(message, code=code, status_code=PROVIDER_STATUS.get(code, 503))


def _param(code: str, details: Any) -> str | None:
    """The request field an error is about: the first field of a validation error, `model` for an unknown one."""
    if code == "model_not_found":
        return "model"
    if code == "context_too_small":
        return "max_tokens"
    if code == "validation_error" and isinstance(details, dict) and details:
        field = next(iter(details))
        return None if field == "non_field_errors" else str(field)
    return None


def openai_error(*, status: int, code: str, message: str, param: str | None = None) -> dict:
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": OPENAI_CODES.get(code, code), "param": param}}


def _reshaped(exc: Exception, context: dict) -> tuple[Response, dict] | None:
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    error = response.data["error"]
    if error["code"] == "model_not_found":  # an unknown model is a missing resource to these clients
        response.status_code = 404
    return response, error


def openai_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's exception handler for the OpenAI-compatible views."""
    reshaped = _reshaped(exc, context)
    if reshaped is None:
        return None
    response, error = reshaped
    response.data = openai_error(status=response.status_code, code=error["code"], message=error["message"],
                                 param=_param(error["code"], error["details"]))
    return response


def ollama_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's exception handler for the Ollama-compatible views."""
    reshaped = _reshaped(exc, context)
    if reshaped is None:
        return None
    response, error = reshaped
    response.data = {"error": error["message"]}
    return response
