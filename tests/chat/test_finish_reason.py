"""Why a reply ended (`stop`, or `length` at max tokens) is stored with it and reaches the API, the WebSocket's
`stream_end` (live and on resume), the SSE `done` event and exports, so the UI can offer Continue after a reload."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from accounts.services import create_api_token
from chat.models import FinishReason, Message, MessageStatus
from chat.streaming import writes
from chat.transfer import export_room_json
from tests.chat.test_consumers import drain_jobs, owner_room
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.chat.wsutil import connect, frames_until, is_end

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

__all__ = ["drain_jobs", "owner_room"]


async def test_a_reply_cut_by_max_tokens_stores_length_and_a_finished_one_stop(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(tokens=20, delay_ms=0)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Count.", "options": {"max_tokens": 5}})
    cut = (await frames_until(ws, is_end))[-1]
    assert fake_ollama.stats.last_request["options"]["num_predict"] == 5
    assert cut["status"] == "complete" and cut["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 5
    await ws.send_json_to({"type": "send_message", "content": "Again, all of it."})
    whole = (await frames_until(ws, is_end))[-1]
    assert whole["status"] == "complete" and whole["finish_reason"] == "stop"
    stored = await database_sync_to_async(
        lambda: {str(m.pk): m.finish_reason for m in Message.objects.filter(room=room, role="assistant")}
    )()
    assert stored == {cut["message_id"]: FinishReason.LENGTH, whole["message_id"]: FinishReason.STOP}

    # What a reloaded page reads: the history API.
    _t, token = await database_sync_to_async(create_api_token)(user=user, name="history")
    response = await BearerClient(token).get(f"/api/v1/rooms/{room.pk}/history?view=tree")
    assert response.status_code == 200
    reasons = {m["id"]: m["finish_reason"] for m in response.json()["results"] if m["role"] == "assistant"}
    assert reasons == {cut["message_id"]: "length", whole["message_id"]: "stop"}

    # A page that reconnects after the reply ended learns it from the stored reply.
    await ws.send_json_to({"type": "resume", "last_seq": 0, "stream_id": cut["stream_id"]})
    ended = (await frames_until(ws, lambda f: f["type"] == "stream_end"))[-1]
    assert ended["finish_reason"] == "length" and ended["message_id"] == cut["message_id"]

    exported = await database_sync_to_async(export_room_json)(room)
    assert {m["finish_reason"] for m in exported["messages"] if m["role"] == "assistant"} == {"length", "stop"}
    await ws.disconnect()


async def test_a_stopped_reply_has_no_finish_reason(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(tokens=2000, delay_ms=5)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Long, please."})
    frames = await frames_until(ws, lambda f: f["type"] == "token" and f["seq"] >= 3)
    stream_id = next(f["stream_id"] for f in frames if f["type"] == "stream_start")
    await ws.send_json_to({"type": "stop", "stream_id": stream_id})
    end = (await frames_until(ws, is_end))[-1]
    assert end["status"] == "cancelled" and end["finish_reason"] == ""
    reply = await database_sync_to_async(Message.objects.get)(pk=end["message_id"])
    assert reply.status == MessageStatus.CANCELLED and reply.finish_reason == ""
    await ws.disconnect()


async def test_the_sse_done_event_says_why_the_reply_ended(fake_ollama, owner_room):
    user, room = owner_room
    fake_ollama.configure(tokens=20, delay_ms=0)
    _t, token = await database_sync_to_async(create_api_token)(user=user, name="sse")
    client = BearerClient(token)
    url = f"/api/v1/chat/sessions/{room.pk}/messages"
    for body, reason in (({"content": "hi", "max_tokens": 3}, "length"), ({"content": "hi again"}, "stop")):
        response = await client.post(url, body, content_type="application/json")
        name, done = parse_sse(await read(response))[-1]
        assert name == "done" and done["finish_reason"] == reason


async def test_only_a_complete_reply_keeps_a_known_reason():
    assert writes.stored_finish_reason(MessageStatus.COMPLETE, "length") == "length"
    assert writes.stored_finish_reason(MessageStatus.COMPLETE, "stop") == "stop"
    assert writes.stored_finish_reason(MessageStatus.COMPLETE, "load") == ""  # not a reason a reply ends with
    assert writes.stored_finish_reason(MessageStatus.ERROR, "length") == ""
