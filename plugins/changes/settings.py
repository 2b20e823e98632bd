"""The changes plugin's settings: one dataclass per collector, validated by ``normagent.config``.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
from dataclasses import field

from normagent import EvtxSettings, FileSource, dataclass

from .parse import CONFIG_KEYS

# Configuration a clinic server's supplier changes and the data controller asks about: accounts
# and groups, sudo and PAM, SSH, name resolution and hosts, scheduled jobs, the audit and
# firewall configuration, mounts, time, and the agent's own configuration.
WATCHED = (
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d/*",
    "/etc/pam.d/*",
    "/etc/security/*.conf",
    "/etc/login.defs",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/*",
    "/etc/hosts",
    "/etc/hosts.allow",
    "/etc/hosts.deny",
    "/etc/nsswitch.conf",
    "/etc/crontab",
    "/etc/cron.d/*",
    "/etc/audit/auditd.conf",
    "/etc/audit/rules.d/*",
    "/etc/nftables.conf",
    "/etc/iptables/*",
    "/etc/ufw/*.rules",
    "/etc/firewalld/zones/*",
    "/etc/fstab",
    "/etc/chrony/chrony.conf",
    "/etc/chrony.conf",
    "/etc/systemd/timesyncd.conf",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*",
    "/etc/yum.repos.d/*",
    "/etc/normagent/normagent.toml",
)


@dataclass(frozen=True, slots=True)
class FileWatchSettings:
    """``[collectors."changes.files"]``.

    Attributes:
        paths: Files or globs to watch (``**`` for any depth: ``/srv/epj/conf/**/*.xml``).
            Directories are not watched, the files in them are: write ``/etc/ssh/*``, not
            ``/etc/ssh``. A path is shown in the report: watch no file whose name says who
            someone is.
        exclude: Globs of paths left out (editor leftovers by default).
        max_files: At most this many files are watched (the first ones in name order); the
            rest are left out with a warning.
    """

    paths: tuple[str, ...] = WATCHED
    exclude: tuple[str, ...] = ("*~", "*.swp", "*.swx", "*.tmp", "*/.#*")
    max_files: int = field(default=20_000, metadata={"min": 1, "max": 1_000_000})

    def __post_init__(self) -> None:
        for path in self.paths:
            if not path.startswith("/"):
                raise ValueError(f"paths: {path!r} is not an absolute path")
        if self.max_files < 1:
            raise ValueError("max_files must be at least 1")

    def excluded(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.exclude)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[collectors."changes.audit"]``.

    Attributes:
        files: auditd's log (root's only by default: give the agent's group ``log_group`` in
            auditd.conf, or read a copy).
        keys: Watch keys whose hits are configuration changes (globs; ``["*"]`` counts every
            key, including syscall rules' keys such as exec logging).
    """

    files: FileSource = FileSource(paths=("/var/log/audit/audit.log",))
    keys: tuple[str, ...] = CONFIG_KEYS


@dataclass(frozen=True, slots=True)
class PackageChangeSettings:
    """``[collectors."changes.packages"]``.

    Attributes:
        files: dpkg's log and dnf's rpm log (the same files ``updates.apt`` and ``updates.dnf``
            read; this collector keeps its own position in them).
    """

    files: FileSource = FileSource(paths=("/var/log/dpkg.log", "/var/log/dnf.rpm.log"))


@dataclass(frozen=True, slots=True)
class WindowsPolicySettings:
    """``[collectors."changes.windows"]``.

    The keys are those of ``normagent.EvtxSettings``.

    Attributes:
        paths: Security.evtx files (or globs) copied from Windows servers; none by default.
        channels: Channels to read.
        event_ids: 4719 (audit policy changed) and 4739 (domain policy changed).
    """

    paths: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("Security",)
    event_ids: tuple[int, ...] = field(default=(4719, 4739), metadata={"min": 0, "max": 0xFFFF})

    def __post_init__(self) -> None:
        EvtxSettings(paths=self.paths, channels=self.channels, event_ids=self.event_ids)  # same checks
