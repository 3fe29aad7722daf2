"""Every mutation against every kind of caller: the contract's roles, exactly.

IDs are well-formed but unknown, so a caller the role lets through gets a NOT_FOUND (or
INVALID) user error and nothing changes; a caller it does not gets the FORBIDDEN error.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.ids import to_global_id

UNKNOWN = {
    kind: to_global_id(kind, uuid.uuid4())
    for kind in ("Campaign", "Deliverable", "Approval", "Agent", "Activity")
}

MUTATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "createCampaign": (
        "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { userErrors { code } } }",
        {"i": {"name": ""}},  # INVALID when allowed: nothing is created
    ),
    "updateCampaign": (
        'mutation($id: ID!) { updateCampaign(id: $id, input: {name: "x"}) '
        "{ userErrors { code } } }",
        {"id": UNKNOWN["Campaign"]},
    ),
    "submitCampaign": (
        "mutation($id: ID!) { submitCampaign(id: $id) { userErrors { code } } }",
        {"id": UNKNOWN["Campaign"]},
    ),
    "createDeliverable": (
        'mutation($c: ID!) { createDeliverable(input: {campaignId: $c, title: "t", '
        "kind: EMAIL}) { userErrors { code } } }",
        {"c": UNKNOWN["Campaign"]},
    ),
    "dispatchActivity": (
        "mutation($d: ID!) { dispatchActivity(input: {deliverableId: $d, role: COPYWRITER}) "
        "{ userErrors { code } } }",
        {"d": UNKNOWN["Deliverable"]},
    ),
    "resolveApproval": (
        "mutation($a: ID!) { resolveApproval(input: {approvalId: $a, decision: APPROVE}) "
        "{ userErrors { code } } }",
        {"a": UNKNOWN["Approval"]},
    ),
    "setAgentStatus": (
        "mutation($id: ID!) { setAgentStatus(id: $id, status: PAUSED) { userErrors { code } } }",
        {"id": UNKNOWN["Agent"]},
    ),
    "setPreference": (
        'mutation { setPreference(key: "bad key", value: 1) { userErrors { code } } }',
        {},  # INVALID when allowed: nothing is written
    ),
    "reportActivityProgress": (
        'mutation($a: ID!) { reportActivityProgress(input: {activityId: $a, chunk: "x"}) '
        "{ userErrors { code } } }",
        {"a": UNKNOWN["Activity"]},
    ),
    "recordLlmCall": (
        'mutation($a: ID!) { recordLlmCall(input: {activityId: $a, provider: "p", model: '
        '"m", inputTokens: 1, outputTokens: 1, costUsd: "0.01", latencyMs: 1}) '
        "{ userErrors { code } } }",
        {"a": UNKNOWN["Activity"]},
    ),
}

PEOPLE = ("OWNER", "ADMIN", "MARKETER", "VIEWER")
ALLOWED = {
    "createCampaign": {"OWNER", "ADMIN", "MARKETER"},
    "updateCampaign": {"OWNER", "ADMIN", "MARKETER"},
    "submitCampaign": {"OWNER", "ADMIN", "MARKETER"},
    "createDeliverable": {"OWNER", "ADMIN", "MARKETER"},
    "dispatchActivity": {"OWNER", "ADMIN", "MARKETER"},
    "resolveApproval": {"OWNER", "ADMIN", "MARKETER"},
    "setAgentStatus": {"OWNER", "ADMIN"},
    "setPreference": set(PEOPLE),
    "reportActivityProgress": {"AGENT"},
    "recordLlmCall": {"AGENT"},
}


@pytest.mark.parametrize("caller", [*PEOPLE, "AGENT"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
async def test_each_role_may_call_exactly_its_mutations(
    gql: Any, token: Any, agent_token: Any, mutation: str, caller: str
) -> None:
    bearer = (
        agent_token("globex", "COPYWRITER")
        if caller == "AGENT"
        else token("globex", caller.lower())
    )
    document, variables = MUTATIONS[mutation]
    body = (await gql(document, variables, bearer)).json()
    if caller in ALLOWED[mutation]:
        assert "errors" not in body, body
        codes = [e["code"] for e in body["data"][mutation]["userErrors"]]
        assert codes and set(codes) <= {"NOT_FOUND", "INVALID"}, body
    else:
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
