"""The updates plugin's default deviation rules (data; the rules engine evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and hold no personal
data: counts, kinds and a number of seconds.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .vocab import APPLIED, OLDEST_PENDING, SECTION

SECURITY_PENDING_DAYS = 14

SECURITY_UPDATE_FAILED = RuleSpec(
    name="updates.security_update_failed",
    watch=APPLIED,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"kind": "security", "result": "failure"},
    severity=Severity.WARNING,
    summary=(
        "En sikkerhetsoppdatering feilet: {value} mislykket installasjon(er) siste døgn. "
        "Serveren kan mangle en sikkerhetsrettelse til oppdateringen er kjørt på nytt."
    ),
    section=SECTION,
)

SECURITY_UPDATE_PENDING = RuleSpec(
    name="updates.security_update_pending",
    watch=OLDEST_PENDING,
    comparison=">",
    threshold=SECURITY_PENDING_DAYS * 86400,
    labels={"kind": "security"},
    severity=Severity.WARNING,
    summary=(
        "En tilgjengelig sikkerhetsoppdatering har ventet i {value} uten å bli "
        "installert (grense {threshold})."
    ),
    section=SECTION,
)

RULES = (SECURITY_UPDATE_FAILED, SECURITY_UPDATE_PENDING)
