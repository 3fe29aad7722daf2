"""Redis clients for every process: one place that knows REDIS_URL or Sentinel.

With `REDIS_SENTINELS` and `REDIS_SENTINEL_SERVICE` set, clients ask the Sentinels for the
service's primary (redis-py's `SentinelConnectionPool`): a connection to a primary that
died, or that was demoted (its writes answer READONLY), is dropped, and the next connection
asks the Sentinels again, so a failover needs no restart. Otherwise REDIS_URL names one
server. `redis_client` talks to the primary; `redis_reader` reads from a replica when there
is one (the live hub: what it delivers has reached a replica, so it survives a failover)
and from the primary otherwise.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from switchboard.settings import ConfigError, Settings


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel pool that, like BlockingConnectionPool, waits up to `timeout` for a free
    connection instead of failing past `max_connections`."""


def sentinel_mode(settings: Settings) -> bool:
    return bool(settings.redis_sentinels)


def _sentinel(settings: Settings, options: dict[str, Any]) -> Sentinel:
    if not settings.redis_sentinel_service:
        raise ConfigError("REDIS_SENTINEL_SERVICE not set: REDIS_SENTINELS needs the master name")
    # The Sentinels get the socket timeouts only: their own password is not ours to send.
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    return Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_options)


def _url(settings: Settings) -> str:
    if settings.redis_url is None:
        raise ConfigError("REDIS_URL not set: this process needs a Redis to connect to")
    return settings.redis_url


def redis_client(
    settings: Settings, *, redis_class: type[Redis] = Redis, blocking: bool = False, **options: Any
) -> Redis:
    """A client of the primary. `blocking`: a pool that waits for a free connection
    (`max_connections`, `timeout`) rather than failing. `options` are redis-py's
    connection keywords (timeouts, retry, health checks)."""
    if sentinel_mode(settings):
        pool_class = BlockingSentinelConnectionPool if blocking else SentinelConnectionPool
        if not blocking:
            options.pop("timeout", None)
        return _sentinel(settings, options).master_for(
            settings.redis_sentinel_service or "",
            redis_class=redis_class,
            connection_pool_class=pool_class,
            password=settings.redis_password,
            # A new connection PINGs first, so one to a dead address fails at once and
            # the next attempt asks the Sentinels again.
            check_connection=True,
            **options,
        )
    if blocking:
        return redis_class.from_pool(BlockingConnectionPool.from_url(_url(settings), **options))
    return redis_class.from_url(_url(settings), **options)


def redis_reader(settings: Settings, **options: Any) -> Redis:
    """A client for reads that may lag the primary by what it has not replicated yet: a
    replica's when Sentinel knows one (the primary's otherwise, redis-py's fallback)."""
    if sentinel_mode(settings):
        return _sentinel(settings, options).slave_for(
            settings.redis_sentinel_service or "",
            password=settings.redis_password,
            check_connection=True,
            **options,
        )
    return Redis.from_url(_url(settings), **options)


def replica_acks(settings: Settings) -> int:
    """How many replicas must hold an event before the relay marks its row relayed: one
    with Sentinel (a failover promotes the replica that has the most), none otherwise."""
    return 1 if sentinel_mode(settings) else 0
