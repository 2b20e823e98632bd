"""The network plugin's default deviation rules (data; the rules engine evaluates them).

Texts are in bokmål and English and hold no personal data: device names come from the
configuration, interface names from the devices (cleaned and bounded), and numbers.

Two kinds of rule watch downtime: ``network.snmp_down`` and ``network.interface_down`` fire while
a device or interface *is* down (for a few minutes); ``network.device_downtime`` and
``network.interface_downtime`` add up the downtime of a day, so a line that drops for a minute
again and again (never long enough for the first kind) is a deviation for the network provider
too.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .collectors import SECTION
from .parse import DEVICE_DOWN, DEVICE_RESTARTS, IF_DISCARDS, IF_DOWN, IF_ERRORS, IF_UP, SNMP_UP

DEVICE_UNREACHABLE = RuleSpec(
    name="network.snmp_down",
    watch=SNMP_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Nettverksutstyret ({device}) har ikke svart riktig på SNMP i over {for} (nede, eller feil i svaret).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Nettverksutstyr svarer ikke",
        "Nettverksutstyret ({device}) har ikke svart riktig på SNMP i over {for} (nede, eller feil i svaret).",
        "Er utstyret nede, kan klinikken miste nettet og med det journalsystemet, meldingene og Norsk Helsenett; "
        "svarer det bare ikke på SNMP, overvåkes ikke nettet.",
        "Kontroller at utstyret er i drift og kan nås, og meld feilen til nettleverandøren om det er nede. Svarer "
        "det, men ikke på SNMP: kontroller SNMP-oppsettet (community eller bruker, tilgangsliste).",
    ),
    text_en=RuleText(
        "Network device not answering",
        "The network device ({device}) has not answered SNMP properly for over {for} (down, or a faulty answer).",
        "If the device is down, the clinic may lose its network and with it the record system, messages and "
        "Norsk Helsenett; if it only fails to answer SNMP, the network is not being watched.",
        "Check that the device is running and reachable, and report the fault to the network provider if it is "
        "down. If it answers but not SNMP: check its SNMP set-up (community or user, access list).",
    ),
)

INTERFACE_DOWN = RuleSpec(
    name="network.interface_down",
    watch=IF_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    group_by=("device", "interface"),
    severity=Severity.WARNING,
    summary="Grensesnittet {interface} på nettverksutstyret ({device}) har vært nede i over {for}.",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Nettverksgrensesnitt nede",
        "Grensesnittet {interface} på nettverksutstyret ({device}) har vært nede i over {for}.",
        "Det som er koblet til grensesnittet (linjen ut, en svitsj, en server) kan være uten nett.",
        "Kontroller kabel, motpart og oppsett; er det linjen til nettleverandøren, meld feilen til dem.",
    ),
    text_en=RuleText(
        "Network interface down",
        "The interface {interface} of the network device ({device}) has been down for over {for}.",
        "Whatever is connected to the interface (the line out, a switch, a server) may be without network.",
        "Check the cable, the other end and the configuration; if it is the network provider's line, report the "
        "fault to them.",
    ),
)

DEVICE_RESTARTED = RuleSpec(
    name="network.device_restart",
    watch=DEVICE_RESTARTS,
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Nettverksutstyret ({device}) startet på nytt {value} gang(er) siste {window}.",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Nettverksutstyr startet på nytt",
        "Nettverksutstyret ({device}) startet på nytt {value} gang(er) siste {window}.",
        "Nettet var borte mens utstyret startet; uventede omstarter kan komme av strøm- eller maskinvarefeil, "
        "eller av at noen har endret utstyret.",
        "Finn ut om omstarten var planlagt (vedlikehold, oppdatering); var den ikke det, se utstyrets logg og "
        "strømforsyning, og ta det opp med nettleverandøren.",
    ),
    text_en=RuleText(
        "Network device restarted",
        "The network device ({device}) restarted {value} time(s) in the last {window}.",
        "The network was gone while the device started; unexpected restarts may come from power or hardware "
        "faults, or from someone changing the device.",
        "Find out whether the restart was planned (maintenance, an update); if not, see the device's log and power "
        "supply, and raise it with the network provider.",
    ),
)

DEVICE_DOWNTIME = RuleSpec(
    name="network.device_downtime",
    watch=DEVICE_DOWN,
    comparison=">=",
    threshold=30 * 60,
    window=timedelta(days=1),
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Nettverksutstyret ({device}) har ikke svart i til sammen {value} siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mye nedetid for nettverksutstyr",
        "Nettverksutstyret ({device}) har ikke svart i til sammen {value} siste {window} (grense {threshold}).",
        "Lange eller gjentatte brudd gjør journalsystem, meldinger og Norsk Helsenett utilgjengelige, og kan bryte "
        "avtalt tjenestenivå med nettleverandøren.",
        "Se i månedsrapporten når bruddene var, og ta dem opp med nettleverandøren; mange korte brudd tyder på en "
        "ustabil linje eller strømforsyning.",
    ),
    text_en=RuleText(
        "Much downtime of a network device",
        "The network device ({device}) did not answer for {value} in all in the last {window} (threshold {threshold}).",
        "Long or repeated outages make the record system, messages and Norsk Helsenett unavailable, and may break "
        "the service level agreed with the network provider.",
        "See in the monthly report when the outages were, and raise them with the network provider; many short "
        "outages suggest an unstable line or power supply.",
    ),
)

INTERFACE_DOWNTIME = RuleSpec(
    name="network.interface_downtime",
    watch=IF_DOWN,
    comparison=">=",
    threshold=30 * 60,
    window=timedelta(days=1),
    group_by=("device", "interface"),
    severity=Severity.WARNING,
    summary=(
        "Grensesnittet {interface} på nettverksutstyret ({device}) har vært nede i til sammen {value} siste "
        "{window} (grense {threshold})."
    ),
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mye nedetid for et nettverksgrensesnitt",
        "Grensesnittet {interface} på nettverksutstyret ({device}) har vært nede i til sammen {value} siste "
        "{window} (grense {threshold}).",
        "Det som er koblet til grensesnittet, har vært uten nett i perioder; er det linjen ut, har klinikken vært "
        "uten forbindelse.",
        "Se i månedsrapporten når bruddene var; kontroller kabel og motpart, og ta bruddene opp med "
        "nettleverandøren om det er deres linje.",
    ),
    text_en=RuleText(
        "Much downtime of a network interface",
        "The interface {interface} of the network device ({device}) was down for {value} in all in the last "
        "{window} (threshold {threshold}).",
        "Whatever is connected to the interface has been without network at times; if it is the line out, the "
        "clinic has been without a connection.",
        "See in the monthly report when the outages were; check the cable and the other end, and raise the "
        "outages with the network provider if it is their line.",
    ),
)

INTERFACE_ERRORS = RuleSpec(
    name="network.interface_errors",
    watch=IF_ERRORS,
    comparison=">=",
    threshold=100,
    window=timedelta(hours=1),
    group_by=("device", "interface"),
    severity=Severity.WARNING,
    summary="Grensesnittet {interface} på nettverksutstyret ({device}) hadde {value} pakker med feil siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Feil på et nettverksgrensesnitt",
        "Grensesnittet {interface} på nettverksutstyret ({device}) hadde {value} pakker med feil siste {window} "
        "(grense {threshold}).",
        "Feil på linjen gjør nettet tregt eller ustabilt: data må sendes på nytt eller går tapt underveis.",
        "Kontroller kabel og kontakter, og hastighet og dupleks på begge sider; meld feilen til nettleverandøren "
        "om det er deres linje.",
    ),
    text_en=RuleText(
        "Errors on a network interface",
        "The interface {interface} of the network device ({device}) had {value} packets with errors in the last "
        "{window} (threshold {threshold}).",
        "Errors on the line make the network slow or unstable: data must be sent again or is lost on the way.",
        "Check the cable and connectors, and speed and duplex at both ends; report the fault to the network "
        "provider if it is their line.",
    ),
)

INTERFACE_DISCARDS = RuleSpec(
    name="network.interface_discards",
    watch=IF_DISCARDS,
    comparison=">=",
    threshold=10_000,
    window=timedelta(hours=1),
    group_by=("device", "interface"),
    severity=Severity.INFO,
    summary="Grensesnittet {interface} på nettverksutstyret ({device}) kastet {value} pakker siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Nettverksgrensesnitt kaster pakker",
        "Grensesnittet {interface} på nettverksutstyret ({device}) kastet {value} pakker siste {window} "
        "(grense {threshold}).",
        "Linjen kan være overbelastet: nettet blir tregt for journalsystem og meldinger når det er travelt.",
        "Se trafikken på grensesnittet (normagent_network_interface_bytes_total), og vurder mer kapasitet eller "
        "prioritering av trafikken med nettleverandøren.",
    ),
    text_en=RuleText(
        "Network interface discarding packets",
        "The interface {interface} of the network device ({device}) discarded {value} packets in the last {window} "
        "(threshold {threshold}).",
        "The line may be overloaded: the network becomes slow for the record system and messages when it is busy.",
        "See the traffic on the interface (normagent_network_interface_bytes_total), and consider more capacity or "
        "prioritising the traffic with the network provider.",
    ),
)

RULES = (
    DEVICE_UNREACHABLE,
    INTERFACE_DOWN,
    DEVICE_RESTARTED,
    DEVICE_DOWNTIME,
    INTERFACE_DOWNTIME,
    INTERFACE_ERRORS,
    INTERFACE_DISCARDS,
)
