"""No N+1: an operation's SQL statement count does not grow with the rows it returns.

Every query of the dashboard and the mobile app runs for `acme` (demo size) and for
`initech` (four times as many campaigns, deliverables, activities, approvals and calls).
The larger tenant returns clearly more data, yet the statements issued are the same number.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.contract import VARIABLES, query_operations

OPERATIONS = query_operations("dashboard", "mobile")


LOOKUP = """{
  tenant {
    agents { id role }
    campaigns(first: 1, status: ACTIVE) { edges { node { id } } }
  }
  approvalQueue(first: 1) { edges { node { id } } }
}"""


async def _ids(gql: Any, token: str) -> dict[str, str]:
    data = (await gql(LOOKUP, token=token)).json()["data"]
    return {
        "AgentActivity": next(
            a["id"] for a in data["tenant"]["agents"] if a["role"] == "COPYWRITER"
        ),
        "CampaignDetail": data["tenant"]["campaigns"]["edges"][0]["node"]["id"],
        "MobileApprovalDetail": data["approvalQueue"]["edges"][0]["node"]["id"],
    }


async def _run(gql: Any, token: str, name: str, ids: dict[str, str]) -> tuple[int, int]:
    variables = dict(VARIABLES)
    if name in ids:
        variables["id"] = ids[name]
    response = await gql(OPERATIONS[name], variables, token)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, (name, body)
    return int(response.headers["x-sql-statements"]), len(response.content)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_statement_count_does_not_grow_with_rows(gql: Any, token: Any, name: str) -> None:
    small_token, large_token = token("acme"), token("initech")
    small_ids, large_ids = await _ids(gql, small_token), await _ids(gql, large_token)

    small_statements, small_size = await _run(gql, small_token, name, small_ids)
    large_statements, large_size = await _run(gql, large_token, name, large_ids)

    assert small_statements == large_statements
    if name not in ("SkillSearch", "MobileApprovalDetail"):
        # The two data sets really differ in what these operations return.
        assert large_size > small_size
