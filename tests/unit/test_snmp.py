"""PysnmpClient against a real net-snmp ``snmpd`` on 127.0.0.1, started and stopped by this module.

snmpd is the Debian package's, unpacked by scripts/servers (or the host's own); without one the
snmpd tests skip, except under CI, where they fail (tests/support/tools.py).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import logging
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from normagent.errors import SnmpAuthError, SnmpTooManyRows
from normagent.model import SnmpAuth, SnmpVarBind
from normagent.sources.snmp import (
    AUTH_PROTOCOLS, PRIV_PROTOCOLS, PysnmpClient, PysnmpSession, SnmpError, SnmpTimeout, check_auth, resolve, split_target, to_python,
)
from tests.support.snmpv3_standin import VALUE, V3StandIn
from tests.support.snmpd import NET_SNMP_AUTH, COMMUNITY, V3_AUTH, V3_AUTH_KEY, V3_PAIRS, V3_PRIV_KEY, V3_USER, Snmpd, start_snmpd, v3_user, v3_users_config


SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SYSTEM = "1.3.6.1.2.1.1"
LOCATION = "normagent test rack 7"  # as tests.support.snmpd configures it
CONTACT = "drift@example.invalid"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """A real snmpd answering v1/v2c community ``public`` and the SNMPv3 users of tests.support.snmpd
    (one for each pair of protocols)."""
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"), extra_config=v3_users_config())
    try:
        yield agent
    finally:
        agent.close()


@pytest.fixture
def client() -> Iterator[PysnmpClient]:
    client = PysnmpClient()
    yield client
    client.close()


def test_get_returns_plain_python_values(snmpd: Snmpd, client: PysnmpClient) -> None:
    got = client.get(snmpd.target, [SYS_LOCATION, SYS_CONTACT, SYS_OBJECT_ID, SYS_UPTIME], auth=COMMUNITY, timeout=2)
    assert [vb.oid for vb in got] == [SYS_LOCATION, SYS_CONTACT, SYS_OBJECT_ID, SYS_UPTIME]
    assert got[0].value == LOCATION.encode()
    assert got[1].value == CONTACT.encode()
    assert isinstance(got[2].value, str) and got[2].value.startswith("1.3.6.1.4.1.8072.")  # net-snmp's enterprise
    assert isinstance(got[3].value, int) and got[3].value >= 0


def test_get_of_an_absent_oid_is_none(snmpd: Snmpd, client: PysnmpClient) -> None:
    got = client.get(snmpd.target, [SYS_DESCR, "1.3.6.1.2.1.1.77.0"], auth=COMMUNITY, timeout=2)
    assert isinstance(got[0].value, bytes) and got[0].value
    assert got[1] == SnmpVarBind("1.3.6.1.2.1.1.77.0", None)


V1 = SnmpAuth(version="1", community="public")


@pytest.mark.parametrize("auth", [COMMUNITY, V1, V3_AUTH], ids=["v2c", "v1", "v3"])
def test_walk_stays_in_the_subtree_in_oid_order(snmpd: Snmpd, auth: SnmpAuth) -> None:
    rows = PysnmpClient().walk(snmpd.target, SYSTEM, auth=auth, timeout=2)
    oids = [tuple(int(part) for part in vb.oid.split(".")) for vb in rows]
    assert oids == sorted(oids) and len(set(oids)) == len(oids)
    assert all(vb.oid.startswith(SYSTEM + ".") for vb in rows)
    assert SnmpVarBind(SYS_LOCATION, LOCATION.encode()) in rows


def test_v1_v2c_and_v3_walks_agree(snmpd: Snmpd) -> None:
    client = PysnmpClient()
    walks = [client.walk(snmpd.target, "1.3.6.1.2.1.2.2.1.1", auth=auth, timeout=2) for auth in (COMMUNITY, V1, V3_AUTH)]
    assert walks[0] and all([vb.oid for vb in w] == [vb.oid for vb in walks[0]] for w in walks)  # ifIndex: at least lo


def test_walk_beyond_max_rows_is_an_error(snmpd: Snmpd) -> None:
    small = PysnmpClient(max_repetitions=2)
    with pytest.raises(SnmpTooManyRows, match="more than 3 variables") as err:
        small.walk(snmpd.target, SYSTEM, auth=COMMUNITY, timeout=2, max_rows=3)
    assert err.value.reason == "too_many_rows"


def test_wrong_community_times_out_without_naming_it(snmpd: Snmpd, client: PysnmpClient) -> None:
    """snmpd drops requests with an unknown community silently, as RFC 3584 agents do."""
    with pytest.raises(SnmpTimeout) as err:
        client.get(snmpd.target, [SYS_DESCR], auth=SnmpAuth.v2c("s3cret-community"), timeout=0.3)
    assert "s3cret" not in str(err.value) and err.value.reason == "timeout"
    assert isinstance(err.value, TimeoutError) and isinstance(err.value, ConnectionError)


def test_v1_get_of_absent_oid_is_an_error_status(snmpd: Snmpd) -> None:
    """SNMPv1 has no noSuchObject: the agent answers noSuchName, which is an error."""
    with pytest.raises(SnmpError, match="noSuchName"):
        PysnmpClient().get(snmpd.target, ["1.3.6.1.2.1.1.77.0"], auth=V1, timeout=2)


def test_v3_auth_priv_reads_what_v2c_reads(snmpd: Snmpd, client: PysnmpClient) -> None:
    """SHA + AES (authPriv) against net-snmp's usmUser made by createUser."""
    got = client.get(snmpd.target, [SYS_LOCATION, SYS_CONTACT], auth=V3_AUTH, timeout=2)
    assert [vb.value for vb in got] == [LOCATION.encode(), CONTACT.encode()]


@pytest.mark.parametrize(("auth_protocol", "priv_protocol"), V3_PAIRS, ids=[f"{a}-{p}" for a, p in V3_PAIRS])
def test_every_v3_protocol_pair_reads_a_real_snmpd(snmpd: Snmpd, client: PysnmpClient, auth_protocol: str, priv_protocol: str) -> None:
    """Each authentication and privacy protocol net-snmp shares with normagent, each pair a user of
    its own (tests.support.snmpd): a GET, and a walk whose GETBULK answers are as long as they come."""
    auth = v3_user(auth_protocol, priv_protocol)
    got = client.get(snmpd.target, [SYS_LOCATION, SYS_CONTACT], auth=auth, timeout=2)
    assert [vb.value for vb in got] == [LOCATION.encode(), CONTACT.encode()]
    assert SnmpVarBind(SYS_LOCATION, LOCATION.encode()) in client.walk(snmpd.target, SYSTEM, auth=auth, timeout=2)


def test_v3_authenticates_with_the_interpreter_s_own_hashes_not_openssl(snmpd: Snmpd) -> None:
    """pysnmp's USM services import ``hashlib`` (and for SHA-2 ``hmac``), which load OpenSSL's
    libcrypto for good (3.7 MB); they are imported with ``normagent.digests`` standing in. In a
    fresh interpreter (this one has hashlib already), every authentication protocol reads the real
    snmpd, and neither hashlib, hmac nor _hashlib is loaded afterwards, though both stay importable."""
    pairs = [(a, "AES") for a in NET_SNMP_AUTH]
    probe = textwrap.dedent(
        """
        import json, sys
        from normagent.model import SnmpAuth
        from normagent.sources.snmp import PysnmpClient
        client = PysnmpClient()
        read = {}
        for user, auth_key, priv_key, auth_protocol, priv_protocol in json.loads(sys.argv[2]):
            auth = SnmpAuth.v3(user, auth_key, priv_key, auth_protocol=auth_protocol, priv_protocol=priv_protocol)
            read[auth_protocol] = client.get(sys.argv[1], ["1.3.6.1.2.1.1.6.0"], auth=auth, timeout=2)[0].value.decode()
        client.close()
        loaded = sorted(m for m in ("hashlib", "_hashlib", "hmac") if m in sys.modules)
        import hashlib, hmac
        real = hmac.new(b"k", b"m", hashlib.sha256).hexdigest()
        print(json.dumps({"read": read, "loaded": loaded, "real": real}))
        """
    )
    users = [(u.user, u.auth_key, u.priv_key, a, p) for a, p in pairs for u in [v3_user(a, p)]]
    done = subprocess.run([sys.executable, "-c", probe, snmpd.target, json.dumps(users)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["read"], result["loaded"]) == ({a: LOCATION for a, _ in pairs}, [])
    assert result["real"] == hmac.new(b"k", b"m", hashlib.sha256).hexdigest()  # the real modules, after


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        (SnmpAuth.v3(V3_USER, "wrong-passphrase", V3_PRIV_KEY), "Wrong SNMP PDU digest"),
        (SnmpAuth.v3(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY, auth_protocol="MD5"), "Wrong SNMP PDU digest"),
        (SnmpAuth.v3("nobody-here", V3_AUTH_KEY, V3_PRIV_KEY), "Unknown USM user"),
        (SnmpAuth.v3(V3_USER, V3_AUTH_KEY), "authorizationError"),  # authNoPriv: the user may only read with privacy
        (SnmpAuth.v3(V3_USER, V3_AUTH_KEY, "wrong-priv-passphrase"), "a wrong privacy key or protocol"),
        (SnmpAuth.v3(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY, priv_protocol="DES"), "a wrong privacy key or protocol"),
    ],
    ids=["wrong-auth-key", "wrong-auth-protocol", "unknown-user", "too-low-level", "wrong-priv-key", "wrong-priv-protocol"],
)
def test_v3_refusals_are_auth_errors_without_the_keys(snmpd: Snmpd, client: PysnmpClient, auth: SnmpAuth, says: str) -> None:
    """The agent's Reports (usmStatsWrongDigests, usmStatsUnknownUserNames) and access refusals
    read as the engine gave them. An agent cannot decrypt a request with a wrong privacy key and
    drops it without a Report; that it does answer an authenticated request without privacy tells
    it from a lost packet."""
    with pytest.raises(SnmpAuthError) as err:
        client.get(snmpd.target, [SYS_UPTIME], auth=auth, timeout=0.5)
    assert err.value.reason == "auth" and says in str(err.value)
    assert "passphrase" not in str(err.value) and "passphrase" not in repr(auth)
    assert client.engines == 0  # dropped: the next session discovers the agent again


def test_a_silent_agent_after_v3_discovery_is_still_a_timeout(client: PysnmpClient) -> None:
    """A device that answers the discovery and nothing else (neither the encrypted request nor the
    authenticated probe without privacy) has not refused anything: a timeout."""
    with V3StandIn(V3_AUTH, mode="silent") as agent:
        with pytest.raises(SnmpTimeout):
            client.get(agent.target, [SYS_UPTIME], auth=V3_AUTH, timeout=0.3)
    assert [flags & 3 for flags in agent.requests] == [0, 3, 3, 1]  # discovery, the request and its retry, the probe


@pytest.mark.parametrize("mode", ["garbage", "wrong-digest", "other-key", "replayed", "stale-time", "other-msgid", "unencrypted"])
def test_a_v3_answer_counts_only_if_authentic_timely_and_the_request_s(
    client: PysnmpClient, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Answers with the real key material, each spoiled one way: garbage, a digest with one bit
    flipped, a digest made with another key, the answer to the request before (replayed), an engine
    time 1000 s behind the agent's (outside RFC 3414's 150 s window), another message id, a Response
    without the request's privacy. Each is dropped and the request times out; the same stand-in's
    right answers read (the first request of each test)."""
    with V3StandIn(V3_AUTH) as agent:
        assert client.get(agent.target, [SYS_LOCATION], auth=V3_AUTH, timeout=0.5) == [SnmpVarBind(SYS_LOCATION, VALUE)]
        agent.mode = mode
        with pytest.raises(SnmpTimeout):
            client.get(agent.target, [SYS_LOCATION], auth=V3_AUTH, timeout=0.5)
    assert [flags & 3 for flags in agent.requests] == [0, 3, 3, 3]  # discovery, a request, then one and its retry
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_an_authenticated_not_in_time_window_report_resynchronises_once(client: PysnmpClient) -> None:
    """A restarted agent (boots + 1) answers a kept device's request with an authenticated Report
    of usmStatsNotInTimeWindows: its boots and time are taken and the request goes again, once."""
    with V3StandIn(V3_AUTH) as agent:
        with client.session(agent.target, auth=V3_AUTH, timeout=2) as session:
            assert session.get([SYS_LOCATION])[0].value == VALUE
            agent.mode = "resync"
            assert session.get([SYS_LOCATION])[0].value == VALUE
    assert [flags & 3 for flags in agent.requests] == [0, 3, 3, 3]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (SnmpAuth(version="3", user=""), "needs a user name"),
        (SnmpAuth.v3("u" * 33, "long-enough-key", "long-enough-key"), "at most 32 octets"),
        (SnmpAuth.v3("u", "short", "long-enough-key"), "auth_key must be at least 8"),
        (SnmpAuth(version="3", user="u", auth_protocol="none", priv_key="long-enough-key"), "privacy needs authentication"),
    ],
)
def test_unusable_v3_credentials_are_refused_before_sending(auth: SnmpAuth, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_auth(auth)


def test_a_session_answers_many_gets_and_walks_and_splits_long_gets(snmpd: Snmpd) -> None:
    client = PysnmpClient(max_varbinds=3)
    oids = [SYS_UPTIME, SYS_LOCATION, SYS_CONTACT, SYS_DESCR, "1.3.6.1.2.1.1.77.0", SYS_OBJECT_ID, SYS_LOCATION]
    with client.session(snmpd.target, auth=V3_AUTH, timeout=2) as session:
        first = session.get(oids)
        table = session.walk("1.3.6.1.2.1.2.2.1.2")
        again = session.get([SYS_LOCATION])
    assert [vb.oid for vb in first] == oids and first[4].value is None and first[6].value == LOCATION.encode()
    assert table and again == [SnmpVarBind(SYS_LOCATION, LOCATION.encode())]
    with pytest.raises(SnmpError, match="closed"):
        session.get([SYS_UPTIME])


@pytest.mark.parametrize("auth", [COMMUNITY, V3_AUTH], ids=["v2c", "v3"])
def test_a_walk_asks_for_as_many_rows_as_the_last_walk_of_its_subtree_returned(
    snmpd: Snmpd, auth: SnmpAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: what an answer carries past the subtree's end is decoded for nothing (21 of 25
    variables of an idle poll's walk of 4 interface names). The next walk on the engine asks for
    the rows the last returned and the one after, in as many requests as before; a table that
    grew is still read to its end."""
    def oids(rows: list[SnmpVarBind]) -> list[str]:
        return [vb.oid for vb in rows]

    answers: list[tuple[int, int]] = []  # (repetitions asked, variables answered) of each GETBULK
    real_send = PysnmpSession._send

    def send(self: PysnmpSession, kind: str, var_binds: Any, bulk: tuple[int, int] | None = None) -> Any:
        answer = real_send(self, kind, var_binds, bulk)
        if bulk is not None:
            answers.append((bulk[1], len(answer[3])))
        return answer

    monkeypatch.setattr(PysnmpSession, "_send", send)
    client = PysnmpClient(max_repetitions=4)
    try:
        first = client.walk(snmpd.target, SYSTEM, auth=auth, timeout=2)
        first_answers, answers[:] = list(answers), []
        again = client.walk(snmpd.target, SYSTEM, auth=auth, timeout=2)
        assert oids(again) == oids(first) and len(first) > 8  # sysUpTime's value moves on
        assert all(asked == 4 for asked, _ in first_answers) and sum(n for _, n in first_answers) >= len(first) + 1
        assert len(answers) == len(first_answers)
        assert sum(n for _, n in answers) == len(first) + 1  # nothing asked past the end but the one that ends it
        assert answers[-1][0] == len(first) + 1 - 4 * (len(answers) - 1)

        [kept] = client._engines.values()
        kept.walked[SYSTEM] = 2  # as if the table had 2 rows last time: it grew since
        answers[:] = []
        assert oids(client.walk(snmpd.target, SYSTEM, auth=auth, timeout=2)) == oids(first)
        assert [asked for asked, _ in answers][:3] == [3, 4, 4]  # the rows expected and one more, then as configured
    finally:
        client.close()


def test_calls_keep_one_socket_per_device_and_close_releases_them(snmpd: Snmpd) -> None:
    def open_fds() -> int:
        # Clients other tests dropped are closed by their finalizers when the collector runs: let
        # it run now, not between two counts of this test.
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    client = PysnmpClient()
    client.get(snmpd.target, [SYS_UPTIME], auth=COMMUNITY, timeout=2)  # warm imports
    client.close()
    before = open_fds()
    client.get(snmpd.target, [SYS_UPTIME], auth=COMMUNITY, timeout=2)
    client.walk(snmpd.target, SYSTEM, auth=V3_AUTH, timeout=2)
    kept = open_fds()
    for _ in range(5):
        client.get(snmpd.target, [SYS_UPTIME], auth=COMMUNITY, timeout=2)
        client.walk(snmpd.target, SYSTEM, auth=V3_AUTH, timeout=2)
        with client.session(snmpd.target, auth=V3_AUTH, timeout=2) as session:
            session.get([SYS_UPTIME])
    assert (client.engines, open_fds()) == (2, kept)
    client.close()
    assert (client.engines, open_fds()) == (0, before)


USM_UNKNOWN_ENGINE_IDS = "1.3.6.1.6.3.15.1.1.4.0"  # snmpd counts every SNMPv3 discovery it answers


def test_polls_on_fresh_threads_discover_a_v3_agent_once(snmpd: Snmpd) -> None:
    """The scheduler runs each collector run on a new thread; the device's engine (its socket, its
    SNMPv3 discovery, the tables it builds) must outlive the run, or every poll pays for all of it
    again (CPU, and native memory the threads' malloc arenas keep)."""
    client = PysnmpClient()
    counter = PysnmpClient()

    def discoveries() -> int:
        value = counter.get(snmpd.target, [USM_UNKNOWN_ENGINE_IDS], auth=COMMUNITY, timeout=2)[0].value
        assert isinstance(value, int)
        return value

    def poll() -> None:
        with client.session(snmpd.target, auth=V3_AUTH, timeout=2) as session:
            session.get([SYS_UPTIME])
            session.walk(SYSTEM)

    try:
        first = discoveries()
        for _ in range(6):
            run = threading.Thread(target=poll)
            run.start()
            run.join()
        assert discoveries() - first == 1
        assert client.engines == 1
    finally:
        client.close()
        counter.close()


@pytest.mark.parametrize("auth", [V1, V3_AUTH, COMMUNITY], ids=["v1", "v3", "v2c"])
def test_between_polls_the_kept_devices_wait_for_nothing(snmpd: Snmpd, auth: SnmpAuth) -> None:
    """pysnmp's engine dispatcher woke every 0.1 s while its timer ran: an idle agent must not pay
    for anything between polls, and a poll after the pause must still time out. No thread of the
    client's runs, in a session or between sessions: each attempt waits on its own deadline, in
    the thread that asked."""
    before = set(threading.enumerate())
    client = PysnmpClient()
    try:
        for _ in range(3):
            with client.session(snmpd.target, auth=auth, timeout=0.5) as session:
                session.get([SYS_UPTIME])
                assert set(threading.enumerate()) == before
        with client.session(snmpd.target, auth=auth, timeout=0.5) as session:
            session.get([SYS_UPTIME])
            with client.session(snmpd.target, auth=auth, timeout=0.5) as other:
                other.get([SYS_UPTIME])
        assert set(threading.enumerate()) == before
        assert client.engines == 1
        snmpd.stop()
        with pytest.raises(SnmpTimeout):
            client.get(snmpd.target, [SYS_UPTIME], auth=auth, timeout=0.5)
    finally:
        client.close()
        snmpd.start()


def test_a_failed_request_drops_the_engine_and_the_next_session_starts_afresh(snmpd: Snmpd) -> None:
    client = PysnmpClient()
    try:
        client.get(snmpd.target, [SYS_UPTIME], auth=V3_AUTH, timeout=2)
        with pytest.raises(SnmpError):
            client.walk(snmpd.target, SYSTEM, auth=V3_AUTH, timeout=2, max_rows=2)
        assert client.engines == 0
        assert client.get(snmpd.target, [SYS_LOCATION], auth=V3_AUTH, timeout=2)[0].value == LOCATION.encode()
        assert client.engines == 1
    finally:
        client.close()


def test_nobody_listening_is_a_timeout(client: PysnmpClient) -> None:
    port = _free_udp_port()
    with pytest.raises(SnmpTimeout, match="127.0.0.1"):
        client.get(f"127.0.0.1:{port}", [SYS_DESCR], auth=COMMUNITY, timeout=0.2)


def test_a_client_closed_under_a_request_ends_it_as_closed_without_its_retries() -> None:
    """``close()`` (a reload, the agent stopping) while a poll waits on a silent device: the request
    ends when its attempt's wait does, as "closed", not after every retry as a timeout."""
    client = PysnmpClient()
    outcome: list[BaseException] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{silent.getsockname()[1]}"

        def poll() -> None:
            with client.session(target, auth=COMMUNITY, timeout=0.5, retries=20) as session:
                try:
                    session.get([SYS_DESCR])
                except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
                    outcome.append(exc)

        asking = threading.Thread(target=poll)
        asking.start()
        while not silent.recv(65535, socket.MSG_PEEK):  # the first attempt has been sent
            pass
        client.close()
        asking.join(30)
    assert not asking.is_alive()
    assert [type(e) for e in outcome] == [SnmpError] and "closed" in str(outcome[0]), outcome
    assert client.engines == 0


@contextlib.contextmanager
def fake_agent(reply: Callable[[bytes], bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """A UDP "agent" on 127.0.0.1 answering each datagram with ``reply(datagram)``: its target, and
    the requests it has read so far."""
    seen: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent:
        agent.bind(("127.0.0.1", 0))
        agent.settimeout(10)

        def serve() -> None:
            try:
                while True:
                    request, peer = agent.recvfrom(65535)
                    seen.append(request)
                    agent.sendto(reply(request), peer)
            except OSError:
                return

        threading.Thread(target=serve, daemon=True).start()
        yield f"127.0.0.1:{agent.getsockname()[1]}", seen


# A v2c GetResponse whose PDU stops after its request id: right version and community, so pysnmp
# decodes it as far as the PDU.
MALFORMED_RESPONSE = bytes.fromhex("301302010104067075626c6963a206020100020100")
# A message whose first field claims 2^64 - 1 bytes: pyasn1 raises OverflowError reading it.
HUGE_LENGTH = bytes.fromhex("300a0288ffffffffffffffff")


@pytest.mark.parametrize("garbage", [MALFORMED_RESPONSE, HUGE_LENGTH], ids=["malformed", "huge-length"])
@pytest.mark.parametrize("auth", [COMMUNITY, V3_AUTH], ids=["v2c", "v3"])
def test_an_agent_answering_garbage_is_a_timeout_and_no_traceback(
    client: PysnmpClient, auth: SnmpAuth, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A device that answers every request with a message pysnmp cannot decode: the request
    times out, and nothing is logged (a traceback for every datagram the device sends would flood
    the journal)."""
    with fake_agent(lambda request: garbage) as (target, seen):
        with pytest.raises(SnmpTimeout):
            client.get(target, [SYS_DESCR], auth=auth, timeout=0.3)
    assert seen
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _answer_v2c(request: bytes, *, request_id_offset: int = 0, echo: bool = False) -> bytes:
    """A v2c device's answer to ``request``: sysLocation's value for every variable asked, as a
    GetResponse with the request's id plus ``request_id_offset``; or, with ``echo``, the request
    itself sent back (a reflector, or a device that answers with the wrong PDU type)."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto.api import v2c as api

    if echo:
        return request
    message, _ = decoder.decode(request, asn1Spec=api.Message())
    asked = api.apiMessage.get_pdu(message)
    response = api.apiPDU.get_response(asked)
    api.apiPDU.set_request_id(response, int(api.apiPDU.get_request_id(asked)) + request_id_offset)
    api.apiPDU.set_varbinds(response, [(name, api.OctetString(LOCATION)) for name, _ in api.apiPDU.get_varbinds(asked)])
    answer = api.apiMessage.get_response(message)
    api.apiMessage.set_pdu(answer, response)
    return bytes(encoder.encode(answer))


@pytest.mark.parametrize(
    ("answer", "answers"),
    [({}, True), ({"request_id_offset": 1}, False), ({"echo": True}, False)],
    ids=["right", "another-request-id", "not-a-response"],
)
def test_a_v2c_answer_counts_only_as_a_response_to_the_request_in_flight(
    client: PysnmpClient, answer: dict[str, Any], answers: bool
) -> None:
    """SNMPv2c without pysnmp's dispatcher: an answer is matched to its request by request id and
    must be a Response PDU; anything else is dropped and the request times out."""
    with fake_agent(lambda request: _answer_v2c(request, **answer)) as (target, seen):
        if answers:
            assert client.get(target, [SYS_LOCATION, SYS_CONTACT], auth=COMMUNITY, timeout=2) == [
                SnmpVarBind(SYS_LOCATION, LOCATION.encode()), SnmpVarBind(SYS_CONTACT, LOCATION.encode())
            ]
        else:
            with pytest.raises(SnmpTimeout):
                client.get(target, [SYS_LOCATION], auth=COMMUNITY, timeout=0.3)
            deadline = time.monotonic() + 10  # both were sent before the timeout: wait for the agent to read them
            while len(seen) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(seen) == 2  # the request and its one retry, both answered wrongly


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 161)),
        ("192.0.2.1:1161", ("192.0.2.1", 1161)),
        ("router.example:162", ("router.example", 162)),
        ("[2001:db8::1]:1161", ("2001:db8::1", 1161)),
        ("[2001:db8::1]", ("2001:db8::1", 161)),
        ("2001:db8::1", ("2001:db8::1", 161)),
    ],
)
def test_split_target(target: str, expected: tuple[str, int]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", ["", "host:", "host:0", "host:70000", "host:snmp", "[::1]x", ":161", "[::1", "[::1:161",
                                    "host:\u00b2", "host:\uff11\uff16\uff11"])  # "²" and full-width digits: isdigit, not int
def test_split_target_rejects_bad_targets(target: str) -> None:
    with pytest.raises(SnmpError, match="bad SNMP target"):
        split_target(target)


def test_to_python_maps_every_smi_type() -> None:
    from pysnmp.proto import rfc1902, rfc1905

    cases = [
        (rfc1902.Integer32(-5), -5),
        (rfc1902.Counter32(7), 7),
        (rfc1902.Counter64(2**40), 2**40),
        (rfc1902.Gauge32(9), 9),
        (rfc1902.TimeTicks(100), 100),
        (rfc1902.Unsigned32(3), 3),
        (rfc1902.OctetString(b"\x00\xffab"), b"\x00\xffab"),
        (rfc1902.Opaque(b"\x9f\x78"), b"\x9f\x78"),
        (rfc1902.IpAddress("192.0.2.7"), "192.0.2.7"),
        (rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072"), "1.3.6.1.4.1.8072"),
        (rfc1905.NoSuchObject(""), None),
        (rfc1905.NoSuchInstance(""), None),
        (rfc1905.EndOfMibView(""), None),
    ]
    assert [to_python(value) for value, _ in cases] == [expected for _, expected in cases]


def test_an_oid_that_is_not_a_number_is_refused(snmpd: Snmpd, client: PysnmpClient) -> None:
    with pytest.raises(SnmpError, match="not a numeric OID"):
        client.get(snmpd.target, [SYS_UPTIME, "1.3.6.x.1"], auth=COMMUNITY, timeout=1)
    with pytest.raises(SnmpError, match="not a numeric OID"):
        client.walk(snmpd.target, "iso.org", auth=COMMUNITY, timeout=1)


def test_a_client_dropped_without_close_closes_its_sockets(snmpd: Snmpd) -> None:
    def open_fds() -> int:
        # Clients other tests dropped are closed by their finalizers when the collector runs: let
        # it run now, not between two counts of this test.
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    client = PysnmpClient()
    client.get(snmpd.target, [SYS_UPTIME], auth=COMMUNITY, timeout=2)
    client.get(snmpd.target, [SYS_UPTIME], auth=V3_AUTH, timeout=2)
    assert open_fds() == before + 2
    del client
    gc.collect()
    assert open_fds() == before


# What a site whose devices all speak SNMPv2c must never import: pysnmp's engine, its USM and the
# ciphers (cryptography), its SMI (MIB builder, views, the SMI objects) and its high-level API.
# ``pysnmp.smi`` itself (an empty package) and ``pysnmp.smi.error`` (exception classes) come with
# pysnmp's protocol types (pysnmp.proto.rfc1155) and hold nothing.
ENGINE_MODULES = ("pysnmp.entity", "pysnmp.hlapi", "pysnmp.carrier", "pysnmp.proto.secmod", "pysnmp.proto.mpmod",
                  "pysnmp.proto.rfc3412", "pysnmp.smi.", "cryptography")
SMI_HOLLOW = ("pysnmp.smi.error",)


# What an SNMPv3 device must not import either: it has pysnmp's message types and authentication
# services and (for privacy) pycryptodomex's ciphers, but no engine, SMI, high-level API, USM
# module of the engine, pysnmp's privacy services or cryptography (8 MB).
V3_ENGINE_MODULES = ("pysnmp.entity", "pysnmp.hlapi", "pysnmp.carrier", "pysnmp.smi.", "pysnmp.proto.rfc3412",
                     "pysnmp.proto.secmod.rfc3414.service", "pysnmp.proto.secmod.rfc3414.priv",
                     "pysnmp.proto.secmod.rfc3826", "pysnmp.proto.secmod.eso", "cryptography")


def test_v1_v2c_and_v3_polls_import_no_engine_smi_or_hlapi(snmpd: Snmpd) -> None:
    """network.snmp polling a v2c device (the system group, its interfaces, a named extra OID) in a
    fresh interpreter as the agent does it (lazy client): none of pysnmp's engine, SMI, high-level
    API or cryptography is imported; a v3 device (SHA/AES) after it brings pysnmp's authentication
    services and pycryptodomex's AES, still no engine, SMI, high-level API, pysnmp's privacy
    services or cryptography; nor does a v1 device after that."""
    probe = textwrap.dedent(
        """
        import json, sys
        from normagent.clock import SystemClock
        from normagent.ledger import MemoryCheckpoints
        from normagent.plugins.network.collectors import SNMP, Device, SnmpSettings
        from normagent.sources.snmp_lazy import LazySnmpClient
        from normagent.testing import observations, run_collector_once

        def poll(device):
            got = observations(run_collector_once(SNMP, settings=SnmpSettings(devices=(device,)), snmp=client,
                                                  clock=SystemClock(), state=MemoryCheckpoints()))
            return {o.metric: o.value for o in got if getattr(o, "metric", None) in ("normagent_snmp_up", "normagent_snmp_oid_value")}

        def loaded(prefixes):
            return sorted(m for m in sys.modules if m.startswith(tuple(prefixes)))

        client = LazySnmpClient()
        v2c = poll(Device(name="r1", target=sys.argv[1], version="2c", community="public", interfaces=("*",),
                          oids={"interfaces": "1.3.6.1.2.1.2.1.0"}))
        after_v2c = loaded(json.loads(sys.argv[2]))
        v3 = poll(Device(name="r2", target=sys.argv[1], version="3", user=sys.argv[4], auth_key=sys.argv[5], priv_key=sys.argv[6],
                         interfaces=("*",)))
        after_v3 = loaded(json.loads(sys.argv[3]))
        crypto_after_v3 = "Cryptodome.Cipher.AES" in sys.modules
        v1 = poll(Device(name="r3", target=sys.argv[1], version="1", community="public"))
        client.close()
        print(json.dumps({"v2c": v2c, "v2c_loaded": after_v2c, "v3": v3, "v3_loaded": after_v3, "crypto": crypto_after_v3,
                          "v1": v1, "v1_loaded": loaded(json.loads(sys.argv[3]))}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, snmpd.target, json.dumps(ENGINE_MODULES), json.dumps(V3_ENGINE_MODULES),
         V3_USER, V3_AUTH_KEY, V3_PRIV_KEY],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])  # the collector's log lines before it
    assert answer["v2c"]["normagent_snmp_up"] == 1 and answer["v2c"]["normagent_snmp_oid_value"] >= 1  # ifNumber
    assert [m for m in answer["v2c_loaded"] if m not in SMI_HOLLOW] == []
    assert answer["v3"] == {"normagent_snmp_up": 1}
    assert [m for m in answer["v3_loaded"] if m not in SMI_HOLLOW] == [] and answer["crypto"]
    assert answer["v1"] == {"normagent_snmp_up": 1}
    assert [m for m in answer["v1_loaded"] if m not in SMI_HOLLOW] == []


class _Names:
    """A resolver's answers by family, as ``getaddrinfo`` gives them for a name listed in both (the
    order a system that sorts IPv6 first gives to an unrestricted lookup), and the lookups asked."""

    def __init__(self, **by_family: list[str]) -> None:
        self.by_family = by_family
        self.asked: list[int] = []

    def __call__(self, host: str, port: int, *, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        self.asked.append(family)
        kinds = {"v6": socket.AF_INET6, "v4": socket.AF_INET}
        found = [
            (kinds[kind], socket.SOCK_DGRAM, 17, "", (address, port, 0, 0) if kind == "v6" else (address, port))
            for kind, addresses in self.by_family.items()
            for address in addresses
            if family in (0, kinds[kind])
        ]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return found


def test_a_name_is_sent_to_over_ipv4_first_and_ipv6_only_without_an_ipv4_address() -> None:
    """A name means IPv4, as to net-snmp and pysnmp's UdpTransportTarget: "localhost" listed as
    ::1 first must not send to ::1 while snmpd listens on 127.0.0.1 (a clean Debian root does sort
    it so, and the name test below timed out there)."""
    both = _Names(v6=["::1"], v4=["127.0.0.1"])
    assert resolve("localhost", 161, both) == (socket.AF_INET, ("127.0.0.1", 161))
    assert both.asked == [socket.AF_INET]
    only_v6 = _Names(v6=["2001:db8::1"])
    assert resolve("v6.example", 1161, only_v6) == (socket.AF_INET6, ("2001:db8::1", 1161, 0, 0))
    assert only_v6.asked == [socket.AF_INET, socket.AF_INET6]
    with pytest.raises(SnmpError, match="bad SNMP target 'nowhere.invalid': .*not known"):
        resolve("nowhere.invalid", 161, _Names())


def test_an_address_is_not_looked_up_and_a_name_still_is(snmpd: Snmpd) -> None:
    """pysnmp resolves a target in an event loop's thread pool, whose thread then stays for good;
    the client resolves a name in the thread that asks, and an address not at all: no thread is
    left behind either way."""
    before = set(threading.enumerate())
    client = PysnmpClient()
    try:
        client.get(snmpd.target, [SYS_UPTIME], auth=V3_AUTH, timeout=2)
        client.get(snmpd.target, [SYS_UPTIME], auth=COMMUNITY, timeout=2)
        assert set(threading.enumerate()) == before
        by_name = f"localhost:{snmpd.port}"
        assert client.get(by_name, [SYS_LOCATION], auth=COMMUNITY, timeout=2)[0].value == LOCATION.encode()
        assert client.get(by_name, [SYS_LOCATION], auth=V3_AUTH, timeout=2)[0].value == LOCATION.encode()
        for auth in (COMMUNITY, V3_AUTH):
            with pytest.raises(SnmpError, match="bad SNMP target"):
                client.get(f"no-such-host.invalid:{snmpd.port}", [SYS_LOCATION], auth=auth, timeout=2)
        assert set(threading.enumerate()) == before
    finally:
        client.close()


def test_v3_uses_the_protocol_classes_and_report_meanings_of_pysnmp_s_engine() -> None:
    """SNMPv3 without the engine must localise keys and digest exactly as pysnmp's engine does
    with the protocols its configuration names for ours (the table normagent's engine path used),
    and a Report must read as the engine read it. Privacy: test_snmp_privacy.py holds each
    protocol to the engine's service (AES192/AES256 are USM_PRIV_CFB*_AES, the key extension
    Cisco's)."""
    from pysnmp.proto.mpmod import rfc3412

    from normagent.sources import snmp_usm
    from tests.support.pysnmp_agent import ENGINE_AUTH_PROTOCOLS, ENGINE_PRIV_PROTOCOLS

    assert set(ENGINE_AUTH_PROTOCOLS) == AUTH_PROTOCOLS and set(ENGINE_PRIV_PROTOCOLS) == PRIV_PROTOCOLS
    for name in AUTH_PROTOCOLS - {"none"}:
        service, service_id = snmp_usm.auth_service(name)
        assert service_id == ENGINE_AUTH_PROTOCOLS[name], name
    assert snmp_usm._REPORTS == rfc3412._snmpErrors


@pytest.mark.parametrize(("auth_protocol", "priv_protocol"), [("SHA", "3DES"), ("MD5", "3DES"), ("SHA512", "3DES"), ("SHA256", "AES256")])
def test_v3_reads_pysnmp_s_own_agent(client: PysnmpClient, auth_protocol: str, priv_protocol: str) -> None:
    """3DES, which net-snmp does not have, against pysnmp's engine as the agent (its USM module
    does the agent's side: discovery, timeliness, its own key localisation and extension). Unlike
    net-snmp, pysnmp's agent reports a wrong privacy key (usmStatsDecryptionErrors)."""
    from tests.support.pysnmp_agent import SYS_DESCR, PysnmpAgent

    auth = SnmpAuth.v3(f"user-{priv_protocol}", "auth-key-for-pysnmp", "priv-key-for-pysnmp",
                       auth_protocol=auth_protocol, priv_protocol=priv_protocol)  # type: ignore[arg-type]
    agent = PysnmpAgent(auth)
    try:
        [got] = client.get(agent.target, [SYS_DESCR], auth=auth, timeout=2)
        assert isinstance(got.value, bytes) and got.value
        with pytest.raises(SnmpAuthError, match="ciphertext is broken"):  # errind.decryptionError, as the engine said it
            client.get(agent.target, [SYS_DESCR], auth=SnmpAuth.v3(auth.user, auth.auth_key, "another-priv-key",
                                                                  auth_protocol=auth.auth_protocol, priv_protocol=auth.priv_protocol), timeout=0.5)
    finally:
        agent.close()


def test_v3_privacy_without_its_cipher_is_an_snmp_error_naming_no_key(snmpd: Snmpd, client: PysnmpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without pycryptodomex's cipher (a damaged install): an ``SnmpError`` the collector
    reports, naming the package and no key, not an ``ImportError`` out of the poll."""
    import Cryptodome.Cipher

    monkeypatch.delattr(Cryptodome.Cipher, "AES", raising=False)
    monkeypatch.setitem(sys.modules, "Cryptodome.Cipher.AES", None)  # what an import of a missing module meets
    with pytest.raises(SnmpError, match=r"SNMPv3 privacy \(AES\) needs the pycryptodomex package") as err:
        client.get(snmpd.target, [SYS_UPTIME], auth=V3_AUTH, timeout=1)
    assert not isinstance(err.value, SnmpTimeout) and V3_PRIV_KEY not in str(err.value)


def _answer_v1_with_negative_error_index(request: bytes) -> bytes:
    """An SNMPv1 device's GetResponse to ``request`` with the request's id and an error-index of
    -1, which v1's PDU decodes but v2c's (what normagent reads v1 answers as) cannot hold."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto.api import v1 as api

    message, _ = decoder.decode(request, asn1Spec=api.Message())
    response = api.apiPDU.get_response(api.apiMessage.get_pdu(message))
    answer = api.apiMessage.get_response(message)
    api.apiMessage.set_pdu(answer, response)
    encoded = bytes(encoder.encode(answer))
    status_and_index = bytes.fromhex("020100020100")  # error-status 0, error-index 0, after the request id
    assert encoded.count(status_and_index) == 1
    return encoded.replace(status_and_index, bytes.fromhex("0201000201ff"))


def test_an_snmpv1_answer_v2c_cannot_hold_is_a_device_error_not_an_exception() -> None:
    """Found by mutating real answers: a v1 GetResponse with a negative error-index made pysnmp's
    v1-to-v2c translation raise pyasn1's ValueConstraintError out of the poll, which network.snmp
    promises never to raise. It is now an ``SnmpError``, a failed poll with reason "error"."""
    from normagent.clock import SystemClock
    from normagent.plugins.network.collectors import Device, poll_device

    with fake_agent(_answer_v1_with_negative_error_index) as (target, _):
        client = PysnmpClient()
        try:
            with pytest.raises(SnmpError, match="SNMPv1 response that cannot be read: ValueConstraintError"):
                client.get(target, [SYS_DESCR], auth=V1, timeout=2)
            device = Device(name="old-switch", target=target, version="1", community="public")
            poll = poll_device(client, device, structlog.get_logger(), SystemClock())
        finally:
            client.close()
    assert (poll.ok, poll.reason) == (False, "error") and "cannot be read" in poll.detail
