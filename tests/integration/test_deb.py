"""The Debian package as an operator meets it: built twice by ``scripts/build-deb`` (revisions 1 and
2), installed with apt into a clean Debian 12 root (the root ``scripts/fresh-check`` uses, from
``scripts/debian-root``), run, upgraded, removed and purged there; and checked by lintian.

systemd is not PID 1 in the root, so the maintainer scripts' start/stop calls are no-ops there (as
in any chroot or image build); the units are checked with ``systemd-analyze verify`` inside the
root, and the service's ExecStart= is run directly as its User= with its groups and
$STATE_DIRECTORY, by PID. The root shares this host's network: the agent's port is a free one,
set by editing the conffile — which is also the edit the upgrade must keep.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import REPO, free_port, wait_until
from tests.support.service import service_environment, unit_settings
from tests.support.tools import require_tool, skip_for_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFFILE = "/etc/normagent/normagent.toml"
STATE = "/var/lib/normagent"
SITE = "/opt/normagent/lib/python3.11/site-packages"
RECORD_CHECK = """
import base64, hashlib, pathlib, sys
wrong = []
for record in pathlib.Path(sys.argv[1]).glob("*.dist-info/RECORD"):
    for line in record.read_text().splitlines():
        path, digest, _ = line.rsplit(",", 2)
        file = record.parent.parent / path
        if not file.exists():
            wrong.append(f"{path}: missing")
        elif digest:
            algorithm, value = digest.split("=", 1)
            made = base64.urlsafe_b64encode(hashlib.new(algorithm, file.read_bytes()).digest()).rstrip(b"=").decode()
            if made != value:
                wrong.append(f"{path}: another hash")
print(f"{len(wrong)} wrong", *wrong, sep="\\n")
"""
WANTS = "/etc/systemd/system/multi-user.target.wants/normagent.service"


def version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Revision 1 and revision 2 of this tree's package, each built from scratch by the script."""
    if os.geteuid() != 0:
        skip_for_host("not root: the clean root needs chroot and mounts")
    require_tool("dpkg-deb", "dpkg")
    out = tmp_path_factory.mktemp("debs")
    built = {}
    for revision in (1, 2):
        result = subprocess.run(
            [str(REPO / "scripts/build-deb"), "--revision", str(revision), "--out", str(out)],
            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        path = Path(result.stdout.strip().splitlines()[-1])
        assert path.name == f"normagent_{version()}-{revision}_amd64.deb"
        built[revision] = path
    return built


@dataclass
class Root:
    """A clean Debian 12 root made by scripts/debian-root; commands run in it with a clean environment."""

    path: Path

    def run(self, *argv: str, check: bool = True, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        environment = [f"{k}={v}" for k, v in {"HOME": "/root", "PATH": PATH, **env}.items()]
        result = subprocess.run(
            ["chroot", str(self.path), "/usr/bin/env", "-i", *environment, *argv],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def file(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def apt(self, *argv: str) -> str:
        return self.run("apt-get", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0", *argv,
                        DEBIAN_FRONTEND="noninteractive").stdout

    def status(self) -> str:
        return self.run("dpkg-query", "-W", "-f=${Status} ${Version}", "normagent", check=False).stdout


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, debs: dict[int, Path]) -> Iterator[Root]:
    require_tool("mmdebstrap", "mmdebstrap")
    path = tmp_path_factory.mktemp("debian") / "root"
    script = str(REPO / "scripts/debian-root")
    subprocess.run([script, "create", str(path)], check=True, timeout=1200, stdin=subprocess.DEVNULL)
    try:
        root = Root(path)
        root.run("apt-get", "update", "-q")  # mmdebstrap leaves no package lists, as a new image has none
        yield root
    finally:
        subprocess.run([script, "destroy", str(path)], check=True, timeout=300, stdin=subprocess.DEVNULL)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def run_service(root: Root, port: int) -> str:
    """Start the installed unit's ExecStart= as systemd would (User=, Group=, SupplementaryGroups=,
    $STATE_DIRECTORY from StateDirectory=), scrape /metrics, stop it by PID with SIGTERM; return the page."""
    settings = unit_settings(root.file("/usr/lib/systemd/system/normagent.service"))
    (exec_start,) = settings["ExecStart"]
    (user,), (group,) = settings["User"], settings["Group"]
    groups = ",".join(" ".join(settings["SupplementaryGroups"]).split())
    environment = [f"{key}={value}" for key, value in service_environment(root.file("/usr/lib/systemd/system/normagent.service")).items()]
    argv = ["chroot", str(root.path), "/usr/bin/env", "-i", f"PATH={PATH}", *environment,
            f"STATE_DIRECTORY={STATE}", "setpriv", f"--reuid={user}", f"--regid={group}", f"--groups={groups}",
            "--", *shlex.split(exec_start)]
    log = root.file("/root/agent.log")
    with log.open("wb") as out:
        # chroot, env and setpriv each exec the next: this PID becomes the agent's.
        agent = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def page() -> str | None:
            if agent.poll() is not None:
                pytest.fail(f"the agent exited with {agent.returncode}:\n{log.read_text()[-4000:]}")
            text = scrape(port)
            return text if 'normagent_collector_up{collector="system.host"}' in text else None

        text: str = wait_until(f"/metrics on 127.0.0.1:{port}", page, timeout=120)
    finally:
        if agent.poll() is None:
            agent.terminate()
        code = agent.wait(60)
    assert code == 0, f"exit {code} on SIGTERM:\n{log.read_text()[-4000:]}"
    return text


def test_lintian_is_clean_or_every_tag_overridden_with_a_reason(debs: dict[int, Path]) -> None:
    lintian = require_tool("lintian", "lintian")
    for deb in debs.values():
        result = subprocess.run([lintian, "--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic", str(deb)],
                                capture_output=True, text=True, timeout=900)
        tags = [line for line in result.stdout.splitlines() if line[:2] in {"E:", "W:", "I:", "P:", "X:"}]
        assert (deb.name, result.returncode, tags) == (deb.name, 0, []), result.stderr[-2000:]
    overrides = (REPO / "packaging/deb/lintian-overrides").read_text().split("\n\n")
    unexplained = [block for block in overrides if "normagent:" in block and not block.lstrip().startswith("#")]
    assert unexplained == [], "an override without a comment saying why"


def test_install_run_upgrade_remove_purge(root: Root, debs: dict[int, Path]) -> None:
    for revision, deb in debs.items():
        (root.path / "srv" / deb.name).write_bytes(deb.read_bytes())
    first, second = (f"/srv/{debs[r].name}" for r in (1, 2))

    # Install: apt pulls the dependencies (systemd among them) from the mirror, as on a real host.
    root.apt("install", first)
    assert root.status() == f"install ok installed {version()}-1"
    passwd = root.run("getent", "passwd", "normagent").stdout.split(":")
    assert passwd[5:] == [STATE, "/usr/sbin/nologin\n"] and int(passwd[2]) < 1000
    for path in ("/opt/normagent/bin/normagent", "/usr/lib/systemd/system/normagent.service",
                 "/usr/lib/sysusers.d/normagent.conf", "/usr/lib/tmpfiles.d/normagent.conf",
                 "/usr/share/doc/normagent/copyright", CONFFILE):
        assert root.file(path).is_file(), path
    assert os.readlink(root.file("/usr/bin/normagent")) == "/opt/normagent/bin/normagent"
    for unit in sorted(p.name for p in (REPO / "systemd").iterdir() if p.suffix in {".service", ".timer"}):
        assert root.file(f"/usr/lib/systemd/system/{unit}").read_bytes() == (REPO / "systemd" / unit).read_bytes()
    assert root.run("dpkg-query", "-W", "-f=${Conffiles}", "normagent").stdout.split()[0] == CONFFILE
    owner = root.run("stat", "-c", "%a %U %G", "/etc/normagent", STATE).stdout.split("\n")
    assert owner[:2] == ["750 root normagent", "700 normagent normagent"]
    # Debian's convention for daemons: enabled on install (and started where systemd runs).
    assert os.readlink(root.file(WANTS)).endswith("/systemd/system/normagent.service")
    assert root.run("find", "/opt/normagent", "-name", "*.pyc").stdout.count("\n") > 100, "postinst compiles"
    # ... also the level the service runs (PYTHONOPTIMIZE=2): it may not write to /opt itself
    assert root.run("find", "/opt/normagent", "-name", "*.opt-2.pyc").stdout.count("\n") > 100

    # The units as systemd reads them, against the root's own systemd and files.
    units = [f"/usr/lib/systemd/system/{p.name}" for p in sorted((REPO / "systemd").glob("normagent*.service"))]
    verify = root.run("systemd-analyze", "verify", *units, check=False)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")

    # Run: as root, then as the service runs. The admin edits the conffile (the port).
    port = free_port()
    config = root.file(CONFFILE)
    edited = config.read_text().replace('listen = "127.0.0.1:9824"', f'listen = "127.0.0.1:{port}"', 1)
    assert f"127.0.0.1:{port}" in edited
    config.write_text(edited + "# edited by the admin\n")
    assert "OK" in root.run("normagent", "check-config").stdout
    collect = root.run("setpriv", "--reuid=normagent", "--regid=normagent", "--groups=adm,systemd-journal",
                       "normagent", "collect", "--once", STATE_DIRECTORY=STATE)
    assert "system.host" in collect.stdout and "normagent_" in collect.stdout
    page = run_service(root, port)
    assert 'normagent_collector_up{collector="system.host"} 1.0' in page
    ledger_id = root.file(f"{STATE}/ledger.id").read_text()
    # The report extra, in both languages, on the Babel locale data the package keeps (build-deb
    # keeps the two locales the report formats in, with their parents, and nothing else).
    from normagent.report.text import LANGUAGES, month_name  # the checkout's, with all of Babel's data

    this_month = datetime.now(ZoneInfo("Europe/Oslo")).date().replace(day=1)  # the month the agent has just run in (the report's zone)
    for lang in LANGUAGES:
        report = root.run("normagent", "report", "--month", f"{this_month:%Y-%m}", "--format", "md", "--lang", lang, "--output", "-")
        assert month_name(this_month, lang) in report.stdout, report.stdout[:500]
    kept = sorted(p.name for p in root.file(f"{SITE}/babel/locale-data").glob("*.dat"))
    assert kept == ["en.dat", "en_001.dat", "en_GB.dat", "nb.dat", "nb_NO.dat", "no.dat", "root.dat"]
    assert not root.file(f"{SITE}/Cryptodome/SelfTest").exists()
    # What build-deb took out of the libraries is out of their RECORDs too: every line names a
    # file the package holds, and its hash where it gives one.
    assert root.run("/opt/normagent/bin/python", "-c", RECORD_CHECK, SITE).stdout.splitlines() == ["0 wrong"]
    assert root.file(f"{STATE}/ledger.db").stat().st_size > 0

    # Upgrade: the state and the edited conffile stay; the agent continues the same ledger.
    root.apt("install", second)
    assert root.status() == f"install ok installed {version()}-2"
    assert config.read_text() == edited + "# edited by the admin\n"
    assert not list(config.parent.glob("normagent.toml.dpkg-*"))
    assert root.file(f"{STATE}/ledger.id").read_text() == ledger_id
    assert root.file(WANTS).is_symlink()
    assert 'normagent_collector_up{collector="system.host"} 1.0' in run_service(root, port)
    assert root.file(f"{STATE}/ledger.id").read_text() == ledger_id

    # Remove: the program goes; the state, the configuration and the user stay.
    root.apt("remove", "normagent")
    assert root.status().startswith("deinstall ok config-files")
    assert not root.file("/opt/normagent").exists(), "prerm removes the byte-code, dpkg the rest"
    assert not root.file("/usr/bin/normagent").is_symlink()
    assert root.file(f"{STATE}/ledger.id").read_text() == ledger_id
    assert config.read_text() == edited + "# edited by the admin\n"

    # Purge: the state and the configuration go too; the system user stays (Debian's practice).
    root.apt("purge", "normagent")
    assert root.status() in {"", "unknown ok not-installed "}
    assert not root.file(STATE).exists()
    assert not root.file("/etc/normagent").exists()
    assert not root.file(WANTS).is_symlink()
    assert root.run("getent", "passwd", "normagent", check=False).returncode == 0
