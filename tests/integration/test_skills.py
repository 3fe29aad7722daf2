"""Skills: search on Qdrant (tenancy and role filters inside the search, cache, keeping every
process current), the skill mutations, bad input, and two-stage loading in agent runs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from qdrant_client import AsyncQdrantClient
from redis.asyncio import Redis

from domain import skills
from domain.ids import to_global_id
from domain.runs import Run
from domain.store import skills as skill_store
from switchboard.devdata.seed import stable_id
from switchboard.devdata.skill_catalogue import LABELLED_QUERIES, SKILLS
from switchboard.skill_search import cache, changes
from switchboard.skill_search.embeddings import LexicalEmbedder
from switchboard.skill_search.index import UPLOAD_BATCH, SkillIndex
from tasks import runner
from tasks.config import JobSettings
from tasks.runtimes import Message, OnToken, SimulatedRuntime, TurnResult
from tests.conftest import Servers
from tests.support.edge import gateway
from tests.support.jobs import fresh_tenant, new_work

SEARCH = """query($q: String!, $role: AgentRole, $first: Int) {
  skillSearch(query: $q, role: $role, first: $first) {
    score skill { id name role summary content }
  }
}"""
CREATE = """mutation($input: CreateSkillInput!) {
  createSkill(input: $input) { skill { id name role summary content }
                               userErrors { field message code } }
}"""
UPDATE = """mutation($id: ID!, $input: UpdateSkillInput!) {
  updateSkill(id: $id, input: $input) { skill { id name role summary content }
                                        userErrors { field message code } }
}"""


async def _search(gql: Any, token: str, q: str, **variables: Any) -> list[dict[str, Any]]:
    response = await gql(SEARCH, {"q": q, **variables}, token)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["skillSearch"]


def _names(matches: list[dict[str, Any]]) -> list[str]:
    return [m["skill"]["name"] for m in matches]


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


# Search.


async def test_search_ranks_the_skill_asked_for_first(gql: Any, token: Any) -> None:
    matches = await _search(gql, token("acme"), "keyword clusters by search intent")
    assert matches[0]["skill"]["name"] == "Keyword clustering"
    assert matches[0]["skill"]["id"] == to_global_id(
        "Skill", stable_id("skill", "Keyword clustering")
    )
    assert "# Keyword clustering" in matches[0]["skill"]["content"]
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True) and len(matches) == 5


async def test_a_tenant_finds_its_own_and_global_skills_never_another_tenants(
    gql: Any, token: Any
) -> None:
    acme = _names(await _search(gql, token("acme"), "house style banned words", first=50))
    globex = _names(await _search(gql, token("globex"), "house style banned words", first=50))
    assert "Acme house style" in acme and "Globex house style" not in acme
    assert "Globex house style" in globex and "Acme house style" not in globex
    assert "Brand voice guide" in acme and "Brand voice guide" in globex


async def test_a_better_match_of_another_tenant_never_comes_back(gql: Any, token: Any) -> None:
    """Each tenant's skills live in their own collection and the search filters by tenant
    too: a skill of globex's written to answer a query word for word stays out of acme's
    results for that query, however many are asked for, and equal queries in two tenants
    rank each one's own house style first."""
    globex_admin = token("globex", "admin")
    name = _unique("Quarterly investor letter")
    query = "quarterly investor letter revenue bridge guidance"
    response = await gql(
        CREATE,
        {
            "input": {
                "name": name,
                "summary": "Quarterly investor letter: revenue bridge and guidance.",
                "content": "# Quarterly investor letter\n- Revenue bridge.\n- Guidance.",
            }
        },
        globex_admin,
    )
    assert response.json()["data"]["createSkill"]["userErrors"] == []
    assert _names(await _search(gql, token("globex"), query, first=1)) == [name]
    acme = await _search(gql, token("acme"), query, first=50)
    assert name not in _names(acme)
    assert len(acme) >= 36 and "Acme house style" in _names(acme)  # weaker ones do come back
    assert not any(n.startswith("Globex") for n in _names(acme))
    scores = [m["score"] for m in acme]  # one ranking across the global and acme's skills
    assert scores == sorted(scores, reverse=True)

    house = "house style spelling tone banned words"
    [acme_top] = await _search(gql, token("acme"), house, first=1)
    [globex_top] = await _search(gql, token("globex"), house, first=1)
    assert acme_top["skill"]["name"] == "Acme house style"
    assert globex_top["skill"]["name"] == "Globex house style"


async def test_the_role_filter_applies_inside_the_search(gql: Any, token: Any) -> None:
    # A query that matches copywriting best still answers only SEO skills, a full page of
    # them: the filter runs before the limit, not after it.
    matches = await _search(
        gql, token("acme"), "headline formulas for blog posts", role="SEO_SPECIALIST", first=5
    )
    assert {m["skill"]["role"] for m in matches} == {"SEO_SPECIALIST"}
    assert len(matches) == 5


async def test_lexical_recall_at_5_on_the_labelled_queries(gql: Any, token: Any) -> None:
    """The labelled set (switchboard/devdata/skill_catalogue.py) through the gateway; perf/README.md
    reports the figure for both embeddings."""
    assert len(LABELLED_QUERIES) >= 30 and len(SKILLS) >= 30
    found = 0
    for query, expected in LABELLED_QUERIES:
        found += expected in _names(await _search(gql, token("acme"), query))
    assert found / len(LABELLED_QUERIES) >= 0.85, found


async def test_results_are_cached_for_15_minutes_under_the_generation(
    gql: Any, token: Any, servers: Servers
) -> None:
    query = _unique("cohort retention")
    first = await _search(gql, token("acme"), query, first=3)
    redis = Redis.from_url(servers.redis_url)
    try:
        generation = await changes.current(redis)
        key = cache.cache_key(stable_id("acme", "tenant"), query, None, 3, "lexical", generation)
        assert 0 < await redis.ttl(key) <= 15 * 60
        assert [h.name for h in await cache.get(redis, key) or []] == _names(first)
    finally:
        await redis.aclose()
    assert await _search(gql, token("acme"), query, first=3) == first


# Changes.


async def test_a_created_skill_is_found_at_once_and_an_update_retires_cached_results(
    gql: Any, token: Any
) -> None:
    admin = token("acme", "admin")
    name = _unique("Podcast show notes")
    query = "podcast episode show notes with timestamps"
    before = await _search(gql, admin, query)  # cached now
    assert name not in _names(before)
    response = await gql(
        CREATE,
        {
            "input": {
                "name": name,
                "role": "COPYWRITER",
                "summary": "Notes for each podcast episode, with timestamps and links.",
                "content": "# Show notes\n- A timestamp per topic.\n- Links to every guest.",
            }
        },
        admin,
    )
    payload = response.json()["data"]["createSkill"]
    assert payload["userErrors"] == [], payload
    skill = payload["skill"]
    assert skill["summary"].startswith("Notes for each podcast episode")
    assert _names(await _search(gql, admin, query))[0] == name

    response = await gql(
        UPDATE, {"id": skill["id"], "input": {"content": "# Show notes\n- Chapters first."}}, admin
    )
    assert response.json()["data"]["updateSkill"]["userErrors"] == []
    [top] = await _search(gql, admin, query, first=1)
    assert top["skill"]["content"] == "# Show notes\n- Chapters first."
    # Another tenant never sees it.
    assert name not in _names(await _search(gql, token("globex"), query, first=50))


async def test_another_gateway_process_catches_up_from_the_change_log(
    gql: Any, token: Any, servers: Servers, db_conn: asyncpg.Connection
) -> None:
    """Two gateways, each with its own local Qdrant collection: a change made through one
    (or written by another process that bumps the generation) is searched by the other."""
    admin = token("acme", "admin")
    async with gateway(servers) as (other_app, other):
        other_index = other_app.state.services.skills
        name = _unique("Webinar follow-up")
        query = "follow up email after a webinar"
        # The other gateway builds its collection at start, in the background; its first
        # search waits for that build.
        response = await other.post(
            "/graphql",
            json={"query": SEARCH, "variables": {"q": query}},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert name not in _names(response.json()["data"]["skillSearch"])
        response = await gql(
            CREATE,
            {
                "input": {
                    "name": name,
                    "summary": "What to send attendees and no-shows after a webinar.",
                    "content": "# After the webinar\n- Recording within 24 hours.",
                }
            },
            admin,
        )
        assert response.json()["data"]["createSkill"]["userErrors"] == []
        behind = other_index.generation
        response = await other.post(
            "/graphql",
            json={"query": SEARCH, "variables": {"q": query}},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert name in _names(response.json()["data"]["skillSearch"])
        assert other_index.generation > behind
        # A change written outside the gateways (a script, a migration): the row,
        # then the bump after the commit.
        skill_id = await db_conn.fetchval(
            "UPDATE skills SET content = $2, updated_at = now() WHERE name = $1 RETURNING id",
            name,
            "# After the webinar\n- Send the slides too.",
        )
        redis = Redis.from_url(servers.redis_url)
        try:
            await changes.bump(redis, [skill_id])
        finally:
            await redis.aclose()
        response = await other.post(
            "/graphql",
            json={"query": SEARCH, "variables": {"q": query, "first": 1}},
            headers={"authorization": f"Bearer {admin}"},
        )
        [top] = response.json()["data"]["skillSearch"]
        assert top["skill"]["content"] == "# After the webinar\n- Send the slides too."


async def test_skill_mutations_check_role_and_input(gql: Any, token: Any) -> None:
    good = {"name": _unique("Press release"), "summary": "One line.", "content": "# Body"}
    forbidden = await gql(CREATE, {"input": good}, token("acme", "marketer"))
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    admin = token("acme", "admin")

    async def errors(mutation: str, variables: dict[str, Any]) -> list[tuple[list[str], str]]:
        data = (await gql(mutation, variables, admin)).json()["data"]
        payload = next(iter(data.values()))
        assert payload["skill"] is None
        return [(e["field"], e["code"]) for e in payload["userErrors"]]

    assert await errors(CREATE, {"input": {**good, "name": " "}}) == [
        (["input", "name"], "INVALID")
    ]
    assert await errors(CREATE, {"input": {**good, "summary": "two\nlines"}}) == [
        (["input", "summary"], "INVALID")
    ]
    assert await errors(CREATE, {"input": {**good, "content": "x" * 20_001}}) == [
        (["input", "content"], "INVALID")
    ]
    created = (await gql(CREATE, {"input": good}, admin)).json()["data"]["createSkill"]
    assert created["userErrors"] == []
    # Names are unique within a tenant, whatever their case.
    assert await errors(CREATE, {"input": {**good, "name": good["name"].upper()}}) == [
        (["input", "name"], "DUPLICATE")
    ]
    house = to_global_id("Skill", stable_id("acme", "skill", "house-style"))
    assert await errors(UPDATE, {"id": house, "input": {"name": good["name"]}}) == [
        (["input", "name"], "DUPLICATE")
    ]
    shared = to_global_id("Skill", stable_id("skill", "Brand voice guide"))
    assert await errors(UPDATE, {"id": shared, "input": {"summary": "Mine now."}}) == [
        (["id"], "FORBIDDEN")
    ]
    foreign = to_global_id("Skill", stable_id("globex", "skill", "house-style"))
    assert await errors(UPDATE, {"id": foreign, "input": {"summary": "Mine now."}}) == [
        (["id"], "NOT_FOUND")
    ]


# Bad input.


@pytest.mark.parametrize(
    ("variables", "needle"),
    [
        ({"q": ""}, "`query`"),
        ({"q": "   \n\t "}, "`query`"),
        ({"q": "x" * 1001}, "1000"),
        ({"q": "brand\x00voice"}, "NUL"),
        ({"q": "brand\x07voice"}, "control"),
        ({"q": "brand voice", "first": 0}, "`first`"),
        ({"q": "brand voice", "first": 51}, "`first`"),
        ({"q": "brand voice", "first": -3}, "`first`"),
    ],
)
async def test_bad_search_input_is_a_clear_bad_user_input(
    gql: Any, token: Any, variables: dict[str, Any], needle: str
) -> None:
    response = await gql(SEARCH, variables, token("acme"))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert needle in error["message"]


async def test_an_unknown_role_is_refused_before_anything_runs(gql: Any, token: Any) -> None:
    response = await gql(SEARCH, {"q": "brand voice", "role": "ASTRONAUT"}, token("acme"))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "ASTRONAUT" in error["message"] and "AgentRole" in error["message"]


# The index.


async def test_uploads_embed_in_batches_of_32(db_conn: asyncpg.Connection, app: Any) -> None:
    async with app.state.db.connect() as conn:
        rows = await skill_store.rows_for_index(conn)
    rows = (rows * (70 // len(rows) + 1))[:70]
    index = SkillIndex(AsyncQdrantClient(location=":memory:"), LexicalEmbedder())
    try:
        await index.ensure_collection()
        assert await index.upload(rows) == [UPLOAD_BATCH, UPLOAD_BATCH, 70 - 2 * UPLOAD_BATCH]
    finally:
        await index.close()


async def test_local_mode_keeps_a_collection_per_scope() -> None:
    """Global skills in one collection, each tenant's in its own, created on demand; a
    search reads the global one and the caller's and merges them by score; a delete finds
    the skill's collection; clear() drops them all."""
    now = dt.datetime.now(dt.UTC)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    twin = ("Churn survey", "ANALYST", "Why customers leave.", "# Churn survey\n- Ask why.")

    def row(
        tenant: uuid.UUID | None, name: str, role: str | None, summary: str, body: str
    ) -> skills.SkillRow:
        return skills.SkillRow(uuid.uuid4(), tenant, name, role, summary, body, now)

    shared = row(None, "Churn dashboard", "ANALYST", "Churn by cohort.", "# Churn\n- Cohorts.")
    mine, theirs = row(a, *twin), row(b, *twin)
    other_role = row(a, "Churn copy", "COPYWRITER", "Win-back emails.", "# Win back")
    index = SkillIndex(AsyncQdrantClient(location=":memory:"), LexicalEmbedder())
    try:
        await index.clear()
        await index.upload([shared, mine, theirs, other_role])
        listed = {d.name for d in (await index.client.get_collections()).collections}
        assert listed == {
            "skills_lexical_global",
            f"skills_lexical_t{a.hex}",
            f"skills_lexical_t{b.hex}",
        }
        query = "churn survey why customers leave"
        hits = await index.search(query, a, None, 5)
        assert [h.id for h in hits][:2] == [mine.id, shared.id]  # merged, best first
        assert {h.id for h in hits} == {mine.id, shared.id, other_role.id}
        assert [h.id for h in await index.search(query, a, "ANALYST", 5)] == [mine.id, shared.id]
        assert [h.id for h in await index.search(query, b, None, 5)] == [theirs.id, shared.id]
        assert [h.id for h in await index.search(query, c, None, 5)] == [shared.id]

        await index.delete([mine.id, uuid.uuid4()])
        assert mine.id not in {h.id for h in await index.search(query, a, None, 5)}
        assert [h.id for h in await index.search(query, b, None, 5)] == [theirs.id, shared.id]

        await index.clear()
        listed = {d.name for d in (await index.client.get_collections()).collections}
        assert listed == {"skills_lexical_global"}
        assert await index.search(query, b, None, 5) == []
    finally:
        await index.close()


# Two-stage loading.


class Recording:
    """The simulated runtime, keeping the messages of every turn it was given."""

    def __init__(self, runtime: SimulatedRuntime) -> None:
        self.runtime = runtime
        self.prompts: list[list[Message]] = []

    async def turn(
        self, run: Run, messages: list[Message], turn: int, on_token: OnToken
    ) -> TurnResult:
        self.prompts.append(list(messages))
        return await self.runtime.turn(run, messages, turn, on_token)


async def _nothing(*_: Any) -> None:
    return None


async def test_a_run_sees_only_the_manifest_until_it_loads_a_skill(
    servers: Servers, db_conn: asyncpg.Connection, app: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "skills")
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER", kind="EMAIL")
    await db_conn.execute(
        "UPDATE deliverables SET title = 'Spring sale email subject lines' "
        "WHERE id = (SELECT deliverable_id FROM activities WHERE id = $1)",
        activity,
    )
    settings = JobSettings(sim_token_delay_ms=0, sim_tokens_per_turn=12)
    recording = Recording(SimulatedRuntime(settings))
    outcome = await runner.execute(
        app.state.db, settings, activity, tenant.id, _nothing, restart=False, runtime=recording
    )
    assert outcome.status == "AWAITING_APPROVAL" and outcome.turns == 2

    everything = await db_conn.fetch(
        "SELECT name, role, summary, content FROM skills WHERE tenant_id IS NULL OR tenant_id = $1",
        tenant.id,
    )
    usable = [r for r in everything if r["role"] in (None, "COPYWRITER")]

    def holds(prompt: list[Message], content: str) -> bool:
        text = "\n".join(m.content for m in prompt)
        # Any line of a skill's content, not just the whole of it.
        return any(line.strip() in text for line in content.splitlines() if line.strip())

    first, second = recording.prompts
    system = first[0].content
    for row in usable:  # the manifest: every skill the role may load, by name and summary
        assert f"- {row['name']}: {row['summary']}" in system
    for row in everything:
        if row["role"] not in (None, "COPYWRITER"):
            assert row["name"] not in system
        assert not holds(first, row["content"]), row["name"]
    # The run asked for the email skill and got its content, and only its content.
    loaded = "Email subject lines"
    for row in everything:
        assert holds(second, row["content"]) == (row["name"] == loaded), row["name"]
    assert second[-1].content.startswith(f"Skill “{loaded}”:")


async def test_loading_answers_unknown_names_and_caps_a_run(app: Any, servers: Servers) -> None:
    from tasks import skill_loading

    tenant = await fresh_tenant(servers.database_url, "skills-cap")
    run = Run(
        activity_id=uuid.uuid4(),
        tenant_id=tenant.id,
        agent_id=tenant.agent("SEO_SPECIALIST"),
        campaign_id=uuid.uuid4(),
        deliverable_id=uuid.uuid4(),
        priority=5,
        instructions=None,
        role="SEO_SPECIALIST",
        model="gpt-4.1",
        max_turns=4,
        agent_status="RUNNING",
        deliverable_title="Audit",
        deliverable_kind="SEO_AUDIT",
        campaign_name="C",
        campaign_goal=None,
        campaign_ends_on=None,
    )
    db = app.state.db
    loaded: set[str] = set()
    reply = await skill_loading.answer(
        db, run, ["keyword clustering", "Brand voice guide", "No such skill"], loaded
    )
    assert "# Keyword clustering" in reply
    assert "No skill named “Brand voice guide”" in reply  # a copywriter's, not this role's
    assert "No skill named “No such skill”" in reply
    reply = await skill_loading.answer(
        db,
        run,
        ["Internal linking", "Local search listings", "Meta title and description"],
        loaded,
    )
    assert reply.count("Skill “") == 3 and "at most 3 skills" in reply
    assert loaded == {"keyword clustering", "internal linking", "local search listings"}


# The `switchboard skill` CLI.


def _cli(servers: Servers, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
    }
    command = [sys.executable, "-m", "switchboard.cli", "skill", *args]
    return subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


async def test_an_operator_puts_a_global_skill_that_every_tenant_then_finds(
    servers: Servers, gql: Any, token: Any, tmp_path: Path
) -> None:
    name = _unique("Podcast show notes")
    content = tmp_path / "skill.md"
    content.write_text("# Podcast show notes\n- Timestamps for every segment.\n")
    created = _cli(servers, "--name", name, "--content-file", str(content))
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created skl_") and "(global)" in created.stdout
    for slug in ("acme", "globex"):
        response = await gql(SEARCH, {"q": "podcast show notes timestamps"}, token(slug))
        assert name in _names(response.json()["data"]["skillSearch"])

    content.write_text("# Podcast show notes\n- Timestamps, guests and links.\n")
    updated = _cli(servers, "--name", name, "--content-file", str(content), "--role", "COPYWRITER")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.startswith("updated ")
    variables = {"q": "podcast guests and links", "role": "COPYWRITER"}
    response = await gql(SEARCH, variables, token("acme"))
    found = [m for m in response.json()["data"]["skillSearch"] if m["skill"]["name"] == name]
    assert found and "guests and links" in found[0]["skill"]["content"]


async def test_the_skill_cli_refuses_bad_input_and_writes_nothing(
    servers: Servers, db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    name = _unique("Nope")
    content = tmp_path / "skill.md"
    content.write_text("# Nope\n")
    bad_role = _cli(servers, "--name", name, "--content-file", str(content), "--role", "CHEF")
    assert bad_role.returncode == 2 and "Not an agent role" in bad_role.stderr
    no_tenant = _cli(servers, "--name", name, "--content-file", str(content), "--tenant", "nope")
    assert no_tenant.returncode == 2 and "No tenant" in no_tenant.stderr
    assert await db_conn.fetchval("SELECT count(*) FROM skills WHERE name = $1", name) == 0
