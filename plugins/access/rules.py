"""The access plugin's default deviation rules (data; the rules engine evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and hold no personal data:
a network or an account appears only as its pseudonym (``{key}`` of a rollup), which means
something on this host only.

``access.success_after_failures`` needs one thing a single watched value cannot say: that the
network that logged in had failed before. It is written as a watch of the successes rollup with
``labels={"preceded_by": "rollup:access.failed_by_network", "min_preceding": "10"}``: a key of the
watched rollup fires only if the same key has at least that many in the named rollup within the
window. The rules engine must support that matcher before this rule can fire (see the report of
this plugin's issue); until then it is declared, documented and inert.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import SECTION
from .tally import (
    FAILED_BY_NETWORK,
    FAILED_LOGINS,
    LOCKOUT_BY_ACCOUNT,
    RESET_OUTSIDE_HOURS,
    SUCCESS_BY_NETWORK,
)

FAILED_FROM_NETWORK = RuleSpec(
    name="access.failed_from_network",
    watch=f"rollup:{FAILED_BY_NETWORK}",
    comparison=">=",
    threshold=50,
    window=timedelta(days=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary=(
        "Mange mislykkede pålogginger fra samme nettverk (pseudonym {key}): {value} siste døgn, "
        "grense {threshold}. Mulig forsøk på å gjette passord."
    ),
    section=SECTION,
)

FAILED_BURST = RuleSpec(
    name="access.failed_logins_burst",
    watch=FAILED_LOGINS,
    comparison=">=",
    threshold=200,
    window=timedelta(hours=1),
    group_by=("source",),
    severity=Severity.WARNING,
    summary="Uvanlig mange mislykkede pålogginger via {source}: {value} siste time, grense {threshold}.",
    section=SECTION,
)

ACCOUNT_LOCKED = RuleSpec(
    name="access.account_locked",
    watch=f"rollup:{LOCKOUT_BY_ACCOUNT}",
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary=(
        "En konto (pseudonym {key}) ble låst etter gjentatte mislykkede pålogginger "
        "({value} gang(er) siste time)."
    ),
    section=SECTION,
)

SUCCESS_AFTER_FAILURES = RuleSpec(
    name="access.success_after_failures",
    watch=f"rollup:{SUCCESS_BY_NETWORK}",
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"preceded_by": f"rollup:{FAILED_BY_NETWORK}", "min_preceding": "10"},
    group_by=("key",),
    severity=Severity.CRITICAL,
    summary=(
        "Vellykket pålogging fra et nettverk (pseudonym {key}) som først hadde mange mislykkede "
        "forsøk samme døgn: mulig gjettet passord. Antall vellykkede: {value}."
    ),
    section=SECTION,
)

RESET_OFF_HOURS = RuleSpec(
    name="access.reset_outside_hours",
    watch=f"rollup:{RESET_OUTSIDE_HOURS}",
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    group_by=("key",),
    severity=Severity.INFO,
    summary="Passord endret eller tilbakestilt utenfor arbeidstid ({key}): {value} siste døgn.",
    section=SECTION,
)

RULES = (FAILED_FROM_NETWORK, FAILED_BURST, ACCOUNT_LOCKED, SUCCESS_AFTER_FAILURES, RESET_OFF_HOURS)
