"""The system plugin's default deviation rules (data; ``normagent.rules`` evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and carry no personal data:
only the evidence source, the mount point from the configuration and numbers.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import FS_AVAIL_RATIO, MEMORY_AVAILABLE_RATIO, SECTION, UNEXPECTED_SHUTDOWNS

UNEXPECTED_SHUTDOWN = RuleSpec(
    name="system.unexpected_shutdown",
    watch=UNEXPECTED_SHUTDOWNS,
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("evidence",),
    severity=Severity.WARNING,
    summary=(
        "Serveren startet på nytt uten kontrollert avslutning (strømbrudd, krasj eller hard "
        "omstart); kilde: {evidence}."
    ),
    section=SECTION,
)

FILESYSTEM_NEARLY_FULL = RuleSpec(
    name="system.filesystem_nearly_full",
    watch=FS_AVAIL_RATIO,
    comparison="<",
    threshold=0.10,
    for_=timedelta(minutes=10),
    group_by=("mountpoint",),
    severity=Severity.WARNING,
    summary="Lite ledig plass på {mountpoint}: andel ledig {value}, grense {threshold}.",
    section=SECTION,
)

MEMORY_PRESSURE = RuleSpec(
    name="system.memory_pressure",
    watch=MEMORY_AVAILABLE_RATIO,
    comparison="<",
    threshold=0.10,
    for_=timedelta(minutes=15),
    severity=Severity.WARNING,
    summary="Lite tilgjengelig minne over tid: andel tilgjengelig {value}, grense {threshold}.",
    section=SECTION,
)

RULES = (UNEXPECTED_SHUTDOWN, FILESYSTEM_NEARLY_FULL, MEMORY_PRESSURE)
