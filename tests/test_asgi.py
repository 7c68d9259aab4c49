"""The ASGI worker's start-up: garbage-collector tuning for serving."""

from __future__ import annotations

import gc

from django.conf import settings


def test_worker_freezes_startup_objects_and_collects_young_objects_less_often():
    import chatproject.asgi  # noqa: F401 - importing it is what starts a worker

    assert settings.GC_TUNING
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == settings.GC_GEN0_THRESHOLD
