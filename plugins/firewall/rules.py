"""The firewall plugin's default deviation rules (data; the rules engine evaluates them).

``firewall.rule_change_unplanned`` fires for a rule change outside every window and planned change
of the maintenance calendar (``[maintenance]``): it watches the changes the collectors counted as
``planned="false"`` (``collectors.judge_planned`` decides each one by the calendar). A change
inside a window is a planned one and raises no candidate.

Summaries are Norwegian and hold no personal data: a device's configured name, a protocol and port,
counts.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import SECTION
from .parse import BY_PORT, MESSAGES, RULE_CHANGES

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
    watch=RULE_CHANGES,
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    labels={"planned": "false"},
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
