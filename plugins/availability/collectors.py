"""The ``availability.probes`` collector: probes of the critical services a site lists, their outages
and SLA.

Each cycle probes every configured service at once, each on its own thread with its own timeout,
so an unreachable target costs its timeout and nothing more: the cycle ends when the slowest
probe's timeout has passed, and a probe still hanging then (a resolver that does not give up) is
abandoned and counted as ``timeout``. The outage accounting is pure (``parse.advance``); what it
knows per service is one checkpoint, committed with the counts it led to.

Kinds of probe (``kind``/``target``):

========  =================================  ================================================
http      ``https://epj.clinic.example/health``  requests: status (default 200–399), optional body
                                              regex, latency; for https the certificate's expiry
                                              (one extra TLS handshake, at most hourly)
tcp       ``meldingstjener.example:443``     a TCP connect
dns       ``epj.clinic.example``             the system resolver (getaddrinfo), optionally the
                                              addresses it must return
icmp      ``nhn-gw.example``                 the system ``ping`` (no raw sockets in the agent)
systemd   ``postgresql.service``             ``systemctl show``: ActiveState active/reloading
process   ``dips-server``                    a process of that name runs
========  =================================  ================================================

Imports only normagent (the public API), this plugin and the standard library (requests and ssl
lazily).
"""

from __future__ import annotations

import math
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from normagent import (
    Batch,
    Checkpoint,
    CollectorSpec,
    Count,
    Event,
    Gauge,
    MaintenanceCalendar,
    MetricSpec,
    NoData,
    Observation,
    RunContext,
    __version__,
    dataclass,
    strptime,
    tls_problems,
)

from .body import body_pattern
from .parse import Outage, Probe, ServiceState, Update, advance, parse_ping_rtt, parse_systemctl_show

SECTION = "Driftsstatus"
NETWORK_SECTION = "Nettleverandør"
NETWORK_TAG = "network"

SERVICE_UP = "normagent_service_up"
PROBE_DURATION = "normagent_service_probe_duration_seconds"
DOWNTIME = "normagent_service_downtime_seconds_total"
OBSERVED = "normagent_service_observed_seconds_total"
OUTAGES = "normagent_service_outages_total"
SLA_TARGET = "normagent_sla_target_ratio"
SLA_AVAILABILITY = "normagent_sla_availability_ratio"
SLA_BUDGET = "normagent_sla_error_budget_ratio"
TLS_EXPIRY = "normagent_tls_cert_expiry_seconds"
SERVICE_INFO = "normagent_service_info"
OUTAGE_EVENT = "availability.outage"
SLA_EVENT = "availability.sla"

ProbeKind = Literal["http", "tcp", "dns", "icmp", "systemd", "process"]
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s/]+)):(?P<port>\d{1,5})$")
MAX_BODY = 1 << 20  # bytes read for a body match
CERT_RECHECK = 3600.0  # seconds between certificate checks of one service
WAIT_GRACE = 0.5  # seconds past the slowest timeout before a hanging probe is abandoned


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True, slots=True)
class Service:
    """One critical service and how to probe it.

    Attributes:
        name: The ``service`` label: lower case letters, digits, ``_.-`` ("epj", "nhn-gateway").
        kind: ``http``, ``tcp``, ``dns``, ``icmp``, ``systemd`` or ``process``.
        target: What to probe: a URL (http), ``host:port`` (tcp), a host name (dns, icmp), a unit
            (systemd) or a process name (process).
        timeout: How long one probe may take; slower is down with reason ``timeout``.
        sla: The SLA target as a ratio of the month (0.995 = 99.5 %), planned downtime excluded.
        tags: Free tags; ``network`` puts the service in the network provider's report section.
        expect_status: HTTP statuses that count as up; empty: 200–399.
        body_match: A regular expression the first MiB of the HTTP body must match, in RE2 syntax (as the
            blackbox exporter's ``fail_if_body_not_matches_regexp``: no look-arounds or
            back-references, refused when the configuration is read). Matched in time linear in the
            body.
        ca_file: CA certificates (PEM) to verify an https target against; default: the system's.
        verify_tls: Verify the https certificate (off: no expiry is reported either).
        expect_addresses: For dns: addresses the name must resolve to (any of them); empty: any.
    """

    name: str = ""
    kind: ProbeKind = "http"
    target: str = ""
    timeout: timedelta = field(default=timedelta(seconds=5), metadata={"min": timedelta(milliseconds=100), "max": timedelta(minutes=1)})
    sla: float = field(default=0.995, metadata={"min": 0.0, "max": 1.0})
    tags: tuple[str, ...] = ()
    expect_status: tuple[int, ...] = field(default=(), metadata={"min": 100, "max": 599})
    body_match: str = ""
    ca_file: Path | None = field(default=None, metadata={"must_exist": "file"})
    verify_tls: bool = True
    expect_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f'service name "{self.name}": use 1-63 lower case letters, digits, "_", "." or "-"')
        if not self.target.strip():
            raise ValueError(f"service {self.name}: target is required")
        if self.kind == "http":
            parts = urlsplit(self.target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f'service {self.name}: target "{self.target}" is not an http(s) URL')
        elif self.kind == "tcp" and not _host_port(self.target):
            raise ValueError(f'service {self.name}: target "{self.target}" is not host:port')
        elif self.kind in ("dns", "icmp") and (self.target.startswith("-") or any(c.isspace() for c in self.target)):
            raise ValueError(f'service {self.name}: target "{self.target}" is not a host name')
        elif self.kind == "systemd" and (self.target.startswith("-") or "/" in self.target):
            raise ValueError(f'service {self.name}: target "{self.target}" is not a unit name')
        if self.ca_file is not None:
            for _, problem in tls_problems(self.ca_file, None, None):
                # Else every probe is a tls_error: the service looks down, the file is the fault.
                raise ValueError(f"service {self.name}: ca_file: {problem}")
        if self.body_match:
            try:
                body_pattern(self.body_match)
            except ValueError as exc:
                raise ValueError(f"service {self.name}: body_match is {exc}") from None


@dataclass(frozen=True, slots=True)
class AvailabilitySettings:
    """``[collectors."availability.probes"]``.

    Attributes:
        services: The services to probe (``[[collectors."availability.probes".services]]``); none:
            the collector has no data.
        max_parallel: Probes run at once (threads).
        gap: A pause between two probe cycles longer than this (the agent stopped, the host
            suspended) is unobserved time: neither up nor down.
    """

    services: tuple[Service, ...] = ()
    max_parallel: int = field(default=32, metadata={"min": 1, "max": 256})
    gap: timedelta = field(default=timedelta(minutes=5), metadata={"min": timedelta(seconds=10), "max": timedelta(days=1)})

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f'two services are named "{twice[0]}"')


def _host_port(target: str) -> tuple[str, int] | None:
    match = HOST_PORT.match(target.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        return None
    return (match["v6"] or match["host"], int(match["port"]))


# --------------------------------------------------------------------------------------------
# probes (I/O)


def probe_http(service: Service, ctx: RunContext) -> Probe:
    import requests
    import urllib3.exceptions

    timeout = service.timeout.total_seconds()
    verify: bool | str = str(service.ca_file) if service.ca_file and service.verify_tls else service.verify_tls
    started = ctx.clock.monotonic()
    try:
        response = requests.get(
            service.target, timeout=(timeout, timeout), verify=verify, stream=True, allow_redirects=False,
            headers={"User-Agent": f"normagent/{__version__} (availability probe)"},
        )
    except requests.exceptions.SSLError as exc:
        reason = "tls_expired" if "expired" in str(exc) else "tls_error"
        return Probe(False, reason, ctx.clock.monotonic() - started, _short(exc))
    except requests.exceptions.Timeout as exc:
        return Probe(False, "timeout", ctx.clock.monotonic() - started, _short(exc))
    except requests.exceptions.ConnectionError as exc:
        return Probe(False, _connection_reason(exc), ctx.clock.monotonic() - started, _short(exc))
    except requests.exceptions.RequestException as exc:
        return Probe(False, "http_error", ctx.clock.monotonic() - started, _short(exc))
    try:
        ok_status = response.status_code in service.expect_status if service.expect_status else 200 <= response.status_code < 400
        if not ok_status:
            return Probe(False, f"http_{response.status_code}", ctx.clock.monotonic() - started, str(response.status_code))
        if service.body_match:
            body = response.raw.read(MAX_BODY, decode_content=True) or b""
            if body_pattern(service.body_match).search(body.decode("utf-8", errors="replace")) is None:
                return Probe(False, "body_mismatch", ctx.clock.monotonic() - started)
        return Probe(True, "ok", ctx.clock.monotonic() - started)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        # Reading the body goes to urllib3 directly: its own exceptions, not requests'.
        reason = "timeout" if isinstance(exc, urllib3.exceptions.TimeoutError) or "timed out" in str(exc) else "http_error"
        return Probe(False, reason, ctx.clock.monotonic() - started, _short(exc))
    except OSError as exc:
        return Probe(False, "timeout" if isinstance(exc, TimeoutError) else "http_error", ctx.clock.monotonic() - started, _short(exc))
    finally:
        response.close()


def certificate_expiry(service: Service) -> float | None:
    """Unix time the https target's (verified) certificate expires; None if it cannot be told.

    A TLS handshake of its own: requests does not show the peer certificate of a connection it
    pools. Without verification Python's ssl gives no certificate fields, so nothing is reported.
    """
    parts = urlsplit(service.target)
    if parts.scheme != "https" or not service.verify_tls or parts.hostname is None:
        return None
    import ssl  # here, not at the top: a site without https probes never loads it (nor OpenSSL)

    context = ssl.create_default_context(cafile=str(service.ca_file) if service.ca_file else None)
    timeout = service.timeout.total_seconds()
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                cert = tls.getpeercert()
    except (OSError, ssl.SSLError, ValueError):
        return None
    not_after = cert.get("notAfter") if cert else None
    return float(ssl.cert_time_to_seconds(str(not_after))) if not_after else None


def probe_tcp(service: Service, ctx: RunContext) -> Probe:
    host, port = _host_port(service.target) or ("", 0)
    started = ctx.clock.monotonic()
    try:
        with socket.create_connection((host, port), timeout=service.timeout.total_seconds()):
            pass
    except OSError as exc:
        return Probe(False, _socket_reason(exc), ctx.clock.monotonic() - started, _short(exc))
    return Probe(True, "ok", ctx.clock.monotonic() - started)


def probe_dns(service: Service, ctx: RunContext) -> Probe:
    started = ctx.clock.monotonic()
    try:
        # The system resolver, as the clinic's programs use it; it cannot be interrupted, so the
        # cycle abandons it at the timeout (see the module docstring).
        infos = socket.getaddrinfo(service.target.strip(), None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        return Probe(False, "dns_error", ctx.clock.monotonic() - started, _short(exc))
    except (OSError, UnicodeError) as exc:
        return Probe(False, "dns_error", ctx.clock.monotonic() - started, _short(exc))
    addresses = {str(info[4][0]) for info in infos}
    if service.expect_addresses and not addresses & set(service.expect_addresses):
        return Probe(False, "dns_unexpected_address", ctx.clock.monotonic() - started, ",".join(sorted(addresses)))
    return Probe(True, "ok", ctx.clock.monotonic() - started)


def ping_argv(service: Service) -> list[str]:
    # -n: no reverse lookup; -W: seconds to wait for the reply (iputils rounds up to whole seconds).
    return ["ping", "-n", "-c", "1", "-W", str(max(1, math.ceil(service.timeout.total_seconds()))), "--", service.target]


def probe_icmp(service: Service, ctx: RunContext) -> Probe:
    started = ctx.clock.monotonic()
    result = ctx.run_command(ping_argv(service), timeout=service.timeout.total_seconds() + 1.0)
    took = ctx.clock.monotonic() - started
    if result.returncode == 0:
        rtt = parse_ping_rtt(result.stdout)
        return Probe(True, "ok", rtt if rtt is not None else took)
    if result.returncode is None:
        reason = "ping_missing" if "not found" in result.error else "timeout" if "timed out" in result.error else "ping_error"
        return Probe(False, reason, took, result.error)
    if result.returncode == 1:
        return Probe(False, "no_reply", took)
    return Probe(False, "ping_error", took, result.stderr.decode("utf-8", errors="replace").strip()[-200:])


def systemctl_argv(service: Service) -> list[str]:
    return ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", service.target]


def probe_systemd(service: Service, ctx: RunContext) -> Probe:
    started = ctx.clock.monotonic()
    result = ctx.run_command(systemctl_argv(service), timeout=service.timeout.total_seconds())
    took = ctx.clock.monotonic() - started
    state = parse_systemctl_show(result.stdout) if result.ok else None
    if state is None:
        why = result.error or result.stderr.decode("utf-8", errors="replace").strip()[-200:]
        return Probe(False, "systemctl_error", took, why)
    return Probe(state.up, "ok" if state.up else state.reason, took, f"{state.active}/{state.sub}")


def probe_process(service: Service, ctx: RunContext) -> Probe:
    started = ctx.clock.monotonic()
    try:
        running = ctx.host.process_running(service.target)
    except OSError as exc:
        return Probe(False, "process_check_failed", ctx.clock.monotonic() - started, _short(exc))
    return Probe(running, "ok" if running else "process_missing", ctx.clock.monotonic() - started)


PROBES: dict[str, Callable[[Service, RunContext], Probe]] = {
    "http": probe_http,
    "tcp": probe_tcp,
    "dns": probe_dns,
    "icmp": probe_icmp,
    "systemd": probe_systemd,
    "process": probe_process,
}


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return "dns_error"
    if "Connection refused" in text or "Errno 111" in text:
        return "refused"
    if "timed out" in text:
        return "timeout"
    return "unreachable"


def _socket_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    return "unreachable"


def _short(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def run_probes(ctx: RunContext, settings: AvailabilitySettings) -> dict[str, Probe]:
    """Probe every service at once; each gets its own timeout, a hanging one is abandoned.

    The wait ends when the slowest probe's timeout has passed (times the rounds, when there are more
    services than ``max_parallel``), and never after the run's own deadline. A probe still running
    then is down with reason ``timeout``; one that never started (queued behind hanging ones) is
    left out of the result: it proves nothing either way, and is probed next cycle.
    """
    services = settings.services
    workers = min(settings.max_parallel, len(services))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
    try:
        futures: dict[str, Future[Probe]] = {s.name: pool.submit(_guarded, PROBES[s.kind], s, ctx) for s in services}
        longest = max(s.timeout.total_seconds() for s in services)
        needed = longest * math.ceil(len(services) / workers) + WAIT_GRACE
        budget = ctx.deadline - ctx.clock.monotonic() - WAIT_GRACE
        wait(futures.values(), timeout=max(0.1, min(needed, budget)))
        results = {}
        for service in services:
            future = futures[service.name]
            if future.done():
                results[service.name] = future.result()
            elif not future.cancel():  # running: it had its chance
                results[service.name] = Probe(False, "timeout", service.timeout.total_seconds(), "abandoned")
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _guarded(probe: Callable[[Service, RunContext], Probe], service: Service, ctx: RunContext) -> Probe:
    try:
        return probe(service, ctx)
    except Exception as exc:  # a probe's own bug must cost only that probe
        ctx.log.error("probe_failed", service=service.name, error=f"{type(exc).__name__}: {exc}")
        return Probe(False, "probe_error", 0.0, _short(exc))


# --------------------------------------------------------------------------------------------
# the collector


class ProbesCollector:
    """``availability.probes``; holds nothing between runs but a lock (the state is checkpointed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def collect(self, ctx: RunContext) -> Iterator[Batch]:
        """Probe, account outages, and commit everything with the per-service checkpoints.

        Exposition, e.g.::

            normagent_service_up{service="epj"} 1
            normagent_service_downtime_seconds_total{planned="false",service="epj"} 540
            normagent_sla_availability_ratio{period="month",service="epj"} 0.99979

        By hand: ``curl -sS -o /dev/null -w '%{http_code} %{time_total}\\n' https://epj.example/health``.
        """
        settings: AvailabilitySettings = ctx.settings
        if not settings.services:
            raise NoData("no services configured ([[collectors.\"availability.probes\".services]])")
        with self._lock:
            results = run_probes(ctx, settings)
            now = ctx.clock.now().timestamp()
            spans = _planned_spans(ctx.maintenance)
            observations: list[Observation] = []
            checkpoints: list[Checkpoint] = []
            skipped = [s.name for s in settings.services if s.name not in results]
            if skipped:
                ctx.log.warning("probes_not_started", services=len(skipped), reason="the run's deadline came first")
            for service in settings.services:
                probe = results.get(service.name)
                if probe is None:
                    continue
                key = f"svc:{service.name}"
                update = advance(ServiceState.from_json(ctx.state.get(key)), probe, now, spans, settings.gap.total_seconds(),
                                 _window_name(ctx.maintenance))
                observations += _observations(service, probe, update, now)
                checkpoints.append(Checkpoint(key, update.state.to_json()))
                cert = self._certificate(ctx, service, probe, now)
                if cert is not None:
                    checkpoints.append(cert[1])
                    observations.append(Gauge(TLS_EXPIRY, max(cert[0] - now, 0.0), {"service": service.name}))
                if update.state.down_since == now:  # logged when an outage begins, not every cycle
                    ctx.log.warning("service_down", service=service.name, reason=probe.reason, detail=probe.detail)
                for outage in update.closed:
                    ctx.log.info("service_outage_ended", service=service.name, reason=outage.reason,
                                 seconds=round(outage.end - outage.start), planned=outage.planned, ended=outage.ended)
            yield Batch(observations, checkpoints)

    def _certificate(self, ctx: RunContext, service: Service, probe: Probe, now: float) -> tuple[float, Checkpoint] | None:
        """The certificate's expiry, checked at most hourly (and again after a TLS failure)."""
        if service.kind != "http" or not service.target.startswith("https:") or not service.verify_tls:
            return None
        key = f"cert:{service.name}"
        saved = ctx.state.get(key)
        saved = saved if isinstance(saved, dict) else {}
        expiry, checked = saved.get("not_after"), saved.get("checked")
        fresh = isinstance(checked, (int, float)) and 0 <= now - checked < CERT_RECHECK
        if fresh and isinstance(expiry, (int, float)) and probe.reason not in ("tls_error", "tls_expired") and saved.get("target") == service.target:
            return float(expiry), Checkpoint(key, saved)
        found = certificate_expiry(service) if probe.up else None
        if found is None:
            return None
        return found, Checkpoint(key, {"not_after": found, "checked": now, "target": service.target})


def _planned_spans(calendar: MaintenanceCalendar) -> Callable[[float, float], list[tuple[float, float]]]:
    def spans(a: float, b: float) -> list[tuple[float, float]]:
        windows = calendar.windows_between(_dt(a), _dt(b))
        return [(w.start.timestamp(), w.end.timestamp()) for w in windows]

    return spans


def _window_name(calendar: MaintenanceCalendar) -> Callable[[float, float], str]:
    def name(a: float, b: float) -> str:
        windows = calendar.windows_between(_dt(a), _dt(b))
        return windows[0].what or windows[0].source if windows else ""

    return name


def _dt(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, timezone.utc)


def _observations(service: Service, probe: Probe, update: Update, now: float) -> list[Observation]:
    labels = {"service": service.name}
    state = update.state
    out: list[Observation] = [
        Gauge(SERVICE_UP, 1 if probe.up else 0, labels),
        Gauge(PROBE_DURATION, probe.duration, labels),
        Gauge(SLA_TARGET, service.sla, labels),
        Gauge(SLA_AVAILABILITY, state.availability(), {**labels, "period": "month"}),
        Gauge(SLA_BUDGET, state.error_budget(service.sla, now), labels),
        Gauge(SERVICE_INFO, 1, {**labels, "kind": service.kind, "network": "true" if NETWORK_TAG in service.tags else "false"}),
    ]
    if update.observed:
        out.append(Count(OBSERVED, labels, update.observed))
    if update.planned:
        out.append(Count(DOWNTIME, {**labels, "planned": "true"}, update.planned))
    if update.unplanned:
        out.append(Count(DOWNTIME, {**labels, "planned": "false"}, update.unplanned))
    for outage in update.closed:
        out.append(Count(OUTAGES, {**labels, "planned": "true" if outage.planned else "false"}, 1))
        out.append(_outage_event(service, outage))
    month = state.month
    # Once per service, month and terms: what the report needs to judge the month (and network tag).
    out.append(
        Event(
            SLA_EVENT,
            strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=timezone.utc),
            f"{service.name}:{month}:{service.sla}:{','.join(sorted(service.tags))}",
            {"service": service.name, "target": service.sla, "network": NETWORK_TAG in service.tags, "kind": service.kind},
        )
    )
    return out


def _outage_event(service: Service, outage: Outage) -> Event:
    return Event(
        OUTAGE_EVENT,
        _dt(outage.start),
        f"{service.name}:{outage.start:.3f}",
        {
            "service": service.name,
            "end": _dt(outage.end).isoformat().replace("+00:00", "Z"),
            "seconds": round(outage.end - outage.start, 3),
            "planned_seconds": round(outage.planned_seconds, 3),
            "unplanned_seconds": round(outage.unplanned_seconds, 3),
            "planned": outage.planned,
            "reason": outage.reason,
            "window": outage.window,
            "ended": outage.ended,
            "network": NETWORK_TAG in service.tags,
        },
    )


# --------------------------------------------------------------------------------------------
# the spec


def _metric(name: str, kind: Literal["counter", "gauge"], help: str, labels: tuple[str, ...] = ("service",)) -> MetricSpec:
    return MetricSpec(name, kind, help, labels=labels, section=SECTION)


METRICS = (
    _metric(SERVICE_UP, "gauge", "1 if the service's last probe succeeded, 0 if not."),
    _metric(PROBE_DURATION, "gauge", "How long the service's last probe took (for icmp: the round trip)."),
    _metric(
        DOWNTIME, "counter",
        "Seconds a probed service was down, planned (inside a maintenance window of [maintenance]) or not.",
        ("service", "planned"),
    ),
    _metric(OBSERVED, "counter", "Seconds a service was watched by its probes (gaps longer than gap are not)."),
    _metric(OUTAGES, "counter", "Outages of a probed service that ended, planned (wholly inside maintenance windows) or not.",
            ("service", "planned")),
    _metric(SLA_TARGET, "gauge", "The service's SLA target, as a ratio of the month (planned downtime excluded)."),
    _metric(
        SLA_AVAILABILITY, "gauge",
        "Availability this month (UTC): 1 - unplanned downtime / (watched time - planned downtime).",
        ("service", "period"),
    ),
    _metric(
        SLA_BUDGET, "gauge",
        "Share of this month's allowed unplanned downtime ((1 - target) x month) still left; below 0 the SLA is breached.",
    ),
    _metric(TLS_EXPIRY, "gauge", "Seconds until the https target's certificate expires (checked hourly; verified targets only)."),
    _metric(SERVICE_INFO, "gauge", "Always 1: a probed service, its kind and whether it belongs to the network provider.",
            ("service", "kind", "network")),
)


def make_spec() -> CollectorSpec:
    return CollectorSpec(
        name="availability.probes",
        help="Probes of the critical services a site lists (HTTP, TCP, DNS, ping, systemd, process): outages and SLA.",
        collect=ProbesCollector().collect,
        interval=timedelta(seconds=30),
        timeout=timedelta(seconds=25),
        settings=AvailabilitySettings,
        metrics=METRICS,
    )


PROBES_COLLECTOR = make_spec()
