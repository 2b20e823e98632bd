"""The systemd unit's settings, read from systemd/normagent.service: the one place that says how
the service runs the agent, so tests and benchmarks that start ``normagent run`` run it alike."""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "normagent.service"


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (all sections), values of repeated keys in order."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def service_environment(path: Path = UNIT) -> dict[str, str]:
    """The unit's ``Environment=``: what everything that starts ``normagent run`` gives it too."""
    return dict(item.split("=", 1) for line in unit_settings(path).get("Environment", []) for item in shlex.split(line))


def compile_as_installed(*trees: Path) -> None:
    """Byte-code for ``trees`` and this interpreter's site-packages at levels 0 and 2, as the
    package's postinst writes it (``packaging/deb/postinst``), so that an agent a benchmark starts
    loads ``.opt-2.pyc`` files as the service does, instead of compiling every module at each start
    where the environment says ``PYTHONDONTWRITEBYTECODE`` or the tree is not writable: measured,
    that compiling costs the idle agent 1.5-2 MB and its start 0.25 s of CPU."""
    paths = {str(tree) for tree in trees} | {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "-o", "0", "-o", "2",
                    "-x", r"/(tests?|_vendor/pkg_resources/tests)/", *sorted(paths)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
