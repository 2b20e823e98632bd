"""``[report]``: the monthly report's language, time zone, formats and where ``--send`` delivers it.

Imported by the agent's configuration (cheap: the standard library only).
"""

from __future__ import annotations

from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from normagent.records import dataclass

Language = Literal["nb", "en"]
Format = Literal["html", "md", "json", "pdf"]


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """``[report]``: defaults of ``normagent report`` and where ``--send`` delivers.

    Attributes:
        language: The report's language: nb (bokmål) or en.
        time_zone: The zone months begin in and times are shown in (IANA name).
        formats: What --send delivers (html, md, json, pdf); the JSON, which the signed SHA-256 is of, is always added.
        folder: --send writes the report here (one file per format, named after host and month).
        email: --send mails the report through the SMTP settings of this e-mail forwarder ([forwarders.<name>], kind email).
        to: Recipients of the report (the data controller); empty: the forwarder's own recipients.
        chromium: The Chromium program that prints the PDF.
        chromium_timeout: How long Chromium may take to print one report.
    """

    language: Language = "nb"
    time_zone: str = "Europe/Oslo"
    formats: tuple[Format, ...] = ("html", "pdf")
    folder: Path | None = None
    email: str = ""
    to: tuple[str, ...] = ()
    chromium: str = "chromium"
    chromium_timeout: timedelta = field(
        default=timedelta(minutes=2), metadata={"min": timedelta(seconds=5), "max": timedelta(minutes=30)}
    )


def validate_report(settings: ReportSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        ZoneInfo(settings.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("time_zone", f"{settings.time_zone!r} is not an IANA time zone (e.g. \"Europe/Oslo\")"))
    if not settings.formats:
        problems.append(("formats", "name at least one of html, md, json, pdf"))
    for address in settings.to:
        if "@" not in address or " " in address.strip():
            problems.append(("to", f"{address!r} is not an e-mail address"))
    return problems
