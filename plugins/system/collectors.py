"""The system plugin's collectors: host gauges (``system.host``) and boot history (``system.boots``).

Both do their I/O only through the ``RunContext``: ``ctx.host`` for the host's facts, ``ctx.root`` for
files (``<root>/var/log/wtmp``, ``<root>/var/lib/wtmpdb/wtmp.db``), ``ctx.run_command`` for
``journalctl``, ``ctx.clock`` for "now" and ``ctx.state`` for checkpoints. Interpreting what they
read is left to the pure functions of ``parse.py``.

``system.boots`` judges every boot exactly once, across runs and restarts: its checkpoint keeps the
time of the last boot judged (and, for wtmp, the byte offset read so far together with what is
known about the boot in progress), and it is committed in the same batch as the counts and events
of the boots it covers.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import os
import sqlite3
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from normagent import digests
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
    NoMaintenance,
    Observation,
    RunContext,
    dataclass,
)

from .parse import (
    TAIL_FIELDS,
    TAIL_MATCHES,
    WTMP_RECORD_SIZE,
    Boot,
    BootCarry,
    JournalBoot,
    WtmpdbRow,
    boots_from_wtmpdb,
    fold_wtmp,
    judge_journal_boot,
    parse_list_boots,
    parse_wtmp,
    scan_boot_tail,
)

SECTION = "Driftsstatus"

# Metric names, one place: collectors, rules, the report section and the tests use these.
BOOT_TIME = "normagent_boot_time_seconds"
CPU_SECONDS = "normagent_cpu_seconds_total"
CPUS = "normagent_cpus"
LOAD = "normagent_load_average_tasks"
MEMORY_TOTAL = "normagent_memory_total_bytes"
MEMORY_AVAILABLE = "normagent_memory_available_bytes"
MEMORY_AVAILABLE_RATIO = "normagent_memory_available_ratio"
SWAP_TOTAL = "normagent_swap_total_bytes"
SWAP_FREE = "normagent_swap_free_bytes"
FS_SIZE = "normagent_filesystem_size_bytes"
FS_AVAIL = "normagent_filesystem_avail_bytes"
FS_FREE = "normagent_filesystem_free_bytes"
FS_AVAIL_RATIO = "normagent_filesystem_avail_ratio"
FS_UP = "normagent_filesystem_up"
BOOTS = "normagent_boots_total"
UNEXPECTED_SHUTDOWNS = "normagent_unexpected_shutdowns_total"
DOWNTIME = "normagent_downtime_seconds_total"
BOOT_RECORDS_INVALID = "normagent_boot_records_invalid_total"
BOOT_EVENT = "system.boot"

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
EVIDENCE = ("wtmp", "wtmpdb", "journald")

SWITCH_SLACK = 300.0  # seconds: the same boot as seen by two sources differs by a few seconds
FUTURE_SLACK = 300.0  # a boot dated later than now + this is logged: the clock was wrong at boot
WTMP_CHUNK = WTMP_RECORD_SIZE * 8192  # ~3 MiB per read: bounded memory on a years-old wtmp
TAIL_LINES = 100
JOURNALCTL_TIMEOUT = 30.0

EvidenceChoice = Literal["auto", "journald", "wtmpdb", "wtmp"]


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True)
class HostSettings:
    """``[collectors."system.host"]``.

    Attributes:
        mounts: Paths whose filesystem is reported (``normagent_filesystem_*{mountpoint}``); the
            label is the path as written here. A path that is not a mount point reports the
            filesystem that holds it.
    """

    mounts: tuple[str, ...] = ("/",)

    def __post_init__(self) -> None:
        for mount in self.mounts:
            if not mount.startswith("/"):
                raise ValueError(f"mounts: {mount!r} is not an absolute path")
        if len(set(self.mounts)) != len(self.mounts):
            raise ValueError("mounts: a path is listed twice")


@dataclass(frozen=True, slots=True)
class BootSettings:
    """``[collectors."system.boots"]``.

    Attributes:
        evidence: Where boot history comes from. ``auto`` takes the first that exists: a persistent
            journal (``/var/log/journal``), wtmpdb (Debian 13+), ``/var/log/wtmp``.
        wtmp: The wtmp file; its rotated predecessor ``<wtmp>.1`` is read on the first run.
        wtmpdb: wtmpdb's SQLite database.
        journal_directory: Read this journal directory (``journalctl --directory``) instead of the
            system journal, e.g. a host's journal mounted into a container.
        backfill: On the first run, boots this far back are judged (and reported); older ones are
            only marked as seen.
    """

    evidence: EvidenceChoice = "auto"
    wtmp: Path = Path("/var/log/wtmp")
    wtmpdb: Path = Path("/var/lib/wtmpdb/wtmp.db")
    journal_directory: Path | None = None
    backfill: timedelta = field(default=timedelta(days=31), metadata={"min": timedelta(0), "max": timedelta(days=400)})

    def __post_init__(self) -> None:
        if self.backfill < timedelta(0):
            raise ValueError("backfill: must not be negative")


def under_root(root: Path, path: Path | str) -> Path:
    """``path`` (absolute, as on the host) inside ``root``: ``/var/log/wtmp`` → ``<root>/var/log/wtmp``."""
    p = Path(path)
    return root / p.relative_to("/") if p.is_absolute() else root / p


# --------------------------------------------------------------------------------------------
# system.host


def probe_host(ctx: RunContext) -> str | None:
    """Disable ``system.host`` with a reason when the boot time cannot be read at all."""
    try:
        ctx.host.boot_time()
    except OSError as exc:
        return str(exc)
    return None


def collect_host(ctx: RunContext) -> Iterator[Batch]:
    """Boot time, CPU seconds, load, memory and the configured filesystems.

    Exposition, e.g.::

        normagent_boot_time_seconds 1.7951508e+09
        normagent_filesystem_avail_bytes{mountpoint="/"} 6.4e+10

    By hand: ``grep btime /proc/stat``, ``free -b``, ``df -B1 /``.

    CPU seconds are a counter kept by the ledger: each run adds what the kernel counted since the
    last run (checkpoint ``cpu``), and after a reboot what it counted since boot, so the counter
    survives both agent restarts and reboots.
    """
    settings: HostSettings = ctx.settings
    boot = ctx.host.boot_time()
    observations: list[Observation] = [Gauge(BOOT_TIME, boot), Gauge(CPUS, ctx.host.cpu_count())]

    one, five, fifteen = ctx.host.load_average()
    observations += [
        Gauge(LOAD, one, {"window": "1m"}),
        Gauge(LOAD, five, {"window": "5m"}),
        Gauge(LOAD, fifteen, {"window": "15m"}),
    ]

    mem = ctx.host.memory()
    total, available = mem["total"], mem["available"]
    observations += [Gauge(MEMORY_TOTAL, total), Gauge(MEMORY_AVAILABLE, available)]
    if total > 0:
        observations.append(Gauge(MEMORY_AVAILABLE_RATIO, available / total))
    swap_total = mem.get("swap_total", 0.0)
    swap_free = mem.get("swap_free", swap_total - mem.get("swap_used", 0.0))
    observations += [Gauge(SWAP_TOTAL, swap_total), Gauge(SWAP_FREE, swap_free)]

    for mount in settings.mounts:
        observations += _filesystem(ctx, mount)

    counts, cpu_checkpoint = cpu_increments(ctx.state.get("cpu"), boot, ctx.host.cpu_seconds())
    observations += counts
    yield Batch(observations, [Checkpoint("cpu", cpu_checkpoint)])


def _filesystem(ctx: RunContext, mount: str) -> list[Observation]:
    labels = {"mountpoint": mount}
    try:
        usage = ctx.host.disk_usage(str(under_root(ctx.root, mount)))
    except OSError as exc:
        # As node_exporter's node_filesystem_device_error: the series says "cannot tell", the log why.
        ctx.log.warning("filesystem_unreadable", mountpoint=mount, error=type(exc).__name__, detail=exc.strerror)
        return [Gauge(FS_UP, 0, labels)]
    size, used, avail = usage["total"], usage["used"], usage["free"]
    out: list[Observation] = [
        Gauge(FS_UP, 1, labels),
        Gauge(FS_SIZE, size, labels),
        Gauge(FS_AVAIL, avail, labels),
        Gauge(FS_FREE, max(size - used, 0.0), labels),
    ]
    if size > 0:
        out.append(Gauge(FS_AVAIL_RATIO, avail / size, labels))
    return out


def cpu_increments(previous: Any, boot: float, current: Any) -> tuple[list[Count], dict[str, Any]]:
    """Counter increments for ``normagent_cpu_seconds_total`` and the next ``cpu`` checkpoint.

    Same boot as the checkpoint: add what grew since (a mode that went backwards, as ``idle`` and
    ``iowait`` do on some kernels, adds nothing and keeps its high-water mark so the dip is not
    counted twice when it recovers). New boot or no checkpoint: add everything since boot.
    """
    seconds = {mode: float(current[mode]) for mode in CPU_MODES if mode in current}
    same_boot = isinstance(previous, dict) and _number(previous.get("boot")) == boot
    before: dict[str, Any] = previous.get("seconds", {}) if same_boot and isinstance(previous, dict) else {}
    counts: list[Count] = []
    marks: dict[str, float] = {}
    for mode, value in seconds.items():
        last = _number(before.get(mode)) if isinstance(before, dict) else None
        delta = value if last is None else value - last
        if delta > 0:
            counts.append(Count(CPU_SECONDS, {"mode": mode}, delta))
        marks[mode] = value if last is None else max(value, last)
    return counts, {"boot": boot, "seconds": marks}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------------------------
# system.boots


@dataclass(frozen=True, slots=True)
class BootRead:
    """What one evidence source yielded in a run.

    ``complete`` is False when reading stopped early (deadline, a failing tail query); the boots
    read so far are still committed, and the next run goes on from there. ``incremental`` is True
    when the source was read on from a byte offset (wtmp after its first run): every boot in it is
    new by construction, whatever its date, so a boot stamped by a wrong clock still counts.
    """

    evidence: str
    boots: Sequence[Boot]
    invalid: int = 0
    checkpoint: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    problem: str = ""
    incremental: bool = False


class EvidenceUnavailable(Exception):
    """A boot-history source exists but cannot be read (permissions, a failing journalctl)."""


class EvidenceEmpty(Exception):
    """A boot-history source exists but holds no boot yet (an empty journal directory)."""


def collect_boots(ctx: RunContext) -> Iterator[Batch]:
    """Judge new boots: orderly (after a clean shutdown) or unexpected, planned (inside a window of
    the maintenance calendar) or not, with their downtime.

    Exposition, e.g.::

        normagent_unexpected_shutdowns_total{evidence="journald"} 1
        normagent_downtime_seconds_total{planned="false"} 21600

    By hand: ``last -x reboot shutdown`` (wtmp/wtmpdb) or ``journalctl --list-boots``.

    Raises:
        NoData: ``evidence = "auto"`` and the host has no boot history at all.
        EvidenceUnavailable: the chosen source exists but could not be read.
    """
    settings: BootSettings = ctx.settings
    now = ctx.clock.now().timestamp()
    saved = ctx.state.get("boots")
    saved = saved if isinstance(saved, dict) else {}

    read = _read_evidence(ctx, settings, saved, now)
    previous_evidence = saved.get("evidence")
    watermark = _number(saved.get("judged_until"))
    if watermark is None:
        watermark = now - settings.backfill.total_seconds()
    log = ctx.log.bind(evidence=read.evidence)
    if previous_evidence != read.evidence:
        log.info("boot_evidence_chosen", previous=previous_evidence)
    # A boot seen before through another source shows up again a few seconds apart.
    threshold = watermark + (SWITCH_SLACK if previous_evidence not in (None, read.evidence) else 0.0)

    # Boots dated after "now" (a clock that was wrong at boot) are judged at once but cannot move
    # the watermark into the future, or later boots would be skipped; their keys are kept instead.
    ahead = _ahead(saved.get("ahead")) if previous_evidence == read.evidence else {}
    observations: list[Observation] = []
    judged_until = watermark
    for boot in read.boots:
        if boot.at <= threshold and not read.incremental:
            continue
        if boot.key in ahead:
            judged_until = max(judged_until, min(boot.at, now))  # its date has been reached, maybe
            continue
        if boot.at > now + FUTURE_SLACK:
            log.warning("boot_dated_in_future", boot_at=_iso(boot.at))
            ahead[boot.key] = boot.at
        judged = boot_observations(boot, ctx.maintenance)
        observations += judged
        judged_until = max(judged_until, min(boot.at, now))
        log.info(
            "boot_judged",
            boot_at=_iso(boot.at),
            orderly=boot.orderly,
            planned=next((o.attrs["planned"] for o in judged if isinstance(o, Event)), None),
            downtime_s=None if boot.downtime is None else round(boot.downtime),
        )
    if read.invalid:
        observations.append(Count(BOOT_RECORDS_INVALID, {"evidence": read.evidence}, read.invalid))
        log.warning("boot_records_invalid", records=read.invalid)

    checkpoint: dict[str, Any] = {"evidence": read.evidence, "judged_until": judged_until, **read.checkpoint}
    ahead = {key: at for key, at in ahead.items() if at > judged_until}
    if ahead:
        checkpoint["ahead"] = [[key, at] for key, at in sorted(ahead.items())]
    yield Batch(observations, [Checkpoint("boots", checkpoint)])
    if not read.complete:
        raise EvidenceUnavailable(read.problem)


def _ahead(value: Any) -> dict[str, float]:
    """The ``ahead`` checkpoint entry: [[key, time], …] of future-dated boots already judged."""
    if not isinstance(value, list):
        return {}
    out: dict[str, float] = {}
    for item in value:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and _number(item[1]) is not None:
            out[item[0]] = float(item[1])
    return out


def boot_observations(boot: Boot, calendar: MaintenanceCalendar | None = None) -> list[Observation]:
    """The counts and the event one judged boot contributes.

    ``orderly`` is how the previous boot ended; ``planned`` is whether the outage was announced:
    its downtime (from the shutdown, or for a crash from the last sign of life) lay wholly inside
    windows of the maintenance calendar. Downtime seconds are split at the windows' edges into
    planned and unplanned. Where the downtime is unknown, the boot itself being inside a window
    decides; for the first boot of the history (nothing known) it stays unknown.
    """
    calendar = calendar or NoMaintenance()
    out: list[Observation] = [Count(BOOTS, (), 1)]
    if boot.orderly is False:
        out.append(Count(UNEXPECTED_SHUTDOWNS, {"evidence": boot.evidence}, 1))
    planned: bool | None = None
    at = datetime.fromtimestamp(boot.at, timezone.utc)
    if boot.downtime is not None and boot.orderly is not None and boot.downtime > 0:
        start = at - timedelta(seconds=boot.downtime)
        inside = min(calendar.planned_seconds(start, at), boot.downtime)
        planned = inside >= boot.downtime
        if inside > 0:
            out.append(Count(DOWNTIME, {"planned": "true"}, inside))
        if boot.downtime - inside > 0:
            out.append(Count(DOWNTIME, {"planned": "false"}, boot.downtime - inside))
    elif boot.orderly is not None:
        planned = calendar.planned_at(at) is not None
    out.append(
        Event(
            BOOT_EVENT,
            at,
            f"{boot.evidence}:{boot.key}",
            {
                "orderly": boot.orderly,
                "planned": planned,
                "evidence": boot.evidence,
                "downtime_seconds": None if boot.downtime is None else round(boot.downtime, 3),
                "downtime_exact": boot.downtime_exact,
                "shutdown_at": None if boot.shutdown_at is None else _iso(boot.shutdown_at),
                "last_seen": None if boot.last_seen is None else _iso(boot.last_seen),
            },
        )
    )
    return out


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


def _read_evidence(ctx: RunContext, settings: BootSettings, saved: dict[str, Any], now: float) -> BootRead:
    """Read the configured source, or in ``auto`` mode the first one this host has."""
    order: tuple[str, ...] = EVIDENCE_ORDER if settings.evidence == "auto" else (settings.evidence,)
    problems: list[str] = []
    for evidence in order:
        if settings.evidence == "auto" and not _present(ctx, settings, evidence):
            continue
        try:
            return READERS[evidence](ctx, settings, saved, now)
        except EvidenceEmpty as exc:
            if settings.evidence != "auto":
                return BootRead(evidence, ())
            ctx.log.debug("boot_evidence_empty", evidence=evidence, detail=str(exc))
        except EvidenceUnavailable as exc:
            if settings.evidence != "auto":
                raise
            ctx.log.warning("boot_evidence_unreadable", evidence=evidence, error=str(exc))
            problems.append(f"{evidence}: {exc}")
    if problems:
        raise EvidenceUnavailable("; ".join(problems))
    raise NoData(
        "no boot history on this host: no persistent journal (/var/log/journal), "
        f"no wtmpdb ({settings.wtmpdb}), no wtmp ({settings.wtmp})"
    )


def _present(ctx: RunContext, settings: BootSettings, evidence: str) -> bool:
    if evidence == "journald":
        directory = settings.journal_directory or Path("/var/log/journal")
        return under_root(ctx.root, directory).is_dir()
    if evidence == "wtmpdb":
        return under_root(ctx.root, settings.wtmpdb).is_file()
    wtmp = under_root(ctx.root, settings.wtmp)
    return wtmp.is_file() and wtmp.stat().st_size > 0


# --- wtmp ------------------------------------------------------------------------------------


def _read_wtmp(ctx: RunContext, settings: BootSettings, saved: dict[str, Any], now: float) -> BootRead:
    """Read wtmp from where the last run stopped, following logrotate's rename to ``wtmp.1``.

    The checkpoint names the file last read by (device, inode, hash of its first record) and
    the byte offset reached, plus the ``BootCarry`` of the boot in progress there.
    """
    path = under_root(ctx.root, settings.wtmp)
    rotated = path.with_name(path.name + ".1")
    try:
        current = _identity(path)
    except FileNotFoundError:
        raise EvidenceUnavailable(f"{settings.wtmp} does not exist") from None
    except OSError as exc:
        raise EvidenceUnavailable(f"cannot read {settings.wtmp}: {exc.strerror}") from None

    previous = saved.get("wtmp") if saved.get("evidence") == "wtmp" else None
    previous = previous if isinstance(previous, dict) and previous.get("path") == str(settings.wtmp) else None
    plan: list[tuple[Path, int]] = []
    carry = BootCarry()
    continued = previous is not None
    if previous is None:
        # First run: the rotated file first, so the current file's first boot has a history.
        if rotated.is_file():
            plan.append((rotated, 0))
        plan.append((path, 0))
    else:
        carry = BootCarry.from_json(previous.get("carry"))
        offset = previous.get("offset")
        offset = offset if isinstance(offset, int) and offset >= 0 else 0
        known = (previous.get("dev"), previous.get("ino"), previous.get("head"))
        same_inode = known[:2] == current[:2]
        if same_inode and (known[2] == current[2] or offset == 0):
            # A file shorter than what was read has been truncated in place: read it again.
            plan.append((path, offset if current[3] >= offset else 0))
        else:
            if rotated.is_file() and _identity(rotated)[:3] == known:
                plan.append((rotated, offset))  # finish the file logrotate renamed away
            else:
                # Neither grown nor rotated (restored from a backup, copied over): its boots may
                # have been judged already, so only the watermark can tell new from old.
                ctx.log.info("wtmp_replaced", path=str(settings.wtmp))
                continued = False
            plan.append((path, 0))

    boots: list[Boot] = []
    invalid = 0
    mark: tuple[tuple[int, int, str, int], int] = (current, 0)
    complete = True
    for file, start in plan:
        try:
            identity = _identity(file)
            found, carry, invalid_here, position, complete = _read_wtmp_file(ctx, file, start, carry, now)
        except OSError as exc:
            raise EvidenceUnavailable(f"cannot read {file}: {exc.strerror}") from None
        boots += found
        invalid += invalid_here
        mark = (identity, position)
        if not complete:
            break
    (dev, ino, head, _size), offset = mark
    checkpoint = {
        "wtmp": {"path": str(settings.wtmp), "dev": dev, "ino": ino, "head": head, "offset": offset, "carry": carry.to_json()}
    }
    problem = "" if complete else "deadline reached reading wtmp"
    return BootRead("wtmp", boots, invalid, checkpoint, complete, problem, incremental=continued)


def _identity(file: Path) -> tuple[int, int, str, int]:
    """(device, inode, hash of the first record, size): tells a rewritten file from a grown one."""
    with file.open("rb") as handle:
        st = os.fstat(handle.fileno())
        head = digests.sha256(handle.read(WTMP_RECORD_SIZE)).hexdigest()[:16]
    return st.st_dev, st.st_ino, head, st.st_size


def _read_wtmp_file(
    ctx: RunContext, file: Path, start: int, carry: BootCarry, now: float
) -> tuple[list[Boot], BootCarry, int, int, bool]:
    """Read ``file`` from ``start`` in chunks; stop early (done=False) when the run's deadline passes."""
    boots: list[Boot] = []
    invalid = 0
    position = start - start % WTMP_RECORD_SIZE
    with file.open("rb") as handle:
        handle.seek(position)
        while True:
            if ctx.expired():
                return boots, carry, invalid, position, False
            chunk = handle.read(WTMP_CHUNK)
            scan = parse_wtmp(chunk, now=now, base_offset=position)
            found, carry = fold_wtmp(scan.records, carry)
            boots += found
            invalid += scan.invalid
            position += scan.consumed
            if len(chunk) < WTMP_CHUNK:
                return boots, carry, invalid, position, True


# --- wtmpdb ----------------------------------------------------------------------------------


def _read_wtmpdb(ctx: RunContext, settings: BootSettings, saved: dict[str, Any], now: float) -> BootRead:
    path = under_root(ctx.root, settings.wtmpdb)
    if not path.is_file():
        raise EvidenceUnavailable(f"{settings.wtmpdb} does not exist")
    try:
        # Read-only and never creating anything: wtmpdb owns this file.
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
        try:
            # rowid: the old schema had no ID column; in the new one ID is the rowid.
            rows = conn.execute("SELECT rowid, Login, Logout FROM wtmp WHERE Type = ? ORDER BY Login", (1,)).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise EvidenceUnavailable(f"cannot read {settings.wtmpdb}: {exc}") from None
    boots, invalid = boots_from_wtmpdb([WtmpdbRow(r[0], r[1], r[2]) for r in rows], now=now)
    return BootRead("wtmpdb", boots, invalid)


# --- journald --------------------------------------------------------------------------------


def journalctl(settings: BootSettings, root: Path, *args: str) -> list[str]:
    """A journalctl command line, reading ``journal_directory`` when one is configured."""
    argv = ["journalctl"]
    if settings.journal_directory is not None:
        argv.append(f"--directory={under_root(root, settings.journal_directory)}")
    argv += args
    return argv


def list_boots_argv(settings: BootSettings, root: Path) -> list[str]:
    # --utc: systemd < 251 ignores --output for --list-boots and prints a text table, in UTC with this.
    return journalctl(settings, root, "--list-boots", "--output=json", "--utc", "--no-pager")


def tail_argv(settings: BootSettings, root: Path, boot_id: str) -> list[str]:
    return journalctl(
        settings,
        root,
        f"--boot={boot_id}",
        f"--lines={TAIL_LINES}",
        "--output=json",
        "--no-pager",
        f"--output-fields={TAIL_FIELDS}",
        *TAIL_MATCHES,
    )


def _read_journald(ctx: RunContext, settings: BootSettings, saved: dict[str, Any], now: float) -> BootRead:
    result = ctx.run_command(list_boots_argv(settings, ctx.root), timeout=JOURNALCTL_TIMEOUT)
    if not result.ok:
        raise EvidenceUnavailable(f"journalctl --list-boots: {_why(result)}")
    listed, invalid = parse_list_boots(result.stdout, tz=local_zone(ctx.root))
    if not listed and not invalid:
        raise EvidenceEmpty("the journal lists no boots")

    # Boots up to the watermark (or before the backfill window, on a first run) are not judged, so
    # their predecessors' tails need not be asked for: one journalctl call per new boot only.
    since = _number(saved.get("judged_until"))
    since = now - settings.backfill.total_seconds() if since is None else since
    boots: list[Boot] = []
    for position, boot in enumerate(listed):
        if boot.first <= since:
            continue
        if position == 0:
            boots.append(Boot(at=boot.first, key=boot.boot_id, evidence="journald", orderly=None))
            continue
        if ctx.expired():
            return BootRead("journald", boots, invalid, complete=False, problem="deadline reached reading the journal")
        previous: JournalBoot = listed[position - 1]
        tail = ctx.run_command(tail_argv(settings, ctx.root, previous.boot_id), timeout=JOURNALCTL_TIMEOUT)
        if not tail.ok:
            problem = f"journalctl --boot={previous.boot_id}: {_why(tail)}"
            return BootRead("journald", boots, invalid, complete=False, problem=problem)
        scan = scan_boot_tail(tail.stdout)
        invalid += scan.invalid
        boots.append(judge_journal_boot(boot, previous, scan))
    return BootRead("journald", boots, invalid)


def _why(result: Any) -> str:
    if result.error:
        return str(result.error)
    detail = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return f"exit status {result.returncode}" + (f": {detail[-1]}" if detail else "")


def local_zone(root: Path) -> tzinfo:
    """The host's zone from ``<root>/etc/localtime``, or UTC when there is none."""
    try:
        with under_root(root, "/etc/localtime").open("rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle)
    except (OSError, ValueError):
        return timezone.utc


EVIDENCE_ORDER = ("journald", "wtmpdb", "wtmp")
READERS = {"wtmp": _read_wtmp, "wtmpdb": _read_wtmpdb, "journald": _read_journald}


# --------------------------------------------------------------------------------------------
# The specs this plugin registers


def _metric(name: str, kind: Literal["counter", "gauge"], help: str, labels: tuple[str, ...] = (), preset: tuple[tuple[str, ...], ...] = ()) -> MetricSpec:
    return MetricSpec(name, kind, help, labels=labels, preset=preset, section=SECTION)


HOST_METRICS = (
    _metric(BOOT_TIME, "gauge", "Unix time the host last booted; uptime is time() minus this."),
    _metric(CPU_SECONDS, "counter", "Seconds all CPUs together spent in each mode.", ("mode",), tuple((m,) for m in CPU_MODES)),
    _metric(CPUS, "gauge", "Number of logical CPUs."),
    _metric(
        LOAD,
        "gauge",
        "Load average: tasks running or waiting to run, averaged over 1, 5 or 15 minutes.",
        ("window",),
        (("1m",), ("5m",), ("15m",)),
    ),
    _metric(MEMORY_TOTAL, "gauge", "Total memory in bytes."),
    _metric(MEMORY_AVAILABLE, "gauge", "Memory available to programs without swapping (MemAvailable), in bytes."),
    _metric(MEMORY_AVAILABLE_RATIO, "gauge", "Available memory as a fraction of total memory (0 to 1)."),
    _metric(SWAP_TOTAL, "gauge", "Total swap space in bytes."),
    _metric(SWAP_FREE, "gauge", "Unused swap space in bytes."),
    _metric(FS_SIZE, "gauge", "Size of the filesystem holding a configured path, in bytes.", ("mountpoint",)),
    _metric(FS_AVAIL, "gauge", "Bytes an unprivileged user may still write on the filesystem.", ("mountpoint",)),
    _metric(FS_FREE, "gauge", "Free bytes on the filesystem, including space reserved for root.", ("mountpoint",)),
    _metric(FS_AVAIL_RATIO, "gauge", "Available space as a fraction of the filesystem size (0 to 1).", ("mountpoint",)),
    _metric(FS_UP, "gauge", "1 if the filesystem holding a configured path could be read, 0 if not.", ("mountpoint",)),
)

EVIDENCE_PRESET = tuple((e,) for e in EVIDENCE)
BOOT_METRICS = (
    _metric(BOOTS, "counter", "Boots judged from the boot history (wtmp, wtmpdb or the journal)."),
    _metric(
        UNEXPECTED_SHUTDOWNS,
        "counter",
        "Boots not preceded by a clean shutdown (power loss, crash, hard reset), by evidence source.",
        ("evidence",),
        EVIDENCE_PRESET,
    ),
    _metric(
        DOWNTIME,
        "counter",
        "Seconds the host was down before a boot; planned where inside a maintenance window ([maintenance]), "
        "however orderly the shutdown.",
        ("planned",),
        (("true",), ("false",)),
    ),
    _metric(
        BOOT_RECORDS_INVALID,
        "counter",
        "Boot history records that could not be used (corrupt, out-of-range times), by source.",
        ("evidence",),
        EVIDENCE_PRESET,
    ),
)

HOST = CollectorSpec(
    name="system.host",
    help="Boot time, CPU, load, memory and free space of the configured mounts (/proc, statvfs).",
    collect=collect_host,
    interval=timedelta(seconds=30),
    timeout=timedelta(seconds=10),
    settings=HostSettings,
    metrics=HOST_METRICS,
    probe=probe_host,
)

BOOTS_COLLECTOR = CollectorSpec(
    name="system.boots",
    help="Boots, unexpected shutdowns and downtime from the journal, wtmpdb or wtmp.",
    collect=collect_boots,
    interval=timedelta(minutes=5),
    timeout=timedelta(seconds=60),
    settings=BootSettings,
    metrics=BOOT_METRICS,
)
