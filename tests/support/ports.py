"""A TCP port on 127.0.0.1 for a server a test starts: reserved, not merely free at the moment.

Binding port 0, reading the number and closing the socket (the usual "free port") races with
everything else on the machine that asks the kernel for a port: another test's ``bind(("", 0))``
or the local end of any outgoing connection can be handed the same number before the server the
test starts binds it, and the server then fails with "Address already in use" (seen under a
whole-suite run on a loaded machine). The agent itself refuses ``listen = "…:0"`` on purpose, so
the test cannot let the server choose.

``reserve_port`` leaves the port in TIME_WAIT instead (the trick of Yelp's
ephemeral-port-reserve): it listens, connects to itself, and the accepting side closes first.
For the next minute the kernel hands that port to no ``bind(…, 0)`` and to no outgoing
connection, while a server that binds it with SO_REUSEADDR (the agent, Python's http.server,
asyncio, Go's net.Listen: every server the tests start) gets it at once.
"""

from __future__ import annotations

import random
import socket


def reserve_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on and that the kernel will not give away."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection((host, port)) as client:
            accepted, _ = listener.accept()
            # The side that closes first keeps the TIME_WAIT: the accepted one, on our port.
            accepted.close()
            client.recv(1)  # the FIN has arrived: the accepted socket is past the handshake
    return port


def reserve_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to, below the kernel's ephemeral range.

    UDP has no TIME_WAIT to hold a port with; instead the port comes from outside the range
    the kernel hands out for ``bind(…, 0)`` and outgoing sockets
    (``net.ipv4.ip_local_port_range``), so only an explicit bind elsewhere could take it before
    the server the test starts binds it.
    """
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10_000, max(10_001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free UDP port on {host} in 10000..{low}")
