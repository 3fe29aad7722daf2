"""The planned executor answers exactly what graphql-core answers.

Both run on the same data and principal; the data must be equal byte for byte once
serialised (orjson), the errors equal as sets of (message, path, code). Over every contract
query on every test tenant, for every role and for agent tokens (whose tenant-wide fields
answer FORBIDDEN), and over operations generated from the schema (random selections,
aliases, fragments on interfaces, @skip/@include with variables, __typename, arguments at
their limits). A disagreement is a bug in the planned executor.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from graphql import ExecutionResult, parse, validate
from graphql.execution import Executor
from hypothesis import HealthCheck, Phase, assume, given, settings
from starlette.applications import Starlette

from domain.enums import TenantEventType
from domain.ids import parse_global_id
from resolvers.context import RequestContext
from resolvers.subscriptions import tenant_event
from schema.core import core_schema
from switchboard.execution.executor import OperationExecutor, for_schema
from switchboard.execution.plan import OperationPlan
from tests.conftest import tenant_gid, user_gid
from tests.e2e.test_observability_metrics import parse as parse_metrics
from tests.e2e.test_observability_metrics import value
from tests.support.contract import CONTRACT_DIR, VARIABLES, query_operations
from tests.support.execution import both, outcome
from tests.support.operation_strategy import operations

OPERATIONS = query_operations("dashboard", "mobile")
TENANTS = ("acme", "globex", "initech")
ROLES = ("owner", "admin", "marketer", "viewer")
AGENT_ROLES = ("COPYWRITER", "ACTIVITY_PLANNER")
LOOKUP = """{
  tenant {
    agents { id role activities(first: 1) { edges { node { id } } } }
    campaigns(first: 1, status: ACTIVE) { edges { node { id } } }
  }
  approvalQueue(first: 1) { edges { node { id } } }
}"""

EVENT_IDS = "{ approvalQueue(first: 1) { edges { node { id activity { id } } } } }"


@pytest.fixture(scope="module")
def planned(app: Starlette) -> OperationExecutor:
    return OperationExecutor(app.state.graphql.schema)


@pytest.fixture(scope="module")
async def ids(gql: Any, token: Any) -> dict[str, dict[str, str]]:
    """Per tenant: an ID for each operation that takes one."""
    found = {}
    for slug in TENANTS:
        data = (await gql(LOOKUP, token=token(slug, "owner"))).json()["data"]
        copywriter = next(a for a in data["tenant"]["agents"] if a["role"] == "COPYWRITER")
        found[slug] = {
            "AgentActivity": copywriter["id"],
            "CampaignDetail": data["tenant"]["campaigns"]["edges"][0]["node"]["id"],
            "MobileApprovalDetail": data["approvalQueue"]["edges"][0]["node"]["id"],
        }
    return found


def _variables(name: str, slug: str, ids: dict[str, dict[str, str]]) -> dict[str, Any]:
    variables = dict(VARIABLES)
    if name in ids[slug]:
        variables["id"] = ids[slug][name]
    return variables


async def _same(
    app: Starlette, planned: OperationExecutor, bearer: str, query: str, variables: Any
) -> None:
    reference, result, ran, statements = await both(app, planned, bearer, query, variables)
    assert ran, "the planner should cover this operation"
    assert result[1] == reference[1]
    assert result[0] == reference[0]
    if not result[1]:  # batching: one statement per loader and level, or fewer: a
        # relation's level waits for all its keys, where graphql-core may split a loader's
        # level in two when some keys were cached (MobileHome's campaigns)
        assert statements[1] <= statements[0]


@pytest.mark.parametrize("slug", TENANTS)
@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_contract_queries_answer_alike_for_every_role(
    app: Starlette, planned: OperationExecutor, token: Any, ids: Any, slug: str, name: str
) -> None:
    for role in ROLES:
        await _same(app, planned, token(slug, role), OPERATIONS[name], _variables(name, slug, ids))


@pytest.mark.parametrize("agent_role", AGENT_ROLES)
@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_contract_queries_answer_alike_for_agents(
    app: Starlette,
    planned: OperationExecutor,
    agent_token: Any,
    ids: Any,
    agent_role: str,
    name: str,
) -> None:
    """Agent tokens: FORBIDDEN on tenant-wide fields, their own agent and activities."""
    for slug in ("acme", "globex"):
        variables = _variables(name, slug, ids)
        await _same(app, planned, agent_token(slug, agent_role), OPERATIONS[name], variables)


def _generated(schema: Any, ids: tuple[str, ...], count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` valid operations drawn from the schema, the same ones every run."""
    drawn: list[tuple[str, dict[str, Any]]] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(operations(schema, ids))
    def collect(operation: tuple[str, dict[str, Any]]) -> None:
        assume(not validate(schema, parse(operation[0])))
        drawn.append(operation)

    collect()
    return drawn


@pytest.mark.parametrize("who", ["marketer", "viewer", "owner", "agent"])
async def test_generated_operations_answer_alike(
    app: Starlette,
    planned: OperationExecutor,
    token: Any,
    agent_token: Any,
    ids: Any,
    gql: Any,
    who: str,
) -> None:
    own = ids["acme"]
    other = ids["globex"]
    known = (
        *own.values(),
        other["CampaignDetail"],  # another tenant's: null
        own["AgentActivity"].replace("agt_", "cmp_"),  # the right UUID, the wrong kind
        tenant_gid("acme"),
        user_gid("acme", "viewer"),
        "cmp_00000000000000000000000000000000",
        "nope",
    )
    bearer = agent_token("acme", "COPYWRITER") if who == "agent" else token("acme", who)
    schema = core_schema(app.state.graphql.schema)
    errors_seen = 0
    for query, variables in _generated(schema, known, 60):
        reference, result, ran, statements = await both(app, planned, bearer, query, variables)
        assert ran, query
        assert result[1] == reference[1], (query, variables)
        assert result[0] == reference[0], (query, variables)
        if not reference[1]:  # never more statements; fewer where a row brings what the
            # operation reads of a relation (the tenant's pending count)
            assert statements[1] <= statements[0], (query, variables)
        errors_seen += bool(reference[1])
    assert errors_seen, "the generated operations should include failing fields"


async def test_http_serves_planned_and_counts_what_graphql_core_runs(
    client: Any, gql: Any, token: Any
) -> None:
    """/graphql answers contract queries from their plan; introspection goes to
    graphql-core and /metrics counts it by reason."""
    endpoint_plans = client._transport.app.state.graphql.execution.plans
    before = parse_metrics((await client.get("/metrics")).text)
    response = await gql(
        OPERATIONS["DashboardOverview"],
        _variables("DashboardOverview", "acme", {"acme": {}}),
        token("acme", "viewer"),
    )
    assert response.status_code == 200 and "errors" not in response.json()
    introspection = await gql("{ __schema { queryType { name } } }", None, token("acme"))
    assert introspection.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    after = parse_metrics((await client.get("/metrics")).text)

    name = "switchboard_execution_fallbacks_total"
    assert (
        value(after, name, reason="introspection")
        == value(before, name, reason="introspection") + 1
    )
    assert (
        sum(v for (n, _), v in after.items() if n == name)
        == sum(v for (n, _), v in before.items() if n == name) + 1
    )
    assert len(endpoint_plans) >= 2  # DashboardOverview's shape and plan


async def test_skip_and_include_variables_key_the_plan(
    app: Starlette, planned: OperationExecutor, token: Any
) -> None:
    query = """query Conditional($withName: Boolean!, $first: Int) {
      tenant { id name @include(if: $withName) campaigns(first: $first) { edges { cursor } } }
    }"""
    bearer = token("acme", "viewer")
    for with_name in (True, False, True):
        for first in (1, 2):
            variables = {"withName": with_name, "first": first}
            reference, result, ran, _statements = await both(app, planned, bearer, query, variables)
            assert ran and result == reference
            tenant = orjson.loads(result[0])["tenant"]
            assert ("name" in tenant) is with_name
            assert len(tenant["campaigns"]["edges"]) == first
    prepared = app.state.graphql.documents.get(query)
    keys = [key for key in planned.plans._entries if prepared.sha256 in key]
    # One shape, and one plan per value of $withName: $first does not key a plan.
    assert sorted(len(key) for key in keys) == [3, 3, 3]


async def test_fragments_on_interfaces_follow_the_concrete_type(
    app: Starlette, planned: OperationExecutor, token: Any, ids: Any
) -> None:
    query = """query Things($a: ID!, $b: ID!, $c: ID!) {
      a: node(id: $a) { __typename id ...On }
      b: node(id: $b) { __typename ...On ... on Node { id } }
      c: node(id: $c) { ... on Approval { status activity { status } } __typename }
    }
    fragment On on Node { ... on Agent { role } ... on Campaign { name status } }"""
    variables = {
        "a": ids["acme"]["AgentActivity"],
        "b": ids["acme"]["CampaignDetail"],
        "c": ids["acme"]["MobileApprovalDetail"],
    }
    reference, result, ran, _statements = await both(
        app, planned, token("acme", "viewer"), query, variables
    )
    assert ran and result == reference
    data = orjson.loads(result[0])
    assert data["a"]["__typename"] == "Agent" and "role" in data["a"] and "name" not in data["a"]
    assert data["b"]["__typename"] == "Campaign" and "name" in data["b"] and "role" not in data["b"]
    assert data["c"]["__typename"] == "Approval" and "activity" in data["c"]


async def test_a_failed_non_null_field_nulls_its_nearest_nullable_ancestor(
    app: Starlette, planned: OperationExecutor, agent_token: Any, ids: Any
) -> None:
    """An agent reading tenant-wide fields: FORBIDDEN, with its path; the null goes up to
    the nearest nullable position (`node` here, the whole data for `tenant`)."""
    bearer = agent_token("acme", "COPYWRITER")
    nested = """query Nested($id: ID!) {
      viewer { id }
      node(id: $id) { ... on Agent { id activities(first: 2) { edges { node {
        id deliverable { id campaign { id tenant { id agents { id } } } } } } } } }
    }"""
    reference, result, ran, _statements = await both(
        app, planned, bearer, nested, {"id": ids["acme"]["AgentActivity"]}
    )
    assert ran and result == reference
    assert orjson.loads(result[0])["node"] is None
    assert orjson.loads(result[0])["viewer"]["id"]
    paths = {path for _, path, code in result[1] if code == "FORBIDDEN"}
    assert paths and all(p[:3] == ("node", "activities", "edges") for p in paths)

    reference, result, ran, _statements = await both(
        app, planned, bearer, "{ viewer { id } tenant { name } }"
    )
    assert ran and result == reference
    assert result[0] == b"null"
    assert {(path, code) for _, path, code in result[1]} == {(("tenant",), "FORBIDDEN")}


@pytest.mark.parametrize("who", ["viewer", "agent"])
async def test_live_events_render_alike(
    app: Starlette, token: Any, agent_token: Any, ids: Any, gql: Any, who: str
) -> None:
    """The live hub's per-event execution: the plan answers as graphql-core does, for
    every event type, with objects present, missing and of another tenant."""
    endpoint = app.state.graphql
    found = (await gql(EVENT_IDS, token=token("acme", "owner"))).json()["data"]
    approval = found["approvalQueue"]["edges"][0]["node"]
    row = {
        "approval": parse_global_id(approval["id"])[1].hex,
        "activity": parse_global_id(approval["activity"]["id"])[1].hex,
        "agent": parse_global_id(ids["acme"]["AgentActivity"])[1].hex,
        "campaign": parse_global_id(ids["globex"]["CampaignDetail"])[1].hex,  # not acme's
    }
    bearer = agent_token("acme", "COPYWRITER") if who == "agent" else token("acme", who)
    principal = await endpoint.authenticator.authenticate(f"Bearer {bearer}")
    text = (CONTRACT_DIR / "operations" / "subscriptions" / "TenantEvents.graphql").read_text()
    context = RequestContext.for_principal(principal, endpoint.services)
    subscribed = Executor.build(
        core_schema(endpoint.schema), endpoint.documents.get(text).document, context_value=context
    )
    planned = for_schema(core_schema(endpoint.schema))
    plan = planned.event_plan(subscribed)
    assert isinstance(plan, OperationPlan)
    for index, event_type in enumerate(TenantEventType):
        payload = {"type": event_type.value, "at": "2026-11-20T10:00:00+00:00"}
        payload |= {k: (v if index % 3 else None) for k, v in row.items()}
        root = tenant_event(f"{index}-0", payload)
        context = RequestContext.for_principal(principal, endpoint.services)
        try:
            result = await planned.execute_event(subscribed, plan, root, context)
        finally:
            context.loaders.close()
        per_event = subscribed.build_per_event_executor(root)
        per_event.context_value = RequestContext.for_principal(principal, endpoint.services)
        try:
            reference = per_event.execute_operation()
            if not isinstance(reference, ExecutionResult):
                reference = await reference  # type: ignore[misc]
        finally:
            per_event.context_value.loaders.close()
        settings = endpoint.settings
        assert outcome(result, settings) == outcome(reference, settings), event_type
