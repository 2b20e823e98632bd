"""The demo clinic's configuration: what an operations provider would write for such a server.

Written as a file (``<demo>/normagent.toml``) and read by the agent's own loader, so the demo's
collectors are configured exactly as a real site's, and the file can be read, changed and checked
(``normagent check-config``) afterwards. Sources are the clinic's files under ``<demo>/clinic``;
collectors with nothing to read in the demo (SNMP, dnf, the host's boots, the host's own /etc) are
switched off. Every collector runs hourly on the simulated clock (the ledger keeps hours), the
journal every four hours (each of its runs starts journalctl).

Imports only the standard library and normagent.demo.clinic.
"""

from __future__ import annotations

import json
from pathlib import Path

from normagent.demo.clinic import EPJ_PROCESS, OSLO, OWN_HER, SECURITY_PACKAGES, Clinic

PROBE_EVERY = "1h"
OFF = ("system.boots", "access.journal_errors", "malware.clamonacc", "malware.freshclam", "malware.clamav_status",
       "network.snmp", "updates.dnf", "updates.pending", "changes.files", "changes.audit", "changes.packages",
       "firewall.appliances")


def q(value: object) -> str:
    """A TOML string or array (JSON's syntax for them is TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def write_config(directory: Path, clinic: Clinic, lang: str) -> Path:
    """Write ``<directory>/normagent.toml``. It has no [web]: the demo serves /metrics itself
    (``--port``), so the file is the same whatever the port."""
    root = clinic.root

    def files(*names: str) -> str:
        return q([str(root / name) for name in names])

    off = [name for name in OFF if not (name == "access.journal_errors" and clinic.journal_remote)]
    windows = "".join(
        f'[[maintenance.windows]]\nstart = "{start.astimezone(OSLO).replace(tzinfo=None).isoformat()}"\n'
        f'end = "{end.astimezone(OSLO).replace(tzinfo=None).isoformat()}"\nwhat = {q(what)}\nrole = "EPJ-leverandør"\n\n'
        for start, end, what in clinic.maintenance
    )
    text = f"""# normagent demo: the configuration of an invented clinic's server (normagent demo wrote it).
# Every source is a file of the demo under {root}.

[agent]
state_dir = "state"
log_level = "error"

[plugins]
entry_points = false

[maintenance]
time_zone = "Europe/Oslo"

{windows}[deviations]
evaluate_every = "1h"
location = "Demo legekontor, serverrommet"

[report]
language = "{lang}"
time_zone = "Europe/Oslo"

# A rule of the site's own: the Windows server's System log (EVTX copied here) is watched more
# closely than the default burst rule does.
[rules."site.windows_system_errors"]
watch = "normagent_eventlog_errors_total"
comparison = ">="
threshold = 20
window = "1d"
labels = {{ log = "system" }}
section = "Driftsstatus"
title = "Mange feil i Windows-serverens systemlogg"
summary = "{{value}} feil i systemloggen til Windows-serveren siste {{window}}."
title_en = "Many errors in the Windows server's System log"
summary_en = "{{value}} errors in the Windows server's System log in the last {{window}}."

{"".join(f'[collectors."{name}"]{chr(10)}enabled = false{chr(10)}{chr(10)}' for name in off)}[collectors."system.host"]
interval = "1h"

[collectors."access.logins"]
interval = "1h"
prefer = "files"

[collectors."access.logins".files]
paths = {files("log/auth.log")}
start_at = "beginning"
timezone = "Europe/Oslo"

[collectors."access.windows"]
enabled = true
interval = "1h"
paths = {q([str(root / "windows" / "*" / "*.evtx")])}

[collectors."edi.messages"]
interval = "1h"
folders = [
    {{ path = {q(str(root / "edi" / "ut"))}, direction = "out" }},
    {{ path = {q(str(root / "edi" / "inn"))}, direction = "in", role = "receipts" }},
]
own_her_ids = ["{OWN_HER}"]

[collectors."availability.probes"]
interval = "{PROBE_EVERY}"
gap = "90m"                        # longer than the interval: the time between two probes is watched time

[[collectors."availability.probes".services]]
name = "epj"
kind = "process"
target = "{EPJ_PROCESS}"
sla = 0.995

[collectors."firewall.linux"]
interval = "1h"
source = "files"
device = "local"

[collectors."firewall.linux".files]
paths = {files("log/kern.log")}
start_at = "beginning"

[collectors."malware.clamav"]
interval = "1h"

[collectors."malware.clamav".files]
paths = {files("log/clamav/clamav.log")}
start_at = "beginning"
timezone = "Europe/Oslo"

[collectors."updates.apt"]
interval = "1h"
security_packages = {q(list(SECURITY_PACKAGES))}

[collectors."updates.apt".files]
paths = {files("log/apt/history.log", "log/apt/term.log", "log/dpkg.log", "log/unattended-upgrades/unattended-upgrades.log")}
start_at = "beginning"
timezone = "Europe/Oslo"

[collectors."changes.plans"]
interval = "1h"
"""
    if clinic.journal_remote:
        text += f"""
[collectors."access.journal_errors"]
interval = "4h"                    # each run starts journalctl: the demo's slowest step

[collectors."access.journal_errors".journal]
files = {q([str(root / "journal" / "*.journal")])}
start = "beginning"
"""
    path = directory / "normagent.toml"
    path.write_text(text, encoding="utf-8")
    return path
