"""The report's own words in bokmål and English, and numbers, dates and durations as each language
writes them (``1 234,5`` and ``5. desember 2026``; ``1,234.5`` and ``5 December 2026``).

Numbers and dates come from Babel (CLDR's rules for ``nb`` and ``en_GB``), never from the
process's locale, so a report reads the same wherever it is made. The sections' own paragraphs
and tables are written by the plugins, in bokmål; an English report says so where it shows them.

Imports Babel (the ``report`` extra); only the report package imports this module.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Final

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

LANGUAGES: Final = ("nb", "en")
LOCALES: Final = {"nb": "nb_NO", "en": "en_GB"}

TEXTS: Final[dict[str, dict[str, str]]] = {
    "nb": {
        "title": "Månedsrapport: informasjonssikkerhet i driften",
        "title_year": "Årsrapport: informasjonssikkerhet i driften",
        "subtitle": "Tilbakerapportering av resultater fra IKT-driften (Normen faktaark 12)",
        "signing": "Grunnlag for signering",
        "period": "Periode",
        "hosts": "Server(e)",
        "agent_version": "normagent-versjon",
        "config_fingerprint": "Konfigurasjon (fingeravtrykk)",
        "time_zone": "Tidssone",
        "generated_at": "Laget",
        "json_sha256": "SHA-256 av rapportens JSON",
        "source": "Datakilde",
        "source_ledger": "agentens database på serveren",
        "source_prometheus": "Prometheus",
        "summary": "Sammendrag for ledelsen",
        "status": "Status per område",
        "area": "Område",
        "state": "Status",
        "why": "Hvorfor",
        "decisions": "Tre ting som trenger en beslutning",
        "no_decisions": "Ingenting i perioden krever en beslutning.",
        "changes": "Endret siden forrige måned",
        "no_changes": "Ingen nøkkeltall endret seg fra forrige måned.",
        "completeness": "Datagrunnlag",
        "completeness_intro": "Andel av perioden hver innsamler kjørte og lyktes. Et område med ufullstendige data sier det i overskriften.",
        "collector": "Innsamler",
        "share": "Andel",
        "runs": "Kjøringer",
        "failures": "Feilet",
        "gaps": "Perioder uten data (agenten kjørte ikke)",
        "no_gaps": "Agenten kjørte hele perioden.",
        "from": "Fra",
        "to": "Til",
        "length": "Varighet",
        "incomplete": "ufullstendige data",
        "no_data": "ingen data",
        "indicators": "Nøkkeltall",
        "indicator": "Nøkkeltall",
        "this_month": "Denne måneden",
        "last_month": "Forrige måned",
        "this_year": "Dette året",
        "last_year": "Forrige år",
        "trend": "Utvikling siste 12 måneder",
        "missing": "mangler",
        "deviations": "Avvik og oppfølging",
        "deviations_intro": "Avvikskandidater agentens regler meldte i perioden, og hvordan de er fulgt opp. "
        "Kandidater merket 72 t kan gjelde personopplysninger: et brudd må da meldes til Datatilsynet innen 72 timer.",
        "raised": "Meldt i perioden",
        "acknowledged": "Kvittert ut",
        "open": "Åpne ved periodens slutt",
        "deadline_72h": "Med 72-timersfrist",
        "candidate": "Nr.",
        "count": "Antall",
        "rule": "Avvik",
        "severity": "Alvorlighet",
        "fired": "Meldt",
        "resolved": "Løst",
        "followed_up": "Kvittert",
        "notify_by": "Frist 72 t",
        "no_deviations": "Ingen avvikskandidater i perioden.",
        "fleet": "Oversikt over serverne",
        "host": "Server",
        "text_in_norwegian": "",
        "section_failed": "Avsnittet kunne ikke lages",
        "not_in_prometheus": "Hendelser, topplister og kvitteringer finnes bare i den enkelte serverens database; "
        "denne delen er laget fra Prometheus og viser tallene derfra.",
        "green": "grønn",
        "yellow": "gul",
        "red": "rød",
        "unknown": "ukjent",
        "page": "Side",
        "footer": "Laget av normagent. Tallene er telt én gang hver; personopplysninger vises aldri, bare pseudonymer.",
        "history_missing": "Databasen er fra en eldre normagent (skjema {version}): kjørehistorikk finnes først fra oppgraderingen, "
        "og for tiden før kan det ikke sies hvor fullstendige dataene er.",
        "candidates_missing": "Databasen er fra en normagent (skjema {version}) som ikke førte avvikskandidater: avvikene og "
        "statusen per område kan ikke vises for tiden før oppgraderingen.",
        "history_since": "Kjørehistorikk finnes fra {date}; for tiden før kan det ikke sies hvor fullstendige dataene er.",
        "no_data_period": "Det finnes ingen data for denne perioden: agenten kjørte ikke, eller databasen var ikke opprettet ennå.",
        "not_finite": "Noen verdier var ikke tall (NaN eller uendelig) og er utelatt fra rapporten: {metrics}.",
        "decision_open": "{count} åpne avvik i «{area}» uten oppfølging – bestem hvem som følger opp.",
        "decision_72h": "Mulig brudd på personopplysningssikkerheten («{title}»): avgjør innen {deadline} om det skal meldes til Datatilsynet.",
        "decision_critical": "Kritisk avvik i «{area}»: «{title}» – avgjør tiltak.",
        "decision_incomplete": "Datagrunnlaget for «{area}» er ufullstendig ({share}) – avgjør om overvåkingen må rettes.",
        "decision_worse": "«{title}» økte fra {before} til {after} – vurder tiltak.",
        "change_up": "{title}: {before} → {after}",
        "status_changed": "Status for «{area}» endret fra {before} til {after}.",
        "status_why_red": "kritiske avvik eller mulig brudd på personopplysningssikkerheten",
        "status_why_yellow": "avvik meldt i perioden",
        "status_why_green": "ingen avvik i perioden",
        "status_why_unknown": "for lite data",
        "status_why_open": "avvik uten oppfølging ved periodens slutt",
        "status_why_followed": "ingen åpne avvik uten oppfølging ved periodens slutt",
        "status_why_alerts": "Prometheus har ingen normagent-varslingsregler (ALERTS) for denne serveren",
        "status_why_no_candidates": "databasen er fra en normagent uten avvikskandidater",
        "status_rule": "Status følger reglenes terskler: rød når en kritisk avvikskandidat eller en med 72-timersfrist var åpen i perioden, "
        "gul når andre avvikskandidater var åpne, grønn ellers; ukjent når området mangler data.",
        "yes": "ja",
        "no": "nei",
        "hours": "timer",
        "fleet_summary": "Serverne i perioden",
        "collectors_missing": "Innsamlere med ufullstendige data",
    },
    "en": {
        "title": "Monthly report: information security in operations",
        "title_year": "Yearly report: information security in operations",
        "subtitle": "Reporting back the results of IT operations (Normen factsheet 12)",
        "signing": "For signing",
        "period": "Period",
        "hosts": "Server(s)",
        "agent_version": "normagent version",
        "config_fingerprint": "Configuration (fingerprint)",
        "time_zone": "Time zone",
        "generated_at": "Generated",
        "json_sha256": "SHA-256 of the report's JSON",
        "source": "Data source",
        "source_ledger": "the agent's database on the server",
        "source_prometheus": "Prometheus",
        "summary": "Summary for management",
        "status": "Status per area",
        "area": "Area",
        "state": "Status",
        "why": "Why",
        "decisions": "Three things that need a decision",
        "no_decisions": "Nothing in the period needs a decision.",
        "changes": "Changed since last month",
        "no_changes": "No key figure changed from last month.",
        "completeness": "Data completeness",
        "completeness_intro": "The share of the period each collector ran and succeeded. An area with incomplete data says so in its heading.",
        "collector": "Collector",
        "share": "Share",
        "runs": "Runs",
        "failures": "Failed",
        "gaps": "Periods without data (the agent did not run)",
        "no_gaps": "The agent ran the whole period.",
        "from": "From",
        "to": "To",
        "length": "Length",
        "incomplete": "incomplete data",
        "no_data": "no data",
        "indicators": "Key figures",
        "indicator": "Key figure",
        "this_month": "This month",
        "last_month": "Last month",
        "this_year": "This year",
        "last_year": "Last year",
        "trend": "Last 12 months",
        "missing": "missing",
        "deviations": "Deviations and their follow-up",
        "deviations_intro": "Deviation candidates the agent's rules raised in the period, and their follow-up. "
        "Candidates marked 72 h may concern personal data: a breach must then reach Datatilsynet within 72 hours.",
        "raised": "Raised in the period",
        "acknowledged": "Acknowledged",
        "open": "Open at the period's end",
        "deadline_72h": "With a 72-hour deadline",
        "candidate": "No.",
        "count": "Count",
        "rule": "Deviation",
        "severity": "Severity",
        "fired": "Raised",
        "resolved": "Resolved",
        "followed_up": "Acknowledged",
        "notify_by": "72 h deadline",
        "no_deviations": "No deviation candidates in the period.",
        "fleet": "The servers at a glance",
        "host": "Server",
        "text_in_norwegian": "The details below are written by the plugin in Norwegian.",
        "section_failed": "The section could not be built",
        "not_in_prometheus": "Events, top lists and acknowledgements are kept only in each server's own database; "
        "this part is built from Prometheus and shows its figures.",
        "green": "green",
        "yellow": "yellow",
        "red": "red",
        "unknown": "unknown",
        "page": "Page",
        "footer": "Made by normagent. Every figure is counted once; personal data is never shown, only pseudonyms.",
        "history_missing": "The database is from an older normagent (schema {version}): run history exists only from the upgrade, "
        "and for the time before it the completeness of the data cannot be told.",
        "candidates_missing": "The database is from a normagent (schema {version}) that kept no deviation candidates: the "
        "deviations and the status per area cannot be shown for the time before the upgrade.",
        "history_since": "Run history exists from {date}; for the time before it the completeness of the data cannot be told.",
        "no_data_period": "There is no data for this period: the agent did not run, or its database did not exist yet.",
        "not_finite": "Some values were not numbers (NaN or infinite) and are left out of the report: {metrics}.",
        "decision_open": "{count} open deviations in “{area}” without follow-up: decide who follows them up.",
        "decision_72h": "Possible personal-data breach (“{title}”): decide by {deadline} whether to notify Datatilsynet.",
        "decision_critical": "Critical deviation in “{area}”: “{title}”: decide on measures.",
        "decision_incomplete": "The data for “{area}” is incomplete ({share}): decide whether the monitoring must be fixed.",
        "decision_worse": "“{title}” rose from {before} to {after}: consider measures.",
        "change_up": "{title}: {before} → {after}",
        "status_changed": "The status of “{area}” changed from {before} to {after}.",
        "status_why_red": "critical deviations or a possible personal-data breach",
        "status_why_yellow": "deviations raised in the period",
        "status_why_green": "no deviations in the period",
        "status_why_unknown": "too little data",
        "status_why_open": "deviations without follow-up at the period's end",
        "status_why_followed": "no open deviation without follow-up at the period's end",
        "status_why_alerts": "Prometheus has no normagent alerting rules (ALERTS) for this server",
        "status_why_no_candidates": "the database is from a normagent without deviation candidates",
        "status_rule": "The status follows the rules' thresholds: red when a critical deviation candidate or one with a 72-hour "
        "deadline was open in the period, yellow when other candidates were open, green otherwise; unknown when the area lacks data.",
        "yes": "yes",
        "no": "no",
        "hours": "hours",
        "fleet_summary": "The servers in the period",
        "collectors_missing": "Collectors with incomplete data",
    },
}

# The factsheet's areas in its order; a report section belongs to the area of its order's tens.
AREAS: Final = (
    (10, "Driftsstatus", "Operations status"),
    (20, "Avvik", "Deviations"),
    (30, "Meldingskommunikasjon", "Message communication"),
    (40, "Systemleverandør", "System supplier"),
    (50, "Databehandler", "Data processor"),
    (60, "Nettleverandør", "Network provider"),
    (70, "Ondsinnet programvare", "Malicious software"),
    (80, "Sikkerhetsbarriere", "Security barrier"),
)
SEVERITY: Final = {
    "nb": {"info": "info", "warning": "advarsel", "critical": "kritisk"},
    "en": {"info": "info", "warning": "warning", "critical": "critical"},
}


def text(lang: str, key: str, **fields: str) -> str:
    """The phrase ``key`` in ``lang``, with ``fields`` filled in."""
    phrase = TEXTS[lang][key]
    return phrase.format(**fields) if fields else phrase


def area_of(order: int) -> int:
    """The factsheet area (10, 20 … 80) of a section's order; beyond the factsheet: 90."""
    tens = order // 10 * 10
    return tens if any(tens == code for code, _, _ in AREAS) else 90


def area_name(code: int, lang: str) -> str:
    for number, nb, en in AREAS:
        if number == code:
            return nb if lang == "nb" else en
    return "Andre indikatorer" if lang == "nb" else "Other indicators"


def area_of_rule_section(section: str) -> int:
    """The area of a rule's factsheet section ("Meldingskommunikasjon (EDI)" → 30); unknown: 10."""
    for number, nb, _ in AREAS:
        if section.startswith(nb):
            return number
    return 10


def number(value: float, lang: str, decimals: int = 1) -> str:
    """``1234.5`` → ``1 234,5`` (nb) or ``1,234.5`` (en); whole numbers without decimals."""
    pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=LOCALES[lang])


def percent(ratio: float, lang: str) -> str:
    """``0.9954`` → ``99,5 %`` (nb) or ``99.5%`` (en); never rounded up to 100 when below it."""
    value = ratio * 100
    shown = round(value, 1)
    if shown >= 100 and ratio < 1:
        shown = 99.9
    body = format_decimal(shown, format="0.0", locale=LOCALES[lang])
    return f"{body}\u00a0%" if lang == "nb" else f"{body}%"


def long_date(day: date, lang: str) -> str:
    """``5. desember 2026`` (nb) or ``5 December 2026`` (en)."""
    return format_date(day, format="long", locale=LOCALES[lang])


def month_name(day: date, lang: str) -> str:
    """``desember 2026`` (nb) or ``December 2026`` (en)."""
    return format_date(day, format="LLLL y", locale=LOCALES[lang])


def short_month(day: date, lang: str) -> str:
    """``des. 26`` (nb) or ``Dec 26`` (en), for chart axes."""
    return format_date(day, format="LLL yy", locale=LOCALES[lang])


def date_time(moment: datetime, lang: str, zone: tzinfo) -> str:
    """``5. desember 2026 kl. 14:03`` (nb) or ``5 December 2026, 14:03`` (en), in the report's zone."""
    local = moment.astimezone(zone)
    clock = format_datetime(local, format="HH:mm", locale=LOCALES[lang])
    return f"{long_date(local.date(), lang)} kl. {clock}" if lang == "nb" else f"{long_date(local.date(), lang)}, {clock}"


def duration(seconds: float, lang: str) -> str:
    """``2 t 5 min`` (nb) or ``2 h 5 min`` (en); under a minute in seconds."""
    whole = int(round(seconds))
    hour = "t" if lang == "nb" else "h"
    if whole < 60:
        return f"{whole}\u00a0s"
    minutes = whole // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = ([f"{number(days, lang, 0)}\u00a0d"] if days else []) + ([f"{hours}\u00a0{hour}"] if hours else [])
    if not days:
        parts += [f"{minutes}\u00a0min"] if minutes or not hours else []
    return " ".join(parts)


def value(amount: float | None, unit: str, lang: str) -> str:
    """An indicator's value as shown; a missing one says so (never a silent 0)."""
    if amount is None:
        return "–"
    return duration(amount, lang) if unit == "seconds" else number(amount, lang)
