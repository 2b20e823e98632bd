"""The changes plugin's default deviation rules (data; the rules engine evaluates them).

``changes.unplanned_config_change`` watches configuration changes whose ``planned`` label is
``false``: a change outside every maintenance window and every planned change that covers it
(``planned.py``, against the ``[maintenance]`` calendar). Issue 13: "a change outside any
planned window is a deviation candidate". A site without a calendar has every change
unplanned, and each one raises a candidate: announce the work in ``[maintenance]`` (or its
iCalendar file), or retune the rule (``[rules."changes.unplanned_config_change"]``).

``changes.unplanned_package_change`` does the same for packages installed, removed, purged or
downgraded outside every plan (the rollup ``changes.packages_unplanned``; upgrades are left to
the updates plugin, a host upgrades hundreds of packages a month). It is an info: a new kernel
package that an unattended upgrade pulls in is such an install.

Both touch integrity. Texts are in bokmål and English and hold no personal data: a source
(file, auditd, windows) and counts; which file or package changed is in the report.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .vocab import CONFIG_CHANGES, SECTION, UNPLANNED_PACKAGES

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
        "{value} konfigurasjonsendring(er) ({source}) siste {window} utenfor planlagte vedlikeholdsvinduer og "
        "planlagte endringer."
    ),
    section=SECTION,
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Uplanlagt konfigurasjonsendring",
        "{value} konfigurasjonsendring(er) ({source}) siste {window} utenfor planlagte vedlikeholdsvinduer og "
        "planlagte endringer.",
        "En endring ingen har varslet, kan svekke sikkerheten (tilganger, logging, brannmur) eller få systemer til "
        "å feile; den kan også være tegn på at uvedkommende har tilgang.",
        "Se i månedsrapporten hva som ble endret, og finn ut hvem som gjorde det og hvorfor. Var endringen i orden, "
        "varsle slike endringer i vedlikeholdskalenderen neste gang; var den ikke det, sett den tilbake.",
    ),
    text_en=RuleText(
        "Unplanned configuration change",
        "{value} configuration change(s) ({source}) in the last {window} outside planned maintenance windows and "
        "planned changes.",
        "A change nobody announced may weaken security (access, logging, firewall) or make systems fail; it may "
        "also be a sign that someone unauthorised has access.",
        "See in the monthly report what was changed, and find out who made the change and why. If it was in order, "
        "announce such changes in the maintenance calendar next time; if not, undo it.",
    ),
)

UNPLANNED_PACKAGE_CHANGE = RuleSpec(
    name="changes.unplanned_package_change",
    watch=f"rollup:{UNPLANNED_PACKAGES}",
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    severity=Severity.INFO,
    summary=(
        "{value} pakke(r) ble installert, fjernet eller nedgradert siste {window} utenfor planlagte "
        "vedlikeholdsvinduer og planlagte endringer."
    ),
    section=SECTION,
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Uplanlagt endring av programvare",
        "{value} pakke(r) ble installert, fjernet eller nedgradert siste {window} utenfor planlagte "
        "vedlikeholdsvinduer og planlagte endringer.",
        "Programvare ingen har varslet, kan åpne for angrep eller endre hvordan systemene virker.",
        "Se i månedsrapporten hvilke pakker det gjelder, og kontroller at endringen var ønsket; var den ikke det, "
        "sett den tilbake og finn ut hvem som gjorde den.",
    ),
    text_en=RuleText(
        "Unplanned change of software",
        "{value} package(s) were installed, removed or downgraded in the last {window} outside planned maintenance "
        "windows and planned changes.",
        "Software nobody announced may open the way for attacks or change how the systems work.",
        "See in the monthly report which packages it concerns, and check that the change was wanted; if not, undo "
        "it and find out who made it.",
    ),
)

RULES = (UNPLANNED_CONFIG_CHANGE, UNPLANNED_PACKAGE_CHANGE)
