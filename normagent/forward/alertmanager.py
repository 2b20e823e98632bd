"""Builtin forwarder ``alertmanager``: candidates as alerts through Alertmanager's API v2.

``POST <url>/api/v2/alerts`` with one alert per change. Alertmanager identifies an alert by its
labels, so a candidate's firing and resolution carry the same labels:

- labels: ``alertname`` (the rule), ``severity``, ``section``, ``normagent_host`` (the ledger's
  host id), ``location`` when ``[deviations] location`` is set, the candidate's own labels, and
  the ``labels`` of this forwarder's table;
- annotations: title, summary (what happened), consequence, measures (bokmål), summary_en,
  owner, cia, personal_data, notify_by (a possible personal-data breach), candidate, key;
- ``startsAt``: when it fired; ``endsAt``: for a firing alert ``now + 4 × resend_every``, renewed
  by re-posting every ``resend_every`` (as Prometheus does; an agent that stops lets its alerts
  expire instead of firing for ever); for a resolved one, when it was resolved.

A builtin plugin (``register_forwarders``); imports only model and forward.client.
"""

from __future__ import annotations

import json
import re
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from normagent.forward.client import HttpSettings, bearer, http_problems, post, probe, session
from normagent.hookspecs import hookimpl
from normagent.model import Delivery, ForwarderSpec
from normagent.records import dataclass

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED = ("alertname", "severity", "section", "normagent_host", "location")


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings(HttpSettings):
    """``[forwarders.<name>]`` with ``kind = "alertmanager"``; ``url`` is Alertmanager's base URL.

    Attributes:
        resend_every: Re-post firing alerts this often; each is given endsAt = now + 4 × this.
        labels: Labels added to every alert (e.g. { site = "legekontoret" }); no personal data.
    """

    resend_every: timedelta = field(
        default=timedelta(minutes=1),
        metadata={"help": "Re-post firing alerts this often; each is given endsAt = now + 4 × this",
                  "min": timedelta(seconds=1), "max": timedelta(hours=1)},
    )
    labels: dict[str, str] = field(default_factory=dict, metadata={"help": "Labels added to every alert (e.g. { site = \"legekontoret\" }); no personal data"})


def alert(document: dict[str, Any] | Any, settings: AlertmanagerSettings, now: datetime) -> dict[str, Any]:
    """One change document as an Alertmanager v2 alert."""
    nb = document["texts"]["nb"]
    en = document["texts"]["en"]
    labels: dict[str, str] = {name: str(value) for name, value in document.get("labels", {}).items() if LABEL_NAME.match(name)}
    labels.update(settings.labels)
    labels.update(
        {
            "alertname": document["rule"],
            "severity": document["severity"],
            "section": document.get("section") or "normagent",
            "normagent_host": document["host"]["id"],
        }
    )
    if document["host"].get("location"):
        labels["location"] = document["host"]["location"]
    annotations = {
        "title": nb["title"],
        "summary": nb["what"],
        "consequence": nb["consequence"],
        "measures": nb["measures"],
        "summary_en": en["what"],
        "owner": document.get("owner", ""),
        "cia": ",".join(document.get("cia", [])),
        "personal_data": "true" if document.get("personal_data") else "false",
        "candidate": str(document.get("id", "")),
        "key": str(document.get("idempotency_key", "")),
    }
    if document.get("notify_by"):
        annotations["notify_by"] = document["notify_by"]
    if document["state"] == "resolved":
        ends = document.get("resolved_at") or _iso(now)
    else:
        ends = _iso(now + 4 * settings.resend_every)
    return {
        "labels": labels,
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": document.get("fired_at") or document.get("first_evidence") or _iso(now),
        "endsAt": ends,
    }


def _iso(moment: datetime) -> str:
    # Milliseconds: each re-post moves endsAt on, even two within one second.
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alerts_url(base: str) -> str:
    """Alertmanager's alerts endpoint under ``base``: its path (a proxy's prefix) and query kept, so
    ``https://proxy/am/?tenant=a`` posts to ``https://proxy/am/api/v2/alerts?tenant=a``, not to a
    path that holds the query."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/api/v2/alerts", parts.query, ""))


class AlertmanagerSender:
    def __init__(self, settings: AlertmanagerSettings) -> None:
        self._settings = settings
        self._url = alerts_url(settings.url)
        self._token = bearer(settings)
        self._session = session(settings)
        from normagent import __version__

        self._agent = f"normagent/{__version__}"

    def send(self, delivery: Delivery) -> None:
        body = json.dumps([alert(delivery.document, self._settings, datetime.now(timezone.utc))], ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": self._agent}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        post(self._session, self._url, body, headers, self._settings.timeout.total_seconds())

    def close(self) -> None:
        self._session.close()


def check(settings: AlertmanagerSettings) -> list[tuple[str, str]]:
    problems = http_problems(settings)
    for name in settings.labels:
        if not LABEL_NAME.match(name):
            problems.append((f"labels.{name}", "is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"))
        elif name in RESERVED:
            problems.append((f"labels.{name}", f"is set by normagent itself ({', '.join(RESERVED)})"))
    return problems


def _send(delivery: Delivery, settings: Any) -> None:
    sender = AlertmanagerSender(settings)
    try:
        sender.send(delivery)
    finally:
        sender.close()


ALERTMANAGER = ForwarderSpec(
    kind="alertmanager",
    help="Posts candidates as alerts to Alertmanager's API v2 (/api/v2/alerts), re-posting firing ones.",
    send=_send,
    settings=AlertmanagerSettings,
    open=AlertmanagerSender,
    check=check,
    probe=probe,
    refresh=lambda settings: settings.resend_every,
    parallel=4,
)


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [ALERTMANAGER]
