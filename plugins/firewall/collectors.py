"""The firewall plugin's collectors, built on the log driver.

``firewall.linux``
    This host's firewall: the kernel's ``LOG`` lines (netfilter, nftables, iptables, ufw,
    firewalld) and rule-set changes (auditd ``NETFILTER_CFG``, firewalld/ufw reloads), from the
    journal (``source = "journald"``: the kernel's, audit's and the firewall services' entries) or
    from files (``source = "files"``: kern.log and audit.log). One source, never both: on a host
    where rsyslog copies the journal into kern.log both hold every line.

``firewall.windows_log``
    Windows Firewall logs (``pfirewall.log``) copied to this host from Windows servers; no paths
    by default, so disabled until configured.

``firewall.windows_events``
    Windows event logs (EVTX) copied to this host: Security 5152/5157 (WFP drops) and rule changes
    (Security 4946-4948, firewall channel 2004-2006/2033); disabled until configured.

``firewall.appliances``
    What firewalls and appliances send to the agent's syslog receiver (``[syslog]``), read from its
    spool exactly once: pfSense/OPNsense filterlog, FortiGate, Cisco ASA. Without ``[syslog]`` it
    has no data.

Devices are a bounded label: the names configured under ``devices`` (each with the syslog host
names, sender addresses or Windows computer names that are it), ``local`` for this host, and
``other`` for every sender not configured.

A rule change is *planned* when it falls inside a window or a planned change of the maintenance
calendar (``[maintenance]``, ``ctx.maintenance``; README "Planned or not"): every collector that
can see rule changes passes its batches through ``judge_planned``, which sets the ``planned``
label of ``normagent_firewall_rule_changes_total`` and the ``planned`` attribute of each
``firewall.rule_change`` event. The parsers are pure and know no calendar (they count every change
as ``planned="false"``), so ``normagent parse`` shows every change unplanned.

Exposition, e.g.::

    normagent_firewall_blocked_total{device="edge",direction="in",proto="tcp"} 1523
    normagent_firewall_rule_changes_total{device="local",planned="false"} 2

The same facts by hand: ``journalctl -k | grep -c 'UFW BLOCK'``, ``ausearch -m NETFILTER_CFG``.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import field, replace
from datetime import timedelta
from typing import Literal

from normagent import (
    Batch,
    CollectorSpec,
    Count,
    Event,
    EvtxSettings,
    FileSource,
    JournalSettings,
    MaintenanceCalendar,
    MetricSpec,
    Observation,
    RunContext,
    dataclass,
    evtx_log_collector,
    file_log_collector,
    journal_log_collector,
    LogBlock,
    ParseContext,
    ParseResult,
    TextBlock,
    syslog_log_collector,
)

from .parse import (
    BLOCKED,
    JOURNAL_FIELDS,
    LOCAL,
    MESSAGES,
    OTHER,
    PROTOS,
    RULE_CHANGE_EVENT,
    RULE_CHANGES,
    parse_appliance_lines,
    parse_linux_journal,
    parse_linux_lines,
    parse_pfirewall,
    parse_windows_events,
)

SECTION = "Sikkerhetsbarriere (brannmur)"
MAX_DEVICES = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Device:
    """``[collectors."<name>".devices.<device>]``: what a configured device is known by.

    Attributes:
        senders: Syslog host names, sender addresses (of the receiver's spool) or Windows computer
            names that are this device; compared case-insensitively (a host name also by its first
            label: ``fw01`` matches ``fw01.example.org``).
    """

    senders: tuple[str, ...] = ()


def _check_devices(devices: dict[str, Device]) -> None:
    if len(devices) > MAX_DEVICES:
        raise ValueError(f"at most {MAX_DEVICES} devices, got {len(devices)}")
    for name in devices:
        if not _NAME.match(name) or name in (LOCAL, OTHER):
            raise ValueError(
                f'device name "{name}" must be 1-64 letters, digits, "_", "." or "-", and not "{LOCAL}" or "{OTHER}"'
            )


BLOCKED_SPEC = MetricSpec(
    BLOCKED,
    "counter",
    "Packets or connections the firewall blocked, by device (a configured name, local for this host, "
    "other), direction (in, out, forward, unknown) and protocol (tcp, udp, icmp, icmpv6, other).",
    labels=("device", "direction", "proto"),
    section=SECTION,
)
RULE_CHANGES_SPEC = MetricSpec(
    RULE_CHANGES,
    "counter",
    "Changes of a firewall's rule set or configuration (auditd NETFILTER_CFG, firewalld/ufw reloads, "
    "Windows 4946-4948/2004-2006/2033, FortiGate and Cisco ASA configuration changes), by device, and "
    "whether planned (inside a window or planned change of the maintenance calendar).",
    labels=("device", "planned"),
    section=SECTION,
)
MESSAGES_SPEC = MetricSpec(
    MESSAGES,
    "counter",
    "Syslog messages received from each firewall device (any message, understood or not): a device "
    "whose count stops growing has stopped sending.",
    labels=("device",),
    section=SECTION,
)
LINUX_METRICS = (
    MetricSpec(BLOCKED_SPEC.name, BLOCKED_SPEC.kind, BLOCKED_SPEC.help, BLOCKED_SPEC.labels,
               tuple((LOCAL, d, p) for d in ("in", "out") for p in PROTOS[:3]), SECTION),
    MetricSpec(RULE_CHANGES_SPEC.name, RULE_CHANGES_SPEC.kind, RULE_CHANGES_SPEC.help, RULE_CHANGES_SPEC.labels, ((LOCAL, "false"), (LOCAL, "true")), SECTION),
)
WINDOWS_METRICS = (BLOCKED_SPEC, RULE_CHANGES_SPEC)
APPLIANCE_METRICS = (BLOCKED_SPEC, RULE_CHANGES_SPEC, MESSAGES_SPEC)


Source = Literal["journald", "files"]
LINUX_FILES = ("/var/log/kern.log", "/var/log/audit/audit.log")
LINUX_IDENTIFIERS = ("kernel", "audit", "firewalld", "ufw")


@dataclass(frozen=True, slots=True)
class LinuxSettings:
    """``[collectors."firewall.linux"]``.

    Attributes:
        source: ``"journald"`` (the kernel's, audit's and the firewall services' journal entries)
            or ``"files"`` (kern.log and audit.log); never both, as rsyslog copies the one into the
            other.
        files: The files read with ``source = "files"``.
        journal: What is read with ``source = "journald"``.
        device: The device label of this host's firewall.
        count_service_reloads: Count a firewalld/ufw reload as a rule change. Turn off where
            auditd runs: its NETFILTER_CFG records see every change, reloads included.
    """

    source: Source = "journald"
    files: FileSource = FileSource(paths=LINUX_FILES)
    journal: JournalSettings = JournalSettings(identifiers=LINUX_IDENTIFIERS)
    device: str = LOCAL
    count_service_reloads: bool = True

    def __post_init__(self) -> None:
        if self.source not in ("journald", "files"):
            raise ValueError(f'source must be "journald" or "files", got {self.source!r}')
        if not _NAME.match(self.device):
            raise ValueError(f'device "{self.device}" must be 1-64 letters, digits, "_", "." or "-"')


@dataclass(frozen=True, slots=True)
class WindowsLogSettings:
    """``[collectors."firewall.windows_log"]``.

    Attributes:
        files: The pfirewall.log files (globs), e.g. ``/srv/firewall/*/pfirewall.log``.
        device: The device label of these logs (pfirewall.log names no host): a configured name
            for one server's log, ``other`` for several.
    """

    files: FileSource = FileSource(paths=(), start_at="end")
    device: str = OTHER

    def __post_init__(self) -> None:
        if not _NAME.match(self.device):
            raise ValueError(f'device "{self.device}" must be 1-64 letters, digits, "_", "." or "-"')


@dataclass(frozen=True, slots=True)
class WindowsEventSettings:
    """``[collectors."firewall.windows_events"]``.

    Attributes:
        paths: EVTX files or globs (Security.evtx and the firewall channel's file); none by default.
        devices: Devices by their Windows computer names; others are ``other``.
    """

    paths: tuple[str, ...] = ()
    devices: dict[str, Device] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_devices(self.devices)
        EvtxSettings(paths=self.paths)

    @property
    def evtx(self) -> EvtxSettings:
        return EvtxSettings(
            paths=self.paths,
            channels=("Security", "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall"),
            event_ids=(5152, 5157, 4946, 4947, 4948, 2004, 2005, 2006, 2033),
        )


@dataclass(frozen=True, slots=True)
class ApplianceSettings:
    """``[collectors."firewall.appliances"]``.

    Attributes:
        devices: Devices by the addresses they send from or the host names in their messages,
            e.g. ``devices.edge.senders = ["192.0.2.1", "fw01"]``; others are ``other``.
    """

    devices: dict[str, Device] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_devices(self.devices)


CollectFn = Callable[[RunContext], Iterable[Batch]]


def judge_planned(collect: CollectFn) -> CollectFn:
    """``collect`` with every rule change judged against the run's maintenance calendar."""

    def judged(ctx: RunContext) -> Iterator[Batch]:
        for batch in collect(ctx):
            yield planned_batch(batch, ctx.maintenance)

    return judged


def planned_batch(batch: Batch, calendar: MaintenanceCalendar) -> Batch:
    """The batch with its rule changes planned or not: a change inside a window or a planned
    change of ``calendar`` is planned.

    The parsers count each change once, as ``planned="false"``, and write one
    ``firewall.rule_change`` event for it (with its time and device): the events say which of a
    device's changes were planned, and that many move from ``false`` to ``true``.
    """
    if not any(isinstance(o, Event) and o.kind == RULE_CHANGE_EVENT for o in batch.observations):
        return batch
    changes: Counter[str] = Counter()  # device -> changes counted
    planned: Counter[str] = Counter()  # device -> of them, planned
    kept: list[Observation] = []
    for obs in batch.observations:
        if isinstance(obs, Count) and obs.metric == RULE_CHANGES:
            changes[dict(obs.labels)["device"]] += int(obs.value)
        elif isinstance(obs, Event) and obs.kind == RULE_CHANGE_EVENT:
            inside = calendar.planned_at(obs.at) is not None
            planned[str(obs.attrs.get("device", ""))] += inside
            kept.append(replace(obs, attrs={**obs.attrs, "planned": inside}))
        else:
            kept.append(obs)
    counts: Iterable[Count] = (
        Count(RULE_CHANGES, {"device": device, "planned": label}, n)
        for device, total in sorted(changes.items())
        for label, n in (("true", min(planned[device], total)), ("false", total - min(planned[device], total)))
        if n
    )
    return replace(batch, observations=[*counts, *kept])


def parse_linux(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """The Linux parser for either source: kern.log/audit.log lines or journal entries."""
    if isinstance(block, TextBlock):
        return parse_linux_lines(block, ctx)
    return parse_linux_journal(block, ctx)


_FILES = file_log_collector(
    "firewall.linux",
    help="Blocked packets and rule-set changes from kern.log and audit.log.",
    parser=parse_linux_lines,
    settings=LinuxSettings,
    files=lambda s: s.files,
    metrics=LINUX_METRICS,
)
_JOURNAL = journal_log_collector(
    "firewall.linux",
    help="Blocked packets and rule-set changes from the journal.",
    parser=parse_linux_journal,
    settings=LinuxSettings,
    journal=lambda s: s.journal,
    fields=JOURNAL_FIELDS,
    metrics=LINUX_METRICS,
)


def collect_linux(ctx: RunContext) -> Iterator[Batch]:
    """The configured source; the other one's position is not touched."""
    spec = _JOURNAL if ctx.settings.source == "journald" else _FILES
    return iter(spec.collect(ctx))


LINUX = CollectorSpec(
    name="firewall.linux",
    help="This host's firewall: blocked packets (netfilter/nftables/ufw/firewalld LOG lines) and rule-set changes.",
    collect=judge_planned(collect_linux),
    interval=timedelta(seconds=60),
    timeout=timedelta(seconds=60),
    settings=LinuxSettings,
    metrics=_FILES.metrics,
    parser=parse_linux,
)

WINDOWS_LOG = file_log_collector(
    "firewall.windows_log",
    help="Dropped packets from Windows Firewall logs (pfirewall.log) copied to this host.",
    parser=parse_pfirewall,
    settings=WindowsLogSettings,
    files=lambda s: s.files,
    metrics=WINDOWS_METRICS,
    enabled_by_default=False,
)

_WINDOWS_EVENTS = evtx_log_collector(
    "firewall.windows_events",
    help="WFP drops (5152/5157) and firewall rule changes from Windows event logs (EVTX).",
    parser=parse_windows_events,
    settings=WindowsEventSettings,
    evtx=lambda s: s.evtx,
    metrics=WINDOWS_METRICS,
    enabled_by_default=False,
)

_APPLIANCES = syslog_log_collector(
    "firewall.appliances",
    help="Blocks and configuration changes that firewalls send to the syslog receiver (pfSense/OPNsense, FortiGate, Cisco ASA).",
    parser=parse_appliance_lines,
    settings=ApplianceSettings,
    metrics=APPLIANCE_METRICS,
)

WINDOWS_EVENTS = replace(_WINDOWS_EVENTS, collect=judge_planned(_WINDOWS_EVENTS.collect))
APPLIANCES = replace(_APPLIANCES, collect=judge_planned(_APPLIANCES.collect))

COLLECTORS: tuple[CollectorSpec, ...] = (LINUX, WINDOWS_LOG, WINDOWS_EVENTS, APPLIANCES)
