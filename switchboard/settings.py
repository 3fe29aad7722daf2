"""Settings: every knob the gateway reads from the environment, in one frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SWITCHBOARD_STATE_DIR", PROJECT_DIR / ".switchboard"))

# Development-only default; `switchboard serve` prints it so demo tokens can be minted.
DEV_JWT_SECRET = "switchboard-dev-secret-change-me-0123456789"
# The mobile app's trusted documents, from the project's copy of the contract.
DEFAULT_MANIFEST = PROJECT_DIR / "contract/operations/mobile/persisted-query-manifest.json"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_optional_bool(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    return None if raw == "" else raw in ("1", "true", "yes", "on")


def _env_paths(name: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p]


@dataclass(frozen=True)
class Settings:
    """What one gateway process needs to run. Build it with `Settings.from_env()`."""

    database_url: str | None = None
    redis_url: str | None = None
    mode: str = "development"  # development | production | test
    jwt_secret: str = DEV_JWT_SECRET
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    # Database pool
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 5.0
    db_idle_timeout_s: float = 300.0
    db_connect_timeout_s: float = 5.0
    db_statement_timeout_ms: int = 10_000
    db_slow_statement_ms: float = 100.0
    # Auth caches
    membership_cache_ttl_s: int = 300
    token_cache_ttl_s: int = 30
    state_dir: Path = field(default=STATE_DIR)
    # Observability (switchboard/observability/); tracing itself reads the OTEL_* variables.
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    trace_resolvers: bool = False  # a span per resolver that awaits: costly, opt-in
    readiness_cache_s: float = 10.0

    # Edge (switchboard/edge/): persisted queries, limits, rate limits, response cache
    pq_manifests: tuple[Path, ...] = (DEFAULT_MANIFEST,)
    apq_ttl_s: int = 7 * 86400
    max_body_bytes: int = 1_000_000
    max_variables_bytes: int = 256_000
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 3000
    max_cost: int = 100_000
    rate_limit: bool | None = None  # None: on, except in test mode
    rate_limit_window_s: float = 60.0
    rate_limit_dashboard: int = 3000  # per tenant and window
    rate_limit_mobile: int = 3000
    rate_limit_agent: int = 6000
    rate_limit_anonymous: int = 60  # per IP and window, requests without a valid token
    response_cache: bool | None = None  # None: on, except in test mode
    cache_home_ttl_s: int = 60
    cache_spend_ttl_s: int = 300
    compression_min_bytes: int = 1024
    redis_retry_s: float = 2.0  # after a Redis failure, the edge skips Redis this long
    # Live events (switchboard/live/)
    live_relay: bool = True  # False: this process relays no outbox rows (tests of crashes)
    live_relay_poll_s: float = 1.0  # besides the commit notification
    live_init_timeout_s: float = 10.0  # connection_init must arrive within this
    live_send_queue: int = 1000  # messages waiting for one connection before it is closed
    # `switchboard serve`: from a stop signal to nothing left running (switchboard/supervisor.py)
    stop_timeout_s: float = 10.0

    @property
    def rate_limit_enabled(self) -> bool:
        # Tests exercise it with apps of their own; the shared test app sends bursts.
        return self.rate_limit if self.rate_limit is not None else self.mode != "test"

    @property
    def response_cache_enabled(self) -> bool:
        # Tests arrange rows straight in the database, past the writes that invalidate.
        return self.response_cache if self.response_cache is not None else self.mode != "test"

    @property
    def development(self) -> bool:
        return self.mode != "production"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("DATABASE_URL") or None,
            "redis_url": env.get("REDIS_URL") or None,
            "mode": env.get("SWITCHBOARD_MODE", "development"),
            "jwt_secret": env.get("SWITCHBOARD_JWT_SECRET", DEV_JWT_SECRET),
            "jwks_url": env.get("SWITCHBOARD_JWKS_URL") or None,
            "jwt_issuer": env.get("SWITCHBOARD_JWT_ISSUER") or None,
            "db_pool_size": env_int("SWITCHBOARD_DB_POOL_SIZE", 10),
            "db_max_overflow": env_int("SWITCHBOARD_DB_MAX_OVERFLOW", 10),
            "db_pool_timeout_s": env_float("SWITCHBOARD_DB_POOL_TIMEOUT_S", 5.0),
            "db_idle_timeout_s": env_float("SWITCHBOARD_DB_IDLE_TIMEOUT_S", 300.0),
            "db_connect_timeout_s": env_float("SWITCHBOARD_DB_CONNECT_TIMEOUT_S", 5.0),
            "db_statement_timeout_ms": env_int("SWITCHBOARD_DB_STATEMENT_TIMEOUT_MS", 10_000),
            "db_slow_statement_ms": env_float("SWITCHBOARD_DB_SLOW_STATEMENT_MS", 100.0),
            "state_dir": STATE_DIR,
            "log_level": env.get("SWITCHBOARD_LOG_LEVEL", "INFO").upper(),
            "log_format": env.get("SWITCHBOARD_LOG_FORMAT", "json").lower(),
            "trace_resolvers": env_bool("SWITCHBOARD_TRACE_RESOLVERS"),
            "readiness_cache_s": env_float("SWITCHBOARD_READINESS_CACHE_S", 10.0),
            "pq_manifests": (DEFAULT_MANIFEST, *_env_paths("SWITCHBOARD_PQ_MANIFESTS")),
            "apq_ttl_s": env_int("SWITCHBOARD_APQ_TTL_S", 7 * 86400),
            "max_body_bytes": env_int("SWITCHBOARD_MAX_BODY_BYTES", 1_000_000),
            "max_variables_bytes": env_int("SWITCHBOARD_MAX_VARIABLES_BYTES", 256_000),
            "max_depth": env_int("SWITCHBOARD_MAX_DEPTH", 12),
            "max_aliases": env_int("SWITCHBOARD_MAX_ALIASES", 30),
            "max_tokens": env_int("SWITCHBOARD_MAX_TOKENS", 3000),
            "max_cost": env_int("SWITCHBOARD_MAX_COST", 100_000),
            "rate_limit": env_optional_bool("SWITCHBOARD_RATE_LIMIT"),
            "rate_limit_window_s": env_float("SWITCHBOARD_RATE_LIMIT_WINDOW_S", 60.0),
            "rate_limit_dashboard": env_int("SWITCHBOARD_RATE_LIMIT_DASHBOARD", 3000),
            "rate_limit_mobile": env_int("SWITCHBOARD_RATE_LIMIT_MOBILE", 3000),
            "rate_limit_agent": env_int("SWITCHBOARD_RATE_LIMIT_AGENT", 6000),
            "rate_limit_anonymous": env_int("SWITCHBOARD_RATE_LIMIT_ANONYMOUS", 60),
            "response_cache": env_optional_bool("SWITCHBOARD_RESPONSE_CACHE"),
            "cache_home_ttl_s": env_int("SWITCHBOARD_CACHE_HOME_TTL_S", 60),
            "cache_spend_ttl_s": env_int("SWITCHBOARD_CACHE_SPEND_TTL_S", 300),
            "compression_min_bytes": env_int("SWITCHBOARD_COMPRESSION_MIN_BYTES", 1024),
            "redis_retry_s": env_float("SWITCHBOARD_REDIS_RETRY_S", 2.0),
            "live_relay": not env_bool("SWITCHBOARD_LIVE_RELAY_OFF"),
            "live_relay_poll_s": env_float("SWITCHBOARD_LIVE_RELAY_POLL_S", 1.0),
            "live_init_timeout_s": env_float("SWITCHBOARD_LIVE_INIT_TIMEOUT_S", 10.0),
            "live_send_queue": env_int("SWITCHBOARD_LIVE_SEND_QUEUE", 1000),
            "stop_timeout_s": env_float("SWITCHBOARD_STOP_TIMEOUT_S", 10.0),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
