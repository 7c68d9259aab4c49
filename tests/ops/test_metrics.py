"""`/metrics`: parsed as Prometheus parses it, counters and histograms moving by what the replies did."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.test import AsyncClient
from rest_framework.test import APIClient

from ops.models import PanicState, PerformanceSample
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.chat.wsutil import connect, frames_until, is_end
from tests.factories import RoomFactory, UserFactory
from tests.ops.metrics_util import Scrape, delta

pytestmark = pytest.mark.django_db(transaction=True)

FAKE = {"gen_ai_provider_name": "ollama", "gen_ai_request_model": "fake-llm:latest"}
LOCAL = {"gen_ai_provider_name": "local", "gen_ai_request_model": "smollm2-135m-instruct"}


def scrape(**extra) -> Scrape:
    response = APIClient().get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())


async def ascrape() -> Scrape:
    return await sync_to_async(scrape)()


async def sse_reply(client: BearerClient, room_id: str) -> list[tuple[str, dict]]:
    response = await client.post(f"/api/v1/chat/sessions/{room_id}/messages", {"content": "hi"},
                                 content_type="application/json")
    assert response.status_code == 200
    return parse_sse(await read(response))


async def owner_with_room():
    from accounts.services import create_api_token

    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    _t, token = await database_sync_to_async(create_api_token)(user=user, name="metrics")
    return user, room, BearerClient(token)


@pytest.mark.asyncio
async def test_replies_move_counters_and_histograms_by_what_they_did(fake_ollama):
    fake_ollama.configure(tokens=12)
    _user, room, client = await owner_with_room()
    before = await ascrape()
    for _ in range(3):
        events = await sse_reply(client, room.pk)
        assert events[-1][0] == "done" and events[-1][1]["status"] == "complete"
    after = await ascrape()

    assert delta(before, after, "chat_replies_total", status="complete", **FAKE) == 3
    assert delta(before, after, "chat_replies_total", status="error", **FAKE) == 0
    for histogram in ("gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_per_output_token_seconds",
                      "gen_ai_server_request_duration_seconds"):
        assert delta(before, after, f"{histogram}_count", **FAKE) == 3, histogram
        assert delta(before, after, f"{histogram}_bucket", le="+Inf", **FAKE) == 3, histogram
        assert delta(before, after, f"{histogram}_sum", **FAKE) > 0, histogram
    # The fake says 7 prompt tokens and streams 12 tokens per reply.
    assert delta(before, after, "gen_ai_server_token_usage_total", gen_ai_token_type="input", **FAKE) == 3 * 7
    assert delta(before, after, "gen_ai_server_token_usage_total", gen_ai_token_type="output", **FAKE) == 3 * 12
    assert delta(before, after, "chat_queue_wait_seconds_count", gen_ai_provider_name="ollama") == 3
    assert after.value("chat_active_streams") == before.value("chat_active_streams")
    # Bounded labels: model and provider names, never a room, user or stream id.
    labels = {key for series in after.labels_of("chat_replies_total") for key in series}
    assert labels == {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "status"}
    assert str(room.pk) not in str(after.samples)
    samples = await database_sync_to_async(list)(PerformanceSample.objects.filter(provider="ollama"))
    assert len(samples) == 3 and {s.status for s in samples} == {"complete"}
    assert {s.completion_tokens for s in samples} == {12} and all(s.time_to_first_token_ms > 0 for s in samples)


@pytest.mark.asyncio
async def test_a_backend_error_is_counted_by_its_code(fake_ollama):
    fake_ollama.configure(die_after=2)
    _user, room, client = await owner_with_room()
    before = await ascrape()
    events = await sse_reply(client, room.pk)
    after = await ascrape()
    code = events[-1][1]["code"]
    assert events[-1][0] == "error" and code == "backend_error"
    assert delta(before, after, "chat_backend_errors_total", gen_ai_provider_name="ollama", error_type=code) == 1
    assert delta(before, after, "chat_replies_total", status="error", **FAKE) == 1
    assert delta(before, after, "chat_replies_total", status="complete", **FAKE) == 0
    sample = await database_sync_to_async(PerformanceSample.objects.get)()
    assert sample.status == "error" and sample.completion_tokens == 2


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_bundled_model_counts_its_replies_and_tokens(settings):
    settings.LOCAL_MODELS_ENABLED = True
    settings.OLLAMA_URLS = []
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    before = await ascrape()
    ws = await connect(user, room.pk)
    during = await ascrape()
    assert delta(before, during, "chat_websocket_connections_open") == 1
    assert delta(before, during, "chat_websocket_connections_total") == 1
    ends = []
    for question in ("Name a colour.", "Name a fruit."):
        await ws.send_json_to({"type": "send_message", "content": question,
                               "options": {"max_tokens": 8, "temperature": 0.1}})
        ends.append((await frames_until(ws, is_end, timeout=120))[-1])
    await ws.disconnect()
    after = await ascrape()

    assert [end["status"] for end in ends] == ["complete", "complete"]
    assert delta(before, after, "chat_replies_total", status="complete", **LOCAL) == 2
    assert delta(before, after, "gen_ai_server_time_to_first_token_seconds_count", **LOCAL) == 2
    assert delta(before, after, "gen_ai_server_token_usage_total", gen_ai_token_type="output", **LOCAL) == sum(
        end["usage"]["completion_tokens"] for end in ends)
    assert delta(before, after, "gen_ai_server_token_usage_total", gen_ai_token_type="input", **LOCAL) == sum(
        end["usage"]["prompt_tokens"] for end in ends)
    ttft_sum = delta(before, after, "gen_ai_server_time_to_first_token_seconds_sum", **LOCAL)
    reported = sum(end["timings"]["time_to_first_token_ms"] for end in ends) / 1000
    assert ttft_sum == pytest.approx(reported, abs=0.01)
    # The local provider measures the wait for the model's thread, once per generation.
    assert delta(before, after, "chat_queue_wait_seconds_count", gen_ai_provider_name="local") == 2
    assert delta(before, after, "chat_websocket_connections_open") == 0
    samples = await database_sync_to_async(list)(PerformanceSample.objects.filter(provider="local"))
    assert len(samples) == 2 and all(s.model == "smollm2-135m-instruct" and s.tokens_per_second > 0
                                     for s in samples)


def test_http_requests_are_counted_by_route_pattern_and_status(api, user):
    room = RoomFactory(owner=user)
    before = scrape()
    assert api.get(f"/api/v1/rooms/{room.pk}").status_code == 200
    assert api.get("/api/v1/rooms/no-such-room").status_code == 404
    assert APIClient().get("/no/such/page").status_code == 404
    assert api.generic("BREW", "/api/v1/rooms/").status_code == 405
    after = scrape()
    route = "api/v1/rooms/<str:room_id>"
    name = "http_server_request_duration_seconds_count"
    assert delta(before, after, name, http_route=route, http_request_method="GET", http_response_status_code="200") == 1
    assert delta(before, after, name, http_route=route, http_request_method="GET", http_response_status_code="404") == 1
    assert delta(before, after, name, http_route="unmatched", http_response_status_code="404") == 1
    assert delta(before, after, name, http_route="api/v1/rooms/", http_request_method="_OTHER") == 1
    routes = {series["http_route"] for series in after.labels_of(name)}
    assert not any(str(room.pk) in r or "no-such" in r or "no/such" in r for r in routes)
    assert "metrics" in routes  # the first scrape itself


@pytest.mark.asyncio
async def test_async_requests_are_counted_too(fake_ollama):
    before = await ascrape()
    response = await AsyncClient().get("/api/v1/chat/models")
    assert response.status_code == 200
    after = await ascrape()
    assert delta(before, after, "http_server_request_duration_seconds_count", http_route="api/v1/chat/models",
                 http_response_status_code="200") == 1


def test_panic_state_is_read_at_scrape_time(db):
    assert scrape().value("chat_panic_active") == 0
    PanicState.objects.update_or_create(pk=1, defaults={"active": True, "reason": "test"})
    cache.clear()
    assert scrape().value("chat_panic_active") == 1
