"""The job system's knobs, each declared once with its variable (README.md, "Agent work");
read by `JobSettings.from_env()`, the same loader as the gateway's (switchboard/settings.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from switchboard.settings import FromEnv, knob


@dataclass(frozen=True)
class JobSettings(FromEnv):
    prefix: str = knob(
        "SWITCHBOARD_QUEUE_PREFIX", "sb:q:", "Redis key prefix of the queue (every broker key)"
    )
    # Across agents; caps still apply per agent.
    worker_slots: int = knob("SWITCHBOARD_WORKER_SLOTS", 8, "jobs one worker runs at once")
    # A worker extends the leases of its running jobs every `lease_s / 3`. A job whose lease
    # runs out (its worker died) is delivered again.
    lease_s: float = knob("SWITCHBOARD_JOB_LEASE_S", 30.0, "lease of a claimed job")
    # Backoff: base * 2^(n-1), capped, with "equal jitter" (half fixed, half random).
    max_retries: int = knob(
        "SWITCHBOARD_JOB_MAX_RETRIES", 3, "retries after the first attempt, then the dead letter"
    )
    retry_base_s: float = knob("SWITCHBOARD_JOB_RETRY_BASE_S", 2.0, "retry backoff base")
    retry_max_s: float = knob("SWITCHBOARD_JOB_RETRY_MAX_S", 300.0, "retry backoff cap")
    # Delayed jobs and expired leases are also found by these looks.
    poll_s: float = knob(
        "SWITCHBOARD_WORKER_POLL_S", 1.0, "an idle worker's longest wait between looks"
    )
    shutdown_grace_s: float = knob(
        "SWITCHBOARD_WORKER_GRACE_S",
        10.0,
        "on stop, how long running jobs may finish before they are handed back",
    )
    expiry_interval_s: float = knob(
        "SWITCHBOARD_APPROVAL_EXPIRY_INTERVAL_S", 60.0, "the approval-expiry job's interval"
    )
    scheduler: bool = knob(
        "SWITCHBOARD_WORKER_SCHEDULER", True, "`0`: this worker never runs the scheduled job"
    )
    # For dedicated workers and for tests.
    tenants: tuple[uuid.UUID, ...] | None = knob(
        "SWITCHBOARD_WORKER_TENANTS",
        None,
        "comma-separated tenant UUIDs this worker serves (unset: all)",
        shown="all",
    )
    sim_token_delay_ms: float = knob(
        "SWITCHBOARD_SIM_TOKEN_DELAY_MS", 25.0, "the simulated runtime's delay per token"
    )
    sim_tokens_per_turn: int = knob(
        "SWITCHBOARD_SIM_TOKENS_PER_TURN", 60, "the simulated runtime's tokens per turn"
    )
    # The first token is written at once, so firstTokenAt is exact.
    stream_flush_ms: float = knob(
        "SWITCHBOARD_STREAM_FLUSH_MS", 100.0, "how often streamed output is written, at most"
    )
    # OpenAI-compatible runtimes (`ollama/<model>`, `openai-compat/<model>`).
    ollama_base_url: str = knob(
        "SWITCHBOARD_OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1", "for `ollama/…` models"
    )
    openai_compat_base_url: str = knob(
        "SWITCHBOARD_OPENAI_COMPAT_BASE_URL",
        "http://127.0.0.1:8080/v1",
        "for `openai-compat/…` models",
    )
    openai_compat_api_key: str | None = knob(
        "SWITCHBOARD_OPENAI_COMPAT_API_KEY", None, "its API key", secret=True
    )
    llm_timeout_s: float = knob("SWITCHBOARD_LLM_TIMEOUT_S", 120.0, "an LLM request's timeout")
    # Under `serve` the worker's metrics reach the gateway's /metrics anyway.
    metrics_port: int | None = knob(
        "SWITCHBOARD_WORKER_METRICS_PORT",
        None,
        "a standalone worker serves its Prometheus metrics on HOST:PORT",
    )
    metrics_host: str = knob(
        "SWITCHBOARD_WORKER_METRICS_HOST",
        "127.0.0.1",
        "the address of a standalone worker's metrics (`0.0.0.0` for a scraper elsewhere)",
    )

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3
