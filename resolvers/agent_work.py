"""The agent runtimes' mutations: progress of an activity, and one LLM call made for it.

Only agent tokens, and only for activities of their own agent: another agent's activity in
the same tenant is a FORBIDDEN user error, another tenant's or an unknown one NOT_FOUND.
Both go through domain/runs.py and domain/store/runs.py, the code the job worker runs, so
an external runtime moves an activity exactly as the built-in ones do:
- reportActivityProgress: `status` follows the agent's part of the state machine
  (QUEUED → RUNNING; RUNNING → AWAITING_APPROVAL, FAILED or ESCALATED), anything else is
  INVALID_STATE; `chunk` is appended to a RUNNING activity's output (after the status
  change, so the first report may start the run and carry text) and streamed.
- recordLlmCall: a RUNNING activity's call, written with every spend rollup in one
  statement; then the budgets are checked, as before the next turn: when one is spent the
  activity stops FAILED with BUDGET_EXCEEDED (the call itself is kept: it was made).
Every accepted call writes an audit row (off the response's path).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from domain import runs
from domain.errors import BadUserInput, Rejected
from domain.ids import to_global_id
from domain.llm_calls import NewLlmCall, figures_of
from domain.store import runs as run_store
from loaders.shapes import activity_from_row
from resolvers.common import Problems, audit, committed, input_id, require_agent
from schema import types as t
from schema.mutations import (
    ActivityPayload,
    ActivityProgressInput,
    LlmCallPayload,
    RecordLlmCallInput,
)
from schema.types import Info
from switchboard.observability import llm


async def _own_activity(conn: Any, info: Info, activity_id: uuid.UUID, lock: bool) -> Any:
    principal = info.context.principal
    return await run_store.own_activity(
        conn, principal.tenant_id, principal.subject_id, activity_id, lock=lock
    )


def _enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


async def report_activity_progress(info: Info, input: ActivityProgressInput) -> ActivityPayload:
    require_agent(info)
    problems = Problems()
    activity_id = input_id(problems, "Activity", input.activity_id, "input", "activityId")
    status = _enum_value(input.status)
    chunk = input.chunk or None
    reason = input.failure_reason
    if chunk is not None and len(chunk) > runs.MAX_CHUNK:
        problems.add(
            "INVALID", f"A chunk holds at most {runs.MAX_CHUNK} characters.", "input", "chunk"
        )
    if reason is not None and status not in ("FAILED", "ESCALATED"):
        problems.add(
            "INVALID",
            "`failureReason` goes with status FAILED or ESCALATED.",
            "input",
            "failureReason",
        )
    if reason is not None and len(reason) > runs.MAX_FAILURE_REASON:
        problems.add(
            "INVALID",
            f"A failure reason holds at most {runs.MAX_FAILURE_REASON} characters.",
            "input",
            "failureReason",
        )
    if status is None and chunk is None:
        problems.add("INVALID", "Report a `chunk`, a `status`, or both.", "input")
    if problems or activity_id is None:
        return ActivityPayload(activity=None, user_errors=problems.errors)
    tenant_id = info.context.principal.tenant_id
    if status is None and chunk is not None:
        # The common report, a chunk for a running activity of one's own: one statement.
        # When it changes nothing, the checked path below says why.
        rows = await info.context.db.fetch(
            run_store.APPEND_SQL,
            run_store.append_params(
                tenant_id, activity_id, chunk, info.context.principal.subject_id
            ),
        )
        if rows:
            await committed(info)
            return _reported(info, activity_id, rows[0], chunk, None)
    try:
        async with info.context.db.transaction() as conn:
            current = (await _own_activity(conn, info, activity_id, lock=True)).status
            runs.check_agent_report(current, status)
            running = current
            if status == "RUNNING" and current == "QUEUED":
                if await run_store.start_run(conn, tenant_id, activity_id, restart=False) is None:
                    raise Rejected(
                        "INVALID_STATE", "This activity cannot start.", "input", "status"
                    )
                running = "RUNNING"
            if chunk is not None:
                if running != "RUNNING":
                    raise Rejected(
                        "INVALID_STATE",
                        f"A {current} activity takes no output.",
                        "input",
                        "chunk",
                    )
                if await run_store.append_output(conn, tenant_id, activity_id, chunk) is None:
                    raise Rejected(
                        "INVALID",
                        f"The output would exceed {runs.MAX_OUTPUT} characters.",
                        "input",
                        "chunk",
                    )
            if status == "AWAITING_APPROVAL":
                await run_store.finish_run(
                    conn, await run_store.load_run(conn, tenant_id, activity_id)
                )
            elif status in ("FAILED", "ESCALATED"):
                default = "Reported by the agent." if status == "FAILED" else "Needs a person."
                await run_store.fail_run(
                    conn, tenant_id, activity_id, reason or default, status=status
                )
            row = await run_store.activity_row(conn, activity_id)
    except Rejected as rejected:
        problems.add(rejected.code, rejected.message, *rejected.field)
        return ActivityPayload(activity=None, user_errors=problems.errors)
    await committed(info)
    return _reported(info, activity_id, row, chunk, status)


def _reported(
    info: Info, activity_id: uuid.UUID, row: Any, chunk: str | None, status: str | None
) -> ActivityPayload:
    """After the commit (the outbox streams what changed): audit, answer."""
    audit(
        info,
        "reportActivityProgress",
        "Activity",
        activity_id,
        {"status": status, "chunkLength": len(chunk or "")},
    )
    return ActivityPayload(activity=activity_from_row(row), user_errors=[])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def record_llm_call(info: Info, input: RecordLlmCallInput) -> LlmCallPayload:
    require_agent(info)
    problems = Problems()
    activity_id = input_id(problems, "Activity", input.activity_id, "input", "activityId")
    call = NewLlmCall.of(activity_id or uuid.UUID(int=0), input)
    try:
        call.check()
    except BadUserInput as bad:
        named = re.search(r"`(\w+)`", bad.message)
        problems.add("INVALID", bad.message, "input", *([_camel(named[1])] if named else []))
    if problems or activity_id is None:
        return LlmCallPayload(llm_call=None, user_errors=problems.errors)
    tenant_id = info.context.principal.tenant_id
    try:
        async with info.context.db.transaction() as conn:
            own = await _own_activity(conn, info, activity_id, False)
            agent_id, status, campaign_id, role = (
                own.agent_id,
                own.status,
                own.campaign_id,
                own.role,
            )
            if status != "RUNNING":
                raise Rejected(
                    "INVALID_STATE",
                    f"A {status} activity takes no LLM calls.",
                    "input",
                    "activityId",
                )
            recorded = await run_store.record_call(conn, tenant_id, call, campaign_id)
            if recorded is None:  # deleted meanwhile: as unknown
                raise Rejected("NOT_FOUND", "No activity has this ID.", "input", "activityId")
            # A budget now exceeded fails the activity in this transaction.
            await run_store.enforce_budgets(conn, tenant_id, campaign_id, agent_id, activity_id)
    except Rejected as rejected:
        problems.add(rejected.code, rejected.message, *rejected.field)
        return LlmCallPayload(llm_call=None, user_errors=problems.errors)
    await committed(info)
    # Committed: spent (the agent label is the agent's role).
    llm.record_llm_spend(tenant_id, role, call)
    audit(
        info,
        "recordLlmCall",
        "LlmCall",
        recorded.id,
        {"activityId": to_global_id("Activity", activity_id), "costUsd": str(call.cost_usd)},
    )
    return LlmCallPayload(
        llm_call=t.LlmCall(
            id=to_global_id("LlmCall", recorded.id),
            **figures_of(call),
            created_at=recorded.created_at,
            activity_id=activity_id,
        ),
        user_errors=[],
    )
