"""The access plugin's collectors, built on the log driver (``file_log_collector`` & co).

``access.logins``
    Failed logins, lockouts and password changes on Linux, from the journal *or* from
    ``/var/log/auth.log`` / ``/var/log/secure`` (``prefer``): on a host where rsyslog copies the
    journal into auth.log both carry every attempt, and reading both would count each twice. With
    the default ``prefer = "journald"`` the journal is read when it holds login messages, the files
    otherwise; ``"files"`` reads the files; ``"both"`` reads both (for hosts whose files hold other
    machines' logs, e.g. a syslog server). The choice is made once and kept in a checkpoint, so a
    journal that is briefly unreadable does not flip the source back and forth; changing
    ``prefer`` makes it again, and the source left behind forgets its position, so coming back to
    it later starts at its end instead of counting old lines a second time.

    ``"both"`` over this host's own journal and a file holding this host's own login lines (its
    auth.log or secure, or a file with lines under its host name) counts every attempt twice:
    the collector's advice says so (``check-config`` names the file and line of ``prefer``; ``run``
    logs ``collector_advice`` at every start and reload, ``collect --once`` prints it), and it
    reads on as configured.

``access.journal_errors``
    journald entries of priority err or worse, per origin (unit or identifier).

``access.windows``
    Windows event log files (EVTX) a site copies to this host (a share Windows servers export
    to): Security logon failures, lockouts, password changes; System/Application errors. No
    paths by default, so disabled until configured.

Event-log origins are a bounded label: the configured ``origins``, plus up to ``max_origins``
more admitted from what is seen (an origin is admitted once it has caused ``admit_after`` errors;
admission is permanent and never evicts, so a series, once exported, keeps its meaning). Anything
else is ``other``. The tally behind admission is a checkpoint committed with the counts it
covers; the exact origin of every error is also kept in the ``access.eventlog_errors_by_origin``
rollup, from which the report ranks the top origins of the month.

Exposition, e.g.::

    normagent_failed_logins_total{reason="unknown_user",source="sshd"} 1932
    normagent_eventlog_errors_total{log="journal",origin="other"} 4

The same facts by hand: ``journalctl -t sshd -t sshd-session | grep -c 'Failed '``,
``journalctl -p err --since today``.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from normagent import (
    Advice,
    Batch,
    Checkpoint,
    CollectorSpec,
    EvtxSettings,
    FileSource,
    JournalSettings,
    JSONValue,
    LogBlock,
    MetricSpec,
    NoData,
    ParseContext,
    ParseResult,
    Rollup,
    RunContext,
    TextBlock,
    dataclass,
    evtx_log_collector,
    file_log_collector,
    journal_log_collector,
)

from .journal import ERROR_FIELDS, LOGIN_FIELDS, parse_journal_errors, parse_journal_logins
from .parse import parse_auth_lines, parse_auth_lines_into
from .tally import (
    ERRORS_BY_ORIGIN,
    EVENTLOG_ERRORS,
    EVENT_LOGS,
    FAILED_LOGINS,
    LOCKOUTS,
    OTHER_ORIGIN,
    PASSWORD_RESETS,
    BatchTally,
    preset_labels,
)
from .windows import parse_windows

SECTION = "Driftsstatus"

_PRESET = preset_labels()
FAILED_LOGINS_SPEC = MetricSpec(
    FAILED_LOGINS,
    "counter",
    "Failed login attempts, one per attempt however many lines log it, by where the attempt was "
    "judged (source) and why it failed (reason); see docs/access-counting-rules.md.",
    labels=("source", "reason"),
    preset=_PRESET[FAILED_LOGINS],
    section=SECTION,
)
LOCKOUTS_SPEC = MetricSpec(
    LOCKOUTS,
    "counter",
    "Accounts locked after repeated failed logins (pam_faillock, pam_tally2, Windows 4740).",
    labels=("source",),
    preset=_PRESET[LOCKOUTS],
    section=SECTION,
)
PASSWORD_RESETS_SPEC = MetricSpec(
    PASSWORD_RESETS,
    "counter",
    "Passwords changed by their owner (kind=change) or set by someone else (kind=reset, the "
    "forgotten-password case); kind=unknown where the log does not say which.",
    labels=("source", "kind"),
    preset=_PRESET[PASSWORD_RESETS],
    section=SECTION,
)
EVENTLOG_ERRORS_SPEC = MetricSpec(
    EVENTLOG_ERRORS,
    "counter",
    "Event-log entries of severity error or worse (journald priority <= 3, Windows level "
    "Error/Critical), by log and origin (a bounded set of units or providers; the rest is other).",
    labels=("log", "origin"),
    preset=tuple((log, OTHER_ORIGIN) for log in EVENT_LOGS),
    section=SECTION,
)
LOGIN_METRICS = (FAILED_LOGINS_SPEC, LOCKOUTS_SPEC, PASSWORD_RESETS_SPEC)

# Programs whose journal entries can hold a login verdict (their SYSLOG_IDENTIFIER). GDM's
# worker logs under the malformed tag "gdm-password]", which journald keeps as the identifier.
LOGIN_IDENTIFIERS = (
    "sshd",
    "sshd-session",
    "sshd-auth",
    "sudo",
    "su",
    "login",
    "passwd",
    "chpasswd",
    "newusers",
    "usermod",
    "gdm-password",
    "gdm-password]",
    "gdm-session-worker",
    "gdm-smartcard",
    "gdm-fingerprint",
    "polkitd",
    "polkitd(authority=local)",
    "pkexec",
    "cockpit-session",
    "xrdp-sesman",
    "vsftpd",
    "proftpd",
    "pure-ftpd",
    "dovecot",
)
AUTH_FILES = ("/var/log/auth.log", "/var/log/secure")

SOURCE_KEY = "access:source"
ORIGINS_KEY = "access:origins"

Prefer = Literal["journald", "files", "both"]


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When password resets are expected; a reset outside them goes to a rollup a rule watches.

    Attributes:
        enabled: Keep the ``access.reset_outside_hours`` rollup at all.
        start: Local time the working day starts.
        end: Local time it ends.
        weekdays: ISO weekdays that are working days (1 = Monday).
    """

    enabled: bool = True
    start: time = time(7, 0)
    end: time = time(17, 0)
    weekdays: tuple[int, ...] = field(default=(1, 2, 3, 4, 5), metadata={"min": 1, "max": 7})

    def __post_init__(self) -> None:
        if not all(1 <= d <= 7 for d in self.weekdays):
            raise ValueError(f"weekdays are ISO numbers 1 (Monday) to 7 (Sunday), got {list(self.weekdays)}")


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """``[collectors."access.logins"]``.

    Attributes:
        prefer: ``"journald"`` (the journal when it holds login messages, else the files),
            ``"files"`` or ``"both"`` (for files of other machines only: over this host's own
            journal and auth log it counts every attempt twice, and a warning says so at start);
            see the module docstring.
        files: The auth log files (``[collectors."access.logins".files]``).
        journal: What to read from the journal: by default the identifiers of programs that log
            login verdicts.
        business_hours: Working hours, for password resets outside them.
    """

    prefer: Prefer = "journald"
    files: FileSource = FileSource(paths=AUTH_FILES)
    journal: JournalSettings = JournalSettings(identifiers=LOGIN_IDENTIFIERS)
    business_hours: BusinessHours = BusinessHours()

    def __post_init__(self) -> None:
        if self.prefer not in ("journald", "files", "both"):
            raise ValueError(f'prefer must be "journald", "files" or "both", got {self.prefer!r}')


@dataclass(frozen=True, slots=True)
class JournalErrorSettings:
    """``[collectors."access.journal_errors"]``.

    Attributes:
        journal: What to read: entries of priority err (3) or worse.
        origins: Origins (units, identifiers) always exported under their own label.
        max_origins: How many more origins may be admitted from what is seen.
        admit_after: Errors an origin must cause before it is admitted.
    """

    journal: JournalSettings = JournalSettings(priority="err")
    origins: tuple[str, ...] = ()
    max_origins: int = field(default=20, metadata={"min": 0, "max": 200})
    admit_after: int = field(default=10, metadata={"min": 1, "max": 1_000_000})

    def __post_init__(self) -> None:
        _check_origin_settings(self.max_origins, self.admit_after)


@dataclass(frozen=True, slots=True)
class WindowsSettings:
    """``[collectors."access.windows"]``.

    The first three keys are those of ``normagent.EvtxSettings``, which the log driver reads.

    Attributes:
        paths: EVTX files or globs (e.g. ``/srv/eventlogs/*/Security.evtx``); none by default.
        channels: Channels to read (case-insensitive).
        event_ids: Read only these event ids; empty: all (System/Application errors have any id).
        origins: Providers always exported under their own label.
        max_origins: How many more providers may be admitted from what is seen.
        admit_after: Errors a provider must cause before it is admitted.
        count_credential_validation: Count 4771/4776 (Kerberos/NTLM checks). Set false on a
            server that only validates its own local accounts: there each failed logon is also
            a 4625 (docs/access-counting-rules.md, rule W2).
        business_hours: Working hours, for password resets outside them.
    """

    paths: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("Security", "System", "Application")
    event_ids: tuple[int, ...] = field(default=(), metadata={"min": 0, "max": 0xFFFF})
    origins: tuple[str, ...] = ()
    max_origins: int = field(default=20, metadata={"min": 0, "max": 200})
    admit_after: int = field(default=10, metadata={"min": 1, "max": 1_000_000})
    count_credential_validation: bool = True
    business_hours: BusinessHours = BusinessHours()

    def __post_init__(self) -> None:
        _check_origin_settings(self.max_origins, self.admit_after)
        EvtxSettings(paths=self.paths, channels=self.channels, event_ids=self.event_ids)  # same checks


def _check_origin_settings(max_origins: int, admit_after: int) -> None:
    if not 0 <= max_origins <= 200:
        raise ValueError(f"max_origins must be between 0 and 200, got {max_origins}")
    if admit_after < 1:
        raise ValueError(f"admit_after must be at least 1, got {admit_after}")


# --------------------------------------------------------------------------------------------
# access.logins: one collector, two possible sources


def parse_logins(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """The logins parser for either source: auth.log lines or journal entries."""
    if isinstance(block, TextBlock):
        return parse_auth_lines(block, ctx)
    return parse_journal_logins(block, ctx)


def _login_files(parser: Callable[[LogBlock, ParseContext], ParseResult], commit_bytes: int | None = None) -> CollectorSpec:
    """The file side of ``access.logins``, read with ``parser`` (see ``collect_login_files``)."""
    make = functools.partial(
        file_log_collector,
        "access.logins",
        help="Failed logins, lockouts and password changes from auth.log/secure.",
        parser=parser,
        settings=LoginSettings,
        files=lambda s: s.files,
        metrics=LOGIN_METRICS,
    )
    return make() if commit_bytes is None else make(commit_bytes=commit_bytes)


_FILES = _login_files(parse_auth_lines)


def collect_login_files(ctx: RunContext, *, commit_bytes: int | None = None) -> Iterator[Batch]:
    """The auth log files through the log driver, each batch's counts and rollup rows merged
    across its blocks.

    The driver gathers blocks into a batch (one transaction) and yields it *before* it parses
    the next block; the parser adds each block's counts and rows to ``totals`` once it has read
    the block, and every batch leaves with what was added since the batch before. So a batch
    carries the counts and rollups of exactly the blocks whose checkpoints it carries: a run
    that dies before a batch is committed has counted none of that batch's blocks, and reads
    them again next run. (The driver's checks of a parser's result concern its observations,
    and this parser returns only its lines' outcomes, so the driver refuses none of its results;
    when the parser raises, it has added nothing.) ``commit_bytes``: the driver's batch size, for
    tests.
    """
    totals = BatchTally(ctx.pseudonymise)
    files = _login_files(functools.partial(parse_auth_lines_into, totals), commit_bytes)
    for batch in files.collect(ctx):
        observations = totals.take()
        yield Batch([*batch.observations, *observations], batch.checkpoints) if observations else batch


_JOURNAL = journal_log_collector(
    "access.logins",
    help="Failed logins, lockouts and password changes from the journal.",
    parser=parse_journal_logins,
    settings=LoginSettings,
    journal=lambda s: s.journal,
    fields=LOGIN_FIELDS,
    metrics=LOGIN_METRICS,
)


def collect_logins(ctx: RunContext) -> Iterator[Batch]:
    """Read the chosen source(s); record the choice, and forget the other source's position."""
    settings: LoginSettings = ctx.settings
    saved = ctx.state.get(SOURCE_KEY)
    if isinstance(saved, dict) and saved.get("prefer") == settings.prefer and saved.get("source") in ("journal", "files", "both"):
        source = str(saved["source"])
    else:
        source, why = choose_login_source(ctx)
        ctx.log.info("login_source_chosen", source=source, prefer=settings.prefer, reason=why)
        yield Batch(checkpoints=[Checkpoint(SOURCE_KEY, {"prefer": settings.prefer, "source": source}), *_forget(ctx, source)])
    absent: list[str] = []
    for name, collect in (("journal", _JOURNAL.collect), ("files", collect_login_files)):
        if source in (name, "both"):
            try:
                yield from collect(ctx)
            except NoData as why:
                absent.append(str(why))
    if absent and len(absent) == (2 if source == "both" else 1):
        raise NoData("; ".join(absent))


def choose_login_source(ctx: RunContext) -> tuple[str, str]:
    """("journal" | "files" | "both", why) for this host and the ``prefer`` setting."""
    settings: LoginSettings = ctx.settings
    if settings.prefer == "files":
        return "files", "prefer = files"
    if settings.prefer == "both":
        return "both", "prefer = both"
    if journal_has_logins(ctx, settings.journal):
        return "journal", "journald preferred and it holds login messages"
    return "files", "journald preferred but it holds no login messages"


def journal_has_logins(ctx: RunContext, journal: JournalSettings) -> bool:
    """Whether ``journalctl`` shows at least one entry of the login identifiers."""
    argv = ["journalctl", "--output=json", "--lines=1", "--no-pager", "--quiet"]
    if journal.directory:
        argv.append(f"--directory={journal.directory}")
    argv.extend(f"--file={path}" for path in journal.files)
    argv.extend(f"SYSLOG_IDENTIFIER={ident}" for ident in journal.identifiers)
    result = ctx.run_command(argv, timeout=journal.command_timeout.total_seconds())
    return result.ok and result.stdout.strip().startswith(b"{")


def advise_logins(ctx: RunContext) -> list[Advice]:
    """Warn when ``prefer = "both"`` would count this host's attempts twice (``check-config``, and
    the log at start). Never disables: the files may hold other machines' lines as well."""
    try:
        files = overlapping_files(ctx)
    except OSError as exc:  # a check that cannot be made must not stop the collector
        ctx.log.debug("login_sources_overlap_unchecked", error=str(exc))
        return []
    if not files:
        return []
    return [
        Advice(
            "prefer",
            f"this host's own journal and {', '.join(files)} both carry its login messages: with "
            'prefer = "both" every attempt is counted twice; use "journald" or "files" ("both" is for '
            "files that hold other machines' logs only)",
        )
    ]


def overlapping_files(ctx: RunContext) -> list[str]:
    """The configured files that carry this host's own login messages, if the journal read is its own too.

    Empty unless ``prefer = "both"``, the journal is the host's own (no ``directory``, no ``files``:
    journalctl reads the local journal) and it holds login messages. A file carries the host's
    own messages when it is the host's auth log (``/var/log/auth.log``, ``/var/log/secure``) or
    when its last 64 KiB hold a login program's line under the host's name (``/etc/hostname``):
    a syslog server's file that also collects the server's own lines.
    """
    settings: LoginSettings = ctx.settings
    journal = settings.journal
    if settings.prefer != "both" or journal.directory or journal.files:
        return []
    own_name = _host_name(ctx.root)
    found = []
    for pattern in settings.files.paths:
        for real in sorted(glob.glob(os.path.join(str(ctx.root), pattern.lstrip("/")))):
            logical = "/" + os.path.relpath(real, str(ctx.root))
            if os.path.isfile(real) and (logical in AUTH_FILES or (own_name and _holds_lines_of(Path(real), own_name))):
                found.append(logical)
    if not found or not journal_has_logins(ctx, journal):
        return []
    return sorted(set(found))


def _host_name(root: Path) -> str:
    """This host's name as syslog writes it (the first label), from ``<root>/etc/hostname``; "" if unknown."""
    try:
        text = (root / "etc" / "hostname").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text.strip().split(".", 1)[0]


def _holds_lines_of(path: Path, host: str) -> bool:
    """Whether the end of ``path`` holds a line of a login program logged under ``host``."""
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
        tail = f.read().decode("utf-8", "replace")
    marks = tuple(f" {host} {ident}{end}" for ident in LOGIN_IDENTIFIERS for end in ("[", ":"))
    return any(mark in tail for mark in marks)


def _forget(ctx: RunContext, source: str) -> list[Checkpoint]:
    """Checkpoints of the source not chosen, deleted: returning to it later starts at its end."""
    if source == "both":
        return []
    if source == "files":
        return [Checkpoint("journal", None)] if ctx.state.get("journal") is not None else []
    return [Checkpoint(key, None) for prefix in ("file:", "pattern:") for key, _ in ctx.state.scan(prefix)]


LOGINS = CollectorSpec(
    name="access.logins",
    help="Failed logins, lockouts and password changes on Linux (journald or auth.log/secure).",
    collect=collect_logins,
    interval=timedelta(seconds=60),
    timeout=timedelta(seconds=30),
    settings=LoginSettings,
    metrics=_FILES.metrics,
    parser=parse_logins,
    advise=advise_logins,
)


# --------------------------------------------------------------------------------------------
# Event-log errors with a bounded origin label


def bounded_origins(spec: CollectorSpec) -> CollectorSpec:
    """Wrap a collector whose parser labels origins from ``settings.origins``: admit origins.

    Before the run, ``settings.origins`` is widened with the origins admitted so far; after each
    batch, the errors per origin it carries (its ``access.eventlog_errors_by_origin`` rollups)
    update the tally, and a changed tally rides in that same batch as a checkpoint.
    """
    inner = spec.collect

    def collect(ctx: RunContext) -> Iterator[Batch]:
        settings = ctx.settings
        tracker = OriginTracker.from_json(ctx.state.get(ORIGINS_KEY), settings.max_origins, settings.admit_after)
        widened = replace(settings, origins=tuple(dict.fromkeys((*settings.origins, *tracker.admitted))))
        for batch in inner(replace(ctx, settings=widened)):
            if tracker.observe(batch.observations, exempt=settings.origins):
                batch = Batch(batch.observations, [*batch.checkpoints, Checkpoint(ORIGINS_KEY, tracker.to_json())])
            yield batch

    return replace(spec, collect=collect)


@dataclass
class OriginTracker:
    """Errors seen per origin, and the origins admitted to their own label.

    ``seen`` is bounded (``10 * max_origins`` entries, at least 50): when full, the origins with
    the fewest errors are dropped (ties by name), so the state cannot grow without limit and the
    same input always gives the same admissions.
    """

    max_origins: int
    admit_after: int
    admitted: list[str] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object, max_origins: int, admit_after: int) -> OriginTracker:
        tracker = cls(max_origins, admit_after)
        if isinstance(value, dict):
            admitted = value.get("admitted")
            seen = value.get("seen")
            if isinstance(admitted, list):
                tracker.admitted = [str(a) for a in admitted if isinstance(a, str)]
            if isinstance(seen, dict):
                tracker.seen = {str(k): float(v) for k, v in seen.items() if isinstance(v, (int, float))}
        return tracker

    def to_json(self) -> dict[str, JSONValue]:
        return {"admitted": list(self.admitted), "seen": dict(sorted(self.seen.items()))}

    def observe(self, observations: Sequence[object], exempt: Sequence[str] = ()) -> bool:
        """Count a batch's errors per origin; True if the tally or the admissions changed."""
        labelled = {o.casefold() for o in (*exempt, *self.admitted)}
        changed = False
        for obs in observations:
            if not isinstance(obs, Rollup) or obs.name != ERRORS_BY_ORIGIN:
                continue
            origin = obs.key.split(":", 1)[1] if ":" in obs.key else obs.key
            if origin.casefold() in labelled or origin == OTHER_ORIGIN:
                continue
            self.seen[origin] = self.seen.get(origin, 0.0) + obs.value
            changed = True
        if not changed:
            return False
        room = self.max_origins - len(self.admitted)
        ranked = sorted(self.seen.items(), key=lambda kv: (-kv[1], kv[0]))
        for origin, count in ranked:
            if room <= 0 or count < self.admit_after:
                break
            self.admitted.append(origin)
            del self.seen[origin]
            room -= 1
        limit = max(50, 10 * self.max_origins)
        if len(self.seen) > limit:
            self.seen = dict(sorted(self.seen.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])
        return True


JOURNAL_ERRORS = bounded_origins(
    journal_log_collector(
        "access.journal_errors",
        help="Errors in the journal (priority err or worse), per unit or identifier.",
        parser=parse_journal_errors,
        settings=JournalErrorSettings,
        journal=lambda s: s.journal,
        fields=ERROR_FIELDS,
        metrics=(EVENTLOG_ERRORS_SPEC,),
    )
)

WINDOWS = bounded_origins(
    evtx_log_collector(
        "access.windows",
        help="Windows logon failures, lockouts, password changes and System/Application errors from EVTX files.",
        parser=parse_windows,
        settings=WindowsSettings,
        evtx=lambda s: s,
        metrics=(*LOGIN_METRICS, EVENTLOG_ERRORS_SPEC),
        enabled_by_default=False,
    )
)

COLLECTORS: tuple[CollectorSpec, ...] = (LOGINS, JOURNAL_ERRORS, WINDOWS)
