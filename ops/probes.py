"""Readiness checks for orchestrators and the health summary: each check is bounded by a short time-out."""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from chat.models import Stream
from models_mgmt.registry import registry

logger = logging.getLogger(__name__)


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    connection.close()  # a probe's own thread: its connection is not kept


async def _channel_layer_round_trips() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = f"probe.{uuid.uuid4().hex}"
    receiving = asyncio.ensure_future(layer.receive(channel))
    try:
        while not receiving.done():  # pub/sub drops what is sent before the receiver has subscribed: resend
            await layer.send(channel, {"type": "probe"})
            await asyncio.wait([receiving], timeout=0.05)
        if receiving.result().get("type") != "probe":
            raise RuntimeError("the channel layer returned another message")
    finally:
        receiving.cancel()


async def _check(name: str, check) -> tuple[str, dict]:
    try:
        await asyncio.wait_for(check(), settings.PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, {"ok": False, "error": f"no answer within {settings.PROBE_TIMEOUT_SECONDS} s"}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        logger.warning("readiness check %s failed: %s", name, exc)
        return name, {"ok": False, "error": exc.__class__.__name__}
    return name, {"ok": True}


async def provider_states() -> list[dict]:
    """Each configured backend and whether it lists at least one model now (a backend with none serves no one)."""

    async def state(provider) -> dict:
        try:
            models = await asyncio.wait_for(provider.list_models(), settings.PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            return {"name": provider.name, "ok": False, "models": 0, "error": "no answer in time"}
        except Exception as exc:  # noqa: BLE001 - a failing backend is a state, not an error of the probe
            logger.warning("backend %s failed its check: %s", provider.name, exc)
            return {"name": provider.name, "ok": False, "models": 0, "error": exc.__class__.__name__}
        return {"name": provider.name, "ok": bool(models), "models": len(models)}

    return list(await asyncio.gather(*(state(provider) for provider in registry.providers())))


async def readiness() -> dict:
    """The database answers, the channel layer round-trips a message, and a model backend is reachable."""
    (db_name, db), (layer_name, layer), backends = await asyncio.gather(
        _check("database", sync_to_async(_database_answers, thread_sensitive=False)),
        _check("channel_layer", _channel_layer_round_trips),
        provider_states(),
    )
    checks = {db_name: db, layer_name: layer,
              "model_backend": {"ok": any(backend["ok"] for backend in backends), "providers": backends}}
    failed = [name for name, result in checks.items() if not result["ok"]]
    return {"status": "not_ready" if failed else "ready", "failed": failed, "checks": checks}


def active_streams() -> int:
    """Replies generating now, on every worker."""
    return Stream.objects.filter(finished_at__isnull=True).count()
