"""The firewall plugin's default deviation rules (data; the rules engine evaluates them).

Texts are in bokmål and English and hold no personal data: a device's configured name (``local``
for this host), a protocol and port, counts and periods. A source address reaches no text; the
report ranks source networks as pseudonyms.

``firewall.rule_change_unplanned`` fires for a rule change outside every window and planned change
of the maintenance calendar (``[maintenance]``): it watches ``normagent_firewall_rule_changes_total``
for the changes the collectors counted as ``planned="false"`` (``collectors.judge_planned`` decides
each one by the calendar), as ``changes.unplanned_config_change`` does. A change inside a window is
a planned one and raises no candidate. A change of the security barrier touches its integrity.

``firewall.outbound_blocked`` is the other direction of the barrier: many connections *out* of
the clinic's network stopped by the firewall often mean a machine inside is infected and calling
home (or a program is set up wrong).

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .collectors import SECTION
from .parse import BLOCKED, BY_PORT, MESSAGES, RULE_CHANGES

PORT_BURST = RuleSpec(
    name="firewall.port_burst",
    watch=f"rollup:{BY_PORT}",
    comparison=">=",
    threshold=1000,
    window=timedelta(hours=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary=(
        "Brannmuren blokkerte {value} forsøk mot port {key} i løpet av døgnet, og forsøkene pågikk fortsatt "
        "siste {window} (grense {threshold}). Mulig skanning eller angrep."
    ),
    section=SECTION,
    cia=("konfidensialitet", "tilgjengelighet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mange blokkerte forsøk mot samme port",
        # A rollup is kept per day: the value is the day's count (the days the window touches) of a
        # port still being tried within the window.
        "Brannmuren blokkerte {value} forsøk mot port {key} i løpet av døgnet, og forsøkene pågikk fortsatt "
        "siste {window} (grense {threshold}). Mulig skanning eller angrep.",
        "Noen forsøker å nå en tjeneste de ikke skal nå. Brannmuren stoppet forsøkene, men et vedvarende angrep "
        "kan finne en åpning et annet sted eller belaste forbindelsen.",
        "Kontroller at tjenesten på porten ikke er åpen andre steder (andre brannmurer, videresending av porter), "
        "se kildenettverkene i månedsrapporten (som pseudonymer), og vurder å sperre dem.",
    ),
    text_en=RuleText(
        "Many blocked attempts on one port",
        "The firewall blocked {value} attempts on port {key} during the day, still going on in the last {window} "
        "(threshold {threshold}). Possibly a scan or an attack.",
        "Someone is trying to reach a service they should not. The firewall stopped the attempts, but a sustained "
        "attack may find an opening elsewhere or load the line.",
        "Check that the service on that port is not open elsewhere (other firewalls, port forwarding), see the "
        "source networks in the monthly report (as pseudonyms), and consider blocking them.",
    ),
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
    summary="Regelsettet eller oppsettet til brannmuren ({device}) ble endret utenfor en plan {value} gang(er) siste {window}.",
    section=SECTION,
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Brannmurens regler er endret utenfor en plan",
        "Regelsettet eller oppsettet til brannmuren ({device}) ble endret utenfor en plan {value} gang(er) siste "
        "{window}.",
        "En endring utenfor en plan kan slippe gjennom trafikk som skulle vært stoppet, eller stenge ute "
        "tjenester klinikken trenger.",
        "Kontroller om endringen var godkjent likevel (driftsleverandøren) og bare mangler i "
        "vedlikeholdskalenderen. Var den ikke det: finn ut hvem som gjorde den og hva som ble endret, og sett tilbake det som ikke skal være der.",
    ),
    text_en=RuleText(
        "The firewall's rules were changed outside a plan",
        "The rule set or configuration of the firewall ({device}) was changed outside a plan {value} time(s) in the "
        "last {window}.",
        "A change outside a plan may let through traffic that should be stopped, or shut out services the "
        "clinic needs.",
        "Check whether the change was approved all the same (the operations provider) and is only missing "
        "from the maintenance calendar. If it was not: find out who made it and what was changed, and undo what should not be there.",
    ),
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
    summary="Brannmuren ({device}) har ikke sendt en eneste loggmelding på over {window}.",
    section=SECTION,
    cia=("integritet", "tilgjengelighet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Brannmuren har sluttet å sende logg",
        "Brannmuren ({device}) har ikke sendt en eneste loggmelding på over {window}.",
        "Angrep, blokkeringer og endringer på brannmuren blir ikke sett; enheten kan også være nede.",
        "Kontroller at enheten er i drift og at loggoppsettet (syslog til normagent) er som før; er det endret "
        "uten plan, behandle det som en endring av sikkerhetsbarrieren.",
    ),
    text_en=RuleText(
        "The firewall stopped sending its log",
        "The firewall ({device}) has not sent a single log message for over {window}.",
        "Attacks, blocks and changes on the firewall go unseen; the device may also be down.",
        "Check that the device is running and that its logging (syslog to normagent) is as before; if it was "
        "changed without a plan, treat it as a change of the security barrier.",
    ),
)

OUTBOUND_BLOCKED = RuleSpec(
    name="firewall.outbound_blocked",
    watch=BLOCKED,
    comparison=">=",
    threshold=100,
    window=timedelta(hours=1),
    labels={"direction": "out"},
    group_by=("device",),
    severity=Severity.WARNING,
    summary="Brannmuren ({device}) blokkerte {value} forsøk på å koble seg ut fra nettet siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("konfidensialitet", "integritet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mange blokkerte forbindelser ut fra nettet",
        "Brannmuren ({device}) blokkerte {value} forsøk på å koble seg ut fra nettet siste {window} (grense {threshold}).",
        "En maskin innenfor kan være infisert og forsøke å nå en angriper, eller et program er satt opp feil; "
        "forsøk som ikke ble stoppet, kan ha sendt opplysninger ut.",
        "Finn maskinen forsøkene kommer fra i brannmurens egen logg, skann den for skadevare, og undersøk hvor den "
        "forsøkte å koble seg til.",
    ),
    text_en=RuleText(
        "Many blocked connections out of the network",
        "The firewall ({device}) blocked {value} attempts to connect out of the network in the last {window} "
        "(threshold {threshold}).",
        "A machine inside may be infected and trying to reach an attacker, or a program is set up wrong; attempts "
        "that were not stopped may have sent data out.",
        "Find the machine the attempts come from in the firewall's own log, scan it for malware, and examine where "
        "it tried to connect.",
    ),
)

RULES = (PORT_BURST, RULE_CHANGE, DEVICE_SILENT, OUTBOUND_BLOCKED)
