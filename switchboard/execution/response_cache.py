"""The response cache: completed values of mobileHome, spend and spendReport, in Redis.

What is cached (`CACHED_FIELDS`): the completed JSON of `Query.mobileHome` for 60 s and
of `Tenant.spend` and `Tenant.spendReport` for 5 minutes (settings), whatever operation
asks for them. The rest of an operation runs as usual: MobileHome's `viewer` is the
user's own, so only the field below the cache point is shared.

The key holds the tenant, the role (MemberRole, or AGENT), the operation (the sha256 of
the document and the operation name), the field's response path, the object it hangs
from, and the variables:
  `rc:{t:<tenant>}:<group>:g<generation>:<role>:<digest>`.
An entry is never shared across tenants or roles. Only a field that completed without
an error (anywhere below it) is stored.

Invalidation (`switchboard.edge.invalidation`) bumps the tenant's generation of a group
(`rc:{t:<tenant>}:<group>:gen`); one Lua script reads the generation and the entry in one
round trip, so the next read after a change misses, whichever instance serves it. A
value computed from data read before a change is stored under the old generation and
never read again.

Stampedes: one recomputation per key at a time. Within a process concurrent requests for
a key wait for the one computing it (single flight); across processes a lock
(`SET … NX PX`) lets one compute while the others poll for its result, for at most
`lock_wait_s`, then compute themselves.

Hit rate: `stats` counts in this process (`cache_stats()` gives every live cache's
counts and hit rate); each hit and miss also goes to Prometheus as
`switchboard_cache_requests_total{cache="response", result}` (observability/cache.py); the
hash `rc:stats` counts hits and misses of every instance, per group (`shared_stats`).

Redis down: the cache is bypassed (counted as `bypass`); requests compute as if uncached.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import GraphQLObjectType
from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.infra.breaker import RedisBreaker
from switchboard.observability import cache as observed_cache

log = logging.getLogger(__name__)

# Parent type and field → the group whose generation invalidates it.
CACHED_FIELDS = {
    ("Query", "mobileHome"): "home",
    ("Tenant", "spend"): "spend",
    ("Tenant", "spendReport"): "spend",
}
GROUPS = ("home", "spend")
STATS_KEY = "rc:stats"

# KEYS[1]: the generation key, KEYS[2]: the stats hash. ARGV[1]: the entry key before its
# generation, ARGV[2]: the rest of it, ARGV[3]: the group. Returns {generation, value}.
LOOKUP_LUA = """
local generation = redis.call('GET', KEYS[1]) or '0'
local value = redis.call('GET', ARGV[1] .. generation .. ARGV[2])
if value then
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':hits', 1)
else
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':misses', 1)
end
return {generation, value}
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_MISS = object()
# (tenant hex, group) whose invalidation could not reach Redis: read around the cache here
# until a bump gets through.
pending: set[tuple[str, str]] = set()


def tenant_prefix(tenant_hex: str) -> str:
    # The hash tag keeps a tenant's keys in one slot of a Redis cluster.
    return f"rc:{{t:{tenant_hex}}}"


def generation_key(tenant_hex: str, group: str) -> str:
    return f"{tenant_prefix(tenant_hex)}:{group}:gen"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    computes: int = 0  # recomputations this process ran
    coalesced: int = 0  # requests served by another request's recomputation
    waited: int = 0  # served by another instance's recomputation (the Redis lock)
    stores: int = 0
    uncacheable: int = 0  # completed with an error: not stored
    bypass: int = 0  # Redis unavailable

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        values: dict[str, float] = {k: v for k, v in self.__dict__.items()}
        values["hit_rate"] = self.hit_rate
        return values


@dataclass(frozen=True, slots=True)
class Entry:
    group: str
    tenant_hex: str
    generation_key: str
    head: str  # the key up to its generation
    tail: str  # the key after it

    def key(self, generation: str) -> str:
        return f"{self.head}{generation}{self.tail}"


_CACHES: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


def cache_stats() -> dict[str, float]:
    """Counters and hit rate of the response caches of this process (for metrics)."""
    total = CacheStats()
    for cache in list(_CACHES):
        for name, value in cache.stats.__dict__.items():
            setattr(total, name, getattr(total, name) + value)
    return total.as_dict()


@dataclass(eq=False)
class ResponseCache:
    redis: Redis
    breaker: RedisBreaker
    ttl_s: dict[str, int]  # group → seconds
    lock_ttl_s: float = 5.0
    lock_wait_s: float = 2.0
    stats: CacheStats = field(default_factory=CacheStats)
    _flights: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lookup = self.redis.register_script(LOOKUP_LUA)
        self._release = self.redis.register_script(RELEASE_LUA)
        self._lock_token = os.urandom(8).hex()
        _CACHES.add(self)

    def entry(self, group: str, tenant_hex: str, role: str, digest: str) -> Entry:
        prefix = tenant_prefix(tenant_hex)
        return Entry(
            group=group,
            tenant_hex=tenant_hex,
            generation_key=f"{prefix}:{group}:gen",
            head=f"{prefix}:{group}:g",
            tail=f":{role}:{digest}",
        )

    async def get_or_compute(
        self, entry: Entry, compute: Callable[[], Awaitable[tuple[Any, bool]]]
    ) -> Any:
        """The cached value of `entry`, or the value of `compute()`, which answers
        (value, whether it may be stored)."""
        generation, value = await self._read(entry)
        if value is not _MISS:
            return value
        flight_key = entry.key(generation or "-")
        flight = self._flights.get(flight_key)
        if flight is not None:  # another request of this process computes it
            shared = await asyncio.shield(flight)
            if shared is not _MISS:
                self.stats.coalesced += 1
                return shared
            return (await self._run(compute))[0]
        flight = asyncio.get_running_loop().create_future()
        self._flights[flight_key] = flight
        shared = _MISS
        try:
            value, shared = await self._lead(entry, generation, compute)
            return value
        finally:
            del self._flights[flight_key]
            flight.set_result(shared)

    async def _lead(
        self,
        entry: Entry,
        generation: str | None,
        compute: Callable[[], Awaitable[tuple[Any, bool]]],
    ) -> tuple[Any, Any]:
        """(value, what concurrent requests may share): one recomputation across instances."""
        if generation is None:  # Redis unavailable: compute, share within this process
            value, storable = await self._run(compute)
            return value, value if storable else _MISS
        key = entry.key(generation)
        lock = await self._acquire(key)
        try:
            if lock is False:
                value = await self._wait_for(key)
                if value is not _MISS:
                    self.stats.waited += 1
                    return value, value
            value, storable = await self._run(compute)
            if storable:
                await self._store(key, entry.group, value)
            return value, value if storable else _MISS
        finally:
            if lock is True:
                await self._unlock(key)

    async def _run(self, compute: Callable[[], Awaitable[tuple[Any, bool]]]) -> tuple[Any, bool]:
        self.stats.computes += 1
        try:
            value, storable = await compute()
        except BaseException:  # a non-null field's error propagates: nothing to store
            self.stats.uncacheable += 1
            raise
        if not storable:
            self.stats.uncacheable += 1
        return value, storable

    async def _read(self, entry: Entry) -> tuple[str | None, Any]:
        """(generation, value or _MISS); generation None when Redis is unavailable."""
        if not self.breaker.available() or (pending and not await bump_generations(self.redis, [])):
            self.stats.bypass += 1
            return None, _MISS
        try:
            generation, raw = await self._lookup(
                keys=[entry.generation_key, STATS_KEY], args=[entry.head, entry.tail, entry.group]
            )
        except (RedisError, OSError) as error:
            self.breaker.failed("response cache", error)
            self.stats.bypass += 1
            return None, _MISS
        if raw is None:
            self.stats.misses += 1
            observed_cache.record("response", hit=False)
            return generation.decode(), _MISS
        self.stats.hits += 1
        observed_cache.record("response", hit=True)
        return generation.decode(), orjson.loads(raw)

    async def _store(self, key: str, group: str, value: Any) -> None:
        try:
            await self.redis.set(key, orjson.dumps(value), px=int(self.ttl_s[group] * 1000))
        except (RedisError, OSError) as error:
            self.breaker.failed("response cache", error)
        else:
            self.stats.stores += 1

    async def _acquire(self, key: str) -> bool | None:
        """True: ours; False: another instance computes it; None: Redis failed."""
        try:
            got = await self.redis.set(
                key + ":lock", self._lock_token, nx=True, px=int(self.lock_ttl_s * 1000)
            )
        except (RedisError, OSError) as error:
            self.breaker.failed("response cache", error)
            return None
        return bool(got)

    async def _unlock(self, key: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[key + ":lock"], args=[self._lock_token])

    async def _wait_for(self, key: str) -> Any:
        """Poll for the value another instance is computing, for at most lock_wait_s."""
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                raw, locked = await self.redis.mget([key, key + ":lock"])
            except (RedisError, OSError) as error:
                self.breaker.failed("response cache", error)
                return _MISS
            if raw is not None:
                return orjson.loads(raw)
            if locked is None:  # the other instance gave up or failed: compute here
                return _MISS
        return _MISS

    async def shared_stats(self) -> dict[str, int]:
        """Hits and misses of every instance, per group (`home:hits`, …)."""
        raw = await self.redis.hgetall(STATS_KEY)
        return {k.decode(): int(v) for k, v in raw.items()}


async def bump_generations(redis: Redis, targets: list[tuple[str, str]]) -> bool:
    """Bump the generations of (tenant hex, group) pairs, and of any pending ones."""
    targets = sorted(set(targets) | pending)
    if not targets:
        return True
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for tenant_hex, group in targets:
                pipe.incr(generation_key(tenant_hex, group))
            await pipe.execute()
    except (RedisError, OSError) as error:
        log.warning("cache invalidation failed (%s); kept pending", type(error).__name__)
        pending.update(targets)
        return False
    pending.difference_update(targets)
    return True


def request_digest(
    document_sha: str, operation_name: str | None, variables: dict[str, Any] | None
) -> str:
    """What the operation and its variables contribute to every key of one request."""
    digest = hashlib.sha256()
    digest.update(document_sha.encode())
    digest.update(b"\0" + (operation_name or "").encode() + b"\0")
    digest.update(orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


@dataclass(slots=True)
class CacheRequest:
    """What one request contributes to its cache keys, handed to the executor."""

    cache: ResponseCache
    tenant_hex: str
    role: str
    document_sha: str
    operation_name: str | None
    variables: dict[str, Any] | None
    outcomes: list[str] = field(default_factory=list)  # "hit" / "miss", for Server-Timing
    _digest: str | None = None

    def entry(self, group: str, path: list[str | int], parent_id: str) -> Entry:
        if self._digest is None:
            self._digest = request_digest(self.document_sha, self.operation_name, self.variables)
        digest = hashlib.sha256(
            f"{self._digest}\0{'.'.join(map(str, path))}\0{parent_id}".encode()
        ).hexdigest()[:40]
        return self.cache.entry(group, self.tenant_hex, self.role, digest)


_EXECUTORS: dict[type, type] = {}


def caching_executor(base: type) -> type:
    """`base` (a graphql-core Executor class) serving CACHED_FIELDS from the cache.

    Pass `response_cache=CacheRequest(...)` to `graphql.execute` (it reaches the
    constructor); without it the executor is `base` exactly.
    """
    if base in _EXECUTORS:
        return _EXECUTORS[base]

    class CachingExecutor(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, response_cache: CacheRequest | None = None, **kw: Any):
            super().__init__(*args, **kw)
            self.response_cache = response_cache

        def execute_field(
            self,
            parent_type: GraphQLObjectType,
            source: Any,
            field_details_list: Any,
            path: Any,
            position_context: Any,
        ) -> Any:
            request = self.response_cache
            if request is not None:
                name = field_details_list[0].node.name.value
                group = CACHED_FIELDS.get((parent_type.name, name))
                if group is not None:
                    return self._cached_field(
                        request,
                        group,
                        parent_type,
                        source,
                        field_details_list,
                        path,
                        position_context,
                    )
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )

        async def _cached_field(
            self,
            request: CacheRequest,
            group: str,
            parent_type: GraphQLObjectType,
            source: Any,
            field_details_list: Any,
            path: Any,
            position_context: Any,
        ) -> Any:
            path_list = path.as_list()
            parent_id = str(getattr(source, "row_id", "") or "")
            entry = request.entry(group, path_list, parent_id)
            computed = False

            async def compute() -> tuple[Any, bool]:
                nonlocal computed
                computed = True
                value = super(CachingExecutor, self).execute_field(
                    parent_type, source, field_details_list, path, position_context
                )
                if self.is_awaitable(value):
                    value = await value
                depth = len(path_list)
                clean = not any(
                    error.path is not None and list(error.path[:depth]) == path_list
                    for error in self.collected_errors.errors
                )
                return value, clean

            try:
                return await request.cache.get_or_compute(entry, compute)
            finally:
                request.outcomes.append("miss" if computed else "hit")

    _EXECUTORS[base] = CachingExecutor
    return CachingExecutor
