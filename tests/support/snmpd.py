"""A real net-snmp ``snmpd`` for tests: on 127.0.0.1, restartable, optionally in its own network
namespace with interfaces the test makes.

The test process binds the UDP socket and hands it to snmpd by systemd socket activation
(``LISTEN_FDS``; Debian's net-snmp is built with it and takes an inherited socket whose port
matches its ``agentAddress``). So the port never changes across a restart (no other process can
take it in between), and snmpd may live in another network namespace — where it sees only the
interfaces made there — while it still answers on this namespace's 127.0.0.1: the socket belongs
to the namespace it was made in. Stopped by PID, never by name.

The SNMPv3 user is made with a ``createUser`` line in the configuration snmpd is started with
(``-C -c``: snmpd then reads no other file, so the persistent directory's ``snmpd.conf`` is not
read for ``createUser`` lines either). Nor is the engine id and boot count snmpd saves there
(``$SNMP_PERSISTENT_DIR``, never ``/var/lib/snmp``) read back: a restarted snmpd has a new engine
id, and boots 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from normagent.errors import SnmpError
from normagent.model import SnmpAuth
from normagent.sources.snmp import PysnmpClient
from tests.support.tools import require_tool, skip_for_host

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
V3_USER = "normagent"
V3_AUTH_KEY = "auth-passphrase-1"
V3_PRIV_KEY = "priv-passphrase-2"
V3_AUTH = SnmpAuth.v3(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY, auth_protocol="SHA", priv_protocol="AES")
COMMUNITY = SnmpAuth.v2c("public")

# net-snmp's names of the protocols SnmpAuth names. pysnmp's AES192 and AES256 (what normagent
# offers) extend the key as Cisco does, which net-snmp calls AES-192-C and AES-256-C. net-snmp has
# no 3DES.
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384", "SHA512": "SHA-512"}
NET_SNMP_PRIV = {"DES": "DES", "AES": "AES", "AES192": "AES-192-C", "AES256": "AES-256-C"}


def v3_user(auth_protocol: str, priv_protocol: str) -> SnmpAuth:
    """The fixture's SNMPv3 user for a pair of protocols (``"none"`` for none): every pair of
    NET_SNMP_AUTH and NET_SNMP_PRIV, each pair with its own user and keys (``v3_users_config``),
    may read with the level its protocols give; ``V3_AUTH`` is SHA/AES's."""
    if (auth_protocol, priv_protocol) == ("SHA", "AES"):
        return V3_AUTH
    name = f"u-{auth_protocol}-{priv_protocol}".lower()
    auth_key = f"{name}-auth-key" if auth_protocol != "none" else ""
    priv_key = f"{name}-priv-key" if priv_protocol != "none" else ""
    return SnmpAuth.v3(name, auth_key, priv_key, auth_protocol=auth_protocol, priv_protocol=priv_protocol)


V3_PAIRS = [("none", "none")] + [(a, p) for a in NET_SNMP_AUTH for p in ("none", *NET_SNMP_PRIV)]


def v3_users_config() -> str:
    """``createUser``/``rouser`` lines for every pair of V3_PAIRS but SHA/AES (always there), for a
    test's ``extra_config``: snmpd hashes each key (a megabyte each, RFC 3414 A.2) before it reads
    a request, so they are made only where the pairs are tested (a slower start shows in the
    packet counts of tests that restart snmpd)."""
    lines = []
    for auth_protocol, priv_protocol in V3_PAIRS:
        auth = v3_user(auth_protocol, priv_protocol)
        if auth is V3_AUTH:
            continue
        line = f"createUser {auth.user}"
        level = "noauth"
        if auth_protocol != "none":
            line += f' {NET_SNMP_AUTH[auth_protocol]} "{auth.auth_key}"'
            level = "auth"
        if priv_protocol != "none":
            line += f' {NET_SNMP_PRIV[priv_protocol]} "{auth.priv_key}"'
            level = "priv"
        lines += [line, f"rouser {auth.user} {level}"]
    return "\n".join(lines) + "\n"


@dataclass
class Snmpd:
    """One snmpd, started by ``start()``; ``restart()`` keeps its port, ``stop()`` ends it."""

    work: Path
    extra_config: str = ""
    netns: str | None = None
    sock: socket.socket = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    starts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.binary = require_tool("snmpd", "snmpd")
        (self.work / "mibs").mkdir(parents=True, exist_ok=True)
        (self.work / "persist").mkdir(exist_ok=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        (self.work / "snmpd.conf").write_text(
            f"agentAddress udp:127.0.0.1:{self.port}\n"
            "rocommunity public 127.0.0.1\n"
            f'createUser {V3_USER} SHA "{V3_AUTH_KEY}" AES "{V3_PRIV_KEY}"\n'
            f"rouser {V3_USER} priv\n"
            "sysLocation normagent test rack 7\n"
            "sysContact drift@example.invalid\n" + self.extra_config
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start snmpd and wait (polling, with a deadline) until it answers."""
        fd = self.sock.fileno()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MIBS": "",  # load no MIB files: the agent needs none, and they only add noise to its log
            "SNMP_PERSISTENT_DIR": str(self.work / "persist"),  # never touch /var/lib/snmp
        }
        argv = [self.binary, "-f", "-Lo", "-C", "-c", str(self.work / "snmpd.conf"),
                "-p", str(self.work / "snmpd.pid"), "-M", str(self.work / "mibs")]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        # sd_listen_fds(3): the socket is fd 3 and LISTEN_PID is the pid that execs snmpd; `exec`
        # keeps the shell's pid through ip-netns-exec and the wrapper script.
        script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"'
        self.starts += 1
        log = (self.work / f"snmpd-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            ["sh", "-c", script, "sh", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=(fd, 3),
            preexec_fn=lambda: _move_fd(fd, 3),
        )
        log.close()
        client = PysnmpClient()
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    client.get(self.target, [SYS_UPTIME], auth=COMMUNITY, timeout=0.3)
                    return
                except SnmpError:
                    continue
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"snmpd did not start; its log: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.sock.close()

    def log_text(self) -> str:
        path = self.work / f"snmpd-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _move_fd(fd: int, to: int) -> None:
    if fd != to:
        os.dup2(fd, to)
        os.set_inheritable(to, True)


def start_snmpd(work: Path, extra_config: str = "", netns: str | None = None) -> Snmpd:
    agent = Snmpd(work, extra_config, netns)
    try:
        agent.start()
    except BaseException:
        agent.close()
        raise
    return agent


@dataclass
class Namespace:
    """A network namespace with veth pairs in it, removed on ``close()``."""

    name: str
    links: list[str] = field(default_factory=list)

    def ip(self, *args: str) -> None:
        run_ip("netns", "exec", self.name, "ip", *args)

    def set_link(self, name: str, state: str) -> None:
        self.ip("link", "set", name, state)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


def run_ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def make_namespace(name: str, pairs: int) -> Namespace:
    """A namespace with ``pairs`` veth pairs ``a<n>``/``b<n>``, all up; skips for a host that
    cannot (not root, or a container without CAP_SYS_ADMIN or veth)."""
    if os.geteuid() != 0:
        skip_for_host("not root: cannot make a network namespace")
    require_tool("ip", "iproute2")
    try:
        run_ip("netns", "add", name)
    except OSError as exc:
        skip_for_host(f"cannot make a network namespace: {exc}")
    ns = Namespace(name)
    try:
        ns.ip("link", "set", "lo", "up")
        for n in range(pairs):
            ns.ip("link", "add", f"a{n}", "type", "veth", "peer", "name", f"b{n}")
            ns.links += [f"a{n}", f"b{n}"]
        for link in ns.links:
            ns.set_link(link, "up")
    except OSError as exc:
        ns.close()
        skip_for_host(f"cannot make veth interfaces in a network namespace: {exc}")
    return ns


def iter_names(pairs: int) -> Iterator[str]:
    for n in range(pairs):
        yield f"a{n}"
        yield f"b{n}"


def names(pairs: int) -> Sequence[str]:
    return list(iter_names(pairs))
