"""The availability plugin's default deviation rules (data; the rules engine evaluates them).

Texts are in bokmål and English and carry no personal data: the service name from the
configuration, durations, shares and counts. ``[rules."<name>"]`` retunes them (the ``for`` of
``availability.service_down`` is the "N minutes" a service may be down before it is a deviation
candidate).

``service_down`` fires while a service *is* down; ``unplanned_downtime`` and ``service_unstable``
look back over a day at what the maintenance calendar did not announce (``planned="false"``), so
a service that falls out for a minute again and again, never long enough for the first, is a
deviation too; the SLA rules look at the month, against the target of the agreement. All of them
touch availability.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .collectors import DOWNTIME, OUTAGES, SECTION, SERVICE_UP, SLA_BUDGET, TLS_EXPIRY

SERVICE_DOWN = RuleSpec(
    name="availability.service_down",
    watch=SERVICE_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("service",),
    severity=Severity.WARNING,
    summary="Tjenesten {service} har ikke svart på prøvene sine i over {for}.",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "En kritisk tjeneste er nede",
        "Tjenesten {service} har ikke svart på prøvene sine i over {for}.",
        "De ansatte kan være uten systemet tjenesten gir (journal, meldinger, timebok), og arbeidet må gjøres på "
        "annen måte.",
        "Kontroller tjenesten og serveren den kjører på, start den igjen om nødvendig, og kontakt leverandøren; "
        "følg klinikkens rutine for nedetid.",
    ),
    text_en=RuleText(
        "A critical service is down",
        "The service {service} has not answered its probes for over {for}.",
        "Staff may be without what the service provides (records, messages, appointments), and work must be done "
        "another way.",
        "Check the service and the server it runs on, restart it if needed, and contact the supplier; follow the "
        "clinic's routine for downtime.",
    ),
)

UNPLANNED_DOWNTIME = RuleSpec(
    name="availability.unplanned_downtime",
    watch=DOWNTIME,
    comparison=">=",
    threshold=30 * 60,
    window=timedelta(days=1),
    labels={"planned": "false"},
    group_by=("service",),
    severity=Severity.WARNING,
    summary=(
        "Tjenesten {service} har vært nede utenfor planlagt vedlikehold i til sammen {value} siste {window} "
        "(grense {threshold})."
    ),
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mye uplanlagt nedetid",
        "Tjenesten {service} har vært nede utenfor planlagt vedlikehold i til sammen {value} siste {window} "
        "(grense {threshold}).",
        "De ansatte har vært uten tjenesten i perioder, og nedetiden teller mot avtalt tjenestenivå.",
        "Se i månedsrapporten når og hvorfor tjenesten var nede, og ta det opp med leverandøren; varsle planlagt "
        "arbeid i vedlikeholdskalenderen.",
    ),
    text_en=RuleText(
        "Much unplanned downtime",
        "The service {service} was down outside planned maintenance for {value} in all in the last {window} "
        "(threshold {threshold}).",
        "Staff have been without the service at times, and the downtime counts against the agreed service level.",
        "See in the monthly report when and why the service was down, and raise it with the supplier; announce "
        "planned work in the maintenance calendar.",
    ),
)

SERVICE_UNSTABLE = RuleSpec(
    name="availability.service_unstable",
    watch=OUTAGES,
    comparison=">=",
    threshold=3,
    window=timedelta(days=1),
    labels={"planned": "false"},
    group_by=("service",),
    severity=Severity.WARNING,
    summary="Tjenesten {service} falt ut {value} ganger utenfor planlagt vedlikehold siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "En tjeneste faller ut gang på gang",
        "Tjenesten {service} falt ut {value} ganger utenfor planlagt vedlikehold siste {window} (grense {threshold}).",
        "En ustabil tjeneste forstyrrer arbeidet og kan gi tapte eller halvferdige registreringer.",
        "Finn årsaken til utfallene (tjenestens logg, serveren, nettet) sammen med leverandøren.",
    ),
    text_en=RuleText(
        "A service keeps dropping out",
        "The service {service} dropped out {value} times outside planned maintenance in the last {window} "
        "(threshold {threshold}).",
        "An unstable service disrupts work and may leave entries lost or half done.",
        "Find the cause of the outages (the service's log, the server, the network) with the supplier.",
    ),
)

SLA_AT_RISK = RuleSpec(
    name="availability.sla_at_risk",
    watch=SLA_BUDGET,
    comparison="<",
    threshold=0.25,
    group_by=("service",),
    severity=Severity.WARNING,
    summary=(
        "Avtalt tjenestenivå (SLA) for {service} er i fare denne måneden: {value} er igjen av den uplanlagte "
        "nedetiden avtalen tillater (grense {threshold})."
    ),
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Avtalt tjenestenivå er i fare",
        "Avtalt tjenestenivå (SLA) for {service} er i fare denne måneden: {value} er igjen av den uplanlagte "
        "nedetiden avtalen tillater (grense {threshold}).",
        "Litt mer nedetid denne måneden, og avtalen er brutt.",
        "Finn årsaken til nedetiden så langt (månedsrapporten), og ta det opp med leverandøren før avtalen brytes.",
    ),
    text_en=RuleText(
        "The agreed service level is at risk",
        "The agreed service level (SLA) of {service} is at risk this month: {value} of the unplanned downtime the "
        "agreement allows is left (threshold {threshold}).",
        "A little more downtime this month, and the agreement is breached.",
        "Find the cause of the downtime so far (the monthly report), and raise it with the supplier before the "
        "agreement is breached.",
    ),
)

SLA_BREACHED = RuleSpec(
    name="availability.sla_breached",
    watch=SLA_BUDGET,
    comparison="<",
    threshold=0,
    group_by=("service",),
    severity=Severity.CRITICAL,
    summary=(
        "Avtalt tjenestenivå (SLA) for {service} er brutt denne måneden: den uplanlagte nedetiden er større enn "
        "avtalen tillater."
    ),
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Avtalt tjenestenivå er brutt",
        "Avtalt tjenestenivå (SLA) for {service} er brutt denne måneden: den uplanlagte nedetiden er større enn "
        "avtalen tillater.",
        "Tjenesten har ikke vært så tilgjengelig som avtalt; det kan gi krav mot leverandøren og skal fram i "
        "rapporten til den dataansvarlige.",
        "Dokumenter nedetiden og den sannsynlige årsaken (månedsrapporten), og ta bruddet opp med leverandøren "
        "etter avtalen.",
    ),
    text_en=RuleText(
        "The agreed service level is breached",
        "The agreed service level (SLA) of {service} is breached this month: the unplanned downtime is more than "
        "the agreement allows.",
        "The service has not been as available as agreed; this may give a claim against the supplier and belongs "
        "in the report to the data controller.",
        "Document the downtime and its likely cause (the monthly report), and raise the breach with the supplier "
        "as the agreement says.",
    ),
)

CERTIFICATE_EXPIRING = RuleSpec(
    name="availability.certificate_expiring",
    watch=TLS_EXPIRY,
    comparison="<",
    threshold=14 * 86400,
    group_by=("service",),
    severity=Severity.WARNING,
    summary="TLS-sertifikatet til {service} utløper om {value} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet", "konfidensialitet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "TLS-sertifikat utløper snart",
        "TLS-sertifikatet til {service} utløper om {value} (grense {threshold}).",
        "Når sertifikatet er utløpt, nekter nettlesere og andre systemer å koble til tjenesten, eller brukerne "
        "venner seg til å trykke seg forbi advarselen.",
        "Forny sertifikatet og installer det på tjenesten, og kontroller at fornyelsen går av seg selv neste gang.",
    ),
    text_en=RuleText(
        "A TLS certificate expires soon",
        "The TLS certificate of {service} expires in {value} (threshold {threshold}).",
        "Once it has expired, browsers and other systems refuse to connect to the service, or users get used to "
        "clicking past the warning.",
        "Renew the certificate and install it on the service, and check that the renewal happens by itself next "
        "time.",
    ),
)

RULES = (SERVICE_DOWN, UNPLANNED_DOWNTIME, SERVICE_UNSTABLE, SLA_AT_RISK, SLA_BREACHED, CERTIFICATE_EXPIRING)
