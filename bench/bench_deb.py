"""The Debian package's size and install time, next to Debian's prometheus-node-exporter.

    scripts/build-deb                      # dist/normagent_<version>-1_amd64.deb
    .venv/bin/python bench/bench_deb.py dist/normagent_0.1.0-1_amd64.deb [--rounds 5]

As root. In a clean Debian 12 root (scripts/debian-root, the root of scripts/fresh-check and the
package test): apt-get update, then the first ``apt-get install ./normagent_*.deb`` as a new host
meets it (with the dependencies apt fetches: systemd and its libraries), timed once. Then, with the
dependencies in place, ``dpkg -i`` and ``dpkg --purge`` of normagent and of Debian's
prometheus-node-exporter (a comparable monitoring daemon, its .deb from the mirror) in turn, for
``--rounds`` rounds; medians, and the ratio. systemd is not PID 1 in the root, so neither postinst
starts its service: the time is unpacking plus the maintainer scripts (normagent's postinst compiles
its byte-code). JSON goes to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def in_root(root: Path, *argv: str) -> float:
    """Run argv in the root; return its wall time in seconds (fail loudly on a non-zero exit)."""
    started = time.perf_counter()
    result = subprocess.run(
        ["chroot", str(root), "/usr/bin/env", "-i", f"PATH={PATH}", "DEBIAN_FRONTEND=noninteractive", *argv],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deb", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (chroot and mounts)")
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="normagent-bench-deb."))
    root = work / "root"
    script = str(REPO / "scripts/debian-root")
    subprocess.run([script, "create", str(root)], check=True)
    try:
        (root / "srv" / args.deb.name).write_bytes(args.deb.read_bytes())
        ours = f"/srv/{args.deb.name}"
        in_root(root, "apt-get", "update", "-q")
        first = in_root(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", ours)
        in_root(root, "dpkg", "--purge", "normagent")
        in_root(root, "sh", "-c", "cd /srv && apt-get download -q prometheus-node-exporter")
        (theirs,) = [f"/srv/{p.name}" for p in (root / "srv").glob("prometheus-node-exporter_*.deb")]
        # Its dependencies, so that dpkg -i measures the package alone, as for ours.
        in_root(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", theirs)
        in_root(root, "dpkg", "--purge", "prometheus-node-exporter")
        times: dict[str, list[float]] = {"normagent": [], "prometheus-node-exporter": []}
        for _ in range(args.rounds):
            for name, deb in (("normagent", ours), ("prometheus-node-exporter", theirs)):
                times[name].append(in_root(root, "dpkg", "-i", deb))
                in_root(root, "dpkg", "--purge", name)
        sizes = {"normagent": args.deb.stat().st_size, "prometheus-node-exporter": (root / theirs.lstrip("/")).stat().st_size}
    finally:
        subprocess.run([script, "destroy", str(root)], check=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "deb": args.deb.name, "load_before": load, "load_after": os.getloadavg(), "rounds": args.rounds,
        "first_apt_install_with_dependencies_s": first, "dpkg_i_s": times, "dpkg_i_median_s": medians,
        "ratio": medians["normagent"] / medians["prometheus-node-exporter"], "deb_bytes": sizes,
    }
    out = REPO / "bench/out"
    out.mkdir(exist_ok=True)
    (out / f"deb-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
