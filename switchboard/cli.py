"""The `switchboard` command: serve, migrate, seed, token and skill.

Without DATABASE_URL / REDIS_URL, every command starts (or reuses) the embedded
PostgreSQL and Valkey under `.switchboard/`, and stops what it started when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from domain.ids import to_global_id
from switchboard.devdata.seed import DEMO_TENANTS, PEOPLE, database_is_empty, seed_demo, stable_id
from switchboard.edge.auth import issue_token
from switchboard.edge.persisted import ManifestError, load_manifest
from switchboard.infra.db import command_connect_args, create_command_engine
from switchboard.infra.embedded import EmbeddedServices, start_services
from switchboard.infra.migrate import migrate
from switchboard.infra.redis import redis_client
from switchboard.observability.logs import configure_logging
from switchboard.observability.metrics import multiprocess_dir, prepare_multiprocess_dir
from switchboard.settings import ConfigError, Settings, child_environment
from tasks.config import JobSettings


@contextmanager
def embedded_or_configured(settings: Settings) -> Iterator[EmbeddedServices]:
    """The servers the settings name, or the embedded ones (started, or reused) when they
    name none; what this started stops when the block ends."""
    running = start_services(
        settings.state_dir,
        settings.database_url,
        settings.redis_url,
        start_redis=not settings.redis_sentinels,  # Sentinels name the primary
    )
    try:
        yield running
    finally:
        running.stop()


def build_parser() -> argparse.ArgumentParser:
    """The `switchboard` command's parser (deploy/ is checked against it)."""
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the gateway (migrates; in development also seeds demo data)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_at_least(1),
        default=_cores(),
        help="gateway processes (default: one per core this process may run on)",
    )

    # Jobs (tasks/): `switchboard worker`, and those `serve` runs beside the gateway.
    serve.add_argument(
        "--job-workers", type=_at_least(0), default=1, help="job worker processes beside it"
    )
    serve.add_argument(
        "--no-worker", dest="job_workers", action="store_const", const=0, help="--job-workers 0"
    )
    worker = commands.add_parser("worker", help="run a job worker (agent work)")
    worker.add_argument("--slots", type=int, help="jobs run at once (SWITCHBOARD_WORKER_SLOTS)")
    worker.add_argument(
        "--grace-s", type=float, help="for running jobs on stop (SWITCHBOARD_WORKER_GRACE_S)"
    )

    commands.add_parser("migrate", help="bring the database to the newest schema")

    seed = commands.add_parser("seed", help="load demo or benchmark data")
    which = seed.add_mutually_exclusive_group(required=True)
    which.add_argument("--demo", action="store_true", help="the acme and globex tenants")
    which.add_argument("--bench", action="store_true", help="the large `bench` tenant")

    skill = commands.add_parser(
        "skill", help="create or update a skill by its name (global unless --tenant)"
    )
    skill.add_argument("--name", required=True)
    skill.add_argument("--content-file", required=True, type=Path, help="its markdown")
    skill.add_argument("--summary", help="one line for the manifest (default: the first line)")
    skill.add_argument("--role", help="an AgentRole (default: none, every role sees it)")
    skill.add_argument("--tenant", help="tenant slug (default: a global skill)")

    token = commands.add_parser("token", help="print a signed token")
    token.add_argument("--tenant", help="tenant slug")
    token.add_argument("--email", help="user email")
    token.add_argument("--audience", choices=["dashboard", "mobile"], default="dashboard")
    token.add_argument("--agent", help="agent ID (agt_…): an agent token")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:  # a variable that cannot be used stops the start, naming it
        settings = Settings.from_env()
        jobs = JobSettings.from_env(**_job_overrides(args))
    except ConfigError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        try:  # a mobile app without its trusted documents cannot work: refuse to start
            for manifest in settings.pq_manifests:
                load_manifest(manifest)
        except ManifestError as error:
            print(f"switchboard: {error}", file=sys.stderr)
            return 2
        # Observability: the server's and its workers' logs are JSON lines, secrets redacted;
        # every process of the deployment writes its metrics to one folder.
        configure_logging(settings.log_level, settings.log_format, secrets=[settings.jwt_secret])
        _share_metrics(settings, sys.argv[1:] if argv is None else argv)
        return _serve(settings, jobs, args.host, args.port, args.workers, args.job_workers)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "worker":  # jobs (tasks/)
        return _worker(settings, jobs)
    with embedded_or_configured(settings) as running:
        if args.command == "migrate":
            migrate(settings, running.database_url)
        elif args.command == "seed":
            migrate(settings, running.database_url)
            if args.demo:
                asyncio.run(_seed_demo(settings, running.database_url, only_if_empty=False))
            else:
                from switchboard.devdata.bench import seed_bench

                asyncio.run(seed_bench(running.database_url, command_connect_args(settings)))
        elif args.command == "token":
            return asyncio.run(_token(settings, running.database_url, args))
        elif args.command == "skill":
            return asyncio.run(_put_skill(settings, running, args))
    return 0


async def _put_skill(
    settings: Settings, running: EmbeddedServices, args: argparse.Namespace
) -> int:
    """Create the skill, or update the one of that name in its scope; then tell every
    gateway process (the skills generation, switchboard/skill_search/changes.py)."""
    from domain.errors import Rejected
    from domain.store import skills
    from switchboard.skill_search import changes

    content = args.content_file.read_text()
    first_line = next((line.lstrip("# ").strip() for line in content.splitlines() if line), "")
    fields = {
        "name": args.name,
        "content": content,
        "summary": args.summary or first_line,
        "role": args.role,
    }
    engine = create_command_engine(settings, running.database_url)
    try:
        async with engine.begin() as conn:
            tenant_id = None
            if args.tenant:
                tenant_id = (
                    await conn.execute(
                        text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": args.tenant}
                    )
                ).scalar()
                if tenant_id is None:
                    print(f"No tenant has the slug {args.tenant!r}.", file=sys.stderr)
                    return 2
            existing = (
                await conn.execute(
                    text(
                        "SELECT id FROM skills WHERE tenant_id IS NOT DISTINCT FROM :tenant "
                        "AND lower(name) = lower(:name)"
                    ),
                    {"tenant": tenant_id, "name": args.name.strip()},
                )
            ).scalar()
            if existing is None:
                row = await skills.create_skill(conn, tenant_id, fields)
            else:
                row = await skills.update_skill(conn, tenant_id, existing, fields)
    except Rejected as rejected:
        print(f"{rejected.code}: {rejected.message}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    redis = redis_client(dataclasses.replace(settings, redis_url=running.redis_url or None))
    try:
        await changes.bump(redis, [row.id])
    finally:
        await redis.aclose()
    scope = f"tenant {args.tenant}" if args.tenant else "global"
    done = "created" if existing is None else "updated"
    print(f"{done} {to_global_id('Skill', row.id)} ({scope}): {row.name}")
    return 0


def _serve(
    settings: Settings, jobs: JobSettings, host: str, port: int, workers: int, job_workers: int
) -> int:
    """Start the services, migrate and seed, then supervise the gateway processes (on one
    socket bound here) and the job workers until a signal; the services stop last
    (switchboard/processes/supervisor.py has the order)."""
    import uvicorn

    from switchboard.processes.listening import REUSE_PORT, reuse_port_socket
    from switchboard.processes.supervisor import StopRequested, Supervisor

    try:
        with (
            Supervisor(settings.stop_timeout_s) as supervisor,
            embedded_or_configured(settings) as running,
        ):
            migrate(settings, running.database_url)
            # Demo tenants and their tokens are for development only: a production server's
            # first start must not create acme and globex with their people.
            if settings.development:
                asyncio.run(_seed_demo(settings, running.database_url, only_if_empty=True))
                _print_demo_tokens(settings, host, port)
            budget = supervisor.budget
            gateway = [sys.executable, "-m", "switchboard.processes.gateway"]
            gateway += ["--grace-s", f"{budget.grace_s:g}"]
            if REUSE_PORT:
                # Each gateway process listens on a socket of its own
                # (switchboard/processes/listening.py);
                # this one, bound but not listening, holds the port for them.
                listener = reuse_port_socket(host, port, listen=False)
                gateway += ["--reuse-port", f"{host}:{listener.getsockname()[1]}"]
                pass_fds: tuple[int, ...] = ()
            else:
                # log_config=None: uvicorn's loggers keep the JSON handler.
                config = uvicorn.Config("switchboard.app", host=host, port=port, log_config=None)
                listener = config.bind_socket()
                gateway += ["--fd", str(listener.fileno())]
                pass_fds = (listener.fileno(),)
            # The children read their settings from the environment: the servers' URLs too.
            urls = {"DATABASE_URL": running.database_url}
            if running.redis_url:  # none under Sentinel: the children ask the Sentinels
                urls["REDIS_URL"] = running.redis_url
            env = child_environment(**urls)
            with listener:
                for _ in range(workers):
                    supervisor.add("gateway", gateway, env=env, pass_fds=pass_fds)
                # Jobs (tasks/): a running job's grace fits in the stop's share of processes.
                grace_s = min(jobs.shutdown_grace_s, budget.grace_s)
                job_worker = [sys.executable, "-m", "switchboard.cli", "worker"]
                job_worker += ["--grace-s", repr(grace_s)]
                for _ in range(job_workers):
                    supervisor.add("job_worker", job_worker, env=env)
                supervisor.run(on_stop=listener.close)  # stop accepting first
            running.stop_deadline = supervisor.stop_deadline  # the servers stop in what is left
    except StopRequested:
        pass  # a signal during start-up: what had started has stopped
    return 0


def _cores() -> int:
    """One gateway process per usable core: a process runs Python on one core at a time,
    and DashboardOverview's throughput doubled from one process to two on two cores."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _at_least(minimum: int) -> Callable[[str], int]:
    def count(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return count


# Jobs (tasks/): the worker command `serve` runs (and operators, under a supervisor).


def _job_overrides(args: argparse.Namespace) -> dict[str, float]:
    """`worker`'s options, which win over their variables."""
    if args.command != "worker":
        return {}
    overrides = {"worker_slots": args.slots, "shutdown_grace_s": args.grace_s}
    return {name: value for name, value in overrides.items() if value is not None}


def _worker(settings: Settings, jobs: JobSettings) -> int:
    from tasks.worker import main as worker_main

    with embedded_or_configured(settings) as running:
        # The embedded servers', when the settings named none.
        urls = {"database_url": running.database_url, "redis_url": running.redis_url or None}
        return worker_main(dataclasses.replace(settings, **urls), jobs)


def _share_metrics(settings: Settings, argv: list[str]) -> None:
    """Observability: Prometheus multiprocess mode for every process `serve` runs (gateway
    workers, the job worker), so /metrics adds them all up (observability/metrics.py).

    The variable must be set before prometheus_client is imported, which this process has
    done already: the first time, `serve` empties the folder, sets PROMETHEUS_MULTIPROC_DIR
    and executes itself again (same process id); then it only clears other processes'
    files left from an earlier run."""
    folder = multiprocess_dir()
    if folder:
        prepare_multiprocess_dir(Path(folder), keep_pid=os.getpid())
        return
    prepare_multiprocess_dir(settings.state_dir / "prometheus")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "switchboard.cli", *argv])


async def _seed_demo(settings: Settings, database_url: str, only_if_empty: bool) -> None:
    engine = create_command_engine(settings, database_url)
    try:
        async with engine.begin() as conn:
            if only_if_empty and not await database_is_empty(conn):
                return
            if not await database_is_empty(conn):
                print("The database already holds data; `seed --demo` needs an empty one.")
                return
            await seed_demo(conn)
            print(f"Seeded demo tenants: {', '.join(DEMO_TENANTS)}")
    finally:
        await engine.dispose()


def _print_demo_tokens(settings: Settings, host: str, port: int) -> None:
    print(f"\nSwitchboard on http://{host}:{port}/graphql (GraphiQL in a browser)\n")
    print("Demo tokens (Authorization: Bearer <token>), valid 12 hours:")
    for slug in DEMO_TENANTS:
        tenant = to_global_id("Tenant", stable_id(slug, "tenant"))
        for local, _ in PEOPLE.values():
            email = f"{local}@{slug}.example"
            user = to_global_id("User", stable_id("user", email))
            print(f"  {email:<24} {issue_token(settings, user, tenant, 'dashboard')}")
    print()
    sys.stdout.flush()


async def _token(settings: Settings, database_url: str, args: argparse.Namespace) -> int:
    engine = create_command_engine(settings, database_url)
    try:
        async with engine.connect() as conn:
            if args.agent:
                from domain.ids import parse_id_of

                agent_id = parse_id_of("Agent", args.agent)
                row = (
                    await conn.execute(
                        text("SELECT tenant_id FROM agents WHERE id = :id"), {"id": agent_id}
                    )
                ).first()
                if row is None:
                    print(f"No agent {args.agent}.", file=sys.stderr)
                    return 1
                tenant_id: uuid.UUID = row[0]
                print(
                    issue_token(
                        settings, args.agent, to_global_id("Tenant", tenant_id), "agent", args.ttl
                    )
                )
                return 0
            if not (args.tenant and args.email):
                print("Give --tenant and --email, or --agent.", file=sys.stderr)
                return 2
            row = (
                await conn.execute(
                    text(
                        "SELECT t.id, u.id FROM tenants t JOIN memberships m ON m.tenant_id = t.id "
                        "JOIN users u ON u.id = m.user_id WHERE t.slug = :slug AND u.email = :email"
                    ),
                    {"slug": args.tenant, "email": args.email},
                )
            ).first()
            if row is None:
                print(f"{args.email} is not a member of {args.tenant}.", file=sys.stderr)
                return 1
            print(
                issue_token(
                    settings,
                    to_global_id("User", row[1]),
                    to_global_id("Tenant", row[0]),
                    args.audience,
                    args.ttl,
                )
            )
            return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
