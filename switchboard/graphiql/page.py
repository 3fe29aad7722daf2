"""The GraphiQL page that GET /graphql answers a browser with, in development mode.

It loads only the gateway's own assets (`switchboard/graphiql/static/`), runs subscriptions
over graphql-transport-ws at the same /graphql (the headers tab is the `connection_init`
payload), and opens with the demo marketer's dashboard token (minted now, when the demo user
exists) and the contract's dashboard and subscription operations as tabs, DashboardOverview
first, their required variables filled from the demo tenant's data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from domain.enums import AgentRole
from domain.ids import to_global_id
from switchboard.devdata.seed import stable_id
from switchboard.edge.auth import issue_token
from switchboard.graphiql import STATIC_PATH
from switchboard.infra.db import Database
from switchboard.settings import PROJECT_DIR, Settings

log = logging.getLogger(__name__)

DEMO_TENANT = "acme"
DEMO_EMAIL = "marketer@acme.example"
OPERATIONS = PROJECT_DIR / "contract/operations"
FIRST_TAB = "DashboardOverview"
TEMPLATE = (Path(__file__).parent / "page.html").read_text()
CONFIG_MARK, STATIC_MARK = "__SWITCHBOARD_GRAPHIQL_CONFIG__", "__STATIC__"

# One statement: a row only when the demo user is a member, with ids the tabs' variables use.
DEMO_SQL = """
SELECT
  (SELECT id FROM campaigns WHERE tenant_id = m.tenant_id AND status = 'ACTIVE'
    ORDER BY created_at, id LIMIT 1) AS campaign_id,
  (SELECT id FROM agents WHERE tenant_id = m.tenant_id AND role = :agent_role) AS agent_id,
  (SELECT id FROM activities WHERE tenant_id = m.tenant_id
    ORDER BY created_at DESC, id DESC LIMIT 1) AS activity_id
FROM memberships m
WHERE m.tenant_id = :tenant_id AND m.user_id = :user_id
"""


@dataclass(frozen=True, slots=True)
class DemoSession:
    token: str
    campaign: str | None
    agent: str | None
    activity: str | None


async def render(settings: Settings, db: Database, now: dt.datetime | None = None) -> str:
    """The page's HTML, with a fresh demo token when the demo marketer exists."""
    session = await demo_session(settings, db)
    tabs = default_tabs(session, now or dt.datetime.now(dt.UTC))
    config = {
        "headers": _json({"authorization": f"Bearer {session.token}"}) if session else "",
        "tabs": tabs,
        # Tabs are kept in the browser's storage; new contract operations get a fresh set.
        "storage": "switchboard-graphiql-"
        + hashlib.sha256("".join(tab["query"] for tab in tabs).encode()).hexdigest()[:12],
    }
    # Inside <script>, "<" as \u003c: no document text can close the element.
    script = json.dumps(config).replace("<", "\\u003c")
    return TEMPLATE.replace(STATIC_MARK, STATIC_PATH).replace(CONFIG_MARK, script)


async def demo_session(settings: Settings, db: Database) -> DemoSession | None:
    tenant_id = stable_id(DEMO_TENANT, "tenant")
    user_id = stable_id("user", DEMO_EMAIL)
    try:
        rows = await db.fetch(
            DEMO_SQL,
            {"tenant_id": tenant_id, "user_id": user_id, "agent_role": AgentRole.COPYWRITER.value},
        )
    except SQLAlchemyError:
        # GraphiQL still opens (without a token) on a database it cannot read.
        log.warning("GraphiQL: could not look up the demo user", exc_info=True)
        return None
    if not rows:
        return None
    campaign, agent, activity = rows[0]
    return DemoSession(
        token=issue_token(
            settings,
            to_global_id("User", user_id),
            to_global_id("Tenant", tenant_id),
            "dashboard",
        ),
        campaign=campaign and to_global_id("Campaign", campaign),
        agent=agent and to_global_id("Agent", agent),
        activity=activity and to_global_id("Activity", activity),
    )


def default_tabs(session: DemoSession | None, now: dt.datetime) -> list[dict[str, str]]:
    """GraphiQL's `defaultTabs`: dashboard operations (DashboardOverview first), then
    subscriptions, each with the variables it needs to run."""
    month_start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + dt.timedelta(days=32)).replace(day=1)
    month = {"from": _iso(month_start), "to": _iso(month_end)}
    variables: dict[str, dict[str, Any]] = {
        "DashboardOverview": {"monthStart": month["from"], "monthEnd": month["to"]},
        "SpendDashboard": month,
        "SkillSearch": {"query": "launch email subject lines"},
    }
    if session:
        variables["CampaignDetail"] = {"id": session.campaign}
        variables["AgentActivity"] = {"id": session.agent}
        variables["ActivityStream"] = {"activityId": session.activity}
    paths = sorted(
        (OPERATIONS / "dashboard").glob("*.graphql"), key=lambda p: (p.stem != FIRST_TAB, p.stem)
    )
    paths += sorted((OPERATIONS / "subscriptions").glob("*.graphql"))
    tabs = []
    for path in paths:
        tab = {"query": path.read_text()}
        if path.stem in variables:
            tab["variables"] = _json(variables[path.stem])
        tabs.append(tab)
    return tabs


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)
