"""A throw-away Debian package root for tests: tiny packages built with the real dpkg-deb,
installed with the real dpkg and apt-get into a directory, never into the host.

``AptRoot(tmp_path / "root")`` makes ``<root>/var/lib/dpkg``, ``<root>/var/log`` and an apt
configuration that points everything at the root: dpkg runs with ``--root`` and
``--admindir`` (``--force-script-chrootless``: maintainer scripts run without chroot, so a
root with no shell in it works) and logs to ``<root>/var/log/dpkg.log``; apt-get runs with
``-o Dir=<root>`` and writes ``<root>/var/log/apt/history.log`` and ``term.log``. Local
repositories are plain directories with a Packages and a Release file (``[trusted=yes]``), so
nothing is fetched from the network and nothing is signed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tools import require_tool, skip_for_host


def require_root_and_tools() -> None:
    """dpkg writes a package database and sets file owners: it needs root here."""
    if os.geteuid() != 0:
        skip_for_host("not root: dpkg cannot install into a throw-away root as another user")
    require_tool("dpkg", "dpkg")
    require_tool("dpkg-deb", "dpkg")
    require_tool("apt-get", "apt")


@dataclass
class AptRoot:
    """A package root and the packages and repositories built for it."""

    root: Path
    work: Path = field(init=False)

    def __post_init__(self) -> None:
        self.work = self.root.parent / f"{self.root.name}-work"
        for sub in ("var/lib/dpkg/updates", "var/lib/dpkg/info", "var/log/apt", "etc/apt/sources.list.d",
                    "etc/apt/preferences.d", "etc/apt/apt.conf.d", "var/lib/apt/lists/partial",
                    "var/cache/apt/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "var/lib/dpkg/status").touch()
        (self.root / "etc/apt/sources.list").write_text("")
        self.work.mkdir(parents=True, exist_ok=True)

    # -- packages --------------------------------------------------------------------------

    def build(self, name: str, version: str, *, postinst_fails: bool = False) -> Path:
        """A package with one configuration file, ``/etc/<name>/<name>.conf``."""
        tree = self.work / f"{name}-{version}"
        (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
        (tree / "etc" / name).mkdir(parents=True, exist_ok=True)
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Test <test@example.invalid>\n"
            "Description: a tiny package for normagent's tests\n"
        )
        (tree / "etc" / name / f"{name}.conf").write_text(f"version={version}\n")
        (tree / "DEBIAN" / "conffiles").write_text(f"/etc/{name}/{name}.conf\n")
        if postinst_fails:
            script = tree / "DEBIAN" / "postinst"
            script.write_text("#!/bin/sh\necho 'postinst refuses, as the test asks' >&2\nexit 1\n")
            script.chmod(0o755)
        deb = self.work / f"{name}_{version}_all.deb"
        run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)])
        return deb

    def dpkg_install(self, deb: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``dpkg -i`` into the root."""
        return run(
            ["dpkg", f"--root={self.root}", f"--admindir={self.root}/var/lib/dpkg", f"--log={self.root}/var/log/dpkg.log",
             "--force-script-chrootless", "--force-not-root", "-i", str(deb)],
            check=check,
        )

    def dpkg_purge(self, package: str) -> subprocess.CompletedProcess[str]:
        """``dpkg --purge`` from the root (a package whose postinst failed would otherwise make
        every later apt run try to configure it again)."""
        return run(
            ["dpkg", f"--root={self.root}", f"--admindir={self.root}/var/lib/dpkg", f"--log={self.root}/var/log/dpkg.log",
             "--force-script-chrootless", "--force-not-root", "--purge", package]
        )

    # -- repositories and apt ---------------------------------------------------------------

    def repository(self, name: str, debs: list[Path], *, origin: str, label: str, suite: str, codename: str) -> Path:
        """A flat repository (``deb [trusted=yes] file:<dir> ./``) holding ``debs``."""
        repo = self.work / "repos" / name
        repo.mkdir(parents=True, exist_ok=True)
        stanzas = []
        for deb in debs:
            target = repo / deb.name
            target.write_bytes(deb.read_bytes())
            control = run(["dpkg-deb", "-f", str(target)]).stdout.rstrip("\n")
            data = target.read_bytes()
            stanzas.append(
                f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
            )
        (repo / "Packages").write_text("\n".join(stanzas))
        (repo / "Release").write_text(
            f"Origin: {origin}\nLabel: {label}\nSuite: {suite}\nCodename: {codename}\nArchitectures: all amd64\n"
        )
        with (self.root / "etc/apt/sources.list").open("a") as f:
            f.write(f"deb [trusted=yes] file:{repo} ./\n")
        return repo

    def apt_options(self) -> list[str]:
        root = self.root
        return [
            "-o", f"Dir={root}",
            "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
            "-o", f"Dir::Log={root}/var/log/apt",
            "-o", f"DPkg::Options::=--root={root}",
            "-o", f"DPkg::Options::=--admindir={root}/var/lib/dpkg",
            "-o", f"DPkg::Options::=--log={root}/var/log/dpkg.log",
            "-o", "DPkg::Options::=--force-script-chrootless",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Languages=none",
            "-o", "APT::Get::Show-User-Simulation-Note=false",
        ]

    def apt_get(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["apt-get", *self.apt_options(), "-y", *args], check=check)


def run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a real tool with a C locale and no terminal; fail with its output if ``check``."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C", "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
