"""Settings: every knob read from the environment, each declared once, in frozen objects.

A knob is a dataclass field declared with `knob(env=…, default=…, doc=…)`: its variable,
its default and its meaning in one place. `from_env()` reads every knob of a class in one
loop, parsing by the field's type (int, float, bool, str, Path, tuples of them, optional
ones) or by the knob's own `parse`; a value that does not parse stops the start with a
`ConfigError` naming the variable. An unset or empty variable leaves the default.

`Settings` holds what the gateway (and the job worker) reads; `tasks/config.py`'s
`JobSettings` declares the job system's knobs the same way. README.md's variable tables
are checked against these declarations (tests/unit/test_settings.py), and nothing else in
the application reads os.environ for configuration; values reach child processes through
`child_environment`, never by changing this process's environment.
"""

from __future__ import annotations

import dataclasses
import os
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Development-only default; `switchboard serve` prints it so demo tokens can be minted.
DEV_JWT_SECRET = "switchboard-dev-secret-change-me-0123456789"
# The mobile app's trusted documents, from the project's copy of the contract.
DEFAULT_MANIFEST = PROJECT_DIR / "contract/operations/mobile/persisted-query-manifest.json"

_KNOB = "switchboard.knob"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
EMBEDDERS = ("lexical", "minilm")
EXECUTORS = ("planned", "graphql-core")


class ConfigError(ValueError):
    """A variable that cannot be used; the message names it."""


@dataclass(frozen=True)
class Knob:
    env: str
    doc: str
    # The README's default where it is a description rather than the value ("embedded").
    shown: str | None = None
    # Text to value, raising ValueError("<what it must be>"); None: by the field's type.
    parse: Callable[[str], Any] | None = None
    secret: bool = False  # never in repr() nor in an error message


class KnobField(NamedTuple):
    name: str
    knob: Knob
    default: Any
    type: Any


def knob(
    env: str,
    default: Any,
    doc: str,
    *,
    shown: str | None = None,
    parse: Callable[[str], Any] | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field read from `env` (typed Any so that it fits any annotation)."""
    return dataclasses.field(
        default=default,
        repr=not secret,
        metadata={_KNOB: Knob(env, doc, shown, parse, secret)},
    )


def knob_fields(cls: type) -> list[KnobField]:
    """The knobs a settings class declares, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [
        KnobField(f.name, f.metadata[_KNOB], f.default, hints[f.name])
        for f in dataclasses.fields(cls)
        if _KNOB in f.metadata
    ]


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("a boolean (1/true/yes/on or 0/false/no/off)")


def parse_value(hint: Any, raw: str) -> Any:
    """`raw` as a value of the annotation `hint`; ValueError says what it must be."""
    args = typing.get_args(hint)
    if type(None) in args:  # `X | None`: unset is None, which never reaches here
        (hint,) = (arg for arg in args if arg is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        item = args[0]
        separator = os.pathsep if item is Path else ","
        parts = [part.strip() for part in raw.split(separator) if part.strip()]
        try:
            return tuple(parse_value(item, part) for part in parts)
        except ValueError as error:
            named = {",": "comma", ":": "colon", ";": "semicolon"}.get(separator, repr(separator))
            raise ValueError(f"{named}-separated {_plural(error)}") from None
    if hint is bool:
        return parse_bool(raw)
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("an integer") from None
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("a number") from None
    if hint is uuid.UUID:
        try:
            return uuid.UUID(raw.strip())
        except ValueError:
            raise ValueError("a UUID") from None
    if hint is Path:
        return Path(raw)
    if hint is str:
        return raw
    raise TypeError(f"no parser for {hint!r}")


def _plural(error: ValueError) -> str:
    what = str(error).removeprefix("an ").removeprefix("a ")
    return what if what.endswith("s") else f"{what}s"


def read_knobs(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The value of every knob of `cls` whose variable is set in `environ`."""
    values: dict[str, Any] = {}
    for field in knob_fields(cls):
        raw = environ.get(field.knob.env, "")
        if not raw.strip():
            continue  # unset or empty: the default
        try:
            parse = field.knob.parse or (lambda text, hint=field.type: parse_value(hint, text))
            values[field.name] = parse(raw)
        except ValueError as error:
            shown = "" if field.knob.secret else f", not {raw!r}"
            raise ConfigError(f"{field.knob.env} must be {error}{shown}") from None
    return values


class FromEnv:
    """Mixin for a frozen dataclass of knobs: `from_env()` builds it from the environment."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Self:
        """Every knob from `environ` (default: this process's environment), then `overrides`
        (values, not text). Raises ConfigError for a variable that does not parse."""
        values = read_knobs(cls, os.environ if environ is None else environ)
        values.update(overrides)
        return cls(**values)


def child_environment(**variables: str) -> dict[str, str]:
    """The environment a child process starts with (`switchboard serve`'s gateway processes
    and job workers, which read their settings with `from_env()`): this process's, with
    `variables` set (the servers' URLs this process settled on)."""
    return {**os.environ, **variables}


def _with_mobile_manifest(raw: str) -> tuple[Path, ...]:
    # The mobile manifest is always served; the variable adds manifests after it.
    return (DEFAULT_MANIFEST, *parse_value(tuple[Path, ...], raw))


def _relay_off(raw: str) -> bool:
    return not parse_bool(raw)  # the variable turns the relay off; the field says "on"


POOLERS = ("direct", "transaction")


def _pooler(raw: str) -> str:
    name = raw.strip()
    if name not in POOLERS:
        raise ValueError(" or ".join(f"`{pooler}`" for pooler in POOLERS))
    return name


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    addresses = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError("comma-separated host:port")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def _executor(raw: str) -> str:
    name = raw.strip()
    if name not in EXECUTORS:
        raise ValueError(" or ".join(f"`{executor}`" for executor in EXECUTORS))
    return name


def _embedder(raw: str) -> str:
    name = raw.strip()
    if name not in EMBEDDERS:
        raise ValueError(" or ".join(f"`{embedder}`" for embedder in EMBEDDERS))
    return name


@dataclass(frozen=True)
class Settings(FromEnv):
    """What one gateway process (and a job worker's connections) need. Build it with
    `Settings.from_env()`; tests build it directly."""

    database_url: str | None = knob(
        "DATABASE_URL",
        None,
        "`postgresql+asyncpg://…` (unset: the embedded PostgreSQL)",
        shown="embedded",
        secret=True,
    )
    redis_url: str | None = knob(
        "REDIS_URL",
        None,
        "`redis://…` (unset: the embedded Valkey)",
        shown="embedded",
        secret=True,
    )
    database_direct_url: str | None = knob(
        "DATABASE_DIRECT_URL",
        None,
        "`migrate` (and `seed`) connect here, past a pooler, when set",
        shown="–",
        secret=True,
    )
    redis_sentinels: tuple[tuple[str, int], ...] = knob(
        "REDIS_SENTINELS",
        (),
        "comma-separated `host:port` of Sentinels, used instead of REDIS_URL",
        shown="–",
        parse=_sentinels,
    )
    redis_sentinel_service: str | None = knob(
        "REDIS_SENTINEL_SERVICE", None, "the master name the Sentinels watch", parse=str.strip
    )
    redis_password: str | None = knob(
        "REDIS_PASSWORD", None, "with Sentinels: the primary's and replicas' password", secret=True
    )
    mode: str = knob(
        "SWITCHBOARD_MODE",
        "development",
        "development | production | test; production masks unexpected errors, turns GraphiQL off",
    )
    executor: str = knob(
        "SWITCHBOARD_EXECUTOR",
        "planned",
        "`planned` (switchboard/execution/), or `graphql-core` for every operation: rules the"
        " planned executor out when debugging (and is the benchmarks' before)",
        parse=_executor,
    )
    jwt_secret: str = knob(
        "SWITCHBOARD_JWT_SECRET",
        DEV_JWT_SECRET,
        "HS256 signing secret",
        shown="a development secret",
        secret=True,
    )
    jwks_url: str | None = knob(
        "SWITCHBOARD_JWKS_URL", None, "verify RS256/ES256 tokens against this key set"
    )
    jwt_issuer: str | None = knob("SWITCHBOARD_JWT_ISSUER", None, "require this `iss`")

    # Database pool (switchboard/infra/db.py)
    # 20 kept and none past them, rather than 10 and 10 more: the same 20 at most, but an
    # overflow connection is closed when it comes back, and under 10 concurrent requests
    # one process opened a new connection (and prepared its statements) per request.
    db_pool_size: int = knob("SWITCHBOARD_DB_POOL_SIZE", 20, "pooled connections kept")
    db_max_overflow: int = knob(
        "SWITCHBOARD_DB_MAX_OVERFLOW", 0, "connections past the pool, closed when they come back"
    )
    db_pool_timeout_s: float = knob(
        "SWITCHBOARD_DB_POOL_TIMEOUT_S", 5.0, "wait for a pooled connection"
    )
    db_idle_timeout_s: float = knob(
        "SWITCHBOARD_DB_IDLE_TIMEOUT_S", 300.0, "replace connections idle longer"
    )
    db_connect_timeout_s: float = knob("SWITCHBOARD_DB_CONNECT_TIMEOUT_S", 5.0, "connect timeout")
    db_statement_timeout_ms: int = knob(
        "SWITCHBOARD_DB_STATEMENT_TIMEOUT_MS",
        10_000,
        "`statement_timeout` of every query; a timed-out read is retried once",
    )
    db_slow_statement_ms: float = knob(
        "SWITCHBOARD_DB_SLOW_STATEMENT_MS",
        100.0,
        "log a statement slower than this (with its plan once a minute)",
    )
    db_statement_cache_size: int = knob(
        "SWITCHBOARD_DB_STATEMENT_CACHE_SIZE",
        100,
        "prepared statements kept per connection (0: none, each statement unnamed)",
    )
    db_pooler: str = knob(
        "SWITCHBOARD_DB_POOLER",
        "direct",
        "`direct`, or `transaction` behind PgBouncer in transaction mode (no session state)",
        parse=_pooler,
    )

    # Read replicas (switchboard/infra/replicas.py)
    database_replica_urls: tuple[str, ...] = knob(
        "DATABASE_REPLICA_URLS",
        (),
        "comma-separated `postgresql+asyncpg://…` of streaming replicas for the read side",
        shown="–",
        secret=True,
    )
    replica_max_lag_ms: int = knob(
        "SWITCHBOARD_REPLICA_MAX_LAG_MS",
        300,
        "a replica further behind the primary than this is skipped until it catches up",
    )
    replica_poll_ms: int = knob(
        "SWITCHBOARD_REPLICA_POLL_MS", 100, "how often each replica's replay position is read"
    )

    # Auth caches in Redis (switchboard/edge/auth.py)
    membership_cache_ttl_s: int = knob(
        "SWITCHBOARD_MEMBERSHIP_CACHE_TTL_S",
        300,
        "how long a user's role in a tenant is cached (a changed role applies within this)",
    )
    token_cache_ttl_s: int = knob(
        "SWITCHBOARD_TOKEN_CACHE_TTL_S", 30, "how long a verified token's claims are cached"
    )

    state_dir: Path = knob(  # noqa: RUF009 (knob returns a dataclasses.field)
        "SWITCHBOARD_STATE_DIR",
        PROJECT_DIR / ".switchboard",
        "where embedded services keep their data",
        shown=".switchboard/",
    )

    # Observability (switchboard/observability/); the OTEL_* variables are the SDK's own.
    log_level: str = knob(
        "SWITCHBOARD_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", parse=str.upper
    )
    log_format: str = knob(
        "SWITCHBOARD_LOG_FORMAT", "json", "`json`, or `text` for a person", parse=str.lower
    )
    trace_resolvers: bool = knob(
        "SWITCHBOARD_TRACE_RESOLVERS", False, "a span per awaited resolver and root field (costly)"
    )
    readiness_cache_s: float = knob(
        "SWITCHBOARD_READINESS_CACHE_S", 10.0, "how long `/readyz` reuses its answer"
    )
    otlp_inline: bool = knob(
        "SWITCHBOARD_OTLP_INLINE",
        False,
        "encode and send spans in this process instead of its export process",
    )

    # Edge (switchboard/edge/): persisted queries, limits, rate limits, response cache
    pq_manifests: tuple[Path, ...] = knob(
        "SWITCHBOARD_PQ_MANIFESTS",
        (DEFAULT_MANIFEST,),
        "manifests served besides the mobile one, os.pathsep-separated (each must exist)",
        shown="–",
        parse=_with_mobile_manifest,
    )
    apq_ttl_s: int = knob(
        "SWITCHBOARD_APQ_TTL_S", 7 * 86400, "how long an APQ registration lives in Redis"
    )
    max_body_bytes: int = knob("SWITCHBOARD_MAX_BODY_BYTES", 1_000_000, "largest request body")
    max_variables_bytes: int = knob(
        "SWITCHBOARD_MAX_VARIABLES_BYTES", 256_000, "largest variables object"
    )
    max_depth: int = knob("SWITCHBOARD_MAX_DEPTH", 12, "deepest selection")
    max_aliases: int = knob("SWITCHBOARD_MAX_ALIASES", 30, "aliases in one operation")
    max_tokens: int = knob("SWITCHBOARD_MAX_TOKENS", 3000, "lexical tokens in one document")
    max_cost: int = knob(
        "SWITCHBOARD_MAX_COST", 100_000, "estimated response fields (two nested full pages fit)"
    )
    rate_limit: bool | None = knob(
        "SWITCHBOARD_RATE_LIMIT",
        None,
        "rate limits on or off (unset: on, except in test mode)",
        shown="on (off in test mode)",
    )
    rate_limit_window_s: float = knob("SWITCHBOARD_RATE_LIMIT_WINDOW_S", 60.0, "the window")
    rate_limit_dashboard: int = knob(
        "SWITCHBOARD_RATE_LIMIT_DASHBOARD", 3000, "requests per window per tenant, dashboard"
    )
    rate_limit_mobile: int = knob(
        "SWITCHBOARD_RATE_LIMIT_MOBILE", 3000, "requests per window per tenant, mobile"
    )
    rate_limit_agent: int = knob(
        "SWITCHBOARD_RATE_LIMIT_AGENT", 6000, "requests per window per tenant, agents"
    )
    rate_limit_anonymous: int = knob(
        "SWITCHBOARD_RATE_LIMIT_ANONYMOUS", 60, "requests per window per IP without a valid token"
    )
    response_cache: bool | None = knob(
        "SWITCHBOARD_RESPONSE_CACHE",
        None,
        "the response cache on or off (unset: on, except in test mode)",
        shown="on (off in test mode)",
    )
    cache_home_ttl_s: int = knob("SWITCHBOARD_CACHE_HOME_TTL_S", 60, "`mobileHome` entries")
    cache_spend_ttl_s: int = knob("SWITCHBOARD_CACHE_SPEND_TTL_S", 300, "spend entries")
    compression_min_bytes: int = knob(
        "SWITCHBOARD_COMPRESSION_MIN_BYTES", 1024, "smallest body compressed"
    )
    redis_retry_s: float = knob(
        "SWITCHBOARD_REDIS_RETRY_S", 2.0, "after a Redis failure, the edge skips Redis this long"
    )

    # Live events (switchboard/live/)
    live_relay: bool = knob(
        "SWITCHBOARD_LIVE_RELAY_OFF",
        True,
        "`1`: this process relays no outbox rows (another one must)",
        shown="–",
        parse=_relay_off,
    )
    live_relay_poll_s: float = knob(
        "SWITCHBOARD_LIVE_RELAY_POLL_S", 1.0, "the relay's poll, besides the notification"
    )
    live_init_timeout_s: float = knob(
        "SWITCHBOARD_LIVE_INIT_TIMEOUT_S", 10.0, "`connection_init` must arrive within this"
    )
    live_send_queue: int = knob(
        "SWITCHBOARD_LIVE_SEND_QUEUE",
        1000,
        "messages waiting for one connection before it is closed as too slow",
    )
    live_heartbeat_s: float = knob(
        "SWITCHBOARD_LIVE_HEARTBEAT_S",
        15.0,
        "an SSE stream's heartbeat (a comment) while no event goes, under proxies' idle timeouts",
    )
    live_forward_timeout_s: float = knob(
        "SWITCHBOARD_LIVE_FORWARD_TIMEOUT_S",
        5.0,
        "SSE single connection mode: how long an operation sent on to the gateway process "
        "holding its stream waits for that process's answer (then 503)",
    )

    # `switchboard serve`: from a stop signal to nothing left running
    # (switchboard/processes/supervisor.py)
    stop_timeout_s: float = knob(
        "SWITCHBOARD_STOP_TIMEOUT_S", 10.0, "`serve`: from SIGTERM/SIGINT to nothing left running"
    )

    # Skill search (switchboard/skill_search/)
    skill_embedding: str = knob(
        "SWITCHBOARD_SKILL_EMBEDDING",
        "lexical",
        "`lexical`, or `minilm` (the `minilm` extra)",
        parse=_embedder,
    )
    qdrant_url: str | None = knob(
        "QDRANT_URL", None, "a Qdrant server instead of local mode", parse=str.strip
    )
    qdrant_api_key: str | None = knob(
        "QDRANT_API_KEY", None, "the Qdrant server's API key", secret=True
    )

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

    def server_urls(self) -> tuple[str, str | None]:
        """The database and Redis URLs; ConfigError when either server is missing (the
        embedded servers are started by the `switchboard` command, which fills them in).
        The Redis URL is None when Sentinels name the primary (switchboard/infra/redis.py)."""
        sentinels = bool(self.redis_sentinels)
        if sentinels and not self.redis_sentinel_service:
            raise ConfigError(
                "REDIS_SENTINEL_SERVICE not set: REDIS_SENTINELS needs the master name"
            )
        if self.database_url is None or (self.redis_url is None and not sentinels):
            missing = " and ".join(
                name
                for name, value in (
                    ("DATABASE_URL", self.database_url),
                    ("REDIS_URL", self.redis_url or sentinels),
                )
                if not value
            )
            raise ConfigError(f"{missing} not set: this process needs servers to connect to")
        return self.database_url, None if sentinels else self.redis_url
