"""sd_notify without a dependency: READY, STOPPING, WATCHDOG and STATUS.

Writes datagrams to $NOTIFY_SOCKET when systemd started us with Type=notify;
does nothing otherwise.
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


class Watchdog:
    """Pings systemd's watchdog at half its interval, from wherever work is going on."""

    def __init__(self) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.interval = usec / 2e6 if usec else 0.0
        self._last = 0.0

    def ping(self) -> None:
        if self.interval and time.monotonic() - self._last >= self.interval:
            notify("WATCHDOG=1")
            self._last = time.monotonic()
