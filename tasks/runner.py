"""One activity's run in the worker: start, turns (budget check first, tokens streamed,
the call recorded), then the finish (approval, or the planner's plan).

Every step goes through domain/store/runs.py, the code the agent mutations use too. A step that
finds the activity no longer running (cancelled, failed by a budget, finished elsewhere)
ends the run quietly: the job is done.

Each database step goes through `steps` (the worker passes `Outages.run`, tasks/outage.py):
when PostgreSQL cannot be reached, the step waits for it and runs again, so a run paused by
an outage carries on where it stopped (no turn made twice) instead of failing.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from domain.budgets import BUDGET_EXCEEDED
from domain.llm_calls import NewLlmCall
from domain.runs import Run
from domain.store import runs
from switchboard.infra.db import Database
from switchboard.observability import llm
from tasks import skill_loading
from tasks.config import JobSettings
from tasks.runtimes import Message, Runtime, TurnResult, first_messages, runtime_for

log = logging.getLogger(__name__)

T = TypeVar("T")
Enqueue = Callable[[list[Any], uuid.UUID], Awaitable[None]]


class Guard(Protocol):
    """Runs one step (`what` names it for the outage's report) until it succeeds."""

    async def __call__(self, what: str, call: Callable[[], Awaitable[T]]) -> T: ...


async def direct(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """The step as it is: its errors propagate."""
    return await call()


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

    def __init__(self, db: Database, run: Run, flush_ms: float, steps: Guard = direct) -> None:
        self.db, self.run, self.steps = db, run, steps
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
        params = runs.append_params(self.run.tenant_id, self.run.activity_id, chunk)
        rows = await self.steps("run steps", lambda: self.db.fetch(runs.APPEND_SQL, params))
        if not rows:
            raise RunStopped("the activity is no longer running")
        if not self.first_written:
            # This run's first token (start_run cleared firstTokenAt): time since dispatch.
            dispatched_at, first_token_at = rows[0]["dispatched_at"], rows[0]["first_token_at"]
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
    steps: Guard = direct,
) -> Outcome:
    """Run the activity. `restart`: a RUNNING activity starts over (its job was delivered
    again); on a first delivery only a QUEUED one starts (a RUNNING one is being run by an
    external runtime through the mutations)."""
    tries = 0

    async def start() -> Run | None:
        nonlocal tries
        tries += 1
        # A try after the database dropped an earlier one may find the activity RUNNING
        # already (the earlier one committed): it is this job's run, and its lease is ours.
        async with db.transaction() as conn:
            return await runs.start_run(conn, tenant_id, activity_id, restart=restart or tries > 1)

    run = await steps("run steps", start)
    if run is None:
        return Outcome("SKIPPED")
    runtime = runtime or runtime_for(run.model, settings)
    # Two-stage skill loading: the manifest now, a skill's content when the agent asks.
    manifest = await steps("run steps", functools.partial(skill_loading.manifest_for, db, run))
    messages = first_messages(run, manifest)
    loaded_skills: set[str] = set()
    stream = OutputStream(db, run, settings.stream_flush_ms, steps)
    turns = 0
    try:
        while turns < run.max_turns:
            stopped = await steps("run steps", functools.partial(_before_turn, db, run, turns))
            if stopped is not None:
                return stopped
            turns += 1
            result = await runtime.turn(run, messages, turns, stream.push)
            await stream.flush()
            recorded = await steps("run steps", functools.partial(_record, db, run, result))
            if recorded is not None:  # committed: spent
                llm.record_llm_spend(tenant_id, run.role, result)
            if result.done:
                break
            reply = await steps(
                "run steps",
                functools.partial(_answer, db, run, result.skill_requests, loaded_skills),
            )
            messages = [
                *messages,
                Message("assistant", result.text),
                Message("user", reply),
            ]
        created = await steps("run steps", functools.partial(_finish, db, run))
    except (RunStopped, LookupError):
        return Outcome("STOPPED", turns)
    status = "COMPLETED" if run.role == "ACTIVITY_PLANNER" else "AWAITING_APPROVAL"
    if created:
        await enqueue(created, tenant_id)
    return Outcome(status, turns)


async def _before_turn(db: Database, run: Run, turns: int) -> Outcome | None:
    """None when the next turn may run: the activity still runs, its agent is not
    terminated and no budget is spent. Otherwise the run's outcome."""
    tenant_id, activity_id = run.tenant_id, run.activity_id
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
        return Outcome("FAILED", turns, f"{BUDGET_EXCEEDED} ({exceeded})")
    return None


async def _record(db: Database, run: Run, result: TurnResult) -> Any:
    call = NewLlmCall.of(run.activity_id, result)
    async with db.transaction() as conn:
        return await runs.record_call(conn, run.tenant_id, call, run.campaign_id)


async def _answer(db: Database, run: Run, requested: tuple[str, ...], loaded: set[str]) -> str:
    # On a copy: a try cut short by an outage must not count its skills as loaded.
    trying = set(loaded)
    reply = await skill_loading.answer(db, run, requested, trying)
    loaded.update(trying)
    return reply


async def _finish(db: Database, run: Run) -> list[Any]:
    """The run's end (the planner's plan first); the activities the plan created."""
    created: list[Any] = []
    async with db.transaction() as conn:
        if run.role == "ACTIVITY_PLANNER":
            created = await runs.plan_campaign(conn, run)
        await runs.finish_run(conn, run)
    return created
