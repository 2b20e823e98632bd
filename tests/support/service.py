"""The systemd unit's settings, read from systemd/normagent.service: the one place that says how
the service runs the agent, so tests and benchmarks that start ``normagent run`` run it alike."""

from __future__ import annotations

import shlex
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
