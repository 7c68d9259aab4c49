"""Keeps hot-slotted models loaded: every HOT_SLOT_CHECK_SECONDS each worker reads the slots, asks its servers what
they hold, and loads again any slotted model a server no longer holds (an Ollama server that restarted). The same
check gives the worker's Ollama provider the stored configuration mode's keep_alive and num_ctx.

It runs on the registry's background loop, started with the worker's first use of the registry.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.db import database_sync_to_async
from django.conf import settings

from models_mgmt import selectors, services
from models_mgmt.providers import ProviderError
from models_mgmt.registry import BACKGROUND, registry

logger = logging.getLogger(__name__)

_started = threading.Event()


async def check_once() -> list[str]:
    """Take this worker's pins and Ollama mode from the database and load each slotted model where it is
    missing; names them."""
    if services.apply_ollama_config(await database_sync_to_async(selectors.ollama_mode_values)()):
        await registry.catalogue(refresh=True)  # a new num_ctx changes each model's context
    slots = await database_sync_to_async(selectors.pins)()
    services.apply_pins(slots)
    if not slots:
        return []
    listing = await registry.catalogue(refresh=True)
    warmed = []
    for name in slots:
        model = registry.find(name)
        if model is None or model.provider not in ("local", "ollama"):
            continue  # not listed now (its server is down), or a server that manages its own memory
        has_it = {report.server for report in listing.servers
                  if report.ok and any(item.qualified_name == name for item in report.models)}
        holds_it = {item.server for item in listing.loaded if f"{item.provider}/{item.upstream}" == name}
        missing = not holds_it if model.provider == "local" else bool(has_it - holds_it)
        if not missing:
            continue
        try:
            capped = (await selectors.amodel_defaults(model)).capped(model)  # the window replies will ask for
            await registry.provider(model.provider).load(model=capped, keep_alive=services.FOREVER)
        except ProviderError as exc:
            logger.warning("could not warm hot-slotted %s again: %s", name, exc.message)
            continue
        logger.info("warmed hot-slotted %s again", name)
        warmed.append(name)
    if warmed:
        await registry.catalogue(refresh=True)
    return warmed


async def keep_slots_loaded() -> None:
    """Check until HOT_SLOT_CHECK_SECONDS is 0; a failed check is logged and the next one comes as usual."""
    try:
        while (interval := settings.HOT_SLOT_CHECK_SECONDS) > 0:
            try:
                await check_once()
            except Exception:  # noqa: BLE001 - the keeper outlives a database or backend hiccup
                logger.exception("hot slot check failed")
            await asyncio.sleep(interval)
    finally:
        _started.clear()


def ensure_started() -> None:
    """Start this process's keeper once (HOT_SLOT_CHECK_SECONDS = 0 turns it off)."""
    if settings.HOT_SLOT_CHECK_SECONDS <= 0 or _started.is_set():
        return
    _started.set()
    BACKGROUND.submit(keep_slots_loaded())
