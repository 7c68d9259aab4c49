"""End to end with the real bundled model: tokens stream through the WebSocket into a stored message."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import FinishReason, Message, MessageStatus
from tests.chat.wsutil import connect, frames_until, is_end, text_of
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.slow]


async def test_bundled_model_streams_through_the_websocket(settings):
    settings.LOCAL_MODELS_ENABLED = True
    settings.OLLAMA_URLS = []
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user, system_prompt="You are a helpful assistant.")
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "What is the capital of France?",
                           "options": {"max_tokens": 24, "temperature": 0.1}})
    frames = await frames_until(ws, is_end, timeout=120)
    start = next(f for f in frames if f["type"] == "stream_start")
    assert start["model"] == "smollm2-135m-instruct"
    tokens = [f for f in frames if f["type"] == "token"]
    assert len(tokens) >= 2 and frames[-1]["status"] == "complete"
    reply = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert reply.content == text_of(frames) and reply.content.strip()
    assert reply.status == MessageStatus.COMPLETE and reply.completion_tokens == tokens[-1]["seq"]
    assert reply.prompt_tokens > 10 and reply.tokens_per_second > 0
    await ws.disconnect()


async def test_bundled_model_reply_cut_at_max_tokens_is_stored_as_length(settings):
    settings.LOCAL_MODELS_ENABLED = True
    settings.OLLAMA_URLS = []
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Write a long story about a dragon.",
                           "options": {"max_tokens": 4, "temperature": 0.1}})
    end = (await frames_until(ws, is_end, timeout=120))[-1]
    assert end["status"] == "complete" and end["finish_reason"] == "length"
    reply = await database_sync_to_async(Message.objects.get)(pk=end["message_id"])
    assert reply.finish_reason == FinishReason.LENGTH and reply.completion_tokens == 4
    await ws.disconnect()
