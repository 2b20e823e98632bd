"""The updates plugin's default deviation rules (data; the rules engine evaluates them).

Texts are in bokmål and English and hold no personal data: counts, kinds and durations (the
packages are named in the report, never who ran apt).

Owners follow the internal-control guide's table: a security update that fails, automatic updates
that fail and a reboot left undone are technical incidents for the IKT-leder; "outdated software
that is not updated" (a security update left waiting) is owned by top management, who hold the
means to change it.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .vocab import APPLIED, OLDEST_PENDING, REBOOT_REQUIRED, SECTION, UNATTENDED_RUNS

SECURITY_PENDING_DAYS = 14

SECURITY_UPDATE_FAILED = RuleSpec(
    name="updates.security_update_failed",
    watch=APPLIED,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"kind": "security", "result": "failure"},
    severity=Severity.WARNING,
    summary="{value} sikkerhetsoppdatering(er) feilet siste {window}.",
    section=SECTION,
    cia=("integritet", "konfidensialitet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Sikkerhetsoppdatering feilet",
        "{value} sikkerhetsoppdatering(er) feilet siste {window}.",
        "Serveren mangler sikkerhetsrettelsen til oppdateringen er kjørt på nytt, og en kjent sårbarhet kan bli "
        "utnyttet; en halvferdig installasjon kan også få programmer til å svikte.",
        "Se hvilke pakker som feilet (månedsrapporten, apt- eller dnf-loggen), rett årsaken (diskplass, "
        "avhengigheter, låst pakkebase) og kjør oppdateringen på nytt.",
    ),
    text_en=RuleText(
        "A security update failed",
        "{value} security update(s) failed in the last {window}.",
        "The server lacks the security fix until the update is run again, and a known vulnerability may be "
        "exploited; a half-finished installation may also make programs fail.",
        "See which packages failed (the monthly report, apt's or dnf's log), fix the cause (disk space, "
        "dependencies, a locked package database) and run the update again.",
    ),
)

SECURITY_UPDATE_PENDING = RuleSpec(
    name="updates.security_update_pending",
    watch=OLDEST_PENDING,
    comparison=">",
    threshold=SECURITY_PENDING_DAYS * 86400,
    labels={"kind": "security"},
    severity=Severity.WARNING,
    summary="En tilgjengelig sikkerhetsoppdatering har ventet i {value} uten å bli installert (grense {threshold}).",
    section=SECTION,
    cia=("integritet", "konfidensialitet"),
    owner="toppledelsen",
    text_nb=RuleText(
        "Sikkerhetsoppdatering er ikke installert",
        "En tilgjengelig sikkerhetsoppdatering har ventet i {value} uten å bli installert (grense {threshold}).",
        "Serveren har en kjent sårbarhet som angripere kan utnytte så lenge oppdateringen ikke er installert.",
        "Installer oppdateringen (i et vedlikeholdsvindu om den krever omstart); holdes den tilbake med vilje, "
        "dokumenter hvorfor og hvilke tiltak som demper risikoen.",
    ),
    text_en=RuleText(
        "A security update is not installed",
        "An available security update has waited {value} without being installed (threshold {threshold}).",
        "The server has a known vulnerability that attackers can exploit for as long as the update is not "
        "installed.",
        "Install the update (in a maintenance window if it needs a restart); if it is held back on purpose, "
        "document why and what reduces the risk meanwhile.",
    ),
)

UNATTENDED_FAILING = RuleSpec(
    name="updates.unattended_upgrades_failing",
    watch=UNATTENDED_RUNS,
    comparison=">=",
    threshold=2,
    # unattended-upgrades runs about once a day (apt-daily-upgrade.timer): two failed runs in three
    # days is no longer a one-off (a lock held by a person's apt run, a mirror that was down).
    window=timedelta(days=3),
    labels={"result": "failure"},
    severity=Severity.WARNING,
    summary="Automatiske oppdateringer (unattended-upgrades) feilet i {value} kjøringer siste {window} (grense {threshold}).",
    section=SECTION,
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Automatiske oppdateringer feiler",
        "Automatiske oppdateringer (unattended-upgrades) feilet i {value} kjøringer siste {window} (grense {threshold}).",
        "Sikkerhetsoppdateringer installeres ikke lenger av seg selv, og serveren blir stadig mer sårbar.",
        "Se feilen i unattended-upgrades' logg (ofte full disk, en låst pakkebase eller en pakke som ikke lar seg "
        "sette opp), rett den, og kjør oppdateringen for hånd.",
    ),
    text_en=RuleText(
        "Automatic updates are failing",
        "Automatic updates (unattended-upgrades) failed in {value} runs in the last {window} (threshold {threshold}).",
        "Security updates are no longer installed by themselves, and the server grows ever more vulnerable.",
        "See the error in unattended-upgrades' log (often a full disk, a locked package database or a package "
        "that cannot be configured), fix it, and run the update by hand.",
    ),
)

REBOOT_PENDING = RuleSpec(
    name="updates.reboot_pending",
    watch=REBOOT_REQUIRED,
    comparison=">",
    threshold=0,
    for_=timedelta(days=7),
    severity=Severity.WARNING,
    summary="Installerte oppdateringer har ventet på omstart av serveren i over {for}.",
    section=SECTION,
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Omstart etter oppdateringer venter",
        "Installerte oppdateringer har ventet på omstart av serveren i over {for}.",
        "Rettelser i kjernen og i biblioteker virker ikke før serveren er startet på nytt: sårbarhetene de retter, "
        "er fortsatt åpne.",
        "Start serveren på nytt i et vedlikeholdsvindu, og varsle det i vedlikeholdskalenderen.",
    ),
    text_en=RuleText(
        "A restart after updates is waiting",
        "Installed updates have waited for a restart of the server for over {for}.",
        "Fixes to the kernel and to libraries take effect only once the server has restarted: the vulnerabilities "
        "they fix are still open.",
        "Restart the server in a maintenance window, and announce it in the maintenance calendar.",
    ),
)

RULES = (SECURITY_UPDATE_FAILED, SECURITY_UPDATE_PENDING, UNATTENDED_FAILING, REBOOT_PENDING)
