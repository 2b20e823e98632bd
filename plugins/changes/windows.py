"""Windows configuration changes from the Security event log (EVTX), provider
``Microsoft-Windows-Security-Auditing``:

- **4719** *System audit policy was changed* = 1 change of kind ``audit_policy``; the subject is
  the subcategory (``SubcategoryGuid``, as Windows writes it) — what is audited changed;
- **4739** *Domain Policy was changed* = 1 change of kind ``domain_policy``; the subject is what
  changed (``DomainPolicyChanged``: "Password Policy", "Lockout Policy" …).

Who made the change (``SubjectUserName``) is personal data and is not kept. Other records are
ignored.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence

from normagent import JournalEntry, Observation, ParseContext, WindowsEvent, record_parser

from .planned import Change, Planner
from .vocab import config_change

PROVIDER = "microsoft-windows-security-auditing"
KINDS = {4719: "audit_policy", 4739: "domain_policy"}


def _accept(record: JournalEntry | WindowsEvent) -> bool:
    return isinstance(record, WindowsEvent) and record.event_id in KINDS and record.provider.casefold() == PROVIDER


def parse_policy_change(record: JournalEntry | WindowsEvent, ctx: ParseContext) -> Sequence[Observation] | None:
    assert isinstance(record, WindowsEvent)
    kind = KINDS[record.event_id]
    if kind == "audit_policy":
        subject = record.data.get("SubcategoryGuid") or record.data.get("SubcategoryId") or "audit policy"
    else:
        subject = record.data.get("DomainPolicyChanged") or "domain policy"
    change = Change(record.time, "windows", kind, subject.strip() or kind)
    return config_change(change, f"windows:{record.channel}:{record.record_id}", Planner(ctx.maintenance))


parse_windows_policy = record_parser(parse_policy_change, accept=_accept)
