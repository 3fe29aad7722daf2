"""Redis commands as spans: `TracedRedis` is the gateway's Redis client (app.create_redis).

Every command sent through it (the token and membership caches on the request path, and
whatever later features send) makes a span named by the command (`MGET`), with
`db.system.name` and `db.operation.name`, a child of the current span and only when that
span records. Keys and values are never recorded: keys are derived from tokens.
Pipelines and pub/sub connections go their own ways and make no spans.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from switchboard.observability.tracing import child_span, recording_parent


class TracedRedis(Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        parent = recording_parent()
        if parent is None:
            return await super().execute_command(*args, **options)
        started_ns, started = time.time_ns(), time.perf_counter()
        error: BaseException | None = None
        try:
            return await super().execute_command(*args, **options)
        except BaseException as failure:
            error = failure
            raise
        finally:
            command = str(args[0]).upper() if args else "UNKNOWN"
            child_span(
                command,
                SpanKind.CLIENT,
                parent,
                started_ns,
                started_ns + int((time.perf_counter() - started) * 1e9),
                {"db.system.name": "redis", "db.operation.name": command},
                error,
            )
