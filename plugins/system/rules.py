"""The system plugin's default deviation rules (data; ``normagent.rules`` evaluates them).

Texts are in bokmål and English and carry no personal data: only the evidence source, the mount
point from the configuration, a collector's name and numbers.

``system.unplanned_downtime`` adds up a day's downtime the maintenance calendar did not announce,
whether the shutdown was orderly or not (``system.unexpected_shutdown`` is about how it went down,
this one about how long the clinic was without its server).

``system.collector_down`` watches the agent's own health gauge (``normagent_collector_up``): a
collector that keeps failing means an indicator of factsheet 12 is not being measured, which the
operations status must say.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .collectors import DOWNTIME, FS_AVAIL_RATIO, FS_UP, MEMORY_AVAILABLE_RATIO, SECTION, UNEXPECTED_SHUTDOWNS

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
    cia=("tilgjengelighet", "integritet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Uventet omstart av serveren",
        "Serveren startet på nytt uten kontrollert avslutning (strømbrudd, krasj eller hard omstart) siste "
        "{window}; kilde: {evidence}.",
        "Tjenestene på serveren var utilgjengelige, og data som var under skriving kan være skadet.",
        "Finn årsaken (strøm, maskinvare, systemlogg), kontroller at tjenestene og databasene er hele, og vurder "
        "UPS eller utskifting.",
    ),
    text_en=RuleText(
        "Unexpected restart of the server",
        "The server restarted without an orderly shutdown (power loss, crash or hard reset) in the last {window}; "
        "evidence: {evidence}.",
        "The server's services were unavailable, and data being written may be damaged.",
        "Find the cause (power, hardware, system log), check that services and databases are intact, and consider "
        "a UPS or replacement.",
    ),
)

UNPLANNED_DOWNTIME = RuleSpec(
    name="system.unplanned_downtime",
    watch=DOWNTIME,
    comparison=">=",
    threshold=30 * 60,
    window=timedelta(days=1),
    labels={"planned": "false"},
    severity=Severity.WARNING,
    summary="Serveren var nede utenfor planlagt vedlikehold i til sammen {value} siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Serveren var lenge nede uten plan",
        "Serveren var nede utenfor planlagt vedlikehold i til sammen {value} siste {window} (grense {threshold}).",
        "Tjenestene på serveren var utilgjengelige for de ansatte i denne tiden.",
        "Finn ut hvorfor serveren var nede (strøm, feil, en omstart ingen varslet), og varsle planlagte omstarter i "
        "vedlikeholdskalenderen.",
    ),
    text_en=RuleText(
        "The server was down long without a plan",
        "The server was down outside planned maintenance for {value} in all in the last {window} (threshold {threshold}).",
        "The server's services were unavailable to staff during that time.",
        "Find out why the server was down (power, a fault, a restart nobody announced), and announce planned "
        "restarts in the maintenance calendar.",
    ),
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
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Lite ledig diskplass",
        "Lite ledig plass på {mountpoint}: andel ledig {value} i over {for}, grense {threshold}.",
        "Fylles disken, stopper databaser og journalsystem, og nye opplysninger kan gå tapt.",
        "Rydd eller utvid filsystemet, og finn ut hva som vokser (logger, sikkerhetskopier, databaser).",
    ),
    text_en=RuleText(
        "Little free disk space",
        "Little free space on {mountpoint}: {value} of it free for over {for}, threshold {threshold}.",
        "If the disk fills, databases and the record system stop, and new data may be lost.",
        "Clean up or grow the filesystem, and find out what is growing (logs, backups, databases).",
    ),
)

FILESYSTEM_UNREADABLE = RuleSpec(
    name="system.filesystem_unreadable",
    watch=FS_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=10),
    group_by=("mountpoint",),
    severity=Severity.WARNING,
    summary="Filsystemet for {mountpoint} kan ikke leses.",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Filsystem kan ikke leses",
        "Filsystemet for {mountpoint} har ikke kunnet leses på over {for}.",
        "Det som ligger der (data, sikkerhetskopier) kan være utilgjengelig.",
        "Kontroller at filsystemet er montert og disken frisk.",
    ),
    text_en=RuleText(
        "Filesystem cannot be read",
        "The filesystem of {mountpoint} could not be read for over {for}.",
        "What it holds (data, backups) may be unavailable.",
        "Check that the filesystem is mounted and the disk healthy.",
    ),
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
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Lite tilgjengelig minne",
        "Lite tilgjengelig minne i over {for}: andel tilgjengelig {value}, grense {threshold}.",
        "Tjenestene kan bli trege eller stoppes av systemet.",
        "Finn prosessen som bruker minnet, og vurder mer minne eller færre tjenester på serveren.",
    ),
    text_en=RuleText(
        "Little available memory",
        "Little available memory for over {for}: {value} of it available, threshold {threshold}.",
        "Services may become slow or be killed by the system.",
        "Find the process using the memory, and consider more memory or fewer services on the server.",
    ),
)

COLLECTOR_DOWN = RuleSpec(
    name="system.collector_down",
    watch="normagent_collector_up",
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=15),
    group_by=("collector",),
    severity=Severity.WARNING,
    summary="normagent-innsamleren {collector} har feilet i over 15 minutter.",
    section=SECTION,
    cia=("tilgjengelighet", "integritet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "En indikator måles ikke",
        "normagent-innsamleren {collector} har feilet i over {for}; indikatorene den måler, mangler i perioden.",
        "Avvik innen området kan gå upåaktet hen, og månedsrapporten blir ufullstendig.",
        "Se agentens logg (collector_failed) for årsaken, og rett oppsettet eller tilgangen til kilden.",
    ),
    text_en=RuleText(
        "An indicator is not being measured",
        "The normagent collector {collector} has failed for over {for}; the indicators it measures are missing for "
        "the period.",
        "Deviations in its area may go unnoticed, and the monthly report will be incomplete.",
        "See the agent's log (collector_failed) for the cause, and fix the set-up or the access to the source.",
    ),
)

RULES = (UNEXPECTED_SHUTDOWN, UNPLANNED_DOWNTIME, FILESYSTEM_NEARLY_FULL, FILESYSTEM_UNREADABLE, MEMORY_PRESSURE, COLLECTOR_DOWN)
