"""Host names as the socket module should be given them.

``socket.getaddrinfo`` given a ``str`` encodes it with the ``idna`` codec, whatever it holds, and
that codec's first use imports ``encodings.idna``, ``stringprep`` and ``unicodedata``: about
0.37 MB that a long-running agent keeps, for an address or an ASCII name that needs no encoding
(bench/README.md, "Small imports the running agent no longer keeps"). The web server's and the
syslog receiver's listen addresses and the forwarders' hosts go through ``for_socket``.

Imports only the standard library.
"""

from __future__ import annotations


def for_socket(host: str) -> str | bytes:
    """``host`` for ``getaddrinfo`` and ``create_connection``: an ASCII name or address as bytes
    (what the codec would have made of it), anything else as it is, for the socket module's own
    IDNA encoding (and its error for a name IDNA cannot encode)."""
    return host.encode("ascii") if host.isascii() else host
