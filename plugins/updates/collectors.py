"""The updates plugin's collectors: updates applied (apt, dpkg, dnf, Windows Update) and pending.

``updates.apt``
    apt's history and terminal logs, dpkg's log and unattended-upgrades' log, through the log
    driver (rotation-safe, exactly once; ``parse.py`` says what counts). Before each run it
    reads what the pure parser cannot: the package versions apt's *security* repositories offer
    (``apt-get indextargets`` names the Packages lists of repositories whose Origin, Label,
    Suite or Codename matches ``security_origins``; ``apt-helper cat-file`` reads them, only
    when they changed), and the origins unattended-upgrades last logged as allowed; both reach
    the parser in its settings.
``updates.dnf``
    dnf's history database, read-only (``mode=ro``: never locked, never written), transaction
    by transaction after the last one counted; or ``dnf.rpm.log`` / ``dnf.log`` through the log
    driver. Security advisories come from ``dnf -q -C updateinfo list --installed --security``
    (dnf's cache only, nothing downloaded), asked only when there is something to classify.
``updates.windows``
    Windows Update client events 19/20 from System.evtx files copied to this host.
``updates.pending``
    Pending updates (``apt-get --just-print dist-upgrade``, or ``dnf -q -C check-update`` with
    ``dnf -q -C updateinfo list --updates --security``), the age of the longest-waiting one of
    each kind, and whether a reboot is required (``/run/reboot-required`` on Debian and Ubuntu,
    ``needs-restarting -r`` on RHEL and Fedora). Commands run through ``ctx.run_command`` with a
    timeout, as the agent's own user.

Exposition, e.g.::

    normagent_updates_applied_total{kind="security",result="success"} 14
    normagent_updates_pending{kind="security"} 2
    normagent_updates_oldest_pending_seconds{kind="security"} 259200
    normagent_reboot_required 1

By hand: ``grep -A3 Start-Date /var/log/apt/history.log``, ``apt-get -s dist-upgrade | grep ^Inst``,
``dnf history``, ``ls /run/reboot-required``.

A damaged dnf history database is counted once per version of the file
(``normagent_updates_history_unreadable_total``) and logged with where reading stopped; rows
whose values make no sense are counted as unparsed records and named by transaction and item.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from normagent import (
    Batch,
    Checkpoint,
    CollectorSpec,
    Count,
    Gauge,
    JSONValue,
    MetricSpec,
    NoData,
    Observation,
    RunContext,
    evtx_log_collector,
    file_log_collector,
)

from .dnf import DnfItem, DnfTransaction, judge_transactions, parse_dnf_logs, parse_updateinfo
from .parse import parse_apt_logs
from .pending import PendingUpdate, first_seen, oldest, parse_apt_simulation, parse_dnf_check_update
from .settings import AptSettings, DnfSettings, PendingSettings, WindowsUpdateSettings
from .vocab import (
    APPLIED,
    HISTORY_UNREADABLE,
    KINDS,
    OLDEST_PENDING,
    PENDING,
    REBOOT_REQUIRED,
    RESULTS,
    SECTION,
    UNATTENDED_RESULTS,
    UNATTENDED_RUNS,
    origin_is_security,
    package_set,
)
from .windows import parse_windows_updates

LINES = "normagent_log_lines_total"
APPLIED_SPEC = MetricSpec(
    APPLIED,
    "counter",
    "Updates applied, one per package (or Windows update), by kind (security: from a security "
    "repository or advisory) and result; see docs/updates-and-changes.md.",
    labels=("kind", "result"),
    preset=tuple((k, r) for k in KINDS for r in RESULTS),
    section=SECTION,
)
UNATTENDED_SPEC = MetricSpec(
    UNATTENDED_RUNS,
    "counter",
    "Runs of unattended-upgrades by outcome: success (all upgrades installed), failure, nothing (nothing to upgrade).",
    labels=("result",),
    preset=tuple((r,) for r in UNATTENDED_RESULTS),
    section=SECTION,
)
UNREADABLE_SPEC = MetricSpec(
    HISTORY_UNREADABLE,
    "counter",
    "Package histories that could not be read at all (a damaged dnf history database), counted "
    "once per version of the file.",
    labels=("source",),
    preset=(("dnf",),),
    section="Agent",
)
PENDING_SPECS = (
    MetricSpec(PENDING, "gauge", "Updates waiting to be installed, by kind.", labels=("kind",), preset=tuple((k,) for k in KINDS), section=SECTION),
    MetricSpec(
        OLDEST_PENDING,
        "gauge",
        "Seconds the longest-waiting pending update of each kind has been pending, since the agent "
        "first saw it (0 when none is pending).",
        labels=("kind",),
        preset=tuple((k,) for k in KINDS),
        section=SECTION,
    ),
    MetricSpec(REBOOT_REQUIRED, "gauge", "1 if installed updates wait for a reboot to take effect, 0 if not.", section=SECTION),
)

PACKAGE_VERSION = re.compile(rb"^Package: (\S+)\n(?:[^\n]+\n)*?Version: (\S+)", re.M)
ALLOWED_ORIGINS = re.compile(rb"Allowed origins are: ([^\n]*)")
UU_LOG = "/var/log/unattended-upgrades/unattended-upgrades.log"
TAIL_BYTES = 256 * 1024


def under_root(root: Path, path: Path | str) -> Path:
    p = Path(path)
    return root / p.relative_to("/") if p.is_absolute() else root / p


# --------------------------------------------------------------------------------------------
# updates.apt


SECURITY_INDEX_KEY = "apt:security-index"
INDEX_FORMAT = "$(FILENAME)|$(ORIGIN)|$(LABEL)|$(SUITE)|$(CODENAME)"
APT_HELPER = "/usr/lib/apt/apt-helper"


def apt_root_options(root: Path) -> list[str]:
    """``-o`` options pointing apt at ``root`` (tests and containers); none for the host itself."""
    if str(root) == "/":
        return []
    return ["-o", f"Dir={root}", "-o", f"Dir::State::status={root}/var/lib/dpkg/status"]


def security_index(ctx: RunContext, settings: AptSettings) -> tuple[tuple[str, ...], Checkpoint | None]:
    """``name=version`` of every package apt's security repositories offer, and the checkpoint
    that remembers them (``None`` when nothing changed since the last run).

    apt says which of its index files belong to which repository (``apt-get indextargets``:
    Origin, Label, Suite, Codename per Packages file) and reads them whatever their compression
    (``apt-helper cat-file``: plain, gz, xz, lz4 as Docker images keep them). A file is read
    again only when its size or modification time changed; the versions found live in a
    checkpoint, so a restart does not read them again either. apt itself is asked again only when
    what its answer depends on changed (``apt_stamps``): ``apt-get indextargets`` costs some
    0.6 s of CPU, which once a minute was 1 % of a core for an idle agent.
    """
    timeout = settings.command_timeout.total_seconds()
    saved = ctx.state.get(SECURITY_INDEX_KEY)
    saved = saved if isinstance(saved, dict) else {}
    stamps = apt_stamps(ctx.root)
    saved_files = saved.get("files")
    if stamps == saved.get("stamps") and isinstance(saved_files, dict):
        if _stat_files(saved_files) == saved_files:
            return _saved_versions(saved), None
    listed = ctx.run_command(
        ["apt-get", *apt_root_options(ctx.root), "indextargets", "--format", INDEX_FORMAT, "Created-By: Packages"],
        timeout=timeout,
    )
    if not listed.ok:
        ctx.log.warning("apt_indextargets_failed", error=_why(listed), effect="updates not in settings.security_packages count as other")
        return _saved_versions(saved), None
    files: dict[str, JSONValue] = {}
    for line in listed.stdout.decode("utf-8", "replace").splitlines():
        path, *fields = line.split("|")
        if not path or not any(origin_is_security(field, settings.security_origins) for field in fields if field):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue  # listed but not downloaded (yet)
        files[path] = [st.st_size, st.st_mtime_ns]
    if files == saved.get("files"):
        if stamps == saved.get("stamps"):
            return _saved_versions(saved), None
        return _saved_versions(saved), Checkpoint(SECURITY_INDEX_KEY, {**saved, "stamps": stamps})
    versions: set[str] = set()
    for path in sorted(files):
        content = ctx.run_command([APT_HELPER, "cat-file", path], timeout=timeout)
        if not content.ok:
            ctx.log.warning("apt_list_unreadable", path=path, error=_why(content))
            files.pop(path)
            continue
        versions.update(f"{p.decode()}={v.decode()}" for p, v in PACKAGE_VERSION.findall(content.stdout))
    found = tuple(sorted(versions))
    ctx.log.info("apt_security_index_read", files=len(files), versions=len(found))
    return found, Checkpoint(SECURITY_INDEX_KEY, {"files": files, "versions": list(found), "stamps": stamps})


# What ``apt-get indextargets`` answers from: the lists directory (``apt-get update`` renames every
# list it fetches into it, so its modification time moves), the sources and apt's configuration.
APT_STAMPED = ("/var/lib/apt/lists", "/etc/apt/sources.list", "/etc/apt/sources.list.d", "/etc/apt/apt.conf.d")


def apt_stamps(root: Path) -> list[JSONValue]:
    """``[path, inode, size, mtime_ns]`` of apt's lists directory, sources and configuration
    (directories and the files in them): when none changed, apt's index targets did not either."""
    stamps: list[JSONValue] = []
    for name in APT_STAMPED:
        path = under_root(root, name)
        entries = [path]
        if path.is_dir() and name != "/var/lib/apt/lists":
            entries += sorted(path.iterdir())
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                stamps.append([str(entry), None, None, None])
                continue
            stamps.append([str(entry), st.st_ino, st.st_size, st.st_mtime_ns])
    return stamps


def _stat_files(files: Iterable[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[path] = [st.st_size, st.st_mtime_ns]
    return out


def _saved_versions(saved: Mapping[str, JSONValue]) -> tuple[str, ...]:
    versions = saved.get("versions")
    return tuple(v for v in versions if isinstance(v, str)) if isinstance(versions, list) else ()


def unattended_origins_kind(log: Path, patterns: Sequence[str]) -> str:
    """``security`` when every origin unattended-upgrades last logged as allowed is a security
    origin, ``other`` when one is not, ``auto`` when its log says nothing."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return "auto"
    found = ALLOWED_ORIGINS.findall(tail)
    if not found:
        return "auto"
    entries = _origin_entries(found[-1].decode("utf-8", "replace"))
    if not entries:
        return "auto"
    return "security" if all(origin_is_security(entry, patterns) for entry in entries) else "other"


def _origin_entries(text: str) -> list[str]:
    """``o=Ubuntu,a=jammy-security, o=UbuntuESM,a=jammy-infra-security`` → one entry per origin
    (older versions wrap them in a Python list: ``['o=Ubuntu,a=xenial-security']``)."""
    cleaned = text.strip().strip("[]").replace("'", "").replace('"', "")
    return [e.strip() for e in re.split(r",\s+|\]\s*,\s*\[", cleaned) if e.strip()]


_APT_INNER = file_log_collector(
    "updates.apt",
    help="Updates applied by apt, dpkg and unattended-upgrades, from their logs.",
    parser=parse_apt_logs,
    settings=AptSettings,
    metrics=(APPLIED_SPEC, UNATTENDED_SPEC),
)


def collect_apt(ctx: RunContext) -> Iterator[Batch]:
    """The log driver over apt's logs, with the security versions and unattended-upgrades'
    origins of this run given to the parser; a changed security index rides in the first batch."""
    settings: AptSettings = ctx.settings
    versions, index = security_index(ctx, settings)
    unattended: str = settings.unattended
    if unattended == "auto":
        unattended = unattended_origins_kind(under_root(ctx.root, UU_LOG), settings.security_origins)
    widened = replace(
        settings,
        security_packages=tuple(dict.fromkeys((*settings.security_packages, *versions))),
        unattended="security" if unattended == "security" else "other" if unattended == "other" else settings.unattended,
    )
    for batch in _APT_INNER.collect(replace(ctx, settings=widened)):
        if index is not None:
            batch = Batch(batch.observations, [*batch.checkpoints, index])
            index = None
        yield batch
    if index is not None:
        yield Batch(checkpoints=[index])


APT = replace(_APT_INNER, collect=collect_apt)


# --------------------------------------------------------------------------------------------
# updates.dnf


DNF_KEY = "dnf:history"
UPDATEINFO_INSTALLED = ("dnf", "-q", "-C", "updateinfo", "list", "--installed", "--security")
TRANSACTIONS_PER_BATCH = 200


_DNF_LOG = file_log_collector(
    "updates.dnf",
    help="Updates applied by dnf, from dnf.rpm.log or dnf.log.",
    parser=parse_dnf_logs,
    settings=DnfSettings,
    metrics=(APPLIED_SPEC,),
)


def collect_dnf(ctx: RunContext) -> Iterator[Batch]:
    """dnf's history database or its log, as ``source`` says (``auto``: the database if present)."""
    settings: DnfSettings = ctx.settings
    database = under_root(ctx.root, settings.history)
    source = settings.source
    if source == "auto":
        source = "history" if database.exists() else "log"
    if source == "history":
        yield from _collect_dnf_history(ctx, settings, database)
        return
    security = _dnf_security(ctx, settings)
    widened = replace(settings, security_packages=tuple(dict.fromkeys((*settings.security_packages, *security))))
    yield from _DNF_LOG.collect(replace(ctx, settings=widened))


def _dnf_security(ctx: RunContext, settings: DnfSettings) -> tuple[str, ...]:
    """NEVRAs the security advisories in dnf's cache name; none (and a warning) if dnf cannot say."""
    result = ctx.run_command(UPDATEINFO_INSTALLED, timeout=settings.command_timeout.total_seconds())
    if not result.ok:
        ctx.log.warning("dnf_updateinfo_unavailable", error=result.error or f"exit status {result.returncode}", effect="updates counted as other")
        return ()
    return tuple(sorted(n for n, kind in parse_updateinfo(result.stdout).items() if kind == "security"))


class DnfHistoryUnreadable(Exception):
    """The dnf history database cannot be opened or read (counted and logged, not a failed run)."""


def _collect_dnf_history(ctx: RunContext, settings: DnfSettings, database: Path) -> Iterator[Batch]:
    saved = ctx.state.get(DNF_KEY)
    saved = saved if isinstance(saved, dict) else {}
    saved_last = saved.get("last")
    last = saved_last if isinstance(saved_last, int) else None
    try:
        st = database.stat()
    except FileNotFoundError:
        raise NoData(f"no dnf history database at {settings.history}") from None
    version = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if saved.get("unreadable") == version:
        return  # counted when this version was first found damaged; waiting for a new one
    if last is None and not saved and settings.start_at == "end":
        # First run: the history on disk was made before the agent watched; start after it.
        try:
            newest = _newest_transaction(database)
        except DnfHistoryUnreadable as exc:
            yield _unreadable(ctx, settings, version, None, str(exc))
            return
        ctx.log.info("dnf_history_start", after=newest)
        yield Batch(checkpoints=[Checkpoint(DNF_KEY, {"last": newest if newest is not None else 0})])
        return
    security: frozenset[str] | None = None
    position: int = last or 0
    while not ctx.expired():
        try:
            transactions = _read_transactions(database, position, TRANSACTIONS_PER_BATCH)
        except DnfHistoryUnreadable as exc:
            yield _unreadable(ctx, settings, version, position, str(exc))
            return
        if not transactions:
            break
        if security is None and any(_has_upgrade(t) for t in transactions):
            security = package_set((*settings.security_packages, *_dnf_security(ctx, settings)))
        judged = judge_transactions(
            transactions, now=ctx.clock.now(), security=security or package_set(settings.security_packages), settle=settings.settle
        )
        for trans_id, item_id, reason in judged.problems[:20]:
            ctx.log.warning("dnf_history_row_malformed", path=str(settings.history), transaction=trans_id, item=item_id, reason=reason)
        observations: list[Observation] = [*judged.observations]
        lines = {"parsed": judged.parsed, "unparsed": judged.unparsed, "ignored": judged.records - judged.parsed - judged.unparsed}
        for outcome, n in lines.items():
            if n > 0:
                observations.append(Count(LINES, {"source": ctx.collector, "result": outcome}, n))
        if judged.last is None:
            if judged.waiting is not None:
                ctx.log.info("dnf_transaction_unfinished", transaction=judged.waiting, retry="next run")
            break
        position = int(judged.last)
        yield Batch(observations, [Checkpoint(DNF_KEY, {"last": position})])
        if judged.waiting is not None or len(transactions) < TRANSACTIONS_PER_BATCH:
            break
    yield Batch([Count(LINES, {"source": ctx.collector, "result": r}, 0) for r in ("parsed", "ignored", "unparsed")] + [Count(HISTORY_UNREADABLE, {"source": "dnf"}, 0)])


def _has_upgrade(transaction: DnfTransaction) -> bool:
    return any(item.action == 6 for item in transaction.items)


def _unreadable(ctx: RunContext, settings: DnfSettings, version: dict[str, int], position: int | None, error: str) -> Batch:
    where = "before its first transaction" if not position else f"after transaction {position}"
    ctx.log.error("dnf_history_unreadable", path=str(settings.history), position=where, error=error, retry="when the file changes")
    state: dict[str, Any] = {"unreadable": version}
    if position is not None:
        state["last"] = position
    return Batch([Count(HISTORY_UNREADABLE, {"source": "dnf"}, 1)], [Checkpoint(DNF_KEY, state)])


def _connect(database: Path) -> sqlite3.Connection:
    # Read-only, never creating anything, never waiting long on dnf's lock: dnf owns this file.
    return sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True, timeout=5)


def _newest_transaction(database: Path) -> int | None:
    try:
        conn = _connect(database)
        try:
            row = conn.execute("SELECT max(id) FROM trans").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DnfHistoryUnreadable(f"{type(exc).__name__}: {exc}") from None
    value = row[0] if row else None
    return value if isinstance(value, int) else None


def _read_transactions(database: Path, after: int, limit: int) -> list[DnfTransaction]:
    """Up to ``limit`` transactions after id ``after``, with their rpm items, in id order."""
    try:
        conn = _connect(database)
        try:
            rows = conn.execute("SELECT id, dt_begin, dt_end, state FROM trans WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
            if not rows:
                return []
            ids = [r[0] for r in rows]
            items: dict[Any, list[DnfItem]] = {}
            for trans_id, item_id, action, state, name, epoch, version, release, arch in conn.execute(
                "SELECT ti.trans_id, ti.id, ti.action, ti.state, r.name, r.epoch, r.version, r.release, r.arch "
                "FROM trans_item ti JOIN rpm r ON r.item_id = ti.item_id "
                "WHERE ti.trans_id >= ? AND ti.trans_id <= ? ORDER BY ti.id",
                (ids[0], ids[-1]),
            ):
                items.setdefault(trans_id, []).append(DnfItem(item_id, action, state, name, epoch, version, release, arch))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DnfHistoryUnreadable(f"{type(exc).__name__}: {exc}") from None
    return [DnfTransaction(r[0], r[1], r[2], r[3], tuple(items.get(r[0], ()))) for r in rows]


DNF = CollectorSpec(
    name="updates.dnf",
    help="Updates applied by dnf (its history database, read-only, or dnf.rpm.log).",
    collect=collect_dnf,
    interval=timedelta(minutes=5),
    timeout=timedelta(minutes=2),
    settings=DnfSettings,
    metrics=(*_DNF_LOG.metrics, UNREADABLE_SPEC),
    parser=parse_dnf_logs,
)


# --------------------------------------------------------------------------------------------
# updates.windows


WINDOWS = evtx_log_collector(
    "updates.windows",
    help="Windows updates installed or failed (WindowsUpdateClient 19/20) from System.evtx files.",
    parser=parse_windows_updates,
    settings=WindowsUpdateSettings,
    evtx=lambda s: s,
    metrics=(APPLIED_SPEC,),
    enabled_by_default=False,
)


# --------------------------------------------------------------------------------------------
# updates.pending


PENDING_KEY = "pending"


class PendingUnavailable(Exception):
    """The package manager could not say what is pending (a failed or timed-out query)."""


def collect_pending(ctx: RunContext) -> Iterator[Batch]:
    """Pending updates, the age of the oldest of each kind, and whether a reboot is required.

    Raises:
        NoData: no package manager this collector knows, and no reboot flag to read.
        PendingUnavailable: the package manager's query failed (the reboot flag is kept).
    """
    settings: PendingSettings = ctx.settings
    manager = _manager(ctx, settings)
    timeout = settings.command_timeout.total_seconds()
    observations: list[Observation] = []
    reboot = _reboot_required(ctx, manager, timeout)
    if reboot is not None:
        observations.append(Gauge(REBOOT_REQUIRED, 1.0 if reboot else 0.0))
    if manager == "none":
        if not observations:
            raise NoData("no apt or dnf on this host")
        yield Batch(observations)
        return
    try:
        pending = _apt_pending(ctx, settings, timeout) if manager == "apt" else _dnf_pending(ctx, timeout)
    except PendingUnavailable:
        if observations:
            yield Batch(observations)
        raise
    now = ctx.clock.now().timestamp()
    seen = first_seen(ctx.state.get(PENDING_KEY), pending, now)
    counts = {kind: 0 for kind in ("security", "other")}
    for update in pending:
        counts[update.kind] += 1
    observations += [Gauge(PENDING, float(n), {"kind": kind}) for kind, n in counts.items()]
    observations += [Gauge(OLDEST_PENDING, age, {"kind": kind}) for kind, age in oldest(seen, now).items()]
    yield Batch(observations, [Checkpoint(PENDING_KEY, seen)])


def _manager(ctx: RunContext, settings: PendingSettings) -> str:
    if settings.manager != "auto":
        return settings.manager
    if under_root(ctx.root, "/var/lib/dpkg").is_dir():
        return "apt"
    if under_root(ctx.root, "/var/lib/dnf").is_dir() or under_root(ctx.root, "/var/lib/rpm").is_dir():
        return "dnf"
    return "none"


def apt_simulation_argv(root: Path) -> list[str]:
    """``apt-get --just-print dist-upgrade``: a simulation that needs no root and takes no lock."""
    argv = ["apt-get", "--just-print", "-o", "Debug::NoLocking=true", "-o", "APT::Get::Show-User-Simulation-Note=false"]
    return [*argv, *apt_root_options(root), "dist-upgrade"]


def _apt_pending(ctx: RunContext, settings: PendingSettings, timeout: float) -> list[PendingUpdate]:
    result = ctx.run_command(apt_simulation_argv(ctx.root), timeout=timeout)
    if not result.ok:
        raise PendingUnavailable(f"apt-get --just-print dist-upgrade: {_why(result)}")
    return parse_apt_simulation(result.stdout, settings.security_origins)


DNF_CHECK_UPDATE = ("dnf", "-q", "-C", "check-update")
DNF_PENDING_SECURITY = ("dnf", "-q", "-C", "updateinfo", "list", "--updates", "--security")


def _dnf_pending(ctx: RunContext, timeout: float) -> list[PendingUpdate]:
    result = ctx.run_command(DNF_CHECK_UPDATE, timeout=timeout)
    if result.returncode not in (0, 100):  # 100: updates are available
        raise PendingUnavailable(f"dnf check-update: {_why(result)}")
    advisories = ctx.run_command(DNF_PENDING_SECURITY, timeout=timeout)
    if not advisories.ok:
        raise PendingUnavailable(f"dnf updateinfo list --updates --security: {_why(advisories)}")
    return parse_dnf_check_update(result.stdout, parse_updateinfo(advisories.stdout))


def _reboot_required(ctx: RunContext, manager: str, timeout: float) -> bool | None:
    """True/False when this host can say, None when it cannot."""
    if manager == "apt" or under_root(ctx.root, "/var/lib/dpkg").is_dir():
        # update-notifier-common and unattended-upgrades create it; packages that need a
        # reboot (the kernel, libc) touch it from their postinst.
        return any(under_root(ctx.root, p).exists() for p in ("/run/reboot-required", "/var/run/reboot-required"))
    if manager == "dnf":
        for argv in (("needs-restarting", "-r"), ("dnf", "-q", "-C", "needs-restarting", "-r")):
            result = ctx.run_command(argv, timeout=timeout)
            if result.returncode in (0, 1):  # documented: 1 = a reboot is required
                return result.returncode == 1
    return None


def _why(result: Any) -> str:
    if result.error:
        return str(result.error)
    detail = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return f"exit status {result.returncode}" + (f": {detail[-1]}" if detail else "")


PENDING_COLLECTOR = CollectorSpec(
    name="updates.pending",
    help="Pending updates by kind, the age of the oldest, and whether a reboot is required.",
    collect=collect_pending,
    interval=timedelta(hours=1),
    timeout=timedelta(minutes=5),
    settings=PendingSettings,
    metrics=PENDING_SPECS,
)

COLLECTORS: tuple[CollectorSpec, ...] = (APT, DNF, WINDOWS, PENDING_COLLECTOR)
