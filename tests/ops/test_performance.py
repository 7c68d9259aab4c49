"""Performance: samples, the five endpoints (staff, 400s), pruning, the audited reset, system sampling."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from datetime import timedelta

import psutil
import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.core.management import call_command
from django.test import AsyncClient
from django.utils import timezone

from ops import performance, system
from ops.models import AuditEvent, PerformanceSample, SystemSample
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/chat/performance/"
Sensor = namedtuple("Sensor", "label current high critical")  # the fields of psutil's temperature entries


@pytest.fixture
def staff(db):
    return client_for(UserFactory(username="operator", is_staff=True))


def sample(*, model: str = "alpha", provider: str = "local", status: str = "complete", ttft_ms: float | None = 100,
           tps: float | None = 20, completion: int = 10, ago: timedelta = timedelta(0)) -> PerformanceSample:
    created = performance.record_performance_sample(outcome=performance.ReplyOutcome(
        model=model, provider=provider, server="", status=status, duration_s=1.0,
        ttft_s=ttft_ms / 1000 if ttft_ms is not None else None, tokens_per_second=tps, prompt_tokens=5,
        completion_tokens=completion,
    ))
    if ago:
        PerformanceSample.objects.filter(pk=created.pk).update(created_at=timezone.now() - ago)
    return created


def system_sample(*, ago: timedelta = timedelta(0), cpu: float = 10.0) -> SystemSample:
    created = performance.record_system_sample(reading=system.SystemReading(
        cpu_percent=cpu, memory_percent=50.0, memory_used_bytes=1 << 30, load_1m=0.5, max_temperature_c=None,
    ))
    if ago:
        SystemSample.objects.filter(pk=created.pk).update(created_at=timezone.now() - ago)
    return created


# --- who may read what --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["current", "stats", "history"])
def test_operator_data_is_for_staff(route, api, anon_client, staff):
    assert anon_client.get(BASE + route).status_code == 401
    forbidden = api.get(BASE + route)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "permission_denied"
    assert staff.get(BASE + route).status_code == 200


def test_thermal_is_for_anyone_signed_in(api, anon_client):
    assert anon_client.get(BASE + "thermal").status_code == 401
    assert api.get(BASE + "thermal").status_code == 200


def test_reset_is_staff_only_and_audited(api, staff):
    sample()
    sample(model="beta")
    system_sample()
    refused = api.post(BASE + "reset")
    assert refused.status_code == 403 and PerformanceSample.objects.count() == 2
    response = staff.post(BASE + "reset")
    assert response.status_code == 200
    counts = {"before": {"performance_samples": 2, "system_samples": 1},
              "after": {"performance_samples": 0, "system_samples": 0}}
    assert response.json() == counts
    assert not PerformanceSample.objects.exists() and not SystemSample.objects.exists()
    event = AuditEvent.objects.get(action="performance.reset")
    assert event.actor_username == "operator" and event.details == counts


# --- current, stats, history --------------------------------------------------------------------------


def test_current_is_the_last_minute(staff, user, settings):
    settings.SYSTEM_SAMPLE_SECONDS = 60
    from chat.models import Message, Stream
    from tests.factories import RoomFactory

    sample(ttft_ms=100, tps=10, completion=4)
    sample(ttft_ms=300, tps=30, completion=6, status="error")
    sample(ttft_ms=5000, tps=1, ago=timedelta(minutes=2))  # before the window
    room = RoomFactory(owner=user)
    Stream.objects.create(room=room, user=user, message=Message.objects.create(room=room, role="assistant"))
    body = staff.get(BASE + "current").json()
    assert body["window_seconds"] == 60 and body["replies"] == 2 and body["errors"] == 1
    assert body["statuses"] == {"complete": 1, "error": 1}
    assert body["mean_ttft_ms"] == 200 and body["mean_tokens_per_second"] == 20
    assert body["completion_tokens"] == 10 and body["active_streams"] == 1
    # No recent system sample: one is taken (and stored, being due) for the answer.
    assert body["system"]["memory_percent"] > 0 and SystemSample.objects.count() == 1
    again = staff.get(BASE + "current").json()
    assert again["system"]["created_at"] == body["system"]["created_at"] and SystemSample.objects.count() == 1


def test_current_with_sampling_off_still_reads_the_host(staff, settings):
    settings.SYSTEM_SAMPLE_SECONDS = 0
    body = staff.get(BASE + "current").json()
    assert body["replies"] == 0 and body["mean_ttft_ms"] is None
    assert body["system"]["memory_used_bytes"] > 0 and not SystemSample.objects.exists()


def test_stats_per_model_percentiles_and_error_rate(staff):
    for ttft, tps in ((100, 10), (200, 20), (300, 30), (400, 40), (500, 50)):
        sample(ttft_ms=ttft, tps=tps)
    sample(status="error", ttft_ms=None, tps=None, completion=0)
    sample(model="beta", provider="ollama", ttft_ms=50, tps=100)
    sample(model="beta", provider="ollama", ttft_ms=9999, tps=1, ago=timedelta(hours=30))  # outside 24 h
    body = staff.get(BASE + "stats").json()
    assert body["window_hours"] == 24
    alpha, beta = body["models"]
    assert alpha == {"model": "alpha", "provider": "local", "count": 6, "errors": 1, "error_rate": round(1 / 6, 4),
                     "ttft_ms_p50": 300, "ttft_ms_p95": 480, "tokens_per_second_p50": 30,
                     "tokens_per_second_p95": 48}
    assert beta["count"] == 1 and beta["ttft_ms_p50"] == beta["ttft_ms_p95"] == 50
    wide = staff.get(BASE + "stats", {"window": 48, "model": "beta"}).json()
    assert [m["model"] for m in wide["models"]] == ["beta"] and wide["models"][0]["count"] == 2


@pytest.mark.parametrize("query", [{"window": 0}, {"window": "abc"}, {"window": 24 * 91}, {"model": "x" * 201}])
def test_stats_rejects_bad_parameters(staff, query):
    response = staff.get(BASE + "stats", query)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_history_hourly_and_daily_buckets(staff):
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    for at, ttft, status in ((hour + timedelta(minutes=10), 100, "complete"),
                             (hour + timedelta(minutes=20), 300, "error"),
                             (hour + timedelta(minutes=70), 40, "complete"),
                             (now - timedelta(hours=30), 50, "complete")):
        sample(ttft_ms=ttft, tps=ttft / 10, status=status, ago=now - at)
    system_sample(ago=now - hour - timedelta(minutes=5), cpu=20)
    system_sample(ago=now - hour - timedelta(minutes=15), cpu=40)
    hourly = staff.get(BASE + "history", {"days": 1, "bucket": "hour"}).json()
    assert hourly["bucket"] == "hour" and hourly["days"] == 1 and hourly["retention_days"] == 30
    (model,) = hourly["models"]  # 30 hours ago is outside one day
    assert model["model"] == "alpha" and model["provider"] == "local"
    first, second = model["buckets"]
    assert first["start"].replace("+00:00", "Z") == hour.isoformat().replace("+00:00", "Z")
    assert (first["count"], first["errors"], first["mean_ttft_ms"], first["mean_tokens_per_second"]) == (2, 1, 200, 20)
    assert (second["count"], second["errors"], second["mean_ttft_ms"]) == (1, 0, 40)
    (system_bucket,) = hourly["system"]
    assert system_bucket["samples"] == 2 and system_bucket["mean_cpu_percent"] == 30
    daily = staff.get(BASE + "history", {"days": 2, "bucket": "day"}).json()
    assert sum(b["count"] for b in daily["models"][0]["buckets"]) == 4
    assert all(b["start"].endswith(("T00:00:00Z", "T00:00:00+00:00")) for b in daily["models"][0]["buckets"])


@pytest.mark.parametrize("query", [{"days": 0}, {"days": 366}, {"bucket": "week"}, {"days": "1.5"}])
def test_history_rejects_bad_parameters(staff, query):
    response = staff.get(BASE + "history", query)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


# --- thermal ------------------------------------------------------------------------------------------


def test_thermal_on_this_machine_matches_what_psutil_exposes(api):
    body = api.get(BASE + "thermal").json()
    sensors = getattr(psutil, "sensors_temperatures", dict)()
    frequency = psutil.cpu_freq()
    if not sensors and not (frequency and frequency.max):
        assert body["available"] is False and body["throttling"] == "not available"
        assert body["message"].startswith("Not available") and body["sensors"] == []
    else:
        assert body["available"] is True and body["throttling"] in {"likely", "not likely", "unknown"}
        assert len(body["sensors"]) == sum(len(entries) for entries in sensors.values())


def test_thermal_says_throttling_likely_when_the_sensors_say_so():
    frequency = {"current_mhz": 1200.0, "min_mhz": 800.0, "max_mhz": 3600.0, "ratio_of_max": 0.333}
    hot = system.thermal_report({"coretemp": [Sensor("Package id 0", 98.0, 90.0, 100.0),
                                              Sensor("Core 0", 70.0, 90.0, 100.0)]}, frequency)
    assert hot["throttling"] == "likely" and hot["max_temperature_c"] == 98.0
    assert hot["message"].startswith("Throttling likely: Package id 0 is at 98 °C")
    assert "33% of its maximum frequency" in hot["message"]
    cool = system.thermal_report({"coretemp": [Sensor("Core 0", 55.0, 90.0, 100.0)]}, frequency)
    assert cool["throttling"] == "not likely" and cool["reasons"] == []
    no_marks = system.thermal_report({"acpitz": [Sensor("", 95.0, None, None)]}, None)
    assert no_marks["throttling"] == "likely" and no_marks["sensors"][0]["label"] == "acpitz"
    frequency_only = system.thermal_report({}, frequency)
    assert frequency_only["available"] is True and frequency_only["throttling"] == "unknown"


# --- pruning and system sampling ------------------------------------------------------------------------


def test_old_samples_are_pruned_by_the_retention_setting(settings):
    settings.PERFORMANCE_RETENTION_DAYS = 7
    old, kept = sample(ago=timedelta(days=8)), sample(ago=timedelta(days=6))
    system_sample(ago=timedelta(days=8))
    assert performance.prune_samples() == {"performance_samples": 1, "system_samples": 1}
    assert list(PerformanceSample.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not PerformanceSample.objects.filter(pk=old.pk).exists()
    settings.PERFORMANCE_RETENTION_DAYS = 0  # keep forever
    sample(ago=timedelta(days=400))
    assert performance.prune_samples() == {"performance_samples": 0, "system_samples": 0}


def test_the_prune_command(capsys):
    sample(ago=timedelta(days=40))
    sample()
    call_command("prune_performance")
    assert "removed 1 performance samples and 0 system samples" in capsys.readouterr().out
    assert PerformanceSample.objects.count() == 1


def test_a_sync_caller_starts_no_sampler(api, settings):
    """Its requests run on a loop made for one request: a task left there would outlive the request."""
    settings.SYSTEM_SAMPLE_SECONDS = 60
    before = dict(performance.SAMPLERS)
    assert api.get(BASE + "thermal").status_code == 200
    assert performance.SAMPLERS == before


def test_a_system_sample_is_taken_once_per_interval_and_prunes(settings):
    settings.SYSTEM_SAMPLE_SECONDS = 60
    sample(ago=timedelta(days=31))
    first = performance.take_system_sample_if_due()
    assert first is not None and first.memory_percent > 0 and first.cpu_percent >= 0
    assert not PerformanceSample.objects.exists()  # pruned past the 30-day default
    assert performance.take_system_sample_if_due() is None  # the interval's lock is taken
    cache.clear()  # another worker without a shared cache: the newest stored sample still says "not yet"
    assert performance.take_system_sample_if_due() is None
    SystemSample.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    cache.clear()
    assert performance.take_system_sample_if_due() is not None
    assert SystemSample.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_first_asgi_request_starts_the_periodic_sampler(settings):
    settings.SYSTEM_SAMPLE_SECONDS = 1
    assert (await AsyncClient().get("/healthz")).status_code == 200
    task = performance.SAMPLERS[asyncio.get_running_loop()]
    assert (await AsyncClient().get("/healthz")).status_code == 200
    assert performance.SAMPLERS[asyncio.get_running_loop()] is task  # one task per event loop
    try:
        for _ in range(60):
            if await database_sync_to_async(SystemSample.objects.count)() >= 2:
                break
            await asyncio.sleep(0.1)
        assert await database_sync_to_async(SystemSample.objects.count)() == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
