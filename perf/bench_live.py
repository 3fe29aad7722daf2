"""Live events (issue 4): first-event latency and a soak of many subscribers, against a real
`switchboard serve` with its embedded PostgreSQL and Valkey.

This script owns the "Live events (issue 4)" section of perf/README.md.

The gateway is `switchboard serve --workers 1 --no-worker` (one gateway process, a child of
`serve` running uvicorn: switchboard/processes/gateway.py), started through perf/gateway.py
like the other benchmarks, so it runs exactly as operators run it. State: its own folder
(`--state-dir`, default /tmp/switchboard-bench-live), so nothing collides with other work.

Subscribers are websocket clients (the `websockets` package, on uvloop) in `--client-procs`
separate processes, all on tenant acme as its marketer (a `dashboard` token), each with
one subscription: the contract's TenantEvents document, no variables. By default they
offer permessage-deflate, as browsers and the `websockets` client do (`--compression
none` turns it off). Events come from `updateCampaign(id, {name: "bench-live-<seq>"})`
sent over HTTP by this process, so each event carries its sequence number in
`campaign.name`.

latency: for each level of `--levels` (default 1, 100, 1000 subscribers), connect and
subscribe them all, send events until every subscriber has received one (the barrier:
everyone is registered), `--warmup` unmeasured events, then `--events` events paced at
`--interval-ms` (uniformly jittered ±50%), never back to back. A client notes
`time.time()` the moment a message is read off its socket. Per delivery (subscriber ×
event) three latencies are kept:
  - from_response: receipt − the moment the mutation's HTTP response came back to this
    script (the commit happened before; this is the headline figure, a slight
    under-estimate by the response's own way back, ~0.1-1 ms);
  - from_commit_ts: receipt − the event's `occurredAt` (the transaction's timestamp,
    `now()`, i.e. its *start*: an over-estimate by the mutation's own run time);
  - from_send: receipt − the moment the mutation was sent (an upper bound).
  p50/p99 use the nearest rank over all deliveries; "last" is per event, the latest of its
  subscribers. CPU: the gateway's and the client processes' CPU time over the measured
  window, as % of one core.

soak: connect `--subscribers` (default 2,000) subscribers, measure the gateway's RSS with
none (after a warm-up connection came and went) and with all of them, then keep
`--rate` events per second flowing for `--minutes` (default 10), sampling RSS, CPU and
open connections every 30 s. Each connection counts the events it received, gaps and
duplicates (by sequence number) and, if the server closed it, the code and reason.
Memory per connection = (RSS with N − RSS with none) / N.

`--executors graphql-core planned --rounds N` (issue 14): the latency levels on a gateway
per `SWITCHBOARD_EXECUTOR` value, alternating, N times; every level's figures carry their
executor and round.

`--hosts 1 2` (issue 19, "Two hosts" under "Beyond one machine" in perf/README.md): the
latency levels on servers of the run's own that every host shares (tests/support/hosts.py:
a PostgreSQL primary through PgBouncer in transaction mode, a streaming replica of it, Valkey
with a replica and three Sentinels), with 1 host, then 2 (then again with `--rounds`); each
host is a `serve --workers 1 --no-worker` with its own state folder and port, told only
those servers. Client process i connects to host i modulo the hosts (use an even
`--client-procs`), event n's mutation goes to host n modulo the hosts, and the gateway CPU
and RSS are the sum of the hosts' gateway processes.

`--transport sse` (issue 18, the "Live events over SSE" section of perf/README.md): the
same subscribers, events and figures over GraphQL over SSE (graphql-sse's distinct
connections mode: one `POST /graphql/stream` per subscriber, on a raw connection that
reads the event stream's bytes); a stream the server ends counts as a close with its
terminal event as the reason. `--transport ws` (the default) is the websocket run above.

Run (from the repository root, in the venv):

    python perf/bench_live.py latency --json                  # 1, 100, 1,000 subscribers
    python perf/bench_live.py soak --subscribers 2000 --minutes 10 --json
    python perf/bench_live.py latency --transport sse --json  # the same over SSE
    python perf/bench_live.py soak --transport sse --subscribers 2000 --minutes 10 --json

`serve` turns permessage-deflate off, so the clients' deflate offer is declined. (Earlier
`--ws` and `--server-deflate` options compared uvicorn's websocket implementations and
deflate through a shim around `uvicorn.run`; `serve` no longer calls it, and that one-time
study's results stay in perf/README.md.) Results go to perf/results/bench-live-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stats import summary  # perf/stats.py, beside this script

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "perf" / "results"
CONTRACT = REPO / "contract/operations/subscriptions/TenantEvents.graphql"
MARK = b"bench-live-"
UPDATE = """mutation($id: ID!, $name: String!) {
  updateCampaign(id: $id, input: {name: $name}) { campaign { id } userErrors { code message } }
}"""
CAMPAIGNS = "{ tenant { campaigns(first: 1) { edges { node { id } } } } }"
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process


# The gateway


def start_gateway(state_dir: Path, log: Path, env: dict[str, str], workers: int = 1) -> Any:
    """perf/gateway.py's start, without a job worker; returns (process, port)."""
    from gateway import start_gateway as start  # perf/gateway.py

    return start(state_dir, log, env, workers, extra=("--no-worker",))


# Subscriber processes


def _seq(raw: bytes) -> int:
    at = raw.find(MARK)
    if at < 0:
        return -1
    start = at + len(MARK)
    return int(raw[start : raw.index(b'"', start)])


class SSEConnection:
    """One SSE stream (distinct mode, POST /graphql/stream) on a raw connection: the bench
    needs only the bytes, and thousands of them per process."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.close_rcvd = None

    @classmethod
    async def open(cls, url: str, token: str, query: str) -> SSEConnection:
        host, port = url.split("//")[1].split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
        body = json.dumps({"query": query, "operationName": "TenantEvents"}).encode()
        writer.write(
            b"POST /graphql/stream HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n"
            + f"authorization: {token}\r\ncontent-type: application/json\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()


class Subscribers:
    """The connections of one client process, driven by commands over a pipe."""

    def __init__(
        self,
        url: str,
        token: str,
        compression: str | None,
        keep_times: bool,
        transport: str = "ws",
    ) -> None:
        self.url, self.token, self.compression = url, token, compression
        self.transport = transport
        self.keep_times = keep_times
        self.sockets: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.times: list[list[tuple[float, int]]] = []
        self.count: list[int] = []
        self.last: list[int] = []
        self.gaps: list[int] = []
        self.dups: list[int] = []
        self.closes: list[tuple[int | None, str] | None] = []
        self.sample: bytes | None = None  # one raw message with every seq (occurredAt)
        self.samples: dict[int, bytes] = {}
        self.failed: list[str] = []
        self.stopping = False

    async def open_one(self, query: str, sem: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect

        async with sem:
            if self.transport == "sse":
                try:
                    stream = await SSEConnection.open(self.url, self.token, query)
                except Exception as error:
                    self.failed.append(f"{type(error).__name__}: {error}"[:200])
                    return
                self._track(stream, self.read_sse)
                return
            try:
                ws = await connect(
                    self.url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    compression=self.compression,
                    max_queue=None,
                    ping_interval=None,  # the server pings; the client only answers
                    open_timeout=30,
                )
                init = {"type": "connection_init", "payload": {"authorization": self.token}}
                await ws.send(json.dumps(init))
                ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no ack: {ack}")
                payload = {"query": query, "variables": {}, "operationName": "TenantEvents"}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            except Exception as error:
                self.failed.append(f"{type(error).__name__}: {error}"[:200])
                return
        self._track(ws, self.read)

    def _track(self, connection: Any, read: Any) -> None:
        index = len(self.sockets)
        self.sockets.append(connection)
        self.times.append([])
        self.count.append(0)
        self.last.append(0)
        self.gaps.append(0)
        self.dups.append(0)
        self.closes.append(None)
        self.tasks.append(asyncio.create_task(read(index, connection)))

    def _received(self, index: int, now: float, seq: int, raw: bytes) -> None:
        if self.keep_times:
            self.times[index].append((now, seq))
            if index == 0:
                self.samples[seq] = raw
        self.count[index] += 1
        last = self.last[index]
        if seq <= last:
            self.dups[index] += 1
            return
        if last and seq > last + 1:
            self.gaps[index] += seq - last - 1
        self.last[index] = seq

    async def read_sse(self, index: int, stream: SSEConnection) -> None:
        """Events are `…data: {…}\n\n`; HTTP's chunk sizes between them are skipped."""
        buffer = b""
        try:
            while True:
                chunk = await stream.reader.read(1 << 16)
                now = time.time()
                if not chunk:
                    if not self.stopping:
                        self.closes[index] = (None, "stream ended")
                    return
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    at = event.find(b"data: ")
                    if at < 0:
                        continue  # a heartbeat
                    data = event[at + 6 :]
                    seq = _seq(data)
                    if seq < 0:
                        if not self.stopping:
                            self.closes[index] = (None, data[:200].decode(errors="replace"))
                        return
                    self._received(index, now, seq, b'{"payload":' + data + b"}")
        except Exception as error:
            if not self.stopping:
                self.closes[index] = (None, f"{type(error).__name__}: {error}"[:200])

    async def read(self, index: int, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                raw = await ws.recv(decode=False)
                now = time.time()
                seq = _seq(raw)
                if seq < 0:
                    if b'"type":"next"' not in raw:
                        continue  # pong and the like
                    raise RuntimeError(f"unexpected message: {raw[:300]!r}")
                self._received(index, now, seq, raw)
        except ConnectionClosed:
            if not self.stopping:
                received = ws.close_rcvd
                code = received.code if received else None
                self.closes[index] = (code, received.reason if received else "no close frame")
        except Exception as error:
            self.closes[index] = (None, f"{type(error).__name__}: {error}"[:200])

    async def serve(self, pipe: Any) -> None:
        query = CONTRACT.read_text()
        while True:
            command, argument = await asyncio.to_thread(pipe.recv)
            if command == "connect":
                sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
                await asyncio.gather(*(self.open_one(query, sem) for _ in range(argument)))
                pipe.send({"opened": len(self.sockets), "failed": self.failed[:5]})
            elif command == "seen":  # how many connections have received `argument`
                pipe.send(sum(1 for last in self.last if last >= argument))
            elif command == "reset":  # count from here on
                self.count = [0] * len(self.count)
                self.gaps = [0] * len(self.gaps)
                self.dups = [0] * len(self.dups)
                pipe.send("reset")
            elif command == "status":
                pipe.send(
                    {
                        "open": sum(1 for c in self.closes if c is None),
                        "closed": [c for c in self.closes if c is not None][:5],
                        "closed_count": sum(1 for c in self.closes if c is not None),
                    }
                )
            elif command == "results":
                pipe.send(
                    {
                        "times": self.times if self.keep_times else None,
                        "samples": self.samples,
                        "count": self.count,
                        "gaps": self.gaps,
                        "dups": self.dups,
                        "last": self.last,
                        "closes": self.closes,
                        "failed": self.failed,
                    }
                )
            elif command == "close":
                self.stopping = True
                await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
                for task in self.tasks:
                    task.cancel()
                pipe.send("closed")
                return


def client_process(
    pipe: Any, url: str, token: str, compression: str, keep_times: bool, transport: str = "ws"
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subscribers = Subscribers(
        url, token, None if compression == "none" else compression, keep_times, transport
    )
    try:
        import uvloop

        uvloop.run(subscribers.serve(pipe))
    except ImportError:
        asyncio.run(subscribers.serve(pipe))


class Clients:
    """`procs` client processes holding `total` subscribers between them; with several
    hosts' URLs, process i connects to host i modulo their number."""

    transport = "ws"  # set from --transport (main)

    def __init__(self, urls: list[str], token: str, procs: int, compression: str, keep_times: bool):
        context = mp.get_context("spawn")
        self.pipes: list[Any] = []
        self.processes: list[Any] = []
        for n in range(procs):
            mine, theirs = context.Pipe()
            url = urls[n % len(urls)]
            process = context.Process(
                target=client_process,
                args=(theirs, url, token, compression, keep_times, Clients.transport),
                daemon=True,
            )
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)

    def ask(self, command: str, argument: Any = None) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, argument))
        return [pipe.recv() for pipe in self.pipes]

    def connect(self, total: int) -> dict[str, Any]:
        share = [total // len(self.pipes)] * len(self.pipes)
        for i in range(total % len(self.pipes)):
            share[i] += 1
        for pipe, n in zip(self.pipes, share, strict=True):
            pipe.send(("connect", n))
        answers = [pipe.recv() for pipe in self.pipes]
        failed = [f for a in answers for f in a["failed"]]
        return {"opened": sum(a["opened"] for a in answers), "failed": failed}

    def seen(self, seq: int) -> int:
        return sum(self.ask("seen", seq))

    def cpu_s(self) -> float:
        import psutil

        total = 0.0
        for process in self.processes:
            times = psutil.Process(process.pid).cpu_times()
            total += times.user + times.system
        return total

    def close(self) -> None:
        try:
            self.ask("close")
        finally:
            for process in self.processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=10)


# The driver


class Driver:
    """Sends the events (one mutation each, to the hosts in turn) and watches the gateway
    processes (one per host)."""

    def __init__(self, ports: list[int], pids: list[int]) -> None:
        import httpx
        import psutil

        sys.path.insert(0, str(REPO))
        from domain.ids import to_global_id
        from switchboard.devdata.seed import stable_id
        from switchboard.edge.auth import issue_token
        from switchboard.settings import Settings

        settings = Settings.from_env()
        tenant = to_global_id("Tenant", stable_id("acme", "tenant"))
        user = to_global_id("User", stable_id("user", "marketer@acme.example"))
        self.token = issue_token(settings, user, tenant, "dashboard", ttl_s=6 * 3600)
        self.hosts = [
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            for port in ports
        ]
        self.urls = [f"ws://127.0.0.1:{port}/graphql" for port in ports]
        self.gateways = [psutil.Process(pid) for pid in pids]
        found = self.post(CAMPAIGNS)["tenant"]["campaigns"]["edges"]
        self.campaign = found[0]["node"]["id"]
        self.seq = 0
        self.sent: dict[int, tuple[float, float]] = {}  # seq -> (sent, response back)

    def post(
        self, query: str, variables: dict[str, Any] | None = None, host: int = 0
    ) -> dict[str, Any]:
        request = {"query": query, "variables": variables or {}}
        answer = self.hosts[host].post("/graphql", json=request)
        body = answer.json()
        if answer.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"{answer.status_code}: {body}")
        return body["data"]

    def event(self) -> int:
        self.seq += 1
        before = time.time()
        variables = {"id": self.campaign, "name": f"bench-live-{self.seq}"}
        data = self.post(UPDATE, variables, host=self.seq % len(self.hosts))
        after = time.time()
        if data["updateCampaign"]["userErrors"]:
            raise RuntimeError(data)
        self.sent[self.seq] = (before, after)
        return self.seq

    def rss_mb(self) -> float:
        return sum(gateway.memory_info().rss for gateway in self.gateways) / 2**20

    def cpu_s(self) -> float:
        return sum(sum(gateway.cpu_times()[:2]) for gateway in self.gateways)  # user + system

    def barrier(self, clients: Clients, total: int, timeout_s: float = 60.0) -> int:
        """Events until every subscriber received one: all are registered in the hub."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seq = self.event()
            wait_until = time.monotonic() + 3.0
            while time.monotonic() < wait_until:
                if clients.seen(seq) >= total:
                    return seq
                time.sleep(0.05)  # polling the clients' counters
        raise RuntimeError(f"only {clients.seen(self.seq)} of {total} subscribers got events")

    def drain(self, clients: Clients, total: int, seq: int, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if clients.seen(seq) >= total:
                return True
            time.sleep(0.05)
        return False


def summary_ms(values: list[float]) -> dict[str, float]:
    """Seconds in, the nearest-rank summary in milliseconds out (perf/stats.py)."""
    if not values:
        return {"n": 0}
    return summary([v * 1000 for v in values])


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_level(driver: Driver, args: argparse.Namespace, total: int) -> dict[str, Any]:
    procs = max(1, min(args.client_procs, total))
    rss_none = driver.rss_mb()
    clients = Clients(driver.urls, f"Bearer {driver.token}", procs, args.compression, True)
    try:
        started = time.monotonic()
        opened = clients.connect(total)
        connect_s = time.monotonic() - started
        if opened["opened"] != total:
            raise RuntimeError(f"opened {opened['opened']} of {total}: {opened['failed']}")
        driver.barrier(clients, total)
        for _ in range(args.warmup):
            driver.event()
            time.sleep(args.interval_ms / 1000)
        first = driver.seq + 1
        rss_with = driver.rss_mb()
        load_before = os.getloadavg()
        cpu_gateway, cpu_clients, wall = driver.cpu_s(), clients.cpu_s(), time.monotonic()
        for _ in range(args.events):
            began = time.monotonic()
            driver.event()
            pause = args.interval_ms / 1000 * random.uniform(0.5, 1.5)
            time.sleep(max(0.0, pause - (time.monotonic() - began)))
        last = driver.seq
        complete = driver.drain(clients, total, last)
        wall = time.monotonic() - wall
        cpu_gateway = driver.cpu_s() - cpu_gateway
        cpu_clients = clients.cpu_s() - cpu_clients
        load_after = os.getloadavg()
        results = clients.ask("results")
    finally:
        clients.close()

    occurred: dict[int, float] = {}
    for result in results:
        for seq, raw in result["samples"].items():
            event = json.loads(raw)["payload"]["data"]["tenantEvents"]
            occurred[seq] = parse_time(event["occurredAt"])
    from_response: list[float] = []
    from_send: list[float] = []
    from_commit_ts: list[float] = []
    newest: dict[int, float] = {}
    missing = 0
    for result in results:
        for times in result["times"]:
            got = {seq for _, seq in times if first <= seq <= last}
            missing += (last - first + 1) - len(got)
            for received, seq in times:
                if not first <= seq <= last:
                    continue
                sent, back = driver.sent[seq]
                from_response.append(received - back)
                from_send.append(received - sent)
                if seq in occurred:
                    from_commit_ts.append(received - occurred[seq])
                newest[seq] = max(newest.get(seq, 0.0), received)
    last_response = [newest[s] - driver.sent[s][1] for s in newest]
    mutation = [driver.sent[s][1] - driver.sent[s][0] for s in range(first, last + 1)]
    response_after_commit_ts = [driver.sent[s][1] - occurred[s] for s in occurred if s >= first]
    return {
        "subscribers": total,
        "hosts": len(driver.urls),
        "client_procs": procs,
        "events": last - first + 1,
        "connect_s": round(connect_s, 2),
        "all_delivered": complete,
        "missing_deliveries": missing,
        "negative_from_response": sum(1 for v in from_response if v < 0),
        "latency_ms": {
            "from_response": summary_ms(from_response),
            "from_commit_ts": summary_ms(from_commit_ts),
            "from_send": summary_ms(from_send),
            "last_subscriber_from_response": summary_ms(last_response),
        },
        "mutation_round_trip_ms": summary_ms(mutation),
        "response_after_occurred_at_ms": summary_ms(response_after_commit_ts),
        "cpu_pct_of_one_core": {
            "gateway": round(100 * cpu_gateway / wall, 1),
            "clients_total": round(100 * cpu_clients / wall, 1),
            "clients_per_proc": round(100 * cpu_clients / wall / procs, 1),
        },
        "gateway_cpu_ms_per_event": round(1000 * cpu_gateway / (last - first + 1), 2),
        "rss_mb": {"before_connect": round(rss_none, 1), "connected": round(rss_with, 1)},
        "load_avg": {"before": load_before, "after": load_after},
        "window_s": round(wall, 1),
    }


def latency(args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with shared_servers(args) as shared:
        for round_ in range(1, args.rounds + 1):
            for executor in args.executors:
                for hosts in args.hosts or [1]:
                    with Gateway(args, executor, hosts, shared) as driver:
                        # Warm the gateway's code paths (websocket, subscribe, render) once.
                        warm = Args(**{**vars(args), "events": 5, "warmup": 2, "interval_ms": 100})
                        run_level(driver, warm, 1)
                        for total in args.levels:
                            print(
                                f"{total} subscribers, {executor}, {hosts} host(s)…",
                                file=sys.stderr,
                                flush=True,
                            )
                            level = run_level(driver, args, total)
                            level.update(executor=executor, round=round_)
                            runs.append(level)
                            show_level(level)
    return {"runs": runs}


@contextlib.contextmanager
def shared_servers(args: argparse.Namespace) -> Iterator[Any]:
    """With `--hosts`: the servers every host shares, for the whole run
    (tests/support/hosts.py: a primary through PgBouncer, its replica, Valkey with
    Sentinel); None without (each gateway's `serve` runs its embedded servers)."""
    if not args.hosts:
        yield None
        return
    sys.path.insert(0, str(REPO))
    from tests.support.hosts import SharedServers

    print("starting the shared servers…", file=sys.stderr, flush=True)
    shared = asyncio.run(SharedServers.start())
    try:
        yield shared
    finally:
        shared.close()


class Args(argparse.Namespace):
    pass


def show_level(level: dict[str, Any]) -> None:
    lat = level["latency_ms"]
    print(
        f"{level.get('executor', 'planned')}, {level['hosts']} host(s): "
        f"{level['subscribers']:>5} subs, {level['events']} events: "
        f"from response p50 {lat['from_response']['p50']} p99 {lat['from_response']['p99']} "
        f"| last sub p50 {lat['last_subscriber_from_response']['p50']} "
        f"p99 {lat['last_subscriber_from_response']['p99']} "
        f"| from occurredAt p50 {lat['from_commit_ts']['p50']} p99 {lat['from_commit_ts']['p99']} "
        f"| missing {level['missing_deliveries']} "
        f"| CPU gw {level['cpu_pct_of_one_core']['gateway']}% "
        f"clients {level['cpu_pct_of_one_core']['clients_total']}% | load {level['load_avg']}",
        flush=True,
    )


def soak(args: argparse.Namespace) -> dict[str, Any]:
    with Gateway(args) as driver:
        return {"run": soak_one(driver, args)}


def settle_rss(driver: Driver) -> float:
    samples = []
    for _ in range(5):
        time.sleep(1.0)  # sampling a process's memory over a few seconds
        samples.append(driver.rss_mb())
    return statistics.median(samples)


def soak_one(driver: Driver, args: argparse.Namespace) -> dict[str, Any]:
    total = args.subscribers
    warm = Clients(driver.urls, f"Bearer {driver.token}", 1, args.compression, False)
    try:
        warm.connect(10)
        driver.barrier(warm, 10)
    finally:
        warm.close()
    rss_none = settle_rss(driver)
    clients = Clients(
        driver.urls, f"Bearer {driver.token}", args.client_procs, args.compression, False
    )
    timeline: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        opened = clients.connect(total)
        connect_s = time.monotonic() - started
        print(f"opened {opened} in {connect_s:.1f} s", file=sys.stderr, flush=True)
        driver.barrier(clients, opened["opened"], timeout_s=120)
        clients.ask("reset")
        first = driver.seq + 1
        rss_with = settle_rss(driver)
        cpu0, clients_cpu0, t0 = driver.cpu_s(), clients.cpu_s(), time.monotonic()
        end = t0 + args.minutes * 60
        next_sample = t0 + 30
        cpu_mark, mark = cpu0, t0
        while time.monotonic() < end:
            began = time.monotonic()
            driver.event()
            if time.monotonic() >= next_sample:
                status = clients.ask("status")
                now = time.monotonic()
                cpu_now = driver.cpu_s()
                timeline.append(
                    {
                        "t_s": round(now - t0),
                        "rss_mb": round(driver.rss_mb(), 1),
                        "open": sum(s["open"] for s in status),
                        "closed": sum(s["closed_count"] for s in status),
                        "gateway_cpu_pct": round(100 * (cpu_now - cpu_mark) / (now - mark), 1),
                        "load_avg": os.getloadavg(),
                    }
                )
                print(f"{timeline[-1]}", file=sys.stderr, flush=True)
                cpu_mark, mark = cpu_now, now
                next_sample += 30
            pause = random.uniform(0.5, 1.5) / args.rate
            time.sleep(max(0.0, pause - (time.monotonic() - began)))
        last = driver.seq
        driver.drain(clients, opened["opened"], last, timeout_s=20)
        wall = time.monotonic() - t0
        cpu = driver.cpu_s() - cpu0
        clients_cpu = clients.cpu_s() - clients_cpu0
        rss_end = driver.rss_mb()
        results = clients.ask("results")
    finally:
        clients.close()
    rss_after_close = settle_rss(driver)
    expected = last - first + 1
    counts, closes, short, gaps, dups = [], [], 0, 0, 0
    for result in results:
        for i, count in enumerate(result["count"]):
            counts.append(count)  # events after the barrier (counters reset there)
            if result["closes"][i] is not None:
                closes.append(result["closes"][i])
            if result["last"][i] < last:
                short += 1
            gaps += result["gaps"][i]
            dups += result["dups"][i]
    failed = [f for r in results for f in r["failed"]]
    reasons: dict[str, int] = {}
    for code, reason in closes:
        key = f"{code} {reason}"
        reasons[key] = reasons.get(key, 0) + 1
    per_conn_kb = (rss_with - rss_none) * 1024 / max(1, opened["opened"])
    end_kb = (rss_end - rss_none) * 1024 / max(1, opened["opened"])
    outcome = {
        "subscribers_asked": total,
        "subscribers_opened": opened["opened"],
        "connect_failures": len(failed),
        "connect_failure_samples": failed[:5],
        "connect_s": round(connect_s, 1),
        "minutes": args.minutes,
        "events_sent": expected,
        "events_per_s": round(expected / wall, 2),
        "unexpected_closes": len(closes),
        "dropped_pct": round(100 * (len(closes) + len(failed)) / total, 3),
        "close_reasons": reasons,
        "connections_missing_events": short,
        "gaps": gaps,
        "duplicates": dups,
        "received_min": min(counts) if counts else 0,
        "received_max": max(counts) if counts else 0,
        "rss_mb": {
            "none": round(rss_none, 1),
            "with_all": round(rss_with, 1),
            "end_of_soak": round(rss_end, 1),
            "after_close": round(rss_after_close, 1),
        },
        "kb_per_connection": round(per_conn_kb, 1),
        "kb_per_connection_end_of_soak": round(end_kb, 1),
        "gateway_cpu_pct": round(100 * cpu / wall, 1),
        "clients_cpu_pct": round(100 * clients_cpu / wall, 1),
        "timeline": timeline,
    }
    print(json.dumps({k: v for k, v in outcome.items() if k != "timeline"}), flush=True)
    return outcome


class Gateway:
    """`with Gateway(args) as driver`: a gateway for one run, stopped after it. With
    `shared` servers (`--hosts`), `hosts` gateways, each a `serve` of its own on them."""

    def __init__(
        self,
        args: argparse.Namespace,
        executor: str = "planned",
        hosts: int = 1,
        shared: Any = None,
    ) -> None:
        self.args = args
        self.executor = executor
        self.hosts = hosts
        self.shared = shared
        self.started: list[tuple[Any, int]] = []  # (serve's process, its port)

    def __enter__(self) -> Driver:
        from gateway import gateway_pid

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        state = Path(self.args.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        env = {
            "SWITCHBOARD_RATE_LIMIT_DASHBOARD": str(self.args.rate_limit),
            "SWITCHBOARD_EXECUTOR": self.executor,
        }
        try:
            if self.shared is None:
                log = state / f"gateway-{stamp}.log"
                print(f"starting the gateway (log {log})…", file=sys.stderr, flush=True)
                self.started.append(start_gateway(state, log, env, self.args.gateway_workers))
            for n in range(self.hosts if self.shared is not None else 0):
                log = state / f"host-{n}-{stamp}.log"
                print(f"starting host {n} (log {log})…", file=sys.stderr, flush=True)
                host_env = {**env, **self.shared.host_env()}
                self.started.append(
                    start_gateway(state / f"host-{n}", log, host_env, self.args.gateway_workers)
                )
            ports = [port for _, port in self.started]
            return Driver(ports, [gateway_pid(process) for process, _ in self.started])
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: Any) -> None:
        from gateway import stop_gateway

        for process, _ in self.started:
            stop_gateway(process)


def fingerprint() -> dict[str, Any]:
    """The live code measured: the tree was being edited while these benchmarks ran."""
    import hashlib

    files = sorted((REPO / "switchboard/live").glob("*.py"))
    files += [REPO / "switchboard/processes/gateway.py", REPO / "switchboard/app.py"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    newest = max(f.stat().st_mtime for f in files)
    changed = dt.datetime.fromtimestamp(newest, dt.UTC).isoformat(timespec="seconds")
    return {"sha256_live_gateway_app": digest, "newest_change": changed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["latency", "soak"])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--interval-ms", type=float, default=200.0)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.5, help="soak events per second")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=3000,
        help="SWITCHBOARD_RATE_LIMIT_DASHBOARD (per tenant and minute; every subscribe counts)",
    )
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=1,
        help="uvicorn worker processes (above 1, CPU and RSS figures are the supervisor's only)",
    )
    parser.add_argument(
        "--transport",
        choices=["ws", "sse"],
        default="ws",
        help="subscribers over websocket (graphql-transport-ws) or SSE (graphql-sse, distinct)",
    )
    parser.add_argument(
        "--executors",
        nargs="+",
        choices=["planned", "graphql-core"],
        default=["planned"],
        help="latency: a gateway per SWITCHBOARD_EXECUTOR value, one after the other",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="latency: repeat the executors this many times"
    )
    parser.add_argument(
        "--hosts",
        type=int,
        nargs="+",
        help="latency: hosts per run, e.g. `1 2`: each a `serve` of its own on shared servers "
        "(a primary through PgBouncer, a replica, Valkey with Sentinel), the subscribers' "
        "client processes and the mutations spread over them",
    )
    parser.add_argument("--state-dir", default="/tmp/switchboard-bench-live")
    parser.add_argument("--json", action="store_true", help="write perf/results/bench-live-*.json")
    args = parser.parse_args(namespace=Args())
    Clients.transport = args.transport
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = dt.datetime.now(dt.UTC)
    head = {
        "command": " ".join(sys.argv),
        "started": started.isoformat(timespec="seconds"),
        "load_avg_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "client_compression": args.compression,
        "transport": args.transport,
        "code": fingerprint(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }
    body = latency(args) if args.command == "latency" else soak(args)
    report = {**head, **body, "load_avg_end": os.getloadavg()}
    if args.json:
        RESULTS.mkdir(exist_ok=True)
        name = (
            f"bench-live-{args.command}-{args.transport}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        )
        (RESULTS / name).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote perf/results/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
