"""Supervision for `switchboard serve`: the processes it runs, started again when one dies,
and one ordered stop for every signal.

- Children (gateway processes, job workers) run in process groups of their own, so a
  Ctrl-C at a terminal reaches `serve` alone and `serve` decides the order; on Linux each
  also gets SIGTERM when `serve` dies, even by SIGKILL, so none is orphaned.
- A child that exits while `serve` runs is started again after a capped exponential
  backoff (0.5 s doubling to 30 s; back to 0.5 s once it had run 60 s), with one log line
  per exit and `switchboard_process_restarts_total{process=…}` counted.
- SIGTERM and SIGINT stop the same way: every child gets SIGTERM at once (gateway
  processes stop accepting, close websockets with 1001, finish in-flight requests and
  drain; job workers finish or hand back their jobs). Whatever still runs when the
  children's share of the stop timeout is over is killed, with its own children; then the
  caller stops the embedded servers in the time left (`StopBudget`, `stop_deadline`).
- A second signal during the stop kills what remains at once; the embedded servers are
  still stopped. A signal during start-up raises `StopRequested`, so that what has
  started stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType

from switchboard.observability.metrics import PROCESS_RESTARTS

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
RESET_AFTER_S = 60.0  # a child that ran this long starts its next backoff from the beginning
SERVERS_SHARE_S = 2.5  # of the stop timeout, kept for stopping the embedded servers
DRAIN_SHARE_S = 2.0  # of the children's share, kept for what follows their grace
PR_SET_PDEATHSIG = 1


class StopRequested(BaseException):
    """A stop signal arrived while `serve` was starting."""


@dataclass(frozen=True)
class StopBudget:
    """How a stop timeout is shared: children first, the embedded servers last."""

    total_s: float

    @property
    def children_s(self) -> float:
        """From the signal until every child has exited (or is killed)."""
        return max(self.total_s - SERVERS_SHARE_S, 1.0)

    @property
    def grace_s(self) -> float:
        """In-flight requests and running jobs may finish within this; the rest of the
        children's share is for what comes after (lifespan drain, handing jobs back)."""
        return max(self.children_s - DRAIN_SHARE_S, 0.5)


def backoff_s(failures: int) -> float:
    """The wait before the `failures`-th restart in a row (1, 2, …)."""
    return float(min(BACKOFF_INITIAL_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S))


@dataclass(eq=False)
class Child:
    name: str  # the `process` label: gateway, job_worker
    command: Sequence[str]
    env: Mapping[str, str] | None = None
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each after less than RESET_AFTER_S
    restart_at: float | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(eq=False)
class Supervisor:
    """`with Supervisor(timeout) as s:` start up, `s.add(…)` children, then `s.run()`."""

    stop_timeout_s: float
    children: list[Child] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)
    stop_started: float | None = None
    _starting: bool = True
    _wakeup: tuple[socket.socket, socket.socket] | None = None
    _previous: dict[int, object] = field(default_factory=dict)
    _previous_wakeup: int = -1

    @property
    def budget(self) -> StopBudget:
        return StopBudget(self.stop_timeout_s)

    @property
    def stop_deadline(self) -> float | None:
        """When everything must have stopped (time.monotonic()), once a stop signal came."""
        return None if self.stop_started is None else self.stop_started + self.stop_timeout_s

    # Signals

    def __enter__(self) -> Supervisor:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wakeup = (reader, writer)
        # Every signal (a child's exit too) wakes the loop's select at once.
        self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _ignore)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_wakeup)
        if self._wakeup is not None:
            for end in self._wakeup:
                end.close()
        if self.stop_started is not None:
            elapsed = time.monotonic() - self.stop_started
            log.info("stopped %.2f s after %s", elapsed, _names(self.signals), extra=_fields())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        if self.stop_started is None:
            self.stop_started = time.monotonic()
        if self._starting:
            self._starting = False  # later signals only count: the stop must not be cut
            raise StopRequested(signum)

    # Children

    def add(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.children.append(Child(name, command, env, pass_fds))
        PROCESS_RESTARTS.labels(process=name)  # the series exists (at 0) before a restart

    def run(self, on_stop: Callable[[], None] = lambda: None) -> None:
        """Run the children until a stop signal, then stop them (`on_stop` first)."""
        self._starting = False
        try:
            for child in self.children:
                self._spawn(child)
            while not self.signals:
                now = time.monotonic()
                for child in self.children:
                    if child.process is not None and child.process.poll() is not None:
                        self._exited(child, now)
                    if child.restart_at is not None and now >= child.restart_at:
                        self._spawn(child)
                        PROCESS_RESTARTS.labels(process=child.name).inc()
                pending = [c.restart_at - now for c in self.children if c.restart_at is not None]
                self._sleep(min([1.0, *pending]))
        finally:  # a signal, or a failure of serve's own: the children stop either way
            on_stop()
            self._stop_children()

    def _spawn(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            child.process = subprocess.Popen(
                list(child.command),
                env=dict(child.env) if child.env is not None else None,
                pass_fds=child.pass_fds,
                process_group=0,
                preexec_fn=die_with_parent(os.getpid()),
            )
        except OSError:
            child.failures += 1
            child.restart_at = child.started_at + backoff_s(child.failures)
            log.exception("%s could not start; trying again", child.name, extra=_fields(child))
            return
        log.debug("%s started: pid %d", child.name, child.process.pid, extra=_fields(child))

    def _exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        ran_s = now - child.started_at
        child.failures = 1 if ran_s >= RESET_AFTER_S else child.failures + 1
        delay_s = backoff_s(child.failures)
        child.restart_at = now + delay_s
        outcome = describe_exit(child.process.returncode)
        log.warning(
            "%s (pid %d) exited with %s after %.1f s; starting it again in %.1f s",
            child.name,
            child.process.pid,
            outcome,
            ran_s,
            delay_s,
            extra=_fields(child, exit=outcome, ran_s=round(ran_s, 1), restart_in_s=delay_s),
        )
        child.process = None

    def _stop_children(self) -> None:
        first = len(self.signals)
        for child in self.children:
            child.restart_at = None
            if child.process is not None and child.process.poll() is not None:
                child.process = None  # exited before the stop, not started again
        stopping = [c for c in self.children if c.process is not None]
        log.info("stopping on %s: %d processes", _names(self.signals), len(stopping))
        for child in stopping:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        deadline = started + self.budget.children_s
        while stopping:
            for child in [c for c in stopping if not c.running]:
                stopping.remove(child)
                assert child.process is not None
                log.info(
                    "%s (pid %d) stopped with %s after %.2f s",
                    child.name,
                    child.process.pid,
                    describe_exit(child.process.returncode),
                    time.monotonic() - started,
                    extra=_fields(child),
                )
            left_s = deadline - time.monotonic()
            if not stopping:
                break
            if len(self.signals) > first:
                reason = f"a second signal ({_names(self.signals[first:])})"
            elif left_s <= 0:
                reason = f"still running {self.budget.children_s:.1f} s after the signal"
            else:
                self._sleep(min(left_s, 1.0))
                continue
            for child in stopping:
                assert child.process is not None
                log.warning(
                    "killing %s (pid %d): %s",
                    child.name,
                    child.process.pid,
                    reason,
                    extra=_fields(child),
                )
                kill_group(child.process)
            break

    def _sleep(self, timeout_s: float) -> None:
        assert self._wakeup is not None
        reader = self._wakeup[0]
        select.select([reader], [], [], max(timeout_s, 0.0))
        with contextlib.suppress(BlockingIOError):
            while reader.recv(512):
                pass


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child and what it started (its process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()  # in case it left its group
    process.wait()


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn`: on Linux the child gets SIGTERM when the process that started it
    dies (even by SIGKILL), so it never outlives `serve` (or a test run). Elsewhere a no-op."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None

    def arrange() -> None:  # runs in the child between fork and exec: nothing but syscalls
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"


def _names(signums: Sequence[int]) -> str:
    return ", ".join(signal.Signals(s).name for s in signums) or "no signal"


def _fields(child: Child | None = None, **more: object) -> dict[str, object]:
    """Extra log fields (`process` and `pid` would clash with the log record's own)."""
    fields: dict[str, object] = {}
    if child is not None:
        fields["child"] = child.name
        if child.process is not None:
            fields["child_pid"] = child.process.pid
    return {**fields, **more}


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD's handler: nothing, but the wakeup socket hears of the exit."""
