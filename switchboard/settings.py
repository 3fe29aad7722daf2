"""Settings: every knob the gateway reads from the environment, in one frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SWITCHBOARD_STATE_DIR", PROJECT_DIR / ".switchboard"))

# Development-only default; `switchboard serve` prints it so demo tokens can be minted.
DEV_JWT_SECRET = "switchboard-dev-secret-change-me-0123456789"


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


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
            "db_pool_size": _env_int("SWITCHBOARD_DB_POOL_SIZE", 10),
            "db_max_overflow": _env_int("SWITCHBOARD_DB_MAX_OVERFLOW", 10),
            "db_pool_timeout_s": _env_float("SWITCHBOARD_DB_POOL_TIMEOUT_S", 5.0),
            "db_idle_timeout_s": _env_float("SWITCHBOARD_DB_IDLE_TIMEOUT_S", 300.0),
            "db_connect_timeout_s": _env_float("SWITCHBOARD_DB_CONNECT_TIMEOUT_S", 5.0),
            "db_statement_timeout_ms": _env_int("SWITCHBOARD_DB_STATEMENT_TIMEOUT_MS", 10_000),
            "db_slow_statement_ms": _env_float("SWITCHBOARD_DB_SLOW_STATEMENT_MS", 100.0),
            "state_dir": STATE_DIR,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
