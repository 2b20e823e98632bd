"""The changes plugin's collectors: configuration files, auditd, package changes, Windows policies.

``changes.files``
    Watched configuration files against a baseline kept in the ledger (``watch.py``): content,
    mode, owner, files created and deleted. The first run records the baseline and counts
    nothing; so does the first run after a pattern is added. A steady cycle costs one ``lstat``
    per file and one digest over all their stat keys: when it equals the last run's, nothing is
    read and nothing is written. When it differs, a summary of every path's stat (one checkpoint)
    names the paths that moved; only their baseline entries are fetched, and only files whose
    content may have changed are read.
``changes.audit``
    auditd's ``CONFIG_CHANGE`` records and hits of configuration watch keys (``parse.py``).
``changes.packages``
    Package installs, upgrades and removals from dpkg.log and dnf.rpm.log (``parse.py``): the
    same logs the updates plugin reads, with a position of its own.
``changes.windows``
    Windows 4719 (audit policy) and 4739 (domain policy) from Security.evtx files (``windows.py``).
``changes.plans``
    The planned changes of the maintenance calendar, recorded once each as it begins (an event
    with what, expected effect, when, role and subjects) so the monthly report can list them.

Every change is planned or not by the maintenance calendar (``ctx.maintenance``, asked through
``planned.Planner``: inside a maintenance window, or inside a planned change that covers it)
and counted as ``normagent_config_changes_total{source,kind,planned}`` or
``normagent_package_changes_total{action,planned}``, with a rollup per subject (and per plan)
and an event. A changed file's time is its ctime; a deleted file's, its directory's ctime.

Exposition, e.g.::

    normagent_config_changes_total{kind="content",planned="false",source="file"} 3
    normagent_package_changes_total{action="upgrade",planned="false"} 41

By hand: ``stat -c '%a %U:%G %z' /etc/sudoers``, ``ausearch -m CONFIG_CHANGE -k identity``,
``grep -E ' (install|upgrade|remove|purge) ' /var/log/dpkg.log``.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from normagent import (
    Batch,
    Checkpoint,
    CollectorSpec,
    Event,
    Gauge,
    JSONValue,
    MetricSpec,
    NoData,
    Observation,
    PlannedWindow,
    RunContext,
    RunFailed,
    error_reason,
    evtx_log_collector,
    file_log_collector,
    glob_paths,
    key_path_of,
    path_key,
)

from .parse import parse_audit, parse_package_logs
from .planned import Change, Planner, glob_match, plan_id
from .settings import AuditSettings, FileWatchSettings, PackageChangeSettings, WindowsPolicySettings
from .vocab import (
    CONFIG_CHANGES,
    CONFIG_SOURCES,
    PACKAGE_ACTIONS,
    PACKAGE_CHANGES,
    PLAN_EVENT,
    PLANNED,
    SECTION,
    WATCH_STATES,
    WATCHED_FILES,
    config_change,
    utc,
)
from .watch import CTIME, DIGEST, MODE, Seen, changes, digest_file, mode_text, needs_reading, stat_key, tree_digest, valid_entry
from .windows import parse_windows_policy

FILE_PREFIX = "f:"
FILE_ESCAPED_PREFIX = "fx:"  # a path that is not valid UTF-8, percent-encoded (see ``_file_key``)
TREE_KEY = "files:tree"  # {"digest": of every path's stat summary, "files": n, "stat_only": m}
STATS_KEY = "files:stats"  # {path: stat summary} of the last complete run
PATTERNS_KEY = "files:patterns"
BATCH_FILES = 500  # baseline entries per committed batch
PLANS_KEY = "plans:until"  # unix seconds up to which the calendar's planned changes are recorded
# How far back changes.plans looks on its first run (and after a long stop): the report of the
# month before reads back to its first day.
PLANS_LOOKBACK = timedelta(days=62)
PLAN_TEXT = 500  # characters kept of each text of a planned change


def _config_spec(sources: tuple[str, ...]) -> MetricSpec:
    return MetricSpec(
        CONFIG_CHANGES,
        "counter",
        "Configuration changes by source (file: a watched file; auditd: the audit configuration or "
        "a watch key; windows: audit or domain policy), kind, and whether they were planned.",
        labels=("source", "kind", "planned"),
        preset=tuple((s, k, p) for s in sources for k in CONFIG_SOURCES[s] for p in PLANNED),
        section=SECTION,
    )


# Declared identically by every collector that emits it (its preset names every source).
CONFIG_SPEC = _config_spec(("file", "auditd", "windows"))
PACKAGE_SPEC = MetricSpec(
    PACKAGE_CHANGES,
    "counter",
    "Packages installed, upgraded, downgraded, reinstalled, removed or purged (dpkg, dnf), and "
    "whether the change was planned.",
    labels=("action", "planned"),
    preset=tuple((a, p) for a in PACKAGE_ACTIONS for p in PLANNED),
    section=SECTION,
)
WATCHED_SPEC = MetricSpec(
    WATCHED_FILES,
    "gauge",
    "Configuration files watched, by state: hashed (content compared by a keyed digest) or "
    "stat_only (the agent may not read it, or it is over 64 MiB: size and modification time compared).",
    labels=("state",),
    preset=tuple((s,) for s in WATCH_STATES),
    section=SECTION,
)


# --------------------------------------------------------------------------------------------
# changes.files


def collect_files(ctx: RunContext) -> Iterator[Batch]:
    """Compare the watched files with their baseline (see the module docstring).

    Raises:
        NoData: no configured path matches a file on this host.
        RunFailed: a directory a pattern names could not be listed. Nothing is compared: its
            files, unseen, would otherwise count as deleted.
    """
    settings: FileWatchSettings = ctx.settings
    unlistable: list[OSError] = []
    found = expand(ctx.root, settings, ctx, unlistable)
    if unlistable:
        for exc in unlistable:
            ctx.log.error("file_watch_unlistable", reason=error_reason(exc), error=str(exc))
        raise RunFailed.of(unlistable, error_reason(unlistable[0]))
    keys: dict[str, tuple[int, ...]] = {}
    for logical, real in found.items():
        try:
            st = os.lstat(real)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            keys[logical] = stat_key(st)
    patterns = sorted(set(settings.paths))
    saved_patterns = ctx.state.get(PATTERNS_KEY)
    # The hash of a tuple of ints is the same in every Python process (only str and bytes
    # hashes are salted): a compact, stable summary of each file's stat.
    stats = {path: hash(key) for path, key in keys.items()}
    tree = tree_digest(stats)
    saved_tree = ctx.state.get(TREE_KEY)
    if isinstance(saved_tree, dict) and saved_tree.get("digest") == tree and saved_patterns == patterns:
        return  # the steady cycle: nothing moved, nothing to read or write
    if not keys and saved_tree is None:
        raise NoData(f"no watched file exists ({len(patterns)} patterns)")
    yield from _compare(ctx, found, keys, stats, patterns, saved_patterns, saved_tree, tree)


def _compare(
    ctx: RunContext,
    found: dict[str, str],
    keys: dict[str, tuple[int, ...]],
    stats: dict[str, int],
    patterns: list[str],
    saved_patterns: JSONValue,
    saved_tree: JSONValue,
    tree: str,
) -> Iterator[Batch]:
    """Look at the paths whose stat summary differs from the last complete run's (all of them
    when there is none): only their baseline entries are fetched from the ledger."""
    first = not isinstance(saved_patterns, list)
    known = {p for p in saved_patterns if isinstance(p, str)} if isinstance(saved_patterns, list) else set()
    saved_stats = ctx.state.get(STATS_KEY)
    watched, unreadable = 0, 0
    if isinstance(saved_stats, dict) and isinstance(saved_tree, dict):
        paths = {p for p, h in stats.items() if saved_stats.get(p) != h} | {p for p in saved_stats if p not in stats}
        baseline: dict[str, Any] = {p: ctx.state.get(_file_key(p)) for p in paths}
        watched = _int(saved_tree.get("files"))
        unreadable = _int(saved_tree.get("stat_only"))
    else:
        stored = [*ctx.state.scan(FILE_PREFIX), *ctx.state.scan(FILE_ESCAPED_PREFIX)]
        baseline = {_key_path(key): value for key, value in stored}
        paths = set(keys) | set(baseline)
    for value in baseline.values():  # what the examined paths counted for before
        if valid_entry(value):
            watched -= 1
            unreadable -= value[DIGEST] is None
    observations: list[Observation] = []
    checkpoints: list[Checkpoint] = []
    complete = True
    planner = Planner(ctx.maintenance)
    for path in sorted(paths):
        old = baseline.get(path)
        if old is not None and not valid_entry(old):
            ctx.log.warning("file_baseline_unusable", path=path, effect="taken again without counting a change")
            old = None
        entry: list[Any] | None = old
        if path in keys:
            key = keys[path]
            if old is None or tuple(old[:DIGEST]) != key:
                if ctx.expired():
                    complete = False
                    break
                new = baseline.get(path) is None and not first and _matched_by(path, known)
                entry = _examine(ctx, planner, path, found[path], key, old, new, observations)
                if entry is None:
                    continue  # gone between the listing and now: next run
                checkpoints.append(Checkpoint(_file_key(path), entry))
        else:
            if _matched_by(path, patterns) and old is not None:
                observations += _file_change(ctx, planner, path, "deleted", None, old)
            checkpoints.append(Checkpoint(_file_key(path), None))
            entry = None
        if entry is not None:
            watched += 1
            unreadable += entry[DIGEST] is None
        if len(checkpoints) >= BATCH_FILES:
            yield Batch(observations, checkpoints)
            observations, checkpoints = [], []
    gauges: list[Observation] = [
        Gauge(WATCHED_FILES, float(watched - unreadable), {"state": "hashed"}),
        Gauge(WATCHED_FILES, float(unreadable), {"state": "stat_only"}),
    ]
    if complete:
        checkpoints.append(Checkpoint(TREE_KEY, {"digest": tree, "files": watched, "stat_only": unreadable}))
        checkpoints.append(Checkpoint(STATS_KEY, dict(stats)))
        checkpoints.append(Checkpoint(PATTERNS_KEY, list(patterns)))
        if first:
            ctx.log.info("file_baseline_created", files=watched, unreadable=unreadable)
    else:
        # Without the summary the next run looks at every path again; entries already
        # updated compare equal there, so nothing is counted twice.
        ctx.log.info("file_watch_paused", reason="deadline", retry="next run")
    yield Batch([*observations, *gauges], checkpoints)


def _examine(
    ctx: RunContext,
    planner: Planner,
    path: str,
    real: str,
    key: tuple[int, ...],
    old: Any,
    created: bool,
    observations: list[Observation],
) -> list[Any] | None:
    """The new baseline entry of a path whose stat moved (or that has none, or a damaged one),
    its changes added to ``observations``; ``created``: a file new under a known pattern."""
    if old is None:
        read = digest_file(real, ctx.pseudonymise)
        if read is None:
            return None
        seen = Seen(read[0], read[1])
        if created:
            observations += _file_change(ctx, planner, path, "created", seen, None)
        return seen.entry()
    if needs_reading(old, key):
        read = digest_file(real, ctx.pseudonymise)
        if read is None:
            return None
        seen = Seen(read[0], read[1])
    else:
        seen = Seen(key, old[DIGEST], read=False)
    for kind in changes(old, seen):
        observations += _file_change(ctx, planner, path, kind, seen, old)
    return seen.entry()


def _file_key(path: str) -> str:
    """The baseline's key of ``path``: ``f:<path>``, or ``fx:<percent-encoded bytes>`` for a path
    that is not valid UTF-8 (a glob gives its undecodable bytes as lone surrogates, which SQLite
    refuses: one such name under a watched pattern failed every commit, and no change of any
    file was seen again)."""
    return path_key(path, FILE_PREFIX, FILE_ESCAPED_PREFIX)


def _key_path(key: str) -> str:
    """The inverse of ``_file_key``."""
    return key_path_of(key, FILE_PREFIX, FILE_ESCAPED_PREFIX)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _file_change(ctx: RunContext, planner: Planner, path: str, kind: str, seen: Seen | None, old: Any) -> list[Observation]:
    at_ns = seen.key[CTIME] if seen is not None else None
    at = utc(at_ns / 1e9) if at_ns is not None else _deleted_at(ctx, path, old)
    attrs: dict[str, str | int | None] = {}
    if kind == "mode" and seen is not None and old is not None:
        attrs = {"from": mode_text(old[MODE]), "to": mode_text(seen.key[MODE])}
    stamp = at_ns if at_ns is not None else int(old[CTIME]) if old is not None else 0
    return config_change(Change(at, "file", kind, path), f"file:{path}:{kind}:{stamp}", planner, **attrs)


def _deleted_at(ctx: RunContext, path: str, old: Any) -> datetime:
    """When a watched file was deleted: its directory's ctime, which an unlink sets (and a later
    change in the same directory moves on, never back), when it lies between the file's last
    known change and now; else now, when the run saw it gone. Without it, a file deleted inside
    a maintenance window and found gone after the window closed would be an unplanned change."""
    now = ctx.clock.now()
    try:
        parent = os.stat(os.path.dirname(str(ctx.root).rstrip("/") + path))
    except OSError:
        return now
    at = utc(parent.st_ctime_ns / 1e9)
    since = utc(int(old[CTIME]) / 1e9) if old is not None else None
    return at if (since is None or at >= since) and at <= now else now


def _matched_by(path: str, patterns: Any) -> bool:
    """Whether a configured pattern names ``path`` (glob rules: ``*`` stops at ``/``, ``**`` does not)."""
    return any(glob_match(path, p) for p in patterns)


def expand(
    root: Path, settings: FileWatchSettings, ctx: RunContext | None = None, errors: list[OSError] | None = None
) -> dict[str, str]:
    """Logical path (as on the host) → path under ``root`` of every path the patterns match
    (directories included: the caller's ``lstat`` drops them), excluded ones left out, at most
    ``max_files`` (in name order). Why a directory a pattern names cannot be listed goes to
    ``errors`` (``glob_paths``)."""
    prefix = str(root).rstrip("/")
    excluded = _exclusion(settings.exclude)
    found: dict[str, str] = {}
    for pattern in settings.paths:
        for real in glob_paths(prefix + pattern, errors):  # "**" never into a linked directory (a loop)
            logical = real[len(prefix) :]
            if logical not in found and (excluded is None or not excluded(logical)):
                found[logical] = real
    if len(found) > settings.max_files:
        if ctx is not None:
            ctx.log.warning("file_watch_truncated", matched=len(found), watched=settings.max_files)
        found = dict(sorted(found.items())[: settings.max_files])
    return found


@functools.lru_cache(maxsize=16)
def _exclusion(patterns: tuple[str, ...]) -> Callable[[str], Any] | None:
    """One compiled pattern for all exclusions (memoised: the same settings come every cycle)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


FILES = CollectorSpec(
    name="changes.files",
    help="Changes of watched configuration files: content (a keyed digest), mode, owner, created, deleted.",
    collect=collect_files,
    interval=timedelta(minutes=1),
    timeout=timedelta(minutes=1),
    settings=FileWatchSettings,
    metrics=(CONFIG_SPEC, WATCHED_SPEC),
)


# --------------------------------------------------------------------------------------------
# changes.audit, changes.packages, changes.windows


AUDIT = file_log_collector(
    "changes.audit",
    help="Changes of the audit configuration (auditd CONFIG_CHANGE) and hits of configuration watch keys.",
    parser=parse_audit,
    settings=AuditSettings,
    metrics=(CONFIG_SPEC,),
)

PACKAGES = file_log_collector(
    "changes.packages",
    help="Packages installed, upgraded and removed, from dpkg.log and dnf.rpm.log.",
    parser=parse_package_logs,
    settings=PackageChangeSettings,
    metrics=(PACKAGE_SPEC,),
)

WINDOWS = evtx_log_collector(
    "changes.windows",
    help="Windows audit policy (4719) and domain policy (4739) changes from Security.evtx files.",
    parser=parse_windows_policy,
    settings=WindowsPolicySettings,
    evtx=lambda s: s,
    metrics=(CONFIG_SPEC,),
    enabled_by_default=False,
)

# --------------------------------------------------------------------------------------------
# changes.plans


def collect_plans(ctx: RunContext) -> Iterator[Batch]:
    """Record the planned changes of the maintenance calendar that were under way at some moment
    since the last run (on the first run, in the last ``PLANS_LOOKBACK``), one event each, for the
    report.

    A plan is recorded when its time has come, as it then stood in the calendar: one removed
    before it began is never reported, and each occurrence of a recurring one is an entry of its
    own. The event's key is the plan's ``plan_id`` and the ledger keeps the first event of a key,
    so a plan that lasts over many runs is recorded once. The calendar is configuration, which
    changes; the report reads what was announced from here.
    """
    now = ctx.clock.now()
    saved = ctx.state.get(PLANS_KEY)
    since = utc(saved) if isinstance(saved, (int, float)) and not isinstance(saved, bool) else now - PLANS_LOOKBACK
    since = max(min(since, now), now - PLANS_LOOKBACK)
    events: list[Observation] = []
    if now > since:
        for window in ctx.maintenance.changes_between(since, now):
            # One under way since an earlier run is offered again (the ledger keeps the first):
            # so is one written into the calendar after it began, while it lasts.
            events.append(Event(PLAN_EVENT, window.start.astimezone(timezone.utc), plan_id(window), plan_attrs(window)))
            if window.start >= since:
                ctx.log.info("planned_change_began", plan=plan_id(window), role=window.role, end=window.end.isoformat())
    yield Batch(events, [Checkpoint(PLANS_KEY, now.timestamp())])


def plan_attrs(window: PlannedWindow) -> dict[str, str | int | float | bool | None]:
    """What the report shows of a planned change: what, expected effect, when, by whom (a role),
    what it covers, and where it is written."""
    return {
        "what": _bounded(window.what),
        "effect": _bounded(window.effect),
        "role": _bounded(window.role),
        "start": window.start.astimezone(timezone.utc).isoformat(),
        "end": window.end.astimezone(timezone.utc).isoformat(),
        "subjects": _bounded(", ".join(window.subjects)),
        "source": _bounded(window.source),
    }


def _bounded(text: str) -> str:
    """At most ``PLAN_TEXT`` characters: a calendar's DESCRIPTION may be a whole document."""
    return text if len(text) <= PLAN_TEXT else text[: PLAN_TEXT - 1] + "…"


PLANS = CollectorSpec(
    name="changes.plans",
    help="Planned changes of the maintenance calendar ([maintenance]), recorded as they begin, for the report.",
    collect=collect_plans,
    interval=timedelta(minutes=5),
    timeout=timedelta(seconds=30),
)

COLLECTORS: tuple[CollectorSpec, ...] = (FILES, AUDIT, PACKAGES, WINDOWS, PLANS)
