"""availability.probes against real servers on 127.0.0.1: HTTPS with a certificate from a throw-away
CA, a server that hangs, one that trickles, a refused port, the real ping and the system resolver."""

from __future__ import annotations

import os
import re
import socket
import threading
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from normagent import Gauge
from normagent.plugins.availability.collectors import (
    PROBES_COLLECTOR,
    PROBE_DURATION,
    SERVICE_UP,
    TLS_EXPIRY,
    AvailabilitySettings,
    Service,
    ping_argv,
    probe_icmp,
    probe_systemd,
    run_probes,
    systemctl_argv,
)
from normagent.model import CommandResult
from normagent.sources.command import run_command
from normagent.testing import FakeClock, FakeHost, make_context, observations, recorded_command, run_collector_once
from tests.support.systemd_user import user_manager
from tests.support.tools import require_tool, skip_for_host

COMMANDS = Path(__file__).resolve().parents[2] / "fixtures" / "commands"


def settings(*services: Service, **kw: Any) -> AvailabilitySettings:
    return AvailabilitySettings(services=services, **kw)


def gauges(batches: list[Any]) -> dict[tuple[str, str], float]:
    return {(o.metric, dict(o.labels)["service"]): o.value for o in observations(batches) if isinstance(o, Gauge)}


def now_clock() -> FakeClock:
    # Certificates are made "now" by openssl: the collector's clock must be near real time.
    return FakeClock(datetime.now(timezone.utc))


def test_https_up_with_the_days_its_certificate_has_left(pki: Any, https_server: Any) -> None:
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    service = Service("epj", "http", f"{url}/health", body_match=r"status: ok", ca_file=ca)
    batches = run_collector_once(PROBES_COLLECTOR, settings=settings(service), clock=now_clock())
    got = gauges(batches)
    assert got[(SERVICE_UP, "epj")] == 1
    assert 10 * 86400 - 3600 < got[(TLS_EXPIRY, "epj")] <= 10 * 86400


def test_expired_certificate_is_down_with_its_reason(pki: Any, https_server: Any) -> None:
    ca, cert, key = pki(-1)  # expired yesterday
    url = https_server(cert, key)
    results = run_probes(make_context(PROBES_COLLECTOR), settings(Service("epj", "http", f"{url}/health", ca_file=ca)))
    assert (results["epj"].up, results["epj"].reason) == (False, "tls_expired")


def test_untrusted_certificate_is_a_tls_error(pki: Any, https_server: Any) -> None:
    _, cert, key = pki(10)
    url = https_server(cert, key)  # verified against the system's CAs, which do not know the test CA
    results = run_probes(make_context(PROBES_COLLECTOR), settings(Service("epj", "http", f"{url}/health")))
    assert (results["epj"].up, results["epj"].reason) == (False, "tls_error")


@pytest.mark.parametrize(
    ("path", "extra", "reason"),
    [
        ("/fail", {}, "http_503"),
        ("/health", {"body_match": "status: degraded"}, "body_mismatch"),
        ("/fail", {"expect_status": (503,)}, "ok"),
    ],
)
def test_http_status_and_body(pki: Any, https_server: Any, path: str, extra: dict[str, Any], reason: str) -> None:
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    results = run_probes(make_context(PROBES_COLLECTOR), settings(Service("epj", "http", url + path, ca_file=ca, **extra)))
    assert (results["epj"].up, results["epj"].reason) == (reason == "ok", reason)


def test_a_body_match_that_would_backtrack_for_ever_is_answered_and_the_agent_goes_on(pki: Any, https_server: Any) -> None:
    """With Python's re, (a+)+$ on 100,000 "a"s and a "!" never ended (1.3 s at 25 characters,
    doubling with each one more), holding the interpreter lock: the whole agent stood still."""
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    services = (
        Service("almost", "http", f"{url}/almost", body_match=r"(a+)+$", ca_file=ca),
        Service("nested", "http", f"{url}/almost", body_match=r"^(a|aa)*b", ca_file=ca),
        Service("found", "http", f"{url}/almost", body_match=r"(a+)+!$", ca_file=ca),
    )
    done: list[dict[str, Any]] = []
    probing = threading.Thread(target=lambda: done.append(run_probes(make_context(PROBES_COLLECTOR), settings(*services))))
    probing.start()
    probing.join(120)  # a liveness bound, not a speed one: RE2 takes milliseconds, re never returned
    assert done, "the probes never returned"
    assert {name: (r.up, r.reason) for name, r in done[0].items()} == {
        "almost": (False, "body_mismatch"),
        "nested": (False, "body_mismatch"),
        "found": (True, "ok"),
    }


@pytest.mark.parametrize("pattern", [r"(?=ok)ok", r"(status)\1", r"(?<!x)ok", "("])
def test_a_body_match_re2_cannot_run_is_refused_when_the_configuration_is_read(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"service epj: body_match is not a regular expression RE2 accepts \(.+\)"):
        Service("epj", "http", "https://epj.example/health", body_match=pattern)


def test_a_ca_file_that_cannot_verify_anything_is_refused_when_the_configuration_is_read(pki: Any, tmp_path: Path) -> None:
    """Before: every probe of the service was a tls_error, and the service looked down."""
    ca, cert, _ = pki(10)
    cut = tmp_path / "cut-ca.crt"
    cut.write_bytes(ca.read_bytes()[:300])
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"not a certificate\n")
    for path, said in ((cut, "is cut short: its CERTIFICATE block has no END line"), (garbage, "is not a PEM file of CA certificates"),
                       (cert, "holds no CA certificate")):
        with pytest.raises(ValueError, match=f"service epj: ca_file: {re.escape(str(path))} {said}"):
            Service("epj", "http", "https://127.0.0.1:1/health", ca_file=path)
    assert Service("epj", "http", "https://127.0.0.1:1/health", ca_file=ca).ca_file == ca


def test_one_cycle_with_hanging_trickling_and_refusing_targets_ends_at_the_timeouts(
    pki: Any, https_server: Any, hanging_port: int, refused_port: int
) -> None:
    """Each probe has its own timeout: a server that hangs, one whose body never ends (each byte in
    time for the read timeout) and a refused port cost their timeout and spoil nothing else."""
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    services = (
        Service("hangs", "http", f"http://127.0.0.1:{hanging_port}/", timeout=timedelta(milliseconds=300)),
        Service("hangs-tcp-ok", "tcp", f"127.0.0.1:{hanging_port}", timeout=timedelta(milliseconds=300)),
        Service("trickles", "http", f"{url}/trickle", body_match="never", ca_file=ca, timeout=timedelta(milliseconds=500)),
        Service("refused", "tcp", f"127.0.0.1:{refused_port}"),
        Service("refused-http", "http", f"http://127.0.0.1:{refused_port}/"),
        Service("fine", "http", f"{url}/health", ca_file=ca),
    )
    results = run_probes(make_context(PROBES_COLLECTOR), settings(*services))
    assert {name: (r.up, r.reason) for name, r in results.items()} == {
        "hangs": (False, "timeout"),
        "hangs-tcp-ok": (True, "ok"),  # it accepts: TCP is up, only HTTP hangs
        "trickles": (False, "timeout"),
        "refused": (False, "refused"),
        "refused-http": (False, "refused"),
        "fine": (True, "ok"),
    }
    assert results["trickles"].detail == "abandoned"  # the cycle stopped waiting; the thread is left to end


def test_dns_resolves_through_the_system_resolver() -> None:
    try:
        socket.getaddrinfo("localhost", None)
    except OSError as exc:
        skip_for_host(f"the system resolver knows no localhost here (no /etc/hosts entry): {exc}")
    results = run_probes(
        make_context(PROBES_COLLECTOR),
        settings(
            Service("local", "dns", "localhost"),
            Service("elsewhere", "dns", "localhost", expect_addresses=("192.0.2.10",)),
            Service("bad-name", "dns", "x" * 64 + ".example"),  # a label no resolver takes: fails here, asks nobody
        ),
    )
    assert {name: (r.up, r.reason) for name, r in results.items()} == {
        "local": (True, "ok"),
        "elsewhere": (False, "dns_unexpected_address"),
        "bad-name": (False, "dns_error"),
    }


def test_icmp_with_the_real_ping() -> None:
    require_tool("ping", "iputils-ping")
    service = Service("loopback", "icmp", "127.0.0.1", timeout=timedelta(seconds=2))
    probe = probe_icmp(service, make_context(PROBES_COLLECTOR, run_command=run_command))
    if not probe.up and "permission" in probe.detail.lower():
        skip_for_host("ping may not open an ICMP socket here (no CAP_NET_RAW, ping_group_range)")
    assert (probe.up, probe.reason) == (True, "ok")
    assert 0 < probe.duration < 2


def test_icmp_no_reply_and_missing_ping_from_recorded_results() -> None:
    from normagent.model import CommandResult

    service = Service("nhn", "icmp", "192.0.2.1")
    argv = tuple(ping_argv(service))
    lost = CommandResult(argv, 1, b"--- 192.0.2.1 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss\n")
    assert probe_icmp(service, make_context(PROBES_COLLECTOR, run_command=recorded_command({argv: lost}))).reason == "no_reply"
    assert probe_icmp(service, make_context(PROBES_COLLECTOR, run_command=recorded_command({}))).reason == "ping_missing"


SYSTEMCTL_CASES = [
    # fixture, up, reason
    ("systemctl_show_active.txt", True, "ok"),
    ("systemctl_show_failed.txt", False, "unit_failed"),
    ("systemctl_show_not-found.txt", False, "unit_not_found"),
]


@pytest.mark.parametrize(("fixture", "up", "reason"), SYSTEMCTL_CASES)
def test_systemd_unit_state_from_systemctl_show(fixture: str, up: bool, reason: str) -> None:
    service = Service("db", "systemd", "postgresql.service")
    runner = recorded_command({tuple(systemctl_argv(service)): COMMANDS / fixture})
    probe = probe_systemd(service, make_context(PROBES_COLLECTOR, run_command=runner))
    assert (probe.up, probe.reason) == (up, reason)


def test_systemd_unit_state_with_the_real_systemctl() -> None:
    """Where PID 1 is systemd, its own journald unit is active; elsewhere the real systemctl
    cannot reach a manager, and the probe says so instead of guessing."""
    require_tool("systemctl", "systemd")
    service = Service("journald", "systemd", "systemd-journald.service")
    probe = probe_systemd(service, make_context(PROBES_COLLECTOR, run_command=run_command))
    if os.path.isdir("/run/systemd/system"):  # sd_booted(): the manager runs
        assert (probe.up, probe.reason) == (True, "ok")
    else:
        assert (probe.up, probe.reason) == (False, "systemctl_error")
        assert "systemd" in probe.detail


UNITS = {
    "na-ok.service": "[Service]\nExecStart=/bin/sleep infinity\n",
    "na-bad.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
}


def test_unit_states_from_a_real_service_manager_match_the_recorded_outputs(tmp_path: Path) -> None:
    """A real systemd (Debian's, as a user manager) runs an active, a failed and no unit: the probe
    judges each from the real systemctl, and what systemctl printed is what the recorded fixtures
    above hold, so those fixtures are real output."""
    with user_manager(tmp_path, UNITS) as manager:
        manager.run("start", "na-ok.service")
        manager.run("start", "na-bad.service")  # fails: the manager records it failed

        def through_the_user_manager(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
            assert argv[:2] == ["systemctl", "show"]
            return run_command(manager.systemctl(*argv[1:]), timeout=timeout)

        seen = {}
        for unit, fixture in (("na-ok", "active"), ("na-bad", "failed"), ("na-missing", "not-found")):
            service = Service(unit, "systemd", f"{unit}.service")
            ctx = make_context(PROBES_COLLECTOR, run_command=through_the_user_manager)
            seen[unit] = probe_systemd(service, ctx)
            real = run_command(manager.systemctl(*systemctl_argv(service)[1:])).stdout
            assert real == (COMMANDS / f"systemctl_show_{fixture}.txt").read_bytes(), unit

    assert {unit: (p.up, p.reason) for unit, p in seen.items()} == {
        "na-ok": (True, "ok"),
        "na-bad": (False, "unit_failed"),
        "na-missing": (False, "unit_not_found"),
    }


def test_process_probe_through_the_host_seam() -> None:
    host = FakeHost(processes={"dips-server"})
    results = run_probes(
        make_context(PROBES_COLLECTOR, host=host),
        settings(Service("epj-server", "process", "dips-server"), Service("gone", "process", "msgserver")),
    )
    assert {n: (r.up, r.reason) for n, r in results.items()} == {"epj-server": (True, "ok"), "gone": (False, "process_missing")}


def test_probe_duration_is_exported_per_service(pki: Any, https_server: Any) -> None:
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    batches = run_collector_once(PROBES_COLLECTOR, settings=settings(Service("epj", "http", f"{url}/health", ca_file=ca)))
    assert (PROBE_DURATION, "epj") in gauges(batches)


def test_probes_queued_behind_hanging_ones_at_the_deadline_are_not_counted_down(hanging_port: int) -> None:
    """One thread, a hanging target first: the run's deadline comes before the second probe starts.
    That probe proved nothing, so it is left out (probed next cycle), not reported down."""
    hang = Service("hangs", "http", f"http://127.0.0.1:{hanging_port}/", timeout=timedelta(seconds=3))
    queued = Service("queued", "process", "epj")
    ctx = make_context(PROBES_COLLECTOR, host=FakeHost(processes={"epj"}), timeout=1.0)
    results = run_probes(ctx, settings(hang, queued, max_parallel=1))
    assert list(results) == ["hangs"]
    assert (results["hangs"].up, results["hangs"].reason) == (False, "timeout")
