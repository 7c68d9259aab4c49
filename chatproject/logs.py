"""Structured logs: a request id on every line logged while serving a request or running a reply (bound by
`chatproject.middleware.RequestIdMiddleware`), JSON output by a setting, and credentials scrubbed from every
line whoever logged it."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# A caller's own id is kept only when it is short and plain, so nothing odd reaches the logs through it.
ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUEST_ID_HEADER = "X-Request-ID"

# Bearer credentials, `token=`/`password=`-style fields in query strings, forms and JSON, and API tokens.
SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:token|password|passwd|secret|api_key|apikey|sessionid|csrftoken)"
                r"[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"), r"\1[redacted]"),
]


def new_request_id() -> str:
    return uuid.uuid4().hex


def bind_request_id(value: str | None = None) -> str:
    """Make `value` (or a fresh id) the id of everything logged from here in this context."""
    value = value if value and ACCEPTABLE_REQUEST_ID.fullmatch(value) else new_request_id()
    request_id.set(value)
    return value


def redact(text: str) -> str:
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, so formats and the JSON output can name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Scrubs credentials from the final message (access logs carry `?token=` of WebSocket URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a badly formatted record is the handler's to report, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
