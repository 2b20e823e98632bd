"""Talking to systemd as a ``Type=notify`` service: sd_notify without a dependency.

The protocol is one datagram of newline-separated ``KEY=value`` assignments sent to the
``AF_UNIX`` socket named in ``$NOTIFY_SOCKET`` (see sd_notify(3)); a name starting with ``@`` is an
abstract socket. The agent sends ``READY=1`` once it serves, ``WATCHDOG=1`` while its scheduler
loop is alive, ``RELOADING=1`` … ``READY=1`` around a SIGHUP reload and ``STOPPING=1`` on the way
out; ``STATUS=`` is the one-line text ``systemctl status`` shows.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op that returns False. A failed send is
logged and returns False, never raises: a daemon must not die because its supervisor went away.

Every function reads the environment it is given (``os.environ`` by default), so tests pass a dict.
Imports only the standard library and structlog.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The socket address in ``$NOTIFY_SOCKET``, ready for ``socket.sendto``, or None.

    ``@name`` becomes the abstract address ``\\0name``. Addresses of other kinds (``vsock:``) are
    not supported here and give None, as does an empty or relative value.
    """
    env = os.environ if environ is None else environ
    value = env.get("NOTIFY_SOCKET", "")
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=collecting"``) to systemd as one datagram.

    Args:
        assignments: ``KEY=value`` strings. Newlines inside a value would start a new assignment,
            so they are replaced by spaces.
        environ: The environment to read ``$NOTIFY_SOCKET`` from; ``os.environ`` by default.

    Returns:
        True if the datagram was sent; False outside systemd or if sending failed (logged).
    """
    address = notify_address(environ)
    if address is None or not assignments:
        return False
    for item in assignments:
        if "=" not in item:
            raise ValueError(f"sd_notify assignment {item!r} has no '='")
    payload = "\n".join(" ".join(item.splitlines()) for item in assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(payload, address)
    except OSError as exc:
        log.warning(
            "sd_notify_failed",
            socket=address.replace("\0", "@"),
            message=payload.split(b"\n", 1)[0].decode(),
            error=str(exc),
        )
        return False
    return True


def ready(status: str = "", *, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is up (``READY=1``), with an optional status line."""
    return notify("READY=1", *([f"STATUS={status}"] if status else []), environ=environ)


def reloading(*, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd a reload started; send ``ready()`` when it is done.

    ``MONOTONIC_USEC`` lets systemd ≥ 253 (``Type=notify-reload``) match the reload to its request;
    older versions ignore it.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", environ=environ)


def stopping(*, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1", environ=environ)


def status(text: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    return notify(f"STATUS={text}", environ=environ)


def watchdog(*, environ: Mapping[str, str] | None = None) -> bool:
    """Feed the watchdog (``WATCHDOG=1``). Call at ``watchdog_interval()``, only while healthy."""
    return notify("WATCHDOG=1", environ=environ)


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to feed the watchdog, in seconds, or None when systemd expects no pings.

    Half of ``$WATCHDOG_USEC`` (``WatchdogSec=`` of the unit), as sd_watchdog_enabled(3)
    recommends, so one late ping does not get the service killed. ``$WATCHDOG_PID``, when set, must
    be this process: a child that inherited the environment must not ping for its parent.

    Args:
        environ: The environment to read; ``os.environ`` by default.
        pid: This process's id; ``os.getpid()`` by default.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 2_000_000
