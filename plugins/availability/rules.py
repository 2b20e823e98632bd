"""The availability plugin's default deviation rules (data; the rules engine evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and carry no personal data:
only the service name from the configuration and numbers. ``[rules."<name>"]`` retunes them (the
``for`` of ``availability.service_down`` is the "N minutes" a service may be down before it is a
deviation candidate).

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity

from .collectors import SECTION, SERVICE_UP, SLA_BUDGET, TLS_EXPIRY

SERVICE_DOWN = RuleSpec(
    name="availability.service_down",
    watch=SERVICE_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("service",),
    severity=Severity.WARNING,
    summary="Tjenesten {service} har ikke svart på prøvene sine på en stund (nede lenger enn regelens grense).",
    section=SECTION,
)

SLA_AT_RISK = RuleSpec(
    name="availability.sla_at_risk",
    watch=SLA_BUDGET,
    comparison="<",
    threshold=0.25,
    group_by=("service",),
    severity=Severity.WARNING,
    summary=(
        "SLA-en for {service} er i fare denne måneden: andel igjen av månedens tillatte uplanlagte "
        "nedetid er {value}, grense {threshold}."
    ),
    section=SECTION,
)

SLA_BREACHED = RuleSpec(
    name="availability.sla_breached",
    watch=SLA_BUDGET,
    comparison="<",
    threshold=0,
    group_by=("service",),
    severity=Severity.CRITICAL,
    summary="SLA-en for {service} er brutt denne måneden: uplanlagt nedetid over det avtalen tillater.",
    section=SECTION,
)

CERTIFICATE_EXPIRING = RuleSpec(
    name="availability.certificate_expiring",
    watch=TLS_EXPIRY,
    comparison="<",
    threshold=14 * 86400,
    group_by=("service",),
    severity=Severity.WARNING,
    summary="TLS-sertifikatet til {service} utløper snart: {value} igjen, grense {threshold}.",
    section=SECTION,
)

RULES = (SERVICE_DOWN, SLA_AT_RISK, SLA_BREACHED, CERTIFICATE_EXPIRING)
