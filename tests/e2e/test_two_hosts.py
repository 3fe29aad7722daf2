"""Many hosts (issue 19): two "hosts", each a `switchboard serve` with one gateway process and
one job worker, in a state folder, on a port and in process groups of its own, sharing only
what hosts on separate machines would share (tests/support/hosts.py): a PostgreSQL primary
through PgBouncer in transaction mode, a streaming replica of it, and Valkey behind three
Sentinels. Each host is told nothing else: DATABASE_URL (PgBouncer), DATABASE_DIRECT_URL
(migrations), DATABASE_REPLICA_URLS, REDIS_SENTINELS and REDIS_SENTINEL_SERVICE, with
SWITCHBOARD_DB_POOLER=transaction.

They pass the acceptance of one host, across hosts:
- a mutation sent to one host reaches the subscribers of both, each event once, in order;
- an APQ registration made on one host serves the hash alone on the other (an unknown hash
  still answers PERSISTED_QUERY_NOT_FOUND);
- an agent's concurrency cap holds across both hosts' job workers: activities dispatched
  through both, never more running at once than the cap, which only both workers together
  can reach, and each ran once to completion;
- a rate limit is one window for both: requests split over them are refused at the
  combined count.

At the end everything stops and no process of the hosts or of the shared servers is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from domain.ids import parse_id_of, to_global_id
from tests.support.contract import operation
from tests.support.edge import MOBILE_HOME_ID, codes, limited, persisted, sha256
from tests.support.hosts import SharedServers
from tests.support.jobs import fresh_tenant, max_overlap, set_agent, starts, wait_for
from tests.support.live import TENANT_EVENTS, LiveClient
from tests.support.processes import Serve, in_groups, none_left, serve_token

UPDATE_CAMPAIGN = operation("dashboard", "UpdateCampaign")
CREATE_DELIVERABLE = operation("dashboard", "CreateDeliverable")
DISPATCH_ACTIVITY = operation("dashboard", "DispatchActivity")
MOBILE_LIMIT = 6  # SWITCHBOARD_RATE_LIMIT_MOBILE: only the rate-limit test sends mobile requests
WINDOW_S = 60
CAP = 3  # the agent's concurrency: more than one host's worker can run (2 slots)
JOBS = 9
HOST_ENV = {
    "SWITCHBOARD_WORKER_SLOTS": "2",
    "SWITCHBOARD_SIM_TOKEN_DELAY_MS": "20",  # runs long enough to overlap
    "SWITCHBOARD_RATE_LIMIT": "1",
    "SWITCHBOARD_RATE_LIMIT_MOBILE": str(MOBILE_LIMIT),
    "SWITCHBOARD_RATE_LIMIT_WINDOW_S": str(WINDOW_S),
}


@dataclass
class Hosts:
    a: Serve
    b: Serve
    shared: SharedServers


def _tree(serve: Serve) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return serve.tree()
    return []


@pytest.fixture(scope="module")
async def hosts() -> AsyncIterator[Hosts]:
    shared = await SharedServers.start()
    # Not under pytest's temporary folder (see tests/e2e/test_serve_process.py).
    folder = Path(tempfile.mkdtemp(prefix="switchboard-hosts-"))
    started: list[Serve] = []
    try:
        for name in ("a", "b"):
            started.append(
                Serve(
                    folder / name,
                    folder / f"serve-{name}.log",
                    *("--workers", "1", "--job-workers", "1"),
                    **shared.host_env(),
                    **HOST_ENV,
                )
            )
        await asyncio.gather(*(serve.ready() for serve in started))
        yield Hosts(started[0], started[1], shared)
    finally:
        trees = [_tree(serve) for serve in started]
        processes = [p for tree in trees for p in tree] + shared.processes()
        groups = {p.pid for tree in trees for p in tree}  # serve's and each child's own
        await asyncio.gather(*(asyncio.to_thread(serve.stop) for serve in started))
        for serve in started:
            print(f"--- serve {serve.state_dir.name} ---\n{serve.output()[-6000:]}")
        await asyncio.to_thread(shared.close)
        shutil.rmtree(folder, ignore_errors=True)
        await none_left(processes, timeout=30)
        assert not in_groups(groups)


@pytest.fixture(scope="module")
async def db(hosts: Hosts) -> AsyncIterator[asyncpg.Connection]:
    """The primary itself, for arranging and checking rows."""
    conn = await asyncpg.connect(hosts.shared.direct_url.replace("+asyncpg", "", 1))
    yield conn
    await conn.close()


async def _mutate(host: Serve, token: str, query: str, variables: dict[str, Any]) -> Any:
    response = await host.graphql({"query": query, "variables": variables}, token)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, response.text
    [payload] = body["data"].values()
    assert payload["userErrors"] == [], payload
    return payload


async def _first_active_campaign(db: asyncpg.Connection, tenant_id: uuid.UUID) -> str:
    found = await db.fetchval(
        "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
        "ORDER BY created_at LIMIT 1",
        tenant_id,
    )
    return to_global_id("Campaign", found)


async def test_a_mutation_on_one_host_reaches_the_subscribers_of_both_once(
    hosts: Hosts, db: asyncpg.Connection
) -> None:
    tenant = await fresh_tenant(hosts.shared.direct_url, "hosts-live")
    token = serve_token(tenant.slug)
    campaign = await _first_active_campaign(db, tenant.id)
    # From the start of the tenant's log (a fresh tenant's is empty): the subscriptions
    # miss nothing however long they take to join their hubs.
    since = {"types": ["CAMPAIGN_UPDATED"], "after": "0-0"}
    async with (
        LiveClient.connect(hosts.b.ws_url, token) as on_b,
        LiveClient.connect(hosts.a.ws_url, token) as on_a,
    ):
        await on_b.subscribe("b", TENANT_EVENTS, since)
        await on_a.subscribe("a", TENANT_EVENTS, since)
        seen: dict[str, list[str]] = {"a": [], "b": []}
        # Each change after both subscribers had the one before: a second delivery of an
        # event would come before the next one.
        for host, name in ((hosts.a, "Sent to A"), (hosts.b, "Sent to B"), (hosts.a, "A again")):
            variables = {"id": campaign, "input": {"name": name}}
            await _mutate(host, token, UPDATE_CAMPAIGN, variables)
            for live in (on_b, on_a):
                subscription, data = await live.next_data()
                event = data["tenantEvents"]
                assert (event["type"], event["campaign"]["name"]) == ("CAMPAIGN_UPDATED", name)
                seen[subscription].append(event["id"])
    assert seen["a"] == seen["b"] and len(set(seen["a"])) == 3, seen


async def test_a_query_registered_on_one_host_is_served_by_hash_on_the_other(
    hosts: Hosts,
) -> None:
    token = serve_token("acme")
    text = f"query TwoHosts{uuid.uuid4().hex} {{ viewer {{ id }} tenant {{ slug }} }}"
    by_hash = {"extensions": persisted(sha256(text))}
    unknown = await hosts.b.graphql(by_hash, token)
    assert unknown.status_code == 200 and codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]

    registered = await hosts.a.graphql({"query": text, **by_hash}, token)
    assert registered.status_code == 200, registered.text
    assert registered.json()["data"]["tenant"] == {"slug": "acme"}
    served = await hosts.b.graphql(by_hash, token)
    assert served.status_code == 200 and served.json() == registered.json()

    never = await hosts.b.graphql({"extensions": persisted(sha256(text + " "))}, token)
    assert never.status_code == 200 and codes(never) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert "data" not in never.json()


async def test_an_agents_cap_holds_across_both_hosts_workers(
    hosts: Hosts, db: asyncpg.Connection
) -> None:
    """Each worker runs at most 2 jobs; the cap of 3 is reached only by both at once."""
    tenant = await fresh_tenant(hosts.shared.direct_url, "hosts-caps")
    role = "SEO_SPECIALIST"
    await set_agent(db, tenant.agent(role), concurrency=CAP)
    token = serve_token(tenant.slug)
    campaign = await _first_active_campaign(db, tenant.id)
    ids = []
    for n in range(JOBS):
        host = (hosts.a, hosts.b)[n % 2]
        created = await _mutate(
            host,
            token,
            CREATE_DELIVERABLE,
            {"input": {"campaignId": campaign, "title": f"Audit {n}", "kind": "SEO_AUDIT"}},
        )
        dispatched = await _mutate(
            host,
            token,
            DISPATCH_ACTIVITY,
            {"input": {"deliverableId": created["deliverable"]["id"], "role": role}},
        )
        ids.append(parse_id_of("Activity", dispatched["activity"]["id"]))

    async def all_awaiting_approval() -> bool:
        rows = await db.fetch("SELECT status FROM activities WHERE id = ANY($1::uuid[])", ids)
        return len(rows) == JOBS and all(r["status"] == "AWAITING_APPROVAL" for r in rows)

    await wait_for(all_awaiting_approval, timeout=60, interval=0.1)
    runs = await db.fetch(
        "SELECT a.dispatched_at, p.requested_at FROM activities a "
        "JOIN approvals p ON p.activity_id = a.id WHERE a.id = ANY($1::uuid[])",
        ids,
    )
    assert max_overlap([(r["dispatched_at"], r["requested_at"]) for r in runs]) == CAP
    assert await starts(db, ids) == dict.fromkeys(ids, 1)  # each ran once


async def test_a_rate_limit_is_one_window_for_both_hosts(hosts: Hosts) -> None:
    """Half the limit on each host, then both refuse: neither counted only its own."""
    token = serve_token("acme", "viewer", "mobile")
    home = {"extensions": persisted(MOBILE_HOME_ID)}
    for n in range(MOBILE_LIMIT):
        answer = await (hosts.a, hosts.b)[n % 2].graphql(home, token)
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    for host in (hosts.a, hosts.b):
        limited(await host.graphql(home, token), WINDOW_S)
