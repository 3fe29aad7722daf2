"""The job system's knobs, read from the environment (see README.md, "Agent work")."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from switchboard.settings import env_float, env_int


@dataclass(frozen=True)
class JobSettings:
    # Redis key prefix of the queue (every key of the broker starts with it).
    prefix: str = "sb:q:"
    # Jobs one worker process runs at once (across agents; caps still apply per agent).
    worker_slots: int = 8
    # A claimed job's lease; a worker extends the leases of its running jobs every
    # `lease_s / 3`. A job whose lease runs out (its worker died) is delivered again.
    lease_s: float = 30.0
    # Retries after the first attempt, and their backoff: base * 2^(n-1), capped, with
    # "equal jitter" (half fixed, half random).
    max_retries: int = 3
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    # How long an idle worker waits on the wake list before looking again (delayed jobs
    # and expired leases are also found by these looks).
    poll_s: float = 1.0
    # On a normal stop, how long running jobs may finish before they are handed back.
    shutdown_grace_s: float = 10.0
    # The approval-expiry job: how often, and whether this worker runs scheduled jobs.
    expiry_interval_s: float = 60.0
    scheduler: bool = True
    # Only these tenants' jobs (None: all). For dedicated workers and for tests.
    tenants: tuple[uuid.UUID, ...] | None = None
    # Simulated runtime: delay per token (ms) and tokens per turn.
    sim_token_delay_ms: float = 25.0
    sim_tokens_per_turn: int = 60
    # Output is written to the database at most this often while streaming (the first
    # token is written at once, so firstTokenAt is exact).
    stream_flush_ms: float = 100.0
    # OpenAI-compatible runtimes (`ollama/<model>`, `openai-compat/<model>`).
    ollama_base_url: str = "http://127.0.0.1:11434/v1"
    openai_compat_base_url: str = "http://127.0.0.1:8080/v1"
    openai_compat_api_key: str | None = field(default=None, repr=False)
    llm_timeout_s: float = 120.0

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3

    @classmethod
    def from_env(cls, **overrides: object) -> JobSettings:
        env = os.environ
        tenants = env.get("SWITCHBOARD_WORKER_TENANTS", "").strip()
        values: dict[str, object] = {
            "prefix": env.get("SWITCHBOARD_QUEUE_PREFIX", "sb:q:"),
            "worker_slots": env_int("SWITCHBOARD_WORKER_SLOTS", 8),
            "lease_s": env_float("SWITCHBOARD_JOB_LEASE_S", 30.0),
            "max_retries": env_int("SWITCHBOARD_JOB_MAX_RETRIES", 3),
            "retry_base_s": env_float("SWITCHBOARD_JOB_RETRY_BASE_S", 2.0),
            "retry_max_s": env_float("SWITCHBOARD_JOB_RETRY_MAX_S", 300.0),
            "poll_s": env_float("SWITCHBOARD_WORKER_POLL_S", 1.0),
            "shutdown_grace_s": env_float("SWITCHBOARD_WORKER_GRACE_S", 10.0),
            "expiry_interval_s": env_float("SWITCHBOARD_APPROVAL_EXPIRY_INTERVAL_S", 60.0),
            "scheduler": env.get("SWITCHBOARD_WORKER_SCHEDULER", "1") != "0",
            "tenants": tuple(uuid.UUID(t) for t in tenants.split(",")) if tenants else None,
            "sim_token_delay_ms": env_float("SWITCHBOARD_SIM_TOKEN_DELAY_MS", 25.0),
            "sim_tokens_per_turn": env_int("SWITCHBOARD_SIM_TOKENS_PER_TURN", 60),
            "stream_flush_ms": env_float("SWITCHBOARD_STREAM_FLUSH_MS", 100.0),
            "ollama_base_url": env.get("SWITCHBOARD_OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1"),
            "openai_compat_base_url": env.get(
                "SWITCHBOARD_OPENAI_COMPAT_BASE_URL", "http://127.0.0.1:8080/v1"
            ),
            "openai_compat_api_key": env.get("SWITCHBOARD_OPENAI_COMPAT_API_KEY") or None,
            "llm_timeout_s": env_float("SWITCHBOARD_LLM_TIMEOUT_S", 120.0),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
