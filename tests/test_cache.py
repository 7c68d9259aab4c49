"""The Redis cache (with REDIS_URL): Django's backend, one redis client per pool instead of per operation."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the second pass of .ci/run)")


def test_the_cache_works_as_djangos_and_reuses_its_client():
    key = f"test-cache-{uuid.uuid4().hex}"
    assert cache.add(key, 1, timeout=30) and not cache.add(key, 5, timeout=30)
    assert cache.incr(key) == 2 and cache.get_many([key, key + "-missing"]) == {key: 2}
    cache.set(key, {"a": [1, 2]}, timeout=30)
    assert cache.get(key) == {"a": [1, 2]}
    cache.delete(key)
    assert cache.get(key) is None
    client = cache._cache.get_client(key, write=True)
    assert cache._cache.get_client(key, write=True) is client  # not a new redis.Redis per operation
