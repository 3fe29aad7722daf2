"""Sentinel failover under load: what a SIGKILLed Valkey primary costs jobs and events.

A PostgreSQL of its own (tests/support/faults.py), a Valkey primary, a replica and three
Sentinels (tests/support/sentinel.py), one gateway process and one worker that know only
REDIS_SENTINELS and REDIS_SENTINEL_SERVICE, and a websocket client following the tenant's
ACTIVITY_STATUS_CHANGED events. `--jobs` activities are created and enqueued one after
another, as `dispatchActivity` does (commit, then enqueue; an enqueue the failover refuses
is handed to a `tasks.queue.LateEnqueues`, as a gateway process does, which enqueues it
once Redis answers; `--reconciler-only`: left to the workers' reconciler alone, as before
the gateway did that); after `--kill-after` of them the primary is SIGKILLed. Reported
(perf/README.md, "Beyond one machine"):

- time without Redis: from the SIGKILL until a client's write succeeds on the new primary;
- jobs lost (not AWAITING_APPROVAL within `--deadline-s`), doubled (more than one RUNNING
  in an activity's outbox), and the longest delay from an enqueue to its run's start
  (RUNNING), median and longest, beside the same without a failover (`--no-kill`);
- events lost (in the outbox, never delivered) and duplicated (delivered twice).

`--wait-cost`: what waiting for the replica (WAIT 1) adds to one relay publish.

Run: `python perf/bench_failover.py [--jobs 200 --kill-after 100] [--no-kill] [--reconciler-only]`,
`python perf/bench_failover.py --wait-cost [--passes 500 --batch 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from switchboard.edge.auth import issue_token
from switchboard.infra.redis import redis_client
from switchboard.settings import Settings
from tasks.queue import LateEnqueues
from tests.conftest import tenant_gid, user_gid
from tests.support.faults import DedicatedPostgres
from tests.support.jobs import Worker, enqueue, fresh_tenant, new_work, wait_for
from tests.support.live import TENANT_EVENTS, GatewayProcess, LiveClient
from tests.support.sentinel import SentinelCluster

ROLE = "COPYWRITER"
SLOTS = 16


async def run(args: argparse.Namespace) -> dict[str, object]:
    pg = DedicatedPostgres()
    cluster = SentinelCluster()
    folder = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    try:
        await asyncio.to_thread(cluster.start)
        database_url = await pg.database()
        return await _measure(args, database_url, cluster, folder)
    finally:
        await asyncio.to_thread(cluster.close)
        pg.close()
        shutil.rmtree(folder, ignore_errors=True)  # the gateway's log


async def _measure(
    args: argparse.Namespace, database_url: str, cluster: SentinelCluster, folder: Path
) -> dict[str, object]:
    tenant = await fresh_tenant(database_url, "failover")
    env = cluster.env()
    settings = Settings.from_env(env)
    token = issue_token(
        Settings(), user_gid(tenant.slug, "marketer"), tenant_gid(tenant.slug), "dashboard"
    )
    db = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    # The agent may run as many jobs at once as the worker has slots: a job's wait is the
    # failover's, not a backlog behind the agent's cap.
    await db.execute("UPDATE agents SET concurrency = $1 WHERE id = $2", SLOTS, tenant.agent(ROLE))
    gateway = GatewayProcess(database_url, "", folder / "gateway.log", **env)
    worker = Worker(database_url, "", [tenant], SWITCHBOARD_WORKER_SLOTS=SLOTS, **env)
    redis = redis_client(settings, socket_timeout=1, socket_connect_timeout=1)
    late = None if args.reconciler_only else LateEnqueues(redis)
    received: list[str] = []
    enqueued_at: dict[uuid.UUID, float] = {}
    refused: set[uuid.UUID] = set()
    without_redis_s = None
    try:
        await asyncio.gather(gateway.ready(), worker.ready())
        async with LiveClient.connect(gateway.url, token) as client:
            # From the start of the tenant's log (a fresh tenant's is empty): no event is
            # missed however late the subscription starts.
            await client.subscribe(
                "s", TENANT_EVENTS, {"types": ["ACTIVITY_STATUS_CHANGED"], "after": "0-0"}
            )
            ids: list[uuid.UUID] = []

            async def listen() -> None:
                while True:
                    _, data = await client.next_data(timeout=3600)
                    received.append(data["tenantEvents"]["id"])

            listener = asyncio.create_task(listen())
            killed_at = None
            probe: asyncio.Task[float] | None = None

            async def writable_again(since: float) -> float:
                # A write every 50 ms until one succeeds: how long clients had no Redis.
                while True:
                    with contextlib.suppress(Exception):
                        await redis.set("bench:failover:probe", "1")
                        return time.time() - since
                    await asyncio.sleep(0.05)

            for n in range(args.jobs):
                if n == args.kill_after and not args.no_kill:
                    killed_at = time.time()
                    await asyncio.to_thread(cluster.kill_primary)
                    probe = asyncio.create_task(writable_again(killed_at))
                # As a mutation does: the activity committed, then its job enqueued.
                (activity,) = await new_work(db, tenant, ROLE)
                ids.append(activity)
                enqueued_at[activity] = time.time()
                try:
                    await enqueue(redis, tenant, ROLE, activity, 5)
                except Exception as error:  # refused during the failover
                    refused.add(activity)
                    if late is not None:  # enqueued again once Redis answers
                        created = await db.fetchval(
                            "SELECT created_at FROM activities WHERE id = $1", activity
                        )
                        late.add(
                            error,
                            activity_id=activity,
                            tenant_id=tenant.id,
                            agent_id=tenant.agent(ROLE),
                            priority=5,
                            created=created,
                        )
            if probe is not None:
                without_redis_s = await probe

            async def done() -> bool:
                n = await db.fetchval(
                    "SELECT count(*) FROM activities WHERE id = ANY($1::uuid[]) "
                    "AND status = 'AWAITING_APPROVAL'",
                    ids,
                )
                return n == len(ids)

            with contextlib.suppress(AssertionError):
                await wait_for(done, timeout=args.deadline_s, interval=0.2)

            async def outbox() -> list[int]:
                return await db.fetch(
                    "SELECT id FROM tenant_events WHERE tenant_id = $1 "
                    "AND type = 'ACTIVITY_STATUS_CHANGED'",
                    tenant.id,
                )

            async def delivered() -> bool:
                return len(received) >= len(await outbox())

            with contextlib.suppress(AssertionError):
                await wait_for(delivered, timeout=args.deadline_s, interval=0.2)
            client_error = repr(listener.exception()) if listener.done() else None
            unrelayed = await db.fetchval(
                "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 AND NOT relayed",
                tenant.id,
            )
            in_stream = await redis.xlen(f"sb:live:tenant:{tenant.id.hex}")
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
            expected = len(await outbox())
        statuses = await db.fetch(
            "SELECT id, status FROM activities WHERE id = ANY($1::uuid[])", ids
        )
        running = await db.fetch(
            "SELECT activity_id, count(*) AS n, min(occurred_at) AS first "
            "FROM activity_stream_events WHERE activity_id = ANY($1::uuid[]) "
            "AND kind = 'STATUS' AND status = 'RUNNING' GROUP BY activity_id",
            ids,
        )
        sequences = await db.fetch(
            "SELECT activity_id, array_agg(status ORDER BY id) AS s FROM activity_stream_events "
            "WHERE activity_id = ANY($1::uuid[]) AND kind = 'STATUS' GROUP BY activity_id",
            ids,
        )
    finally:
        late_enqueued = late.enqueued if late is not None else 0
        if late is not None:
            await late.close()
        await redis.aclose()
        gateway.stop()
        worker.stop()
        await db.close()
    delays = sorted(r["first"].timestamp() - enqueued_at[r["activity_id"]] for r in running)
    refused_delays = sorted(
        r["first"].timestamp() - enqueued_at[r["activity_id"]]
        for r in running
        if r["activity_id"] in refused
    )
    duplicates = sum(n - 1 for n in Counter(received).values() if n > 1)
    return {
        "jobs": args.jobs,
        "failover": not args.no_kill,
        "without_redis_s": round(without_redis_s, 2) if without_redis_s else None,
        "jobs_lost": sum(1 for r in statuses if r["status"] != "AWAITING_APPROVAL"),
        "jobs_doubled": sum(1 for r in running if r["n"] > 1),
        "enqueue_to_run_s_p50": round(delays[len(delays) // 2], 2) if delays else None,
        "enqueue_to_run_s_max": round(delays[-1], 2) if delays else None,
        # Enqueues the failover refused, each run by the reconciler: from the refused
        # enqueue to the run's start, longest.
        "refused_enqueues": len(refused),
        "refused_enqueued_again_by_client": late_enqueued,
        "refused_enqueue_to_run_s_max": round(refused_delays[-1], 2) if refused_delays else None,
        "events_in_outbox": expected,
        "events_delivered": len(received),
        "events_lost": max(expected - len(set(received)), 0),
        "events_duplicated": duplicates,
        "client_error": client_error,
        "unrelayed_rows": unrelayed,
        "tenant_stream_entries": in_stream,
        # Status sequences other than QUEUED, RUNNING, AWAITING_APPROVAL (how many of each).
        "other_status_sequences": dict(
            Counter(
                ",".join(r["s"])
                for r in sequences
                if list(r["s"]) != ["QUEUED", "RUNNING", "AWAITING_APPROVAL"]
            )
        ),
    }


async def wait_cost(args: argparse.Namespace) -> dict[str, object]:
    """What WAIT 1 adds to a relay pass: `--passes` publishes of `--batch` events each, by
    the relay's own calls (switchboard/live/log.py), with and without waiting for the
    replica, alternating so that the machine's noise falls on both alike."""
    from stats import summary  # perf/stats.py

    from switchboard.live.log import EventLog, Outgoing

    cluster = SentinelCluster()
    await asyncio.to_thread(cluster.start)
    redis = redis_client(Settings.from_env(cluster.env()), socket_timeout=0.5)
    try:
        events = EventLog(redis)
        timings: dict[str, list[float]] = {"publish": [], "publish + WAIT 1": []}
        for n in range(args.passes):
            batch = [
                Outgoing(f"bench:dedup:{n}:{i}", "sb:live:tenant:bench", {"n": n, "i": i})
                for i in range(args.batch)
            ]
            plain = [Outgoing(f"{o.dedup_key}:p", o.stream, o.payload) for o in batch]
            started = time.perf_counter()
            await events.publish(plain, int(time.time() * 1000))
            timings["publish"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            _, acked = await events.publish_replicated(batch, int(time.time() * 1000), 1, 200)
            timings["publish + WAIT 1"].append((time.perf_counter() - started) * 1000)
            assert acked == 1
        return {name: summary(values) for name, values in timings.items()}
    finally:
        await redis.aclose()
        await asyncio.to_thread(cluster.close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kill-after", type=int, default=100)
    parser.add_argument("--deadline-s", type=float, default=120.0)
    parser.add_argument("--no-kill", action="store_true", help="the same without a failover")
    parser.add_argument(
        "--reconciler-only",
        action="store_true",
        help="refused enqueues left to the workers' reconciler (no LateEnqueues)",
    )
    parser.add_argument("--wait-cost", action="store_true", help="only WAIT's cost per pass")
    parser.add_argument("--passes", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10, help="events per pass (--wait-cost)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(wait_cost(args) if args.wait_cost else run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
