"""Django's Redis cache, with one redis client per connection pool instead of one per operation."""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _ClientPerPool(RedisCacheClient):
    """Django builds a new `redis.Redis` for every cache operation: 50 µs each here (its table of response
    callbacks), 40% of a cache read, and the throttles make four to six cache operations per API request.
    A `redis.Redis` holds nothing but its pool and is thread-safe, so one per pool does the same work."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients.setdefault(index, super().get_client(key, write=write))
        return client


class ChatRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = _ClientPerPool
