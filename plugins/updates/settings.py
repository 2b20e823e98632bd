"""The updates plugin's settings: one dataclass per collector, validated by ``normagent.config``.

The parsers read these through ``ParseContext.settings`` (with ``getattr`` and the same defaults,
so a parser also works without them, as in ``normagent parse``).

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from normagent import EvtxSettings, FileSource, dataclass

from .vocab import SECURITY_ORIGINS, SECURITY_TITLES

APT_LOGS = (
    "/var/log/apt/history.log",
    "/var/log/apt/term.log",
    "/var/log/dpkg.log",
    "/var/log/unattended-upgrades/unattended-upgrades.log",
)
DNF_HISTORY = Path("/var/lib/dnf/history.sqlite")
DNF_RPM_LOG = "/var/log/dnf.rpm.log"
SETTLE = timedelta(minutes=10)

Unattended = Literal["auto", "security", "other"]
DnfSource = Literal["auto", "history", "log"]
Manager = Literal["auto", "apt", "dnf", "none"]


def _check_settle(settle: timedelta) -> None:
    if settle < timedelta(seconds=1):
        raise ValueError("settle must be at least 1s")


@dataclass(frozen=True, slots=True)
class AptSettings:
    """``[collectors."updates.apt"]``.

    Attributes:
        files: apt's history and terminal logs, dpkg's log and unattended-upgrades' log; each
            file's format is recognised from its lines.
        security_origins: Repository labels, origins, suites or codenames (globs, any case)
            whose updates are security updates.
        security_packages: Packages counted as security updates whatever their origin:
            ``"name=version"`` or ``"name"``; the collector adds every version apt's security
            lists hold.
        unattended: How to count an update unattended-upgrades installed whose version apt's
            lists no longer hold: ``"auto"`` (security when every origin unattended-upgrades
            last logged as allowed, ``Allowed origins are: …``, is a security origin),
            ``"security"`` or ``"other"``.
        settle: A dpkg -i run that writes nothing more for this long is over: a package it left
            half-installed or half-configured is a failed update.
        command_timeout: Time ``apt-get indextargets`` and ``apt-helper cat-file`` may take.
    """

    files: FileSource = FileSource(paths=APT_LOGS)
    security_origins: tuple[str, ...] = SECURITY_ORIGINS
    security_packages: tuple[str, ...] = ()
    unattended: Unattended = "auto"
    settle: timedelta = field(default=SETTLE, metadata={"min": timedelta(seconds=1), "max": timedelta(days=1)})
    command_timeout: timedelta = field(
        default=timedelta(seconds=30), metadata={"min": timedelta(seconds=1), "max": timedelta(minutes=10)}
    )

    def __post_init__(self) -> None:
        if self.unattended not in ("auto", "security", "other"):
            raise ValueError(f'unattended must be "auto", "security" or "other", got {self.unattended!r}')
        _check_settle(self.settle)


@dataclass(frozen=True, slots=True)
class DnfSettings:
    """``[collectors."updates.dnf"]``.

    Attributes:
        source: ``"history"`` (dnf's history database, read-only: a result per package),
            ``"log"`` (``dnf.rpm.log``) or ``"auto"`` (the database where it exists, else the log).
        start_at: Where the history database is first read from: ``"end"`` (transactions made
            before the agent watched are not counted as new) or ``"beginning"``. (dnf.rpm.log
            has its own ``files.start_at``.)
        history: dnf's history database.
        files: ``dnf.rpm.log`` (or ``dnf.log``; the format is recognised), for ``source = "log"``.
        security_packages: Packages (``name-[epoch:]version-release.arch``, or a name) counted
            as security updates; the collector adds those of the security advisories dnf knows
            (``dnf updateinfo list --installed --security``, from its cache only).
        settle: A transaction the history database still shows unfinished this long after it
            began, with none after it, was interrupted; a dnf session in dnf.rpm.log that writes
            nothing more for this long is over.
        command_timeout: Time ``dnf updateinfo`` may take.
    """

    source: DnfSource = "auto"
    start_at: Literal["beginning", "end"] = "end"
    history: Path = DNF_HISTORY
    files: FileSource = FileSource(paths=(DNF_RPM_LOG,))
    security_packages: tuple[str, ...] = ()
    settle: timedelta = field(default=timedelta(hours=1), metadata={"min": timedelta(seconds=1), "max": timedelta(days=1)})
    command_timeout: timedelta = field(
        default=timedelta(seconds=60), metadata={"min": timedelta(seconds=1), "max": timedelta(minutes=10)}
    )

    def __post_init__(self) -> None:
        if self.source not in ("auto", "history", "log"):
            raise ValueError(f'source must be "auto", "history" or "log", got {self.source!r}')
        _check_settle(self.settle)


@dataclass(frozen=True, slots=True)
class WindowsUpdateSettings:
    """``[collectors."updates.windows"]``.

    The first three keys are those of ``normagent.EvtxSettings``.

    Attributes:
        paths: System.evtx files (or globs) copied from Windows servers; none by default.
        channels: Channels to read.
        event_ids: Windows Update client events read: 19 (installed), 20 (failed), 43 and 44
            (started, downloading: read, not counted).
        security_titles: Update titles (globs, any case) that are security updates; the
            event does not say, the title does.
    """

    paths: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("System", "Microsoft-Windows-WindowsUpdateClient/Operational")
    event_ids: tuple[int, ...] = field(default=(19, 20, 43, 44), metadata={"min": 0, "max": 0xFFFF})
    security_titles: tuple[str, ...] = SECURITY_TITLES

    def __post_init__(self) -> None:
        EvtxSettings(paths=self.paths, channels=self.channels, event_ids=self.event_ids)  # same checks


@dataclass(frozen=True, slots=True)
class PendingSettings:
    """``[collectors."updates.pending"]``.

    Attributes:
        manager: ``"apt"``, ``"dnf"``, ``"none"`` (reboot flag only) or ``"auto"`` (apt where
            ``/var/lib/dpkg`` exists, else dnf where ``/var/lib/dnf`` or ``/var/lib/rpm`` does).
        security_origins: As for ``updates.apt``: the origins of a pending apt update that make it
            a security update.
        command_timeout: Time each query (``apt-get --just-print``, ``dnf check-update``,
            ``needs-restarting``) may take.
    """

    manager: Manager = "auto"
    security_origins: tuple[str, ...] = SECURITY_ORIGINS
    command_timeout: timedelta = field(
        default=timedelta(seconds=120), metadata={"min": timedelta(seconds=1), "max": timedelta(minutes=30)}
    )

    def __post_init__(self) -> None:
        if self.manager not in ("auto", "apt", "dnf", "none"):
            raise ValueError(f'manager must be "auto", "apt", "dnf" or "none", got {self.manager!r}')
