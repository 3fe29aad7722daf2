"""One activity's run in the worker: start, turns (budget check first, tokens streamed,
the call recorded), then the finish (approval, or the planner's plan).

Every step goes through domain/runs.py, the code the agent mutations use too. A step that
finds the activity no longer running (cancelled, failed by a budget, finished elsewhere)
ends the run quietly: the job is done.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from domain import runs
from domain.llm_calls import NewLlmCall
from switchboard.db import Database
from switchboard.observability import llm
from tasks import skill_loading
from tasks.config import JobSettings
from tasks.runtimes import Message, Runtime, first_messages, runtime_for

log = logging.getLogger(__name__)

Enqueue = Callable[[list[Any], uuid.UUID], Awaitable[None]]


class RunStopped(Exception):
    """The activity stopped running while its run was under way."""


@dataclass
class Outcome:
    status: str  # the activity's status when the run ended, or "SKIPPED"
    turns: int = 0
    reason: str | None = None


class OutputStream:
    """Tokens into the activity's output: the first at once (firstTokenAt is exact), then at
    most every `flush_ms`, and whatever is left at the end of each turn."""

    def __init__(self, db: Database, run: runs.Run, flush_ms: float) -> None:
        self.db, self.run = db, run
        self.flush_s = flush_ms / 1000
        self.buffer: list[str] = []
        self.last_flush = 0.0
        self.first_written = False

    async def push(self, token: str) -> None:
        self.buffer.append(token)
        if not self.first_written or time.monotonic() - self.last_flush >= self.flush_s:
            await self.flush()

    async def flush(self) -> None:
        if not self.buffer:
            return
        chunk = "".join(self.buffer)
        self.buffer.clear()
        self.last_flush = time.monotonic()
        # One autocommit statement (a statement timeout cancels it, so its retry cannot
        # append twice).
        rows = await self.db.fetch(
            runs.APPEND_SQL, runs.append_params(self.run.tenant_id, self.run.activity_id, chunk)
        )
        if not rows:
            raise RunStopped("the activity is no longer running")
        if not self.first_written:
            # This run's first token (start_run cleared firstTokenAt): time since dispatch.
            dispatched_at, first_token_at = rows[0][10], rows[0][11]
            if dispatched_at is not None and first_token_at is not None:
                llm.observe_time_to_first_token(
                    (first_token_at - dispatched_at).total_seconds(), self.run.role, self.run.model
                )
        self.first_written = True


async def execute(
    db: Database,
    settings: JobSettings,
    activity_id: uuid.UUID,
    tenant_id: uuid.UUID,
    enqueue: Enqueue,
    *,
    restart: bool = True,
    runtime: Runtime | None = None,
) -> Outcome:
    """Run the activity. `restart`: a RUNNING activity starts over (its job was delivered
    again); on a first delivery only a QUEUED one starts (a RUNNING one is being run by an
    external runtime through the mutations)."""
    async with db.transaction() as conn:
        run = await runs.start_run(conn, tenant_id, activity_id, restart=restart)
    if run is None:
        return Outcome("SKIPPED")
    runtime = runtime or runtime_for(run.model, settings)
    # Two-stage skill loading: the manifest now, a skill's content when the agent asks.
    messages = first_messages(run, await skill_loading.manifest_for(db, run))
    loaded_skills: set[str] = set()
    stream = OutputStream(db, run, settings.stream_flush_ms)
    turns = 0
    try:
        while turns < run.max_turns:
            async with db.transaction() as conn:
                state = await runs.running_state(conn, tenant_id, activity_id)
                if state is None or state[0] != "RUNNING":
                    return Outcome(state[0] if state else "SKIPPED", turns)
                if state[1] == "TERMINATED":
                    await runs.cancel_if_terminated(conn, tenant_id, activity_id)
                    return Outcome("CANCELLED", turns)
                exceeded = await runs.enforce_budgets(
                    conn, tenant_id, run.campaign_id, run.agent_id, activity_id
                )
            if exceeded:
                return Outcome("FAILED", turns, f"{runs.BUDGET_EXCEEDED} ({exceeded})")
            turns += 1
            result = await runtime.turn(run, messages, turns, stream.push)
            await stream.flush()
            async with db.transaction() as conn:
                recorded = await runs.record_call(
                    conn,
                    tenant_id,
                    NewLlmCall(
                        activity_id=activity_id,
                        provider=result.provider,
                        model=result.model,
                        input_tokens=result.input_tokens,
                        output_tokens=result.output_tokens,
                        cost_usd=result.cost_usd,
                        latency_ms=result.latency_ms,
                    ),
                    run.campaign_id,
                )
            if recorded is not None:  # committed: spent
                llm.record_llm_spend(
                    tenant_id,
                    run.role,
                    result.model,
                    result.cost_usd,
                    result.input_tokens,
                    result.output_tokens,
                )
            if result.done:
                break
            reply = await skill_loading.answer(db, run, result.skill_requests, loaded_skills)
            messages = [
                *messages,
                Message("assistant", result.text),
                Message("user", reply),
            ]
        created: list[Any] = []
        async with db.transaction() as conn:
            if run.role == "ACTIVITY_PLANNER":
                created = await runs.plan_campaign(conn, run)
            await runs.finish_run(conn, run)
    except (RunStopped, LookupError):
        return Outcome("STOPPED", turns)
    status = "COMPLETED" if run.role == "ACTIVITY_PLANNER" else "AWAITING_APPROVAL"
    if created:
        await enqueue(created, tenant_id)
    return Outcome(status, turns)
