"""Stateless completions in the streaming seam: the per-user limit, recovery and finishing without a room; and
the stop strings, seed and finish reason each provider maps."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts.services import create_api_token
from chat import services
from chat.models import Stream
from chat.streaming import writes
from chatproject.errors import ApiError
from compat.models import TokenUsage
from compat.services import record_usage
from models_mgmt.providers import ChatTurn, GenerationOptions, Usage
from models_mgmt.providers.openai_compat import OpenAICompatibleProvider
from tests.factories import RoomFactory
from tests.models_mgmt.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db


def test_stateless_streams_share_the_per_user_limit_with_rooms(user):
    with override_settings(STREAMS_PER_USER=2):
        first = writes.start_completion(user=user, model="m")
        assert first.room_id is None and first.message_id is None and first.worker == writes.WORKER_ID
        room = RoomFactory(owner=user)
        writes.send_user_message(room_id=room.pk, user=user, content="hi", model="m")
        with pytest.raises(ApiError) as full:
            writes.start_completion(user=user, model="m")
        assert full.value.status_code == 429 and full.value.error_code == "too_many_streams"
        with pytest.raises(ApiError):
            writes.send_user_message(room_id=RoomFactory(owner=user).pk, user=user, content="hi", model="m")


def test_finishing_a_stateless_stream_writes_only_its_row(user):
    stream = writes.start_completion(user=user, model="m")
    writes.finish_stream(stream_id=stream.pk, message_id="", room_id="", text="t", status="complete", usage=Usage(),
                         ttft_ms=1.0, tokens_per_second=2.0)
    assert Stream.objects.get().finished_at is not None


def test_recovery_ends_a_dead_workers_stateless_stream(user):
    stream = writes.start_completion(user=user, model="m")
    Stream.objects.filter(pk=stream.pk).update(worker=f"{writes.HOSTNAME}:999999:abcd")
    assert writes.recover_interrupted_streams() == 1
    assert Stream.objects.get().finished_at is not None


def test_panic_stop_reaches_stateless_streams(user):
    stream = writes.start_completion(user=user, model="m", control_channel="stream.control.x")
    assert services.stop_every_stream() == 1
    assert Stream.objects.get(pk=stream.pk).cancel_requested


def test_usage_adds_up_per_token_and_model(user):
    token, _raw = create_api_token(user=user, name="t")
    record_usage(token_id=token.pk, model="a", prompt_tokens=3, completion_tokens=4)
    record_usage(token_id=token.pk, model="a", prompt_tokens=None, completion_tokens=1)
    record_usage(token_id=token.pk, model="b", prompt_tokens=1, completion_tokens=1)
    assert {(u.model, u.calls, u.prompt_tokens, u.completion_tokens) for u in TokenUsage.objects.all()} == {
        ("a", 2, 3, 5), ("b", 1, 1, 1)}


@pytest.mark.asyncio
async def test_the_openai_compatible_provider_sends_stop_and_seed_and_reports_the_finish():
    async with FakeOpenAI(tokens=4) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        model = (await provider.list_models())[0]
        options = GenerationOptions(max_tokens=3, stop=("END",), seed=11)
        chunks = [chunk async for chunk in provider.stream_chat(model=model, messages=[ChatTurn("user", "hi")],
                                                                 options=options)]
        assert chunks[-1].done and chunks[-1].finish_reason == "length"
        sent = server.seen.bodies[-1]
        assert (sent["stop"], sent["seed"]) == (["END"], 11)
        async for _chunk in provider.stream_chat(model=model, messages=[ChatTurn("user", "hi")],
                                                 options=GenerationOptions(max_tokens=3)):
            pass
        assert "stop" not in server.seen.bodies[-1] and "seed" not in server.seen.bodies[-1]
