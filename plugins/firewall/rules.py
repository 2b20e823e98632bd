"""The firewall plugin's default deviation rules (data; the rules engine evaluates them).

``firewall.rule_change_unplanned`` should fire only for a change outside a planned change window.
The maintenance calendar those windows will come from is being built elsewhere, and ``RuleSpec``
has no way yet to name it; until it has, the rule watches every rule change, so each one is a
candidate the deviation handler can close as planned. It gets the calendar as a matcher
(``labels={"outside": "maintenance"}`` is reserved for it) once the engine supports one.

Summaries are Norwegian and hold no personal data: a device's configured name, a protocol and port,
counts.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import SECTION
from .parse import BY_PORT, MESSAGES, RULE_CHANGE_EVENT

PORT_BURST = RuleSpec(
    name="firewall.port_burst",
    watch=f"rollup:{BY_PORT}",
    comparison=">=",
    threshold=1000,
    window=timedelta(hours=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary="Mange blokkerte forsøk mot samme port ({key}): {value} siste time, grense {threshold}. Mulig skanning eller angrep.",
    section=SECTION,
)

RULE_CHANGE = RuleSpec(
    name="firewall.rule_change_unplanned",
    watch=f"event:{RULE_CHANGE_EVENT}",
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Brannmurreglene på {device} er endret ({value} endringer siste time) utenfor et planlagt endringsvindu.",
    section=SECTION,
)

DEVICE_SILENT = RuleSpec(
    name="firewall.device_silent",
    watch=MESSAGES,
    comparison="<",
    threshold=1,
    window=timedelta(hours=1),
    for_=timedelta(minutes=15),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Brannmuren {device} har ikke sendt loggmeldinger på over en time. Sjekk enheten og loggoppsettet.",
    section=SECTION,
)

RULES = (PORT_BURST, RULE_CHANGE, DEVICE_SILENT)
