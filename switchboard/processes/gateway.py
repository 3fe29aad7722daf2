"""One gateway process under `switchboard serve`: uvicorn on a listening socket of its own
on `serve`'s port (SO_REUSEPORT, switchboard/processes/listening.py), or on the one `serve` bound
and handed down (`--fd`, where SO_REUSEPORT does not balance), with the stop order inside
the process.

On SIGTERM or SIGINT (any number of them: `serve` decides when to kill): stop accepting,
close every websocket with 1001 (going away: clients reconnect, to this instance once it is
back or to another, and resume with `after`; uvicorn's own shutdown would send 1012), let
in-flight HTTP requests finish within `--grace-s`, then the app's lifespan stops the relay
and the hub and writes the queued audit entries (switchboard/app.py).
"""

from __future__ import annotations

import argparse
import logging
import socket

import uvicorn

from switchboard.app import create_app
from switchboard.live.websocket import LiveEndpoint
from switchboard.observability.logs import configure_logging
from switchboard.processes.listening import reuse_port_socket
from switchboard.settings import Settings
from tasks.config import JobSettings


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, live: LiveEndpoint) -> None:
        super().__init__(config)
        self.live = live

    def handle_exit(self, sig: int, frame: object) -> None:
        # Every signal means "stop"; none forces and none is raised again after the stop.
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", ()):
            server.close()  # no new connection while the websockets go
        await self.live.going_away()
        await super().shutdown(sockets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchboard.processes.gateway")
    listen = parser.add_mutually_exclusive_group(required=True)
    listen.add_argument("--fd", type=int, help="the listening socket")
    listen.add_argument("--reuse-port", metavar="HOST:PORT", help="listen with SO_REUSEPORT")
    parser.add_argument("--grace-s", type=float, required=True, help="for in-flight requests")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, secrets=[settings.jwt_secret])
    app = create_app(settings, JobSettings.from_env())
    config = uvicorn.Config(
        app,
        log_level=logging.getLogger().level,
        log_config=None,  # uvicorn's loggers propagate to the JSON handler
        timeout_keep_alive=30,
        timeout_graceful_shutdown=args.grace_s,  # type: ignore[arg-type]
        # Websockets: the sans-I/O implementation (the least memory per connection of the
        # measured ones but wsproto, without another dependency), and no deflate:
        # subscriptions send small JSON events, and a deflate context per socket would
        # double its memory (perf/README.md, live events).
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )
    server = GatewayServer(config, app.state.live)
    if args.reuse_port is not None:
        host, _, port = args.reuse_port.rpartition(":")
        listener = reuse_port_socket(host, int(port), listen=True)
    else:
        listener = socket.socket(fileno=args.fd)
    server.run(sockets=[listener])
    return 0 if server.started else 3  # 3: uvicorn's start-up failure


if __name__ == "__main__":
    raise SystemExit(main())
