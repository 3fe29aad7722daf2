"""The listening sockets of `switchboard serve`: one per gateway process, on one port.

Each gateway process binds its own socket with SO_REUSEPORT and the kernel spreads new
connections over them by their addresses. With one socket shared by every process (the
alternative, and the fallback where SO_REUSEPORT does not balance), whichever process
wakes first accepts: under keep-alive one process could end up with every connection
while the others idled. `serve` itself binds the port the same way but never listens: that
reserves the port (and resolves port 0) for the processes it starts, and a socket that
does not listen is given no connection.
"""

from __future__ import annotations

import socket
import sys

# Linux spreads connections over a port's SO_REUSEPORT listeners; BSD and macOS give them
# all to the last one bound.
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
BACKLOG = 2048  # uvicorn's default


def reuse_port_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to `host`:`port` with SO_REUSEPORT, listening if `listen`."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock
