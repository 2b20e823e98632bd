"""Pure parsers for journald entries: the Linux login rules on MESSAGE, and errors per origin.

``parse_journal_logins`` applies exactly the rules of parse.py (``classify``) to each entry's
``SYSLOG_IDENTIFIER`` and ``MESSAGE``, so an attempt counts the same whether it was read from the
journal or from auth.log. ``parse_journal_errors`` counts entries with ``PRIORITY`` <= 3 (err,
crit, alert, emerg) per origin: the systemd unit (instances folded: ``getty@tty1.service`` ->
``getty@.service``), else the identifier, else the command. The origin label is bounded: an origin
not in the settings' ``origins`` (configured plus those the collector admitted, see
collectors.py) is exported as ``other``; the exact origin is kept in the
``access.eventlog_errors_by_origin`` rollup for the report.

Pure: no I/O, no state between calls. Imports only ``normagent`` and the plugin's own modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from normagent import JournalEntry, LogBlock, ParseContext, ParseResult, RecordBlock

from .parse import UNPARSED, apply, classify
from .tally import OTHER_ORIGIN, Tally

# The texts parse.py's byte prefilter looks for, as one pattern over a (short) message.
_CANDIDATE = re.compile(
    r"Failed |FAILED |; logname=|; TTY=|Accepted |pam_faillock\(|chauthtok\): password changed|, deny "
    r"|' changed by '|change user '|TOO MANY LOGIN TRIES|BAD SU |PAM: "
)
# The fields each parser reads (``JournalEntry.message``/``identifier`` included), declared by its
# collector so that the libsystemd reader reads these and no others; "A|B": B only where A is
# missing or empty (the parsers read ``get(A) or get(B)``). Each field read costs a scan of the
# entry's 20-odd fields in libsystemd, so the logins collector names two.
LOGIN_FIELDS = ("MESSAGE", "SYSLOG_IDENTIFIER|_COMM")
ERROR_FIELDS = ("PRIORITY", "_TRANSPORT", "_SYSTEMD_UNIT|_SYSTEMD_USER_UNIT", "SYSLOG_IDENTIFIER|_COMM")
JOURNAL_FIELDS = LOGIN_FIELDS + ERROR_FIELDS  # parse_journal's
ERROR_PRIORITY = 3  # err; crit, alert and emerg are more severe

_INSTANCE = re.compile(r"@[^.]*(?=\.[a-z]+$)")
_NUMBERED = re.compile(r"^(session|run-[ru]?)[-0-9a-f]*(?=\.[a-z]+$)")


def parse_journal_logins(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Count failed logins, lockouts and password changes in journald entries (see parse.py's rules)."""
    return _scan(block, ctx, logins=True, errors=False)


def parse_journal_errors(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Count journald entries of priority err or worse, per origin (bounded label)."""
    return _scan(block, ctx, logins=False, errors=True)


def parse_journal(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Both indicators over one block, for ``normagent parse`` on a ``journalctl -o json`` export."""
    return _scan(block, ctx, logins=True, errors=True)


def _scan(block: LogBlock, ctx: ParseContext, *, logins: bool, errors: bool) -> ParseResult:
    """One pass over the entries; an entry is parsed if it counted towards either indicator."""
    result = ParseResult()
    if not isinstance(block, RecordBlock):
        result.ignored = block.line_count
        return result
    tally = Tally(ctx)
    labels = allowed_origins(getattr(ctx.settings, "origins", ())) if errors else {}
    parsed = unparsed = 0
    for entry in block.records:
        if not isinstance(entry, JournalEntry):
            continue
        counted = False
        if errors:
            priority = priority_of(entry.fields)
            if priority is not None and priority <= ERROR_PRIORITY:
                origin = journal_origin(entry.fields)
                tally.error("journal", origin, origin_label(origin, labels), entry.realtime.timestamp())
                counted = True
        if logins:
            message = entry.message
            if _CANDIDATE.search(message):
                verdict = classify(entry.identifier, message)
                if verdict is UNPARSED:
                    if not counted:
                        unparsed += 1
                        if len(result.examples) < ctx.examples:
                            result.examples.append(f"{entry.identifier}: {message}")
                elif not isinstance(verdict, str):  # a verdict; the other string is IGNORED
                    apply(tally, verdict, entry.realtime.timestamp(), alone=not counted)
                    counted = True
        parsed += counted
    parsed -= tally.settle()  # key offers of a session that logged in (S11): ignored
    result.observations = tally.observations()
    result.parsed = parsed
    result.unparsed = unparsed
    result.ignored = len(block.records) - parsed - unparsed
    return result


def priority_of(fields: Mapping[str, str]) -> int | None:
    """``PRIORITY`` as 0..7, or None when missing or not a syslog priority.

    Not ``JournalEntry.priority``: ``str.isdigit`` accepts "²", which ``int`` refuses.
    """
    value = fields.get("PRIORITY", "").strip()
    return int(value) if len(value) == 1 and "0" <= value <= "7" else None


def journal_origin(fields: Mapping[str, str]) -> str:
    """Where a journal entry comes from: its unit (instance folded), identifier, or command."""
    if fields.get("_TRANSPORT") == "kernel":
        return "kernel"
    unit = fields.get("_SYSTEMD_UNIT") or fields.get("_SYSTEMD_USER_UNIT") or ""
    if unit:
        folded = _INSTANCE.sub("@", unit)
        return _NUMBERED.sub(lambda m: m.group(1).rstrip("-"), folded)
    return fields.get("SYSLOG_IDENTIFIER") or fields.get("_COMM") or "unknown"


def allowed_origins(origins: Iterable[str]) -> dict[str, str]:
    """Case-folded origin -> the label to export for it."""
    return {o.casefold(): o for o in origins if o}


def origin_label(origin: str, allowed: Mapping[str, str]) -> str:
    """The bounded label of an origin: its configured or admitted spelling, else ``other``."""
    return allowed.get(origin.casefold(), OTHER_ORIGIN)
