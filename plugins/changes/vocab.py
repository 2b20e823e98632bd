"""The changes plugin's vocabulary: metric names, their closed label sets, rollups and events.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import datetime, timezone

from normagent import Count, Event, Observation, Rollup

from .planned import Change, Planner, plan_id

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
UNPLANNED_PACKAGES = "changes.packages_unplanned"  # key: package name (installs, removals … not upgrades)
BY_PLAN = "changes.by_plan"  # key: plan_id of the planned change that planned them (every source)
CHANGE_EVENT = "changes.change"
PLAN_EVENT = "changes.plan"  # a planned change of the calendar, recorded by changes.plans


def config_change(change: Change, key: str, planner: Planner, **attrs: str | int | None) -> list[Observation]:
    """The count, rollups and event of one configuration change (file, auditd, Windows).

    The event says whether it was planned and by what: ``planned_by`` ``"change"`` (with
    ``plan``, the planned change's ``plan_id``) or ``"maintenance"`` (a maintenance window).
    """
    window = planner.window(change)
    planned = "true" if window is not None else "false"
    at = change.at.astimezone(timezone.utc)
    out: list[Observation] = [
        Count(CONFIG_CHANGES, {"source": change.source, "kind": change.kind, "planned": planned}),
        Rollup(BY_SUBJECT, at.date(), f"{change.source}:{change.subject}", 1, at, at),
    ]
    extra: dict[str, str | int | bool | None] = {}
    if window is not None:
        extra["planned_by"] = window.kind
        if window.kind == "change":
            extra["plan"] = plan_id(window)
            out.append(Rollup(BY_PLAN, at.date(), plan_id(window), 1, at, at))
    out.append(
        Event(
            CHANGE_EVENT,
            at,
            key,
            {"source": change.source, "kind": change.kind, "subject": change.subject, "planned": window is not None, **extra, **attrs},
        )
    )
    return out


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
