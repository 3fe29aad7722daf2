"""The `switchboard` command: serve, migrate, seed and token.

Without DATABASE_URL / REDIS_URL, every command starts (or reuses) the embedded
PostgreSQL and Valkey under `.switchboard/`, and stops what it started when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import to_global_id
from switchboard.auth import issue_token
from switchboard.migrate import upgrade_to_head
from switchboard.seed import DEMO_TENANTS, PEOPLE, database_is_empty, seed_demo, stable_id
from switchboard.services import EmbeddedServices, export_urls, start_services
from switchboard.settings import Settings


@contextmanager
def services(settings: Settings) -> Iterator[EmbeddedServices]:
    running = start_services(settings.state_dir, settings.database_url, settings.redis_url)
    export_urls(running)
    try:
        yield running
    finally:
        running.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (migrates and seeds demo data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="gateway processes")

    commands.add_parser("migrate", help="bring the database to the newest schema")

    seed = commands.add_parser("seed", help="load demo or benchmark data")
    which = seed.add_mutually_exclusive_group(required=True)
    which.add_argument("--demo", action="store_true", help="the acme and globex tenants")
    which.add_argument("--bench", action="store_true", help="the large `bench` tenant")

    token = commands.add_parser("token", help="print a signed token")
    token.add_argument("--tenant", help="tenant slug")
    token.add_argument("--email", help="user email")
    token.add_argument("--audience", choices=["dashboard", "mobile"], default="dashboard")
    token.add_argument("--agent", help="agent ID (agt_…): an agent token")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers)
    with services(settings) as running:
        if args.command == "migrate":
            upgrade_to_head(running.database_url)
        elif args.command == "seed":
            upgrade_to_head(running.database_url)
            if args.demo:
                asyncio.run(_seed_demo(running.database_url, only_if_empty=False))
            else:
                from switchboard.bench_data import seed_bench

                asyncio.run(seed_bench(running.database_url))
        elif args.command == "token":
            return asyncio.run(_token(settings, running.database_url, args))
    return 0


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    with services(settings) as running:
        upgrade_to_head(running.database_url)
        asyncio.run(_seed_demo(running.database_url, only_if_empty=True))
        _print_demo_tokens(settings, host, port)
        uvicorn.run(
            "switchboard.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_keep_alive=30,
        )
    return 0


async def _seed_demo(database_url: str, only_if_empty: bool) -> None:
    engine = create_async_engine(database_url)
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
    engine = create_async_engine(database_url)
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
