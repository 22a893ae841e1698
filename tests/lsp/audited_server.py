"""The server as an editor starts it, with two additions for the privacy tests: an audit hook
that records every use of a network socket, and the log (stderr) written to a file.

FLASHCODE_TEST_AUDIT names the file for the socket events, FLASHCODE_TEST_LOG the log file.
"""

from __future__ import annotations

import os
import socket
import sys

NETWORK_EVENTS = frozenset(
    {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg"}
)


def record_network(event: str, args: tuple[object, ...]) -> None:
    if event not in NETWORK_EVENTS:
        return
    owner = args[0] if args else None
    if isinstance(owner, socket.socket) and owner.family == socket.AF_UNIX:
        return  # a local pipe between threads of this process, not the network
    # A socket's own events name the address after the socket; getaddrinfo's start with the host.
    shown = args[1:] if isinstance(owner, socket.socket) else args
    with open(os.environ["FLASHCODE_TEST_AUDIT"], "a", encoding="utf-8") as events:
        events.write(f"{event} {shown!r}\n")


def main() -> None:
    log = open(os.environ["FLASHCODE_TEST_LOG"], "w", encoding="utf-8")  # noqa: SIM115
    os.dup2(log.fileno(), 2)  # the server logs to stderr; stdout carries the protocol
    sys.addaudithook(record_network)
    from lsp_server.cli import main as flashcode

    flashcode(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    main()
