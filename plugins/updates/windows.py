"""Windows Update from the System event log (EVTX): provider
``Microsoft-Windows-WindowsUpdateClient``.

- **19** *Installation Successful* = 1 update applied, result success;
- **20** *Installation Failure* (Level 2, with ``errorCode``) = 1 update applied, result failure;
- **43** *Installation Started* and **44** *Download Started*: read, not counted (the outcome
  follows as 19 or 20).

The event does not say whether an update is a security update; its title does
(``settings.security_titles``: "Security Update", "Cumulative Update" (the monthly rollup
carries the security fixes), "Definition Update" / "Security Intelligence Update" for Defender,
the Malicious Software Removal Tool). Other providers' records (the same event ids mean other
things there: Kernel-Boot 20) are ignored.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence

from normagent import Event, JournalEntry, Observation, ParseContext, WindowsEvent, record_parser

from .vocab import SECURITY_TITLES, TRANSACTION, outcome_observations, title_is_security

PROVIDER = "microsoft-windows-windowsupdateclient"
OUTCOMES = {19: "success", 20: "failure"}
ANNOUNCEMENTS = frozenset({43, 44})


def _accept(record: JournalEntry | WindowsEvent) -> bool:
    return isinstance(record, WindowsEvent) and record.provider.casefold() == PROVIDER


def parse_windows_update(record: JournalEntry | WindowsEvent, ctx: ParseContext) -> Sequence[Observation] | None:
    """One WindowsUpdateClient record: 19/20 counted, 43/44 ignored, others unparsed."""
    assert isinstance(record, WindowsEvent)
    result = OUTCOMES.get(record.event_id)
    if result is None:
        return [] if record.event_id in ANNOUNCEMENTS else None
    title = record.data.get("updateTitle", "").strip()
    if not title:
        return None
    patterns = getattr(ctx.settings, "security_titles", SECURITY_TITLES)
    kind = "security" if title_is_security(title, patterns) else "other"
    when = record.time
    out = outcome_observations({(kind, result): 1.0}, [(title, kind, result)], when.date(), when)
    out.append(
        Event(
            TRANSACTION,
            when,
            f"windows:{record.channel}:{record.record_id}:{record.data.get('updateGuid', '')}",
            {
                "source": "windows",
                "result": result,
                "security": int(kind == "security"),
                "other": int(kind == "other"),
                "error_code": record.data.get("errorCode", "") or None,
            },
        )
    )
    return out


parse_windows_updates = record_parser(parse_windows_update, accept=_accept)
