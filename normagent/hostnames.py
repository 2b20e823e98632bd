"""Host names as the socket module should be given them.

``socket.getaddrinfo`` given a ``str`` encodes it with the ``idna`` codec, whatever it holds, and
that codec's first use imports ``encodings.idna``, ``stringprep`` and ``unicodedata``: about
0.37 MB that a long-running agent keeps, for an address or an ASCII name that needs no encoding
(bench/README.md, "Small imports the running agent no longer keeps"). The web server's and the
syslog receiver's listen addresses and the forwarders' hosts go through ``for_socket``.
``split_host_port`` reads a ``host:port`` target, for a plugin's configuration check as for its
client, without importing the client. ``fairness_group`` is what the web server and the syslog
receiver count a peer's connections under.

Imports only the standard library.
"""

from __future__ import annotations

import ipaddress


def for_socket(host: str) -> str | bytes:
    """``host`` for ``getaddrinfo`` and ``create_connection``: an ASCII name or address as bytes
    (what the codec would have made of it), anything else as it is, for the socket module's own
    IDNA encoding (and its error for a name IDNA cannot encode)."""
    return host.encode("ascii") if host.isascii() else host


def split_host_port(target: str, default_port: int) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[::1]:1161"`` or ``"::1"`` → (host, port).

    Raises:
        ValueError: An empty host, a port that is not a number in 1..65535 written in ASCII
            digits ("²" is a digit to ``str.isdigit``, not to ``int``), or an unclosed bracket.
    """
    text = target.strip()
    host, port = text, str(default_port)
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("expected [address] or [address]:port")
        host = inside
        if rest:
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise ValueError("expected host, host:port or [address]:port")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def fairness_group(host: str) -> str:
    """The address a peer's connections are counted under when they are shared out fairly: IPv4 as
    is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by its /64, every address of which one host
    can use; anything that is no address as given."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
