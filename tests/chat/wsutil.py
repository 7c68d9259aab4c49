"""Helpers for WebSocket tests: connect through the real ASGI app and collect frames."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.services import create_api_token
from chatproject.asgi import application


async def connect(user, room_id, *, token: str | None = None) -> WebsocketCommunicator:
    if token is None:
        _t, token = await database_sync_to_async(create_api_token)(user=user, name="ws-test")
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{room_id}/?token={token}", headers=[(b"origin", b"http://127.0.0.1:8000"),
                                                                   (b"host", b"127.0.0.1:8000")]
    )
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "presence" and hello["online"] is True
    return communicator


async def frames_until(communicator, predicate, timeout: float = 10.0) -> list[dict]:
    """Collect frames until one satisfies `predicate` (inclusive)."""
    frames: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {[f.get('type') for f in frames]}")
        frame = await communicator.receive_json_from(timeout=remaining)
        frames.append(frame)
        if predicate(frame):
            return frames


def is_end(frame: dict) -> bool:
    return frame.get("type") == "stream_end"


def text_of(frames: list[dict]) -> str:
    return "".join(f["delta"] for f in frames if f.get("type") == "token")
