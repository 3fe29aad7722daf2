"""Background jobs seen from outside: one span from enqueue to finish that continues the
trace of the request that enqueued the job, and the queue's metrics. For the jobs feature
(Taskiq) to call; nothing here knows Taskiq.

Enqueueing (in the request, so its span is current):

    labels = jobs.enqueue_labels()      # traceparent (+ tracestate) and the enqueue time
    await task.kicker().with_labels(**labels).kiq(...)

Running (in the worker; `labels` are the message's labels, role the agent role such as
COPYWRITER, priority the job's priority number):

    with jobs.running("run_activity", labels, role=role, priority=priority):
        ...                             # spans and logs in here belong to the job's trace

or, from a Taskiq middleware's `pre_execute` / `post_execute` (or `on_error`):

    run = jobs.start("run_activity", labels, role, priority); run.attach()
    ...
    run.finish("ok")                    # or "error" (with error=exc), "retry", "cancelled"

After the last retry: `jobs.dead_lettered("run_activity", role, reason)`.

What it records:
- span `job <task>` (kind CONSUMER), started at the enqueue time, a child of the
  enqueuing request's span, with `job.task`, `job.role`, `job.priority`, `job.wait_s`, an
  event `job.started` when the run starts and `job.outcome` at the end;
- `switchboard_job_wait_seconds{role, priority}` (enqueue to start),
  `switchboard_job_run_seconds{role, priority}` (start to finish),
  `switchboard_jobs_finished_total{role, priority, outcome}`,
  `switchboard_jobs_in_progress{role}` and `switchboard_job_dead_letters_total{task, role}`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from switchboard.observability import metrics
from switchboard.observability.tracing import STATE, defer_children, flush_children

ENQUEUED_AT = "sb_enqueued_at_ns"
OUTCOMES = frozenset({"ok", "error", "retry", "cancelled"})


def enqueue_labels() -> dict[str, str]:
    """Labels for a job's message: the current trace context and the enqueue time (ns)."""
    labels: dict[str, str] = {}
    propagate.inject(labels)
    labels[ENQUEUED_AT] = str(time.time_ns())
    return labels


class JobRun:
    """One run of a job, from `start` to `finish`."""

    def __init__(
        self, task: str, labels: Mapping[str, Any], role: str, priority: int | str
    ) -> None:
        self.role, self.priority = role or "none", str(priority)
        carrier = {k: str(v) for k, v in labels.items() if isinstance(v, str | int)}
        self._parent = propagate.extract(carrier)
        now = time.time_ns()
        try:
            enqueued = int(carrier.get(ENQUEUED_AT, "0"))
        except ValueError:
            enqueued = 0
        enqueued = enqueued if 0 < enqueued <= now else now
        self.wait_s = (now - enqueued) / 1e9
        self.span: Span = STATE.tracer.start_span(
            f"job {task}",
            context=self._parent,
            kind=SpanKind.CONSUMER,
            start_time=enqueued,
            attributes={
                "job.task": task,
                "job.role": self.role,
                "job.priority": self.priority,
                "job.wait_s": self.wait_s,
            },
        )
        self.span.add_event("job.started", timestamp=now)
        self._started = time.perf_counter()
        self._token: object | None = None
        self._finished = False
        metrics.JOB_WAIT.labels(self.role, self.priority).observe(self.wait_s)
        metrics.JOBS_IN_PROGRESS.labels(self.role).inc()

    def attach(self) -> None:
        """Make the job's span current (until `finish`), so its work nests under it."""
        self._token = context.attach(trace.set_span_in_context(self.span, self._parent))

    def finish(self, outcome: str = "ok", error: BaseException | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        outcome = outcome if outcome in OUTCOMES else "error"
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        metrics.JOB_RUN.labels(self.role, self.priority).observe(
            time.perf_counter() - self._started
        )
        metrics.JOBS_FINISHED.labels(self.role, self.priority, outcome).inc()
        metrics.JOBS_IN_PROGRESS.labels(self.role).dec()
        self.span.set_attribute("job.outcome", outcome)
        if error is not None:
            self.span.record_exception(error)
        if outcome == "error":
            self.span.set_status(StatusCode.ERROR)
        self.span.end()


def start(task: str, labels: Mapping[str, Any], role: str, priority: int | str) -> JobRun:
    return JobRun(task, labels, role, priority)


@contextlib.contextmanager
def running(
    task: str, labels: Mapping[str, Any], role: str, priority: int | str
) -> Iterator[JobRun]:
    """The job's run as a block: `ok` when it returns, `error` when it raises,
    `cancelled` when it is cancelled."""
    run = start(task, labels, role, priority)
    run.attach()
    deferring = defer_children() if run.span.is_recording() else None
    try:
        yield run
    except BaseException as error:
        cancelled = type(error).__name__ == "CancelledError"
        if deferring is not None:
            flush_children(deferring)
        run.finish("cancelled" if cancelled else "error", None if cancelled else error)
        raise
    else:
        if deferring is not None:
            flush_children(deferring)
        run.finish("ok")


def dead_lettered(task: str, role: str, reason: str | None = None) -> None:
    """A job exhausted its retries: count it, and note it on the current span."""
    metrics.JOB_DEAD_LETTERS.labels(task, role or "none").inc()
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("job.dead_lettered", {"job.task": task, "reason": reason or ""})
