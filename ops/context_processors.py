"""Template context every page needs from operations: whether the panic banner shows."""

from __future__ import annotations

from ops.panic import is_panicking


def panic(request) -> dict:
    return {"panic_active": is_panicking()}
