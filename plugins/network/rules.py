"""The network plugin's default deviation rules (data; the rules engine evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and hold no personal data:
device and interface names come from the configuration and the devices themselves.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import SECTION
from .parse import DEVICE_RESTARTS, IF_UP, SNMP_UP

DEVICE_UNREACHABLE = RuleSpec(
    name="network.snmp_down",
    watch=SNMP_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Nettverksutstyret {device} har ikke svart riktig på SNMP de siste minuttene (utilgjengelig eller feil i svaret).",
    section=SECTION,
)

INTERFACE_DOWN = RuleSpec(
    name="network.interface_down",
    watch=IF_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("device", "interface"),
    severity=Severity.WARNING,
    summary="Grensesnittet {interface} på {device} er nede.",
    section=SECTION,
)

DEVICE_RESTARTED = RuleSpec(
    name="network.device_restart",
    watch=DEVICE_RESTARTS,
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Nettverksutstyret {device} har startet på nytt ({value} gang(er) siste time).",
    section=SECTION,
)

RULES = (DEVICE_UNREACHABLE, INTERFACE_DOWN, DEVICE_RESTARTED)
