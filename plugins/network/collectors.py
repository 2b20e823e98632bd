"""The network plugin's collector ``network.snmp``: polls the configured devices over SNMP.

Each device is polled in one SNMP session (see ``normagent.sources.snmp``) with, at most, a walk of
the interface names (``ifName``, else ``ifDescr``) and one GET (split only past the client's
``max_varbinds``) of ``sysUpTime.0``, ``ifNumber``, ``ifTableLastChange``, the named extra OIDs
and each chosen interface's name, ``ifOperStatus``, ``ifLastChange``, ``ifHCIn/OutOctets``, errors
and discards (and a GET of the 32-bit octets where a device has no HC counters). What the walk
chose is kept as a checkpoint (``table:<device>``, ``parse.InterfaceTable``), and the walk is left
out while nothing says the table changed: no restart (sysUpTime), the same ``ifNumber`` and
``ifTableLastChange``, the chosen indices still named as they were, and at most ``rewalk`` (15
minutes) since the walk. An idle poll is thus one request: a request and its answer are most of
an SNMPv3 poll's CPU (BER and USM in pysnmp). SNMPv1 devices are walked on every poll (a v1 GET of
an object the device lacks fails as a whole). A timeout ends the device's poll at once (the device is down; nothing else
is asked). Devices are polled side by side (``parallel`` at a time), and whatever a device does —
never answers, refuses us, sends garbage or a table without end — costs at most its timeout times
its attempts per request and ``max_rows`` rows, becomes ``normagent_snmp_up{device} 0`` with a
reason, and never touches another device or the scheduler. What a poll *means* is decided by the
pure ``parse.judge``; its state per device is a checkpoint committed with the counts it covers.

pysnmp is imported on the first poll only (``ctx.snmp`` is a lazy client): with no device
configured the collector reports "no data" and the agent never loads it.

Exposition, e.g.::

    normagent_snmp_up{device="router"} 1
    normagent_network_interface_up{device="router",interface="ge-0/0/1"} 0
    normagent_network_interface_bytes_total{device="router",direction="in",interface="ge-0/0/1"} 7.3e+11

By hand: ``snmpget -v3 -l authPriv -u <user> -a SHA -A … -x AES -X … router 1.3.6.1.2.1.1.3.0``.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeGuard

from normagent import (
    Batch,
    Checkpoint,
    CollectorSpec,
    MetricSpec,
    NoData,
    Observation,
    RunContext,
    SnmpAuth,
    SnmpAuthError,
    SnmpError,
    SnmpTimeout,
    SnmpTooManyRows,
    dataclass,
    split_host_port,
)

from .parse import (
    DEVICE_DOWN,
    DEVICE_RESTARTS,
    DEVICE_UPTIME,
    IF_BYTES,
    IF_DISCARDS,
    IF_DOWN,
    IF_ERRORS,
    IF_UP,
    OID_VALUE,
    POLL_DURATION,
    POLL_FAILURES,
    SNMP_UP,
    DevicePoll,
    MIN_SLACK,
    DeviceState,
    InterfaceSample,
    InterfaceTable,
    clean_name,
    judge,
)

SECTION = "Nettleverandør"

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_TABLE_LAST_CHANGE = "1.3.6.1.2.1.31.1.5.0"  # IF-MIB: sysUpTime of the last row added, removed or renamed
# column -> (state key, 64-bit?)
IF_COLUMNS: Mapping[str, str] = {
    "oper": "1.3.6.1.2.1.2.2.1.8",
    "last_change": "1.3.6.1.2.1.2.2.1.9",
    "in_octets": "1.3.6.1.2.1.31.1.1.1.6",  # ifHCInOctets
    "out_octets": "1.3.6.1.2.1.31.1.1.1.10",  # ifHCOutOctets
    "in_discards": "1.3.6.1.2.1.2.2.1.13",
    "in_errors": "1.3.6.1.2.1.2.2.1.14",
    "out_discards": "1.3.6.1.2.1.2.2.1.19",
    "out_errors": "1.3.6.1.2.1.2.2.1.20",
}
OCTETS_32 = {"in_octets": "1.3.6.1.2.1.2.2.1.10", "out_octets": "1.3.6.1.2.1.2.2.1.16"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
OID = re.compile(r"^[0-2](\.(0|[1-9]\d{0,9})){1,127}$")

Version = Literal["1", "2c", "3"]
AuthProtocol = Literal["none", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["none", "DES", "3DES", "AES", "AES192", "AES256"]


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True)
class Device:
    """One SNMP device (``[[collectors."network.snmp".devices]]``).

    Attributes:
        name: The device's label in metrics (letters, digits, ``_ . : -``; at most 64).
        target: ``host``, ``host:port`` or ``[IPv6]:port`` of its SNMP agent (port 161 by default); a name is sent to over IPv4 if it has an IPv4 address.
        version: ``"2c"`` (community), ``"3"`` (user: authPriv with SHA and AES is what a router
            should be given) or ``"1"``.
        community: The community (v1, v2c). Keep this file readable by root and normagent only.
        user: The SNMPv3 user.
        auth_protocol: SNMPv3 authentication: ``"SHA"`` (the SHA-2 family too), ``"MD5"`` or ``"none"``.
        auth_key: SNMPv3 authentication passphrase (at least 8 characters).
        priv_protocol: SNMPv3 privacy: ``"AES"`` (``AES192``, ``AES256``: the key extended as Cisco does, net-snmp's ``AES-192-C`` / ``AES-256-C``), ``"DES"``, ``"3DES"`` or ``"none"``.
        priv_key: SNMPv3 privacy passphrase (at least 8 characters).
        interfaces: Interfaces to watch, by ``ifName`` (else ``ifDescr``): names or globs
            (``"ge-0/0/*"``, ``"*"``); none: only the device itself.
        oids: Extra numeric values to read, ``name = "1.3.6.1…"`` (a temperature, a CPU load);
            exported as ``normagent_snmp_oid_value{device,name}``.
        timeout: Time to wait for each answer.
        retries: Extra attempts per request after a timeout.
        max_interfaces: Interfaces exported at most (the first by ifIndex); more matching ones are
            logged and left out.
        max_rows: Rows a walk of the interface names may return; a longer table is a device error
            (``too_many_rows``).
        rewalk: Longest time between walks of the interface names (0: walk on every poll). Between
            walks a poll reads the chosen interfaces' names with their counters and walks again
            when sysUpTime, ifNumber, ifTableLastChange or a name says the table changed; an
            interface renamed into ``interfaces`` where none of those shows it is seen within this.
    """

    name: str = ""
    target: str = ""
    version: Version = "2c"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: AuthProtocol = "SHA"
    auth_key: str = field(default="", repr=False)
    priv_protocol: PrivProtocol = "AES"
    priv_key: str = field(default="", repr=False)
    interfaces: tuple[str, ...] = ()
    oids: dict[str, str] = field(default_factory=dict)
    timeout: timedelta = field(default=timedelta(seconds=2), metadata={"min": timedelta(milliseconds=100), "max": timedelta(seconds=60)})
    retries: int = field(default=1, metadata={"min": 0, "max": 5})
    max_interfaces: int = field(default=64, metadata={"min": 1, "max": 1000})
    max_rows: int = field(default=5000, metadata={"min": 10, "max": 100_000})
    rewalk: timedelta = field(default=timedelta(minutes=15), metadata={"min": timedelta(0), "max": timedelta(days=1)})

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: 1 to 64 letters, digits or _ . : - (it is a label value)")
        if not self.target.strip():
            raise ValueError(f"device {self.name}: target is required (host, host:port or [IPv6]:port)")
        try:
            split_host_port(self.target, 161)
        except ValueError as exc:
            raise ValueError(f"device {self.name}: target {self.target!r}: {exc}") from None
        if self.version not in ("1", "2c", "3"):
            raise ValueError(f'device {self.name}: version must be "1", "2c" or "3"')
        if self.version == "3":
            if not self.user:
                raise ValueError(f"device {self.name}: SNMPv3 needs a user")
            if self.priv_protocol != "none" and self.auth_protocol == "none":
                raise ValueError(f"device {self.name}: SNMPv3 privacy needs authentication too")
            for key, protocol, value in (("auth_key", self.auth_protocol, self.auth_key), ("priv_key", self.priv_protocol, self.priv_key)):
                if protocol != "none" and len(value) < 8:
                    raise ValueError(f"device {self.name}: {key} must be at least 8 characters (RFC 3414)")
        for label, oid in self.oids.items():
            if not NAME.match(label):
                raise ValueError(f"device {self.name}: OID name {label!r} is not a valid label value")
            if not OID.match(oid):
                raise ValueError(f"device {self.name}: {oid!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0")

    def auth(self) -> SnmpAuth:
        if self.version == "3":
            return SnmpAuth(
                version="3", community="", user=self.user,
                auth_protocol=self.auth_protocol, auth_key=self.auth_key if self.auth_protocol != "none" else "",
                priv_protocol=self.priv_protocol, priv_key=self.priv_key if self.priv_protocol != "none" else "",
            )
        return SnmpAuth(version=self.version, community=self.community)


@dataclass(frozen=True, slots=True)
class SnmpSettings:
    """``[collectors."network.snmp"]``.

    Attributes:
        devices: The devices to poll; none: the collector reports "no data" (and pysnmp is never
            loaded).
        parallel: Devices polled at the same time.
    """

    devices: tuple[Device, ...] = ()
    parallel: int = field(default=4, metadata={"min": 1, "max": 32})

    def __post_init__(self) -> None:
        names = [d.name for d in self.devices]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"devices: the name {twice[0]!r} is used twice")


# --------------------------------------------------------------------------------------------
# Polling (I/O through ctx.snmp)


def poll_device(client: Any, device: Device, log: Any, clock: Any, table: InterfaceTable | None = None) -> DevicePoll:
    """Poll one device; never raises (a failure is a ``DevicePoll`` with ``ok=False`` and a reason).

    ``table`` is what the last walk of the interface names chose (its checkpoint): while it may
    stand (``_may_skip_walk``) and the GET's answers say it holds (``_table_holds``), an idle poll
    is that one GET; otherwise the names are walked and asked again. The poll's ``table`` is the
    one to keep (``None``: walk on the next poll).
    """
    started = time.perf_counter()
    try:
        with client.session(device.target, auth=device.auth(), timeout=device.timeout.total_seconds(), retries=device.retries) as session:
            if not device.interfaces:
                answers, uptime_at = _get_all(session, device, None, clock)
                return _read(session, device, None, answers, uptime_at, started, keep=None)
            if table is not None and _may_skip_walk(device, table, clock.now().timestamp()):
                answers, uptime_at = _get_all(session, device, table, clock)
                if _table_holds(table, answers, uptime_at, time.perf_counter() - started):
                    return _read(session, device, table, answers, uptime_at, started, keep=table)
            walked = _chosen_interfaces(session, device, log)
            answers, uptime_at = _get_all(session, device, walked, clock)
            keep = _new_table(device, walked, answers, uptime_at, time.perf_counter() - started)
            return _read(session, device, walked, answers, uptime_at, started, keep=keep)
    except SnmpError as exc:
        reason = (
            "timeout" if isinstance(exc, SnmpTimeout)
            else "auth" if isinstance(exc, SnmpAuthError)
            else "too_many_rows" if isinstance(exc, SnmpTooManyRows)
            else "error"
        )
        return DevicePoll(ok=False, reason=reason, detail=str(exc), duration=time.perf_counter() - started)
    except ValueError as exc:  # credentials pysnmp cannot use; config checks make this rare
        return DevicePoll(ok=False, reason="error", detail=str(exc), duration=time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class _Walked:
    """What a walk of the interface names chose (see ``InterfaceTable``)."""

    column: str
    chosen: tuple[tuple[str, int], ...]
    bad: int


# The head of every poll's GET: sysUpTime, then what says the interface table changed.
HEAD = (SYS_UPTIME, IF_NUMBER, IF_TABLE_LAST_CHANGE)


def _get_all(session: Any, device: Device, table: InterfaceTable | _Walked | None, clock: Any) -> tuple[list[Any], datetime]:
    """One GET (split only past ``max_varbinds``: a request and its answer are most of an SNMPv3
    poll's CPU) of sysUpTime, ifNumber and ifTableLastChange (with interfaces; SNMPv1 answers an
    absent one with an error, so not there), the extra OIDs, and each chosen interface's name in
    ``table.column`` followed by its ``IF_COLUMNS``."""
    oids = [*_head(device), *device.oids.values()]
    if table is not None:
        for _, index in table.chosen:
            oids += [f"{table.column}.{index}", *(f"{IF_COLUMNS[column]}.{index}" for column in IF_COLUMNS)]
    answers = session.get(oids)
    return answers, clock.now()


def _head(device: Device) -> tuple[str, ...]:
    """What a poll's GET asks first: sysUpTime, and with interfaces ifNumber and ifTableLastChange
    (not of SNMPv1, which answers an absent object with an error for the whole request)."""
    return HEAD if device.interfaces and device.version != "1" else (SYS_UPTIME,)


def _may_skip_walk(device: Device, table: InterfaceTable, now: float) -> bool:
    """Whether ``table`` may stand for a walk before anything is asked: made for these settings,
    younger than ``rewalk`` (an interface renamed into the patterns on an index not chosen is seen
    within that bound), on a device that can be asked ifTableLastChange (not SNMPv1)."""
    return (
        device.version != "1"
        and table.patterns == device.interfaces
        and table.max_interfaces == device.max_interfaces
        and 0 <= now - table.walked_at < device.rewalk.total_seconds()
    )


def _table_holds(table: InterfaceTable, answers: list[Any], uptime_at: datetime, duration: float) -> bool:
    """Whether the GET's answers say nothing changed since the walk: the device did not restart
    (its boot time moved by less than the poll's uncertainty), ifNumber and ifTableLastChange are
    as they were, and every chosen index still has its name."""
    uptime, number, last_change = (vb.value for vb in answers[: len(HEAD)])
    if not _is_int(uptime) or abs(uptime_at.timestamp() - uptime / 100 - table.boot) > max(MIN_SLACK, 2 * duration):
        return False
    if _int_or_none(number) != table.number or _int_or_none(last_change) != table.last_change:
        return False
    return _names(table, answers) == [name for name, _ in table.chosen]


def _new_table(device: Device, walked: _Walked, answers: list[Any], uptime_at: datetime, duration: float) -> InterfaceTable | None:
    """The table to keep after a walk; ``None`` (walk again next time) when the GET after it says
    the table may have changed under the walk: ifTableLastChange is within the
    poll's uncertainty of now (sysUpTime), so the ifNumber and ifTableLastChange the table keeps
    may be newer than the names the walk read."""
    if device.version == "1":
        return None
    uptime, number, last_change = (vb.value for vb in answers[: len(HEAD)])
    if not _is_int(uptime):
        return None
    last_change = _int_or_none(last_change)
    if last_change and uptime - last_change <= 100 * max(MIN_SLACK, 2 * duration):  # 0: no change since the agent started
        return None
    return InterfaceTable(
        column=walked.column, chosen=walked.chosen, bad=walked.bad, walked_at=uptime_at.timestamp(),
        boot=uptime_at.timestamp() - uptime / 100, number=_int_or_none(number), last_change=last_change,
        patterns=device.interfaces, max_interfaces=device.max_interfaces,
    )


def _names(table: InterfaceTable, answers: list[Any]) -> list[str | None]:
    """The chosen interfaces' names in the GET's answers (after the head and the extra OIDs)."""
    start = len(answers) - len(table.chosen) * (1 + len(IF_COLUMNS))
    return [clean_name(vb.value) for vb in answers[start :: 1 + len(IF_COLUMNS)]]


def _read(
    session: Any, device: Device, table: InterfaceTable | _Walked | None, answers: list[Any], uptime_at: datetime,
    started: float, *, keep: InterfaceTable | None,
) -> DevicePoll:
    """The poll from the GET's ``answers`` (``_get_all``) for the interfaces ``table`` chose."""
    chosen = table.chosen if table is not None else ()
    bad = table.bad if table is not None else 0  # the walk's unusable rows, on every poll as before
    head = len(_head(device))
    uptime = answers[0].value if answers else None
    if not _is_int(uptime):
        bad += 1
        uptime = None
    values: dict[str, float] = {}
    for name, vb in zip(device.oids, answers[head : head + len(device.oids)], strict=False):
        number = _number(vb.value)
        if number is None:
            bad += 1
        else:
            values[name] = number
    samples: tuple[InterfaceSample, ...] = ()
    if chosen:
        width = 1 + len(IF_COLUMNS)
        rows = answers[head + len(device.oids) :]
        columns = [vb for pos in range(len(chosen)) for vb in rows[pos * width + 1 : (pos + 1) * width]]
        samples, extra_bad = _samples(session, list(chosen), columns)
        bad += extra_bad
    return DevicePoll(
        ok=True,
        reason="bad_response" if bad else "",
        uptime=uptime,
        uptime_at=uptime_at,
        interfaces=samples,
        values=values,
        bad_values=bad,
        duration=time.perf_counter() - started,
        table=keep,
    )


def _chosen_interfaces(session: Any, device: Device, log: Any) -> _Walked:
    """The device's interfaces that match ``device.interfaces`` as (name, ifIndex), by ifIndex, at
    most ``max_interfaces``; and the count of rows that were not a usable name."""
    bad = 0
    column = IF_NAME
    rows = session.walk(IF_NAME, max_rows=device.max_rows)
    if not rows:
        column = IF_DESCR
        rows = session.walk(IF_DESCR, max_rows=device.max_rows)
    chosen: dict[str, int] = {}
    for vb in rows:
        index = _index(vb.oid)
        name = clean_name(vb.value)
        if index is None or name is None:
            bad += 1
            continue
        if name not in chosen and any(fnmatch.fnmatchcase(name, pattern) for pattern in device.interfaces):
            chosen[name] = index
    ordered = sorted(chosen.items(), key=lambda item: item[1])
    if len(ordered) > device.max_interfaces:
        log.warning("snmp_interfaces_capped", device=device.name, matching=len(ordered), kept=device.max_interfaces)
        ordered = ordered[: device.max_interfaces]
    return _Walked(column, tuple(ordered), bad)


def _samples(session: Any, ordered: list[tuple[str, int]], answers: list[Any]) -> tuple[tuple[InterfaceSample, ...], int]:
    """The chosen interfaces' samples from their columns' ``answers`` (``IF_COLUMNS`` per interface,
    in order); 32-bit octets are read where the device has no HC counters."""
    bad = 0
    width = len(IF_COLUMNS)
    samples: list[InterfaceSample] = []
    narrow: list[tuple[int, str]] = []  # (position in samples, counter) to read as 32-bit
    for pos, (name, index) in enumerate(ordered):
        got = dict(zip(IF_COLUMNS, (vb.value for vb in answers[pos * width : (pos + 1) * width]), strict=False))
        oper = got.get("oper")
        if not (_is_int(oper) and 1 <= oper <= 7):
            bad += 1
            oper = None
        last_change = got.get("last_change") if _is_int(got.get("last_change")) else None
        counters: dict[str, int] = {}
        for key in ("in_octets", "out_octets", "in_discards", "in_errors", "out_discards", "out_errors"):
            value = got.get(key)
            if _is_int(value) and value >= 0:
                counters[key] = int(value)
            elif value is None and key in OCTETS_32:
                narrow.append((pos, key))
            else:
                bad += 1
        samples.append(InterfaceSample(name, index, oper, last_change, counters, frozenset(k for k in ("in_octets", "out_octets") if k in counters)))
    if narrow:
        # No HC counters (an old or small device): the 32-bit octets, which wrap.
        values = session.get([f"{OCTETS_32[key]}.{samples[pos].index}" for pos, key in narrow])
        for (pos, key), vb in zip(narrow, values, strict=False):
            if _is_int(vb.value) and vb.value >= 0:
                samples[pos].counters[key] = int(vb.value)
            else:
                bad += 1
    return tuple(samples), bad


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_int(value: object) -> TypeGuard[int]:
    """An SNMP integer: ``bool`` is an ``int`` to Python, never to SNMP."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> float | None:
    """An OID's answer as a number; None for what is none. Text is read as a decimal number, but
    "nan" and "inf", which ``float`` takes, are no measurement (a sensor unplugged): a NaN gauge
    made the ledger refuse the whole batch (SQLite stores NaN as NULL), every device's."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, bytes) and len(value) <= 32:
        try:
            number = float(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _index(oid: str) -> int | None:
    last = oid.rsplit(".", 1)[-1]
    return int(last) if last.isdigit() and len(last) <= 10 else None


# --------------------------------------------------------------------------------------------
# The collector


def collect_snmp(ctx: RunContext) -> Iterator[Batch]:
    """Poll every device (one alone on this thread, several ``parallel`` at a time) and commit all
    of them in one batch.

    One batch, because a batch's gauges replace the collector's earlier series of the same metric:
    the devices' ``normagent_snmp_up`` must be set together. A device that cannot be polled before
    the run's deadline is reported as timed out.
    """
    settings: SnmpSettings = ctx.settings
    if not settings.devices:
        raise NoData("no SNMP devices configured")
    observations: list[Observation] = []
    checkpoints: list[Checkpoint] = []
    tables = {d.name: InterfaceTable.from_json(ctx.state.get(f"table:{d.name}")) for d in settings.devices}
    if len(settings.devices) == 1 or settings.parallel == 1:
        polls = _poll_in_turn(ctx, settings.devices, tables)
    else:
        polls = _poll_side_by_side(ctx, settings.devices, settings.parallel, tables)
    now = ctx.clock.now()
    for device in settings.devices:
        poll = polls[device.name]
        if poll.table != tables[device.name]:
            checkpoints.append(Checkpoint(f"table:{device.name}", poll.table.to_json() if poll.table is not None else None))
        key = f"device:{device.name}"
        state = DeviceState.from_json(ctx.state.get(key))
        obs, state = judge(device.name, poll, state, now)
        observations += obs
        checkpoints.append(Checkpoint(key, state.to_json()))
        if poll.ok and not poll.bad_values:
            ctx.log.debug("snmp_poll_ok", device=device.name, interfaces=len(poll.interfaces), duration_s=round(poll.duration, 3))
        else:
            ctx.log.warning("snmp_poll_failed", device=device.name, reason=poll.reason, detail=poll.detail, bad_values=poll.bad_values)
    yield Batch(observations, checkpoints)


LATE = DevicePoll(ok=False, reason="timeout", detail="the run's deadline came first")


def _poll_in_turn(ctx: RunContext, devices: tuple[Device, ...], tables: dict[str, InterfaceTable | None]) -> dict[str, DevicePoll]:
    """One device after the other on the collector's own thread (no pool: a thread costs memory).

    A device that could not outlast the run's deadline (its timeout times its attempts) is not
    started and counts as late.
    """
    polls: dict[str, DevicePoll] = {}
    for device in devices:
        remaining = _remaining(ctx)
        worst = device.timeout.total_seconds() * (device.retries + 1)
        polls[device.name] = LATE if remaining is not None and remaining < worst else poll_device(ctx.snmp, device, ctx.log, ctx.clock, tables[device.name])
    return polls


def _poll_side_by_side(
    ctx: RunContext, devices: tuple[Device, ...], parallel: int, tables: dict[str, InterfaceTable | None]
) -> dict[str, DevicePoll]:
    """``parallel`` devices at a time; one not done shortly before the run's deadline counts as late
    (its thread ends within its own timeout, and its answer is dropped)."""
    pool = ThreadPoolExecutor(max_workers=min(parallel, len(devices)), thread_name_prefix="snmp")
    try:
        futures: dict[Future[DevicePoll], Device] = {pool.submit(poll_device, ctx.snmp, d, ctx.log, ctx.clock, tables[d.name]): d for d in devices}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_remaining(ctx), return_when=FIRST_COMPLETED)
            if not done:
                break
        return {futures[f].name: (f.result() if f.done() else LATE) for f in futures}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _remaining(ctx: RunContext) -> float | None:
    if ctx.deadline == float("inf"):
        return None
    return max(0.0, 0.9 * (ctx.deadline - ctx.clock.monotonic()))


def _spec(name: str, kind: Literal["counter", "gauge"], help: str, labels: tuple[str, ...]) -> MetricSpec:
    return MetricSpec(name, kind, help, labels=labels, section=SECTION)


METRICS = (
    _spec(SNMP_UP, "gauge", "1 if the device's last SNMP poll succeeded with usable values, 0 if not (the reason is in normagent_snmp_poll_failures_total and the log).", ("device",)),
    _spec(POLL_FAILURES, "counter", "Failed or partly failed SNMP polls, by reason: timeout (no answer: the device counts as down), auth, error, too_many_rows, bad_response (values of the wrong type).", ("device", "reason")),
    _spec(POLL_DURATION, "gauge", "Seconds the device's last SNMP poll took.", ("device",)),
    _spec(OID_VALUE, "gauge", "Value of a named extra OID from the configuration (the unit is the device's).", ("device", "name")),
    _spec(DEVICE_UPTIME, "gauge", "Seconds since the device's SNMP agent started (sysUpTime).", ("device",)),
    _spec(DEVICE_RESTARTS, "counter", "Restarts of the device (its sysUpTime went back).", ("device",)),
    _spec(DEVICE_DOWN, "counter", "Seconds the device did not answer SNMP polls (network downtime as seen from this host).", ("device",)),
    _spec(IF_UP, "gauge", "1 if the interface's ifOperStatus is up, else 0.", ("device", "interface")),
    _spec(IF_BYTES, "counter", "Bytes through the interface (ifHCIn/OutOctets, or the 32-bit counters where the device has no others).", ("device", "interface", "direction")),
    _spec(IF_ERRORS, "counter", "Packets with errors on the interface (ifIn/OutErrors).", ("device", "interface", "direction")),
    _spec(IF_DISCARDS, "counter", "Packets discarded by the interface (ifIn/OutDiscards).", ("device", "interface", "direction")),
    _spec(IF_DOWN, "counter", "Seconds the interface was not up (ifOperStatus), from its ifLastChange.", ("device", "interface")),
)

SNMP = CollectorSpec(
    name="network.snmp",
    help="Network devices over SNMP: reachability, restarts, interface status, traffic, errors.",
    collect=collect_snmp,
    interval=timedelta(minutes=1),
    timeout=timedelta(seconds=50),
    settings=SnmpSettings,
    metrics=METRICS,
)

COLLECTORS: tuple[CollectorSpec, ...] = (SNMP,)
