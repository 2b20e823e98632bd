"""Time-zone data where the host has none, read as plain files.

A minimal Debian root or a ``debian:12`` container has no ``/usr/share/zoneinfo``; ``zoneinfo``
then falls back to the ``tzdata`` package (a dependency for exactly that) through
``importlib.resources``, which imports ``zipfile`` and its kin into every agent for good. The same
files are on disk in the installed package: putting that directory last on ``zoneinfo``'s search
path gives the same zones in the same order of preference (the host's first) without the import.
"""

from __future__ import annotations

import importlib.util
import os
import zoneinfo


def add_bundled_zone_path() -> None:
    """Append the ``tzdata`` package's zone directory to ``zoneinfo``'s search path (once)."""
    try:
        spec = importlib.util.find_spec("tzdata")
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        bundled = os.path.join(location, "zoneinfo")
        if os.path.isdir(bundled):
            if bundled not in zoneinfo.TZPATH:
                zoneinfo.reset_tzpath([*zoneinfo.TZPATH, bundled])
            return
