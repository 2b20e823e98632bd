"""The changes plugin's default deviation rules (data; the rules engine evaluates them).

``changes.unplanned_config_change`` watches configuration changes whose ``planned`` label is
``false``: a change outside every maintenance window and every planned change that covers it
(``planned.py``, against the ``[maintenance]`` calendar). Issue 13: "a change outside any
planned window is a deviation candidate". A site without a calendar has every change
unplanned, and each one raises a candidate: announce the work in ``[maintenance]`` (or its
iCalendar file), or retune the rule (``[rules."changes.unplanned_config_change"]``).

Summaries are Norwegian and hold no personal data: a source and a count.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .vocab import CONFIG_CHANGES, SECTION

UNPLANNED_CONFIG_CHANGE = RuleSpec(
    name="changes.unplanned_config_change",
    watch=CONFIG_CHANGES,
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    labels={"planned": "false"},
    group_by=("source",),
    severity=Severity.WARNING,
    summary=(
        "Uplanlagt konfigurasjonsendring ({source}): {value} endring(er) siste time utenfor "
        "planlagte vedlikeholdsvinduer."
    ),
    section=SECTION,
)

RULES = (UNPLANNED_CONFIG_CHANGE,)
