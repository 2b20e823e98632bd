"""The access plugin's default deviation rules (data; the rules engine evaluates them).

Texts are in bokmål and English and hold no personal data: a network or an account appears only
as its pseudonym (``{key}`` of a rollup), which means something on this host only.

``access.success_after_failures`` needs one thing a single watched value cannot say: that the
network that logged in had failed before. It watches the successes rollup with
``preceded_by="rollup:access.failed_by_network"`` and ``min_preceding=10``: a network's successes
count only if the same network failed at least ten times within the window, first seen no later
than the success was last seen. A password guessed this way may have given someone access to
personal data, so the candidate carries the 72-hour deadline.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity

from .collectors import SECTION
from .tally import (
    EVENTLOG_ERRORS,
    FAILED_BY_NETWORK,
    FAILED_LOGINS,
    LOCKOUT_BY_ACCOUNT,
    RESET_OUTSIDE_HOURS,
    SUCCESS_BY_NETWORK,
)

FAILED_FROM_NETWORK = RuleSpec(
    name="access.failed_from_network",
    watch=f"rollup:{FAILED_BY_NETWORK}",
    comparison=">=",
    threshold=50,
    window=timedelta(days=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary=(
        "Mange mislykkede pålogginger fra samme nettverk (pseudonym {key}): {value} siste døgn, "
        "grense {threshold}. Mulig forsøk på å gjette passord."
    ),
    section=SECTION,
    cia=("konfidensialitet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mange mislykkede pålogginger fra samme nettverk",
        "Mange mislykkede pålogginger fra samme nettverk (pseudonym {key}): {value} siste {window}, grense {threshold}. "
        "Mulig forsøk på å gjette passord.",
        "Lykkes forsøkene, kan uvedkommende få tilgang til systemer med helse- og personopplysninger.",
        "Vurder å sperre nettverket i brannmuren, og kontroller at kontoene som angripes har sterke passord "
        "eller tofaktorinnlogging.",
    ),
    text_en=RuleText(
        "Many failed logins from one network",
        "Many failed logins from one network (pseudonym {key}): {value} in the last {window}, threshold {threshold}. "
        "Possibly someone guessing passwords.",
        "If the attempts succeed, outsiders may gain access to systems holding health and personal data.",
        "Consider blocking the network in the firewall, and check that the accounts targeted have strong passwords "
        "or two-factor login.",
    ),
)

FAILED_BURST = RuleSpec(
    name="access.failed_logins_burst",
    watch=FAILED_LOGINS,
    comparison=">=",
    threshold=200,
    window=timedelta(hours=1),
    group_by=("source",),
    severity=Severity.WARNING,
    summary="Uvanlig mange mislykkede pålogginger via {source}: {value} siste time, grense {threshold}.",
    section=SECTION,
    cia=("konfidensialitet", "tilgjengelighet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Uvanlig mange mislykkede pålogginger",
        "Uvanlig mange mislykkede pålogginger via {source}: {value} siste {window}, grense {threshold}.",
        "Et angrep på innloggingen kan føre til uvedkommende tilgang, eller til at ansatte låses ute.",
        "Undersøk hvor forsøkene kommer fra (normagent-rapporten viser nettverk som pseudonymer), og stram inn "
        "tilgangen til tjenesten.",
    ),
    text_en=RuleText(
        "Unusually many failed logins",
        "Unusually many failed logins via {source}: {value} in the last {window}, threshold {threshold}.",
        "An attack on the login may lead to unauthorised access, or lock staff out.",
        "Find out where the attempts come from (the normagent report shows networks as pseudonyms), and tighten "
        "access to the service.",
    ),
)

ACCOUNT_LOCKED = RuleSpec(
    name="access.account_locked",
    watch=f"rollup:{LOCKOUT_BY_ACCOUNT}",
    comparison=">",
    threshold=0,
    window=timedelta(hours=1),
    group_by=("key",),
    severity=Severity.WARNING,
    summary=(
        "En konto (pseudonym {key}) ble låst etter gjentatte mislykkede pålogginger "
        "({value} gang(er) siste time)."
    ),
    section=SECTION,
    cia=("tilgjengelighet", "konfidensialitet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Konto låst etter mislykkede pålogginger",
        "En konto (pseudonym {key}) ble låst etter gjentatte mislykkede pålogginger ({value} gang(er) siste {window}).",
        "Brukeren av kontoen kan være stengt ute fra systemene; låsingen kan også skyldes et angrep på kontoen.",
        "Kontakt brukeren av kontoen (IKT-ansvarlig kan slå opp pseudonymet lokalt), åpne kontoen når det er "
        "avklart, og bytt passord ved mistanke om angrep.",
    ),
    text_en=RuleText(
        "Account locked after failed logins",
        "An account (pseudonym {key}) was locked after repeated failed logins ({value} time(s) in the last {window}).",
        "The account's user may be locked out of the systems; the lockout may also come from an attack on the account.",
        "Contact the account's user (IT staff can look the pseudonym up locally), unlock the account once this is "
        "clear, and change the password if an attack is suspected.",
    ),
)

SUCCESS_AFTER_FAILURES = RuleSpec(
    name="access.success_after_failures",
    watch=f"rollup:{SUCCESS_BY_NETWORK}",
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    preceded_by=f"rollup:{FAILED_BY_NETWORK}",
    min_preceding=10,
    group_by=("key",),
    severity=Severity.CRITICAL,
    summary=(
        "Vellykket pålogging fra et nettverk (pseudonym {key}) som først hadde mange mislykkede "
        "forsøk samme døgn: mulig gjettet passord. Antall vellykkede: {value}."
    ),
    section=SECTION,
    cia=("konfidensialitet", "integritet"),
    owner="IKT-leder",
    personal_data=True,
    text_nb=RuleText(
        "Vellykket pålogging etter mange mislykkede forsøk",
        "Vellykket pålogging fra et nettverk (pseudonym {key}) som først hadde mange mislykkede forsøk siste "
        "{window}: mulig gjettet passord. Antall vellykkede: {value}.",
        "Uvedkommende kan ha logget inn og fått tilgang til helse- og personopplysninger. Er det et brudd på "
        "personopplysningssikkerheten, skal det meldes til Datatilsynet innen fristen.",
        "Finn kontoen som logget inn, sperr den og bytt passord; undersøk hva som ble gjort i økten, og vurder "
        "om hendelsen må meldes til Datatilsynet.",
    ),
    text_en=RuleText(
        "Successful login after many failed attempts",
        "A successful login from a network (pseudonym {key}) that first failed many times in the last {window}: "
        "possibly a guessed password. Successful logins: {value}.",
        "An outsider may have logged in and accessed health and personal data. If this is a personal-data breach, "
        "it must be notified to Datatilsynet by the deadline.",
        "Find the account that logged in, lock it and change its password; examine what was done in the session, "
        "and consider whether the incident must be notified to Datatilsynet.",
    ),
)

RESET_OFF_HOURS = RuleSpec(
    name="access.reset_outside_hours",
    watch=f"rollup:{RESET_OUTSIDE_HOURS}",
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    group_by=("key",),
    severity=Severity.INFO,
    summary="Passord endret eller tilbakestilt utenfor arbeidstid ({key}): {value} siste døgn.",
    section=SECTION,
    cia=("konfidensialitet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Passord endret utenfor arbeidstid",
        "Passord endret eller tilbakestilt utenfor arbeidstid ({key}): {value} siste {window}.",
        "En uvanlig passordendring kan bety at noen har tatt over en konto.",
        "Kontroller med brukeren eller IKT-ansvarlig at endringen var planlagt.",
    ),
    text_en=RuleText(
        "Password changed outside business hours",
        "Password changed or reset outside business hours ({key}): {value} in the last {window}.",
        "An unusual password change may mean that someone has taken over an account.",
        "Check with the user or the IT staff that the change was planned.",
    ),
)

EVENTLOG_BURST = RuleSpec(
    name="access.eventlog_errors_burst",
    watch=EVENTLOG_ERRORS,
    comparison=">=",
    threshold=100,
    window=timedelta(hours=1),
    group_by=("log",),
    severity=Severity.WARNING,
    summary="{value} feil i hendelsesloggen ({log}) siste time, grense {threshold}.",
    section=SECTION,
    cia=("tilgjengelighet", "integritet"),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mange feil i hendelsesloggen",
        "{value} feil eller kritiske hendelser i hendelsesloggen ({log}) siste {window}, grense {threshold}.",
        "En tjeneste eller maskinvare kan være i ferd med å svikte.",
        "Se hvilke tjenester feilene kommer fra (normagent-rapporten og normagent_eventlog_errors_total{{origin}}), "
        "og rett feilen eller meld den til leverandøren.",
    ),
    text_en=RuleText(
        "Many errors in the event log",
        "{value} errors or critical events in the event log ({log}) in the last {window}, threshold {threshold}.",
        "A service or hardware may be about to fail.",
        "See which services the errors come from (the normagent report and normagent_eventlog_errors_total{{origin}}), "
        "and fix the fault or report it to the supplier.",
    ),
)

RULES = (FAILED_FROM_NETWORK, FAILED_BURST, ACCOUNT_LOCKED, SUCCESS_AFTER_FAILURES, RESET_OFF_HOURS, EVENTLOG_BURST)
