"""MobileHome by persisted id at 50 concurrent clients, uncached and cached, against a
real `switchboard serve` on 127.0.0.1.

This script owns the edge benchmark that perf/README.md reports ("Edge"). For each
stage it starts `python -m switchboard.cli serve` in production mode (rate limiting on,
with a limit far above the load, so its Redis round trip is part of every request) with
the response cache off ("uncached") or on ("cached"), waits for /healthz, then:

- opens `--clients` keep-alive HTTP/1.1 connections (a minimal asyncio client, so that
  the client's own CPU stays small on this 2-core machine);
- sends MobileHome by its manifest id (`extensions.persistedQuery`, no query text) with
  a mobile token, `--warmup` times unmeasured, then `--requests` times measured, each
  connection sending its next request as soon as its last answer arrived;
- reports, per stage: client median and p99 (nearest rank) of the round trip, requests
  per second, the server's own median and p99 (`x-response-time`), the response cache's
  outcomes seen in `Server-Timing`, and the share of server time spent parsing and
  validating the operation: Σ `parse` / Σ `total` of `Server-Timing` (target 0: a
  persisted operation is prepared when the process starts);
- then, open loop (`--rate`, default 50 requests/s in all, for `--rate-seconds`): the same
  clients send on a fixed schedule instead of as fast as they can, and latency counts from
  each request's scheduled moment. Closed-loop latency at 50 clients is 50 / throughput
  (Little's law) whatever the server does per request; the open loop shows the latency a
  client sees at a given load.

Stages are separate server processes, so nothing of one stage runs on into the next.

Run (from the repository root, in the venv):

    export SWITCHBOARD_STATE_DIR=$PWD/.switchboard/perf
    python perf/bench_edge.py --json            # demo tenant (acme); --data bench needs
                                                # `switchboard seed --bench` first
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from gateway import start_gateway, stop_gateway  # perf/gateway.py, beside this script
from stats import nearest_rank  # perf/stats.py, beside this script

from domain.ids import to_global_id
from switchboard.devdata.seed import stable_id
from switchboard.edge.auth import issue_token
from switchboard.settings import DEFAULT_MANIFEST, Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "perf" / "results"
SECRET = "bench-edge-production-secret-0123456789abcdef"
DATA_SETS = {"demo": "acme", "bench": "bench"}


def manifest_id(name: str) -> str:
    operations = orjson.loads(DEFAULT_MANIFEST.read_bytes())["operations"]
    return next(op["id"] for op in operations if op["name"] == name)


def server_timing(raw: str) -> dict[str, str]:
    metrics = {}
    for part in raw.split(","):
        name, _, rest = part.strip().partition(";")
        if name:
            metrics[name] = rest.partition("=")[2].strip('"')
    return metrics


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(request)
        await self.writer.drain()
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def mobile_home_request(token: str) -> bytes:
    body = orjson.dumps(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": manifest_id("MobileHome")}}}
    )
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, request: bytes, clients: int, total: int) -> dict[str, Any]:
    """`total` requests over `clients` connections; each sends again when answered."""
    connections = [await Connection.open(port) for _ in range(clients)]
    client_ms: list[float] = []
    server_ms: list[float] = []
    parse_ms = total_ms = 0.0
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    remaining = total

    async def run(connection: Connection) -> None:
        nonlocal remaining, parse_ms, total_ms
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            status, headers, body = await connection.exchange(request)
            client_ms.append((time.perf_counter() - started) * 1000)
            if status != 200 or b'"errors"' in body:
                errors.append(f"{status} {body[:200]!r}")
            server_ms.append(float(headers["x-response-time"].removesuffix("ms")))
            timing = server_timing(headers.get("server-timing", ""))
            parse_ms += float(timing.get("parse", 0))
            total_ms += float(timing.get("total", 0))
            for outcome in timing.get("cache", "").split():
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    return {
        "requests": len(client_ms),
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(client_ms) / elapsed, 1),
        "client_median_ms": round(statistics.median(client_ms), 2),
        "client_p99_ms": round(nearest_rank(client_ms, 0.99), 2),
        "server_median_ms": round(statistics.median(server_ms), 2),
        "server_p99_ms": round(nearest_rank(server_ms, 0.99), 2),
        "parse_share": (parse_ms / total_ms) if total_ms else 0.0,
        "parse_ms_total": round(parse_ms, 3),
        "cache_outcomes": outcomes,
        "errors": errors[:5],
        "error_count": len(errors),
    }


async def paced(
    port: int, request: bytes, clients: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Open loop: `clients` connections sending `rate` requests per second in all, each on
    its own schedule; latency counts from the scheduled moment (so a late send counts)."""
    connections = [await Connection.open(port) for _ in range(clients)]
    interval = clients / rate
    client_ms: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def run(index: int, connection: Connection) -> None:
        scheduled = start + interval * index / clients
        while scheduled < start + seconds:
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            status, headers, body = await connection.exchange(request)
            client_ms.append((loop.time() - scheduled) * 1000)
            server_ms.append(float(headers["x-response-time"].removesuffix("ms")))
            if status != 200 or b'"errors"' in body:
                errors.append(f"{status} {body[:200]!r}")
            scheduled += interval

    await asyncio.gather(*(run(i, c) for i, c in enumerate(connections)))
    for connection in connections:
        await connection.close()
    return {
        "requests": len(client_ms),
        "clients": clients,
        "rate_per_s": rate,
        "client_median_ms": round(statistics.median(client_ms), 2),
        "client_p99_ms": round(nearest_rank(client_ms, 0.99), 2),
        "server_median_ms": round(statistics.median(server_ms), 2),
        "server_p99_ms": round(nearest_rank(server_ms, 0.99), 2),
        "error_count": len(errors),
        "errors": errors[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", choices=list(DATA_SETS), default="demo")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=5000, help="measured, per stage")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured, per stage")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes")
    parser.add_argument("--stages", nargs="*", default=["uncached", "cached"])
    parser.add_argument(
        "--rate", type=float, default=50.0, help="open-loop requests/s in all (0: skip)"
    )
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="also write perf/results/*.json")
    args = parser.parse_args(argv)

    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard" / "perf"))
    slug = DATA_SETS[args.data]
    token = issue_token(
        Settings(jwt_secret=SECRET),
        to_global_id("User", stable_id("user", f"marketer@{slug}.example")),
        to_global_id("Tenant", stable_id(slug, "tenant")),
        "mobile",
    )
    request = mobile_home_request(token)
    base_env = {
        "SWITCHBOARD_MODE": "production",
        "SWITCHBOARD_JWT_SECRET": SECRET,
        "SWITCHBOARD_RATE_LIMIT": "1",
        "SWITCHBOARD_RATE_LIMIT_MOBILE": str(10**9),
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }
    results: dict[str, Any] = {}
    for stage in args.stages:
        env = {**base_env, "SWITCHBOARD_RESPONSE_CACHE": "1" if stage == "cached" else "0"}
        log = Path(tempfile.gettempdir()) / f"switchboard-bench-edge-{stage}-{os.getpid()}.log"
        print(f"{stage}: starting the gateway (log {log})…", file=sys.stderr)
        process, port = start_gateway(state_dir, log, env, args.workers)
        try:
            asyncio.run(load(port, request, args.clients, args.warmup))
            results[stage] = asyncio.run(load(port, request, args.clients, args.requests))
            if args.rate > 0:
                results[stage]["paced"] = asyncio.run(
                    paced(port, request, args.clients, args.rate, args.rate_seconds)
                )
        finally:
            stop_gateway(process)
        r = results[stage]
        print(
            f"{stage}: {r['requests_per_s']} req/s, client median {r['client_median_ms']} ms "
            f"p99 {r['client_p99_ms']} ms, server median {r['server_median_ms']} ms "
            f"p99 {r['server_p99_ms']} ms, parse share {r['parse_share']:.6f}, "
            f"cache {r['cache_outcomes']}, errors {r['error_count']}",
            file=sys.stderr,
        )
        if "paced" in r:
            p = r["paced"]
            print(
                f"{stage} at {p['rate_per_s']} req/s: client median {p['client_median_ms']} ms "
                f"p99 {p['client_p99_ms']} ms, server p99 {p['server_p99_ms']} ms, "
                f"errors {p['error_count']}",
                file=sys.stderr,
            )

    lines = [
        f"MobileHome by persisted id, {args.data} data, {args.clients} clients, "
        f"{args.requests} requests per stage, {args.workers} gateway worker(s):",
        "",
        "| stage | req/s | client median ms | client p99 ms | server median ms "
        "| server p99 ms | parse+validate share | cache outcomes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for stage, r in results.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["cache_outcomes"].items())) or "–"
        lines.append(
            f"| {stage} | {r['requests_per_s']} | {r['client_median_ms']} | "
            f"{r['client_p99_ms']} | {r['server_median_ms']} | {r['server_p99_ms']} | "
            f"{r['parse_share']:.4%} | {outcomes} |"
        )
    paced_rows = [(stage, r["paced"]) for stage, r in results.items() if "paced" in r]
    if paced_rows:
        lines += [
            "",
            f"Open loop: {args.rate:g} requests/s in all from {args.clients} clients for "
            f"{args.rate_seconds:g} s (latency from each request's scheduled moment):",
            "",
            "| stage | requests | client median ms | client p99 ms | server p99 ms |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for stage, p in paced_rows:
            lines.append(
                f"| {stage} | {p['requests']} | {p['client_median_ms']} | "
                f"{p['client_p99_ms']} | {p['server_p99_ms']} |"
            )
    print("\n".join(lines))
    if args.json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"bench-edge-{stamp}.json"
        payload = {"at": stamp, "args": vars(args), "results": results}
        out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        print(f"\nWrote {out}", file=sys.stderr)
    failed = any(
        r["error_count"] or r.get("paced", {}).get("error_count") for r in results.values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
