"""The changes plugin's vocabulary: metric names, their closed label sets, rollups and events.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import datetime, timezone

from normagent import Count, Event, Observation, Rollup

from .planned import Change, planned_label

SECTION = "Databehandler"

CONFIG_CHANGES = "normagent_config_changes_total"
PACKAGE_CHANGES = "normagent_package_changes_total"
WATCHED_FILES = "normagent_watched_files"

FILE_KINDS = ("content", "mode", "owner", "created", "deleted")
AUDIT_KINDS = ("audit_config", "watch")
WINDOWS_KINDS = ("audit_policy", "domain_policy")
CONFIG_SOURCES = {"file": FILE_KINDS, "auditd": AUDIT_KINDS, "windows": WINDOWS_KINDS}
PACKAGE_ACTIONS = ("install", "upgrade", "downgrade", "reinstall", "remove", "purge")
WATCH_STATES = ("hashed", "stat_only")
PLANNED = ("false", "true")

BY_SUBJECT = "changes.by_subject"  # key: "<source>:<subject>" (a path, an audit key, a policy)
PACKAGES_BY_NAME = "changes.packages"  # key: package name
CHANGE_EVENT = "changes.change"


def config_change(change: Change, key: str, calendar: object | None = None, **attrs: str | int | None) -> list[Observation]:
    """The count, rollup and event of one configuration change (file, auditd, Windows)."""
    planned = planned_label(change, calendar)
    at = change.at.astimezone(timezone.utc)
    return [
        Count(CONFIG_CHANGES, {"source": change.source, "kind": change.kind, "planned": planned}),
        Rollup(BY_SUBJECT, at.date(), f"{change.source}:{change.subject}", 1, at, at),
        Event(CHANGE_EVENT, at, key, {"source": change.source, "kind": change.kind, "subject": change.subject, "planned": planned == "true", **attrs}),
    ]


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
