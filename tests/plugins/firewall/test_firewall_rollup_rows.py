"""The firewall's source-network rows as ``RollupRows`` (one observation per day, issue 15):
``normagent parse`` and the ledger see the rows a ``Rollup`` per network gave."""

from __future__ import annotations

import io
import json
from pathlib import Path

from normagent.loader import build_plugins
from normagent.parsecmd import run_parse
from normagent.testing import EPOCH

PLUGINS = build_plugins(entry_points_enabled=False)
LINE = (
    "Nov 23 07:25:5{n} fw01 kernel: [UFW BLOCK] IN=eth0 OUT= MAC= SRC={src} DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF "
    "PROTO=TCP SPT=4{n} DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0\n"
)


def test_parse_counts_a_networks_rows_distinct_keys(tmp_path: Path) -> None:
    """Four blocked packets from three /24 networks: three distinct keys (the rows of a day are
    one ``RollupRows``; ``normagent parse`` counts its keys, not the observation)."""
    log = tmp_path / "kern.log"
    sources = ("203.0.113.9", "203.0.113.77", "198.51.100.1", "192.0.2.200")
    log.write_text("".join(LINE.format(n=n, src=src) for n, src in enumerate(sources)))
    out = io.StringIO()

    assert run_parse([str(log)], config=None, plugins=PLUGINS, fmt="json", out=out, now=EPOCH, collectors=["firewall.linux"]) == 0

    [collector] = json.loads(out.getvalue())["inputs"][0]["collectors"]
    assert collector["rollup_distinct_keys"] == {"firewall.blocked_by_network": 3, "firewall.blocked_by_port": 1}
