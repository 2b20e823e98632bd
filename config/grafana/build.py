"""Writes config/grafana/normagent.json, the Grafana dashboard for a fleet of normagent hosts.

Run ``python config/grafana/build.py`` after changing a panel; tests/contract/test_grafana.py fails
while the JSON differs from what this script writes (``pytest --update-golden`` rewrites it), checks
it against Grafana's dashboard schema and demands a panel for every metric a builtin plugin declares.
tests/integration/test_grafana_dashboard.py runs every query against a real Prometheus.

Why a script and not hand-edited JSON: one row per factsheet-12 section, the host selector and the
panel layout are kept the same everywhere by construction, and a reviewer reads the queries here, a
few lines each, instead of a 4000-line JSON file. The dashboard can still be edited in Grafana and
exported; fold the change back in here.

Conventions of the queries:

- every selector carries ``instance=~"$host"`` (``host`` is a multi-value variable with "All");
- every aggregation keeps ``instance``, so one panel shows the fleet host by host;
- counts over the dashboard's time range use ``increase(...[$__range])`` in instant queries (what
  the monthly report counts), graphs use ``increase(...[$__rate_interval])``;
- "last 30 days" and availability ratios read the recording rules of
  config/prometheus/normagent-recording.yml (``instance…:normagent_…:increase30d`` and
  ``…:ratio30d``); the month before is ``increase(...[30d] offset 30d)`` on the raw counter, so it
  needs no rule history.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "normagent.json"

SCHEMA_VERSION = 42  # the schemaVersion of @grafana/schema 13.2.3 (tests/fixtures/grafana/README.md)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
H = 'instance=~"$host"'


@dataclass(frozen=True)
class Query:
    """One PromQL target. ``instant``: evaluated once at the end of the range (stat, table)."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class P:
    """A panel: its kind (stat, timeseries, table, bargauge), queries, unit and width (of 24)."""

    title: str
    kind: str
    queries: tuple[Query, ...]
    description: str = ""
    unit: str = "short"
    width: int = 8
    height: int = 7
    decimals: int | None = None
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[P, ...] = field(default_factory=tuple)


def rng(metric: str, by: str, matchers: str = "") -> str:
    """Count of a counter over the dashboard's range, per host and ``by`` labels."""
    sel = f"{H},{matchers}" if matchers else H
    return f"sum by (instance{', ' + by if by else ''}) (increase({metric}{{{sel}}}[$__range]))"


def rate_graph(metric: str, by: str, matchers: str = "") -> str:
    sel = f"{H},{matchers}" if matchers else H
    return f"sum by (instance{', ' + by if by else ''}) (increase({metric}{{{sel}}}[$__rate_interval]))"


def last_month(metric: str, by: str = "", matchers: str = "") -> str:
    sel = f"{H},{matchers}" if matchers else H
    return f"sum by (instance{', ' + by if by else ''}) (increase({metric}{{{sel}}}[30d] offset 30d))"


def legend(by: str) -> str:
    return " ".join(["{{instance}}", *(f"{{{{{label.strip()}}}}}" for label in by.split(",") if label.strip())])


def counted(title: str, metric: str, by: str, description: str, matchers: str = "", unit: str = "short", width: int = 8) -> P:
    """A bar gauge of a counter's increase over the range: what the monthly report's tables count."""
    return P(title, "bargauge", (Query(rng(metric, by, matchers), legend(by), instant=True),), description, unit=unit, width=width)


def per_device(title: str, metric: str, by: str, description: str, unit: str = "short", width: int = 8) -> P:
    """A network device's counter whose series the agent creates at its first increase (its labels
    are the device's own interfaces): 0 for every polled device that has none yet, instead of "No
    data", which would read as "not watched"."""
    expr = f"{rng(metric, by)} or on (instance, device) (0 * group by (instance, device) (normagent_snmp_up{{{H}}}))"
    return P(title, "bargauge", (Query(expr, legend(by), instant=True),), description, unit=unit, width=width)


def graph(title: str, metric: str, by: str, description: str, matchers: str = "", unit: str = "short", width: int = 8) -> P:
    return P(title, "timeseries", (Query(rate_graph(metric, by, matchers), legend(by)),), description, unit=unit, width=width)


def gauge(title: str, expr: str, legend_: str, description: str, unit: str = "short", kind: str = "timeseries", width: int = 8, **extra: Any) -> P:
    return P(title, kind, (Query(expr, legend_, instant=kind != "timeseries"),), description, unit=unit, width=width, **extra)


def month_vs_month(title: str, rule: str, metric: str, description: str, matchers: str = "") -> P:
    """Last 30 days (recording rule) beside the 30 days before (raw counter, offset)."""
    return P(
        title,
        "bargauge",
        (
            Query(f"sum by (instance) ({rule}{{{H}}})", "{{instance}} siste 30 døgn", instant=True),
            Query(last_month(metric, "", matchers), "{{instance}} 30 døgn før", instant=True),
        ),
        description,
        width=8,
    )


RED_BELOW_1 = ((None, "red"), (1.0, "green"))

ROWS: tuple[Row, ...] = (
    Row(
        "Driftsstatus: kritiske systemer og oppetid (operations status, availability)",
        (
            gauge("Oppetid", f"time() - normagent_boot_time_seconds{{{H}}}", "{{instance}}", "Time since the host booted.", "s", "stat", width=6),
            counted("Omstarter", "normagent_boots_total", "", "Boots in the time range (wtmp, wtmpdb or the journal).", width=6),
            counted("Uventede nedstengninger", "normagent_unexpected_shutdowns_total", "evidence", "Boots without a clean shutdown before them.", width=6),
            counted("Nedetid for serveren", "normagent_downtime_seconds_total", "planned", "Seconds the host was down, planned (maintenance window) or not.", unit="s", width=6),
            P(
                "Kritiske tjenester oppe nå",
                "stat",
                (Query(f"normagent_service_up{{{H}}} * on (instance, service) group_left (kind, network) normagent_service_info{{{H}}}", "{{instance}} {{service}} ({{kind}})", instant=True),),
                "1 if the last probe of the service succeeded.",
                thresholds=RED_BELOW_1,
                width=8,
            ),
            gauge("Tilgjengelighet denne måneden (SLA)", f"normagent_sla_availability_ratio{{{H}}}", "{{instance}} {{service}} {{period}}", "Availability this calendar month (UTC), planned downtime excluded.", "percentunit", "stat", decimals=3),
            gauge("SLA-mål", f"normagent_sla_target_ratio{{{H}}}", "{{instance}} {{service}}", "The SLA target of each service.", "percentunit", "stat", decimals=3),
            gauge("Igjen av feilbudsjettet", f"normagent_sla_error_budget_ratio{{{H}}}", "{{instance}} {{service}}", "Share of this month's allowed unplanned downtime still left; below 0 the SLA is breached.", "percentunit", "bargauge", thresholds=((None, "red"), (0.0, "orange"), (0.25, "green"))),
            gauge("Tilgjengelighet siste 30 døgn", f"instance_service:normagent_service_availability:ratio30d{{{H}}}", "{{instance}} {{service}}", "Rolling 30-day availability of each probed service (recording rule), planned downtime excluded.", "percentunit", "stat", decimals=3),
            gauge("Serverens tilgjengelighet siste 30 døgn", f"instance:normagent_host_availability:ratio30d{{{H}}}", "{{instance}}", "1 - the host's unplanned downtime in 30 days / 30 days (recording rule).", "percentunit", "stat", decimals=3),
            counted("Utfall av tjenester", "normagent_service_outages_total", "service, planned", "Outages of probed services that ended in the time range."),
            counted("Nedetid for tjenester", "normagent_service_downtime_seconds_total", "service, planned", "Seconds each probed service was down.", unit="s"),
            counted("Overvåket tid", "normagent_service_observed_seconds_total", "service", "Seconds each service was watched by its probes (gaps are not).", unit="s"),
            gauge("Svartid for prøvene", f"normagent_service_probe_duration_seconds{{{H}}}", "{{instance}} {{service}}", "How long the last probe of each service took.", "s"),
            gauge("TLS-sertifikater utløper om", f"normagent_tls_cert_expiry_seconds{{{H}}}", "{{instance}} {{service}}", "Time until the certificate of each https service expires.", "s", "bargauge", thresholds=((None, "red"), (1209600.0, "green"))),
            gauge("CPU-bruk", f"sum by (instance, mode) (rate(normagent_cpu_seconds_total{{{H},mode!=\"idle\"}}[$__rate_interval])) / on (instance) group_left () normagent_cpus{{{H}}}", "{{instance}} {{mode}}", "Share of all CPUs busy, by mode.", "percentunit"),
            gauge("Last", f"normagent_load_average_tasks{{{H}}}", "{{instance}} {{window}}", "Load average."),
            gauge("Ledig minne", f"normagent_memory_available_ratio{{{H}}}", "{{instance}}", "Memory available without swapping, as a share of all memory.", "percentunit"),
            P(
                "Minne og swap",
                "timeseries",
                (
                    Query(f"normagent_memory_total_bytes{{{H}}}", "{{instance}} minne totalt"),
                    Query(f"normagent_memory_available_bytes{{{H}}}", "{{instance}} minne tilgjengelig"),
                    Query(f"normagent_swap_total_bytes{{{H}}}", "{{instance}} swap totalt"),
                    Query(f"normagent_swap_free_bytes{{{H}}}", "{{instance}} swap ledig"),
                ),
                "Memory and swap in bytes.",
                unit="bytes",
            ),
            gauge("Ledig diskplass", f"normagent_filesystem_avail_ratio{{{H}}}", "{{instance}} {{mountpoint}}", "Space an unprivileged user may still write, as a share of the filesystem.", "percentunit", "bargauge", thresholds=((None, "red"), (0.1, "orange"), (0.2, "green")), min=0.0, max=1.0),
            P(
                "Filsystemer",
                "table",
                (
                    Query(f"normagent_filesystem_size_bytes{{{H}}}", "størrelse", instant=True),
                    Query(f"normagent_filesystem_avail_bytes{{{H}}}", "tilgjengelig", instant=True),
                    Query(f"normagent_filesystem_free_bytes{{{H}}}", "ledig", instant=True),
                    Query(f"normagent_filesystem_up{{{H}}}", "lesbart", instant=True),
                ),
                "Size, available and free bytes of each watched filesystem, and whether it could be read.",
                unit="bytes",
            ),
        ),
    ),
    Row(
        "Tilgang: mislykkede pålogginger, sperringer og passord (access)",
        (
            graph("Mislykkede pålogginger", "normagent_failed_logins_total", "source, reason", "Failed login attempts per interval, by where they were judged and why.", width=12),
            counted("Mislykkede pålogginger i perioden", "normagent_failed_logins_total", "source, reason", "Failed login attempts in the time range.", width=12),
            counted("Kontoer sperret", "normagent_account_lockouts_total", "source", "Accounts locked after repeated failed logins."),
            counted("Passord endret eller nullstilt", "normagent_password_resets_total", "source, kind", "kind=reset: set by someone else (the forgotten-password case)."),
            month_vs_month("Mislykkede pålogginger: 30 døgn mot 30 døgn før", "instance:normagent_failed_logins:increase30d", "normagent_failed_logins_total", "This month against the one before (trend)."),
            month_vs_month("Sperringer: 30 døgn mot 30 døgn før", "instance:normagent_account_lockouts:increase30d", "normagent_account_lockouts_total", "This month against the one before (trend)."),
        ),
    ),
    Row(
        "Feil i hendelseslogger (event-log errors)",
        (
            graph("Feil i hendelsesloggene", "normagent_eventlog_errors_total", "log, origin", "Entries of severity error or worse (journald priority <= 3, Windows Error/Critical).", width=12),
            P("Flest feil fra", "table", (Query(f"topk(10, {rng('normagent_eventlog_errors_total', 'log, origin')})", "", instant=True),), "The ten origins (units, providers) with most errors in the time range.", width=6),
            month_vs_month("Feil: 30 døgn mot 30 døgn før", "instance:normagent_eventlog_errors:increase30d", "normagent_eventlog_errors_total", "This month against the one before (trend)."),
        ),
    ),
    Row(
        "Meldingskommunikasjon (EDI)",
        (
            counted("Meldinger", "normagent_edi_messages_total", "direction, msg_type", "Messages read, once per message id."),
            gauge("Uten kvittering nå", f"sum by (instance, msg_type, receipt) (normagent_edi_unacknowledged_messages{{{H}}})", "{{instance}} {{msg_type}} {{receipt}}", "Sent messages still without receipt after the timeout.", kind="bargauge"),
            gauge("Uten kvittering etter alarmgrensen", f"sum by (instance, msg_type, receipt) (normagent_edi_unacknowledged_alarm_messages{{{H}}})", "{{instance}} {{msg_type}} {{receipt}}", "Still without receipt after the alarm limit (72 h by default).", kind="bargauge", thresholds=((None, "green"), (1.0, "red"))),
            gauge("Eldste ukvitterte melding", f"max by (instance, receipt) (normagent_edi_oldest_unacknowledged_age_seconds{{{H}}})", "{{instance}} {{receipt}}", "Age of the oldest sent message still waiting for a receipt.", "s", "stat"),
            counted("Meldinger uten kvittering i perioden", "normagent_edi_unacknowledged_total", "msg_type, receipt", "Sent messages whose receipt did not come within the timeout, counted once each."),
            counted("Applikasjonskvitteringer", "normagent_edi_receipts_total", "msg_type, status", "Received application receipts by status: 1 OK, 2 rejected, 3 OK with errors in a part."),
            counted("Feil i negative kvitteringer", "normagent_edi_receipt_errors_total", "msg_type, code_list, error_code", "Errors in received application receipts, by code list and error code."),
            counted("Transportfeil", "normagent_edi_transport_errors_total", "error_code", "ebXML MessageError received, by error code."),
            counted("Feiladresserte meldinger", "normagent_edi_misaddressed_messages_total", "direction, msg_type", "Receipts with E20/E21, transport errors about the receiver, incoming messages to a HER id that is not ours."),
            counted("Kvitteringer for ukjente meldinger", "normagent_edi_receipts_for_unknown_messages_total", "receipt", "Receipts for a message not read as one we sent."),
            gauge("Kvitteringer uten melding nå", f"normagent_edi_unmatched_receipts{{{H}}}", "{{instance}} {{receipt}}", "Receipts for messages never read from the configured folders.", kind="stat"),
            counted("Stopp i meldingstrafikken", "normagent_edi_stop_seconds_total", "direction, planned", "Seconds of stopped traffic inside business hours, planned or not.", unit="s"),
            gauge("Pågående stopp", f"normagent_edi_stop_current_seconds{{{H}}}", "{{instance}} {{direction}}", "Seconds of the stop going on now (0 while traffic flows).", "s"),
            P(
                "Meldingstjener og mapper",
                "stat",
                (
                    Query(f"normagent_edi_service_up{{{H}}}", "{{instance}} meldingstjener", instant=True),
                    Query(f"normagent_edi_folder_up{{{H}}}", "{{instance}} {{folder}}", instant=True),
                ),
                "1 if the message server runs and each configured folder can be listed.",
                thresholds=RED_BELOW_1,
            ),
            P(
                "Filer i EDI-mappene",
                "bargauge",
                (
                    Query(rng("normagent_edi_files_total", "outcome"), "{{instance}} {{outcome}}", instant=True),
                    Query(rng("normagent_edi_timestamps_total", "kind"), "{{instance}} dato {{kind}}", instant=True),
                    Query(f"normagent_edi_indexed_files{{{H}}}", "{{instance}} i indeksen", instant=True),
                ),
                "Files read by outcome, message dates by kind, files in the index.",
            ),
            month_vs_month("Uten kvittering: 30 døgn mot 30 døgn før", "instance:normagent_edi_unacknowledged:increase30d", "normagent_edi_unacknowledged_total", "This month against the one before (trend)."),
        ),
    ),
    Row(
        "Systemleverandør: oppdateringer (updates)",
        (
            counted("Oppdateringer installert", "normagent_updates_applied_total", "kind, result", "Updates applied, one per package, by kind (security or not) and result.", width=8),
            gauge("Ventende oppdateringer", f"normagent_updates_pending{{{H}}}", "{{instance}} {{kind}}", "Updates waiting to be installed.", kind="bargauge", width=4),
            gauge("Eldste ventende oppdatering", f"normagent_updates_oldest_pending_seconds{{{H}}}", "{{instance}} {{kind}}", "How long the longest-waiting update of each kind has waited.", "s", "stat", width=4),
            gauge("Omstart kreves", f"normagent_reboot_required{{{H}}}", "{{instance}}", "1 if installed updates wait for a reboot.", kind="stat", width=4, thresholds=((None, "green"), (1.0, "orange"))),
            counted("Kjøringer av unattended-upgrades", "normagent_updates_unattended_runs_total", "result", "success, failure or nothing to upgrade.", width=4),
            month_vs_month("Sikkerhetsoppdateringer: 30 døgn mot 30 døgn før", "instance:normagent_security_updates_applied:increase30d", "normagent_updates_applied_total", "Security updates applied, this month against the one before.", 'kind="security"'),
        ),
    ),
    Row(
        "Databehandler: endringer (configuration and package changes)",
        (
            counted("Konfigurasjonsendringer", "normagent_config_changes_total", "source, kind, planned", "Changes of watched files, the audit configuration and Windows policies, planned or not."),
            counted("Pakkeendringer", "normagent_package_changes_total", "action, planned", "Packages installed, upgraded, removed … and whether it was planned."),
            gauge("Overvåkede filer", f"normagent_watched_files{{{H}}}", "{{instance}} {{state}}", "Configuration files watched: hashed, or by size and time only.", kind="stat"),
            month_vs_month("Uplanlagte endringer: 30 døgn mot 30 døgn før", "instance:normagent_unplanned_config_changes:increase30d", "normagent_config_changes_total", "Unplanned configuration changes, this month against the one before.", 'planned="false"'),
        ),
    ),
    Row(
        "Nettleverandør: nettverk (network)",
        (
            gauge("SNMP svarer", f"normagent_snmp_up{{{H}}}", "{{instance}} {{device}}", "1 if the device's last SNMP poll succeeded.", kind="stat", thresholds=RED_BELOW_1, width=6),
            per_device("Nedetid for nettverksutstyr", "normagent_network_device_down_seconds_total", "device", "Seconds a device did not answer SNMP polls.", unit="s", width=6),
            per_device("Omstarter av nettverksutstyr", "normagent_network_device_restarts_total", "device", "Restarts of each device (sysUpTime went back).", width=6),
            gauge("Oppetid for nettverksutstyr", f"normagent_network_device_uptime_seconds{{{H}}}", "{{instance}} {{device}}", "Seconds since the device's SNMP agent started.", "s", "stat", width=6),
            gauge("Grensesnitt oppe", f"normagent_network_interface_up{{{H}}}", "{{instance}} {{device}} {{interface}}", "1 if the interface's ifOperStatus is up.", kind="stat", thresholds=RED_BELOW_1),
            gauge("Trafikk", f"sum by (instance, device, interface, direction) (rate(normagent_network_interface_bytes_total{{{H}}}[$__rate_interval])) * 8", "{{instance}} {{device}} {{interface}} {{direction}}", "Bits per second through each interface.", "bps"),
            per_device("Nedetid for grensesnitt", "normagent_network_interface_down_seconds_total", "device, interface", "Seconds each interface was not up.", unit="s"),
            per_device("Feil på grensesnitt", "normagent_network_interface_errors_total", "device, interface, direction", "Packets with errors."),
            per_device("Forkastet på grensesnitt", "normagent_network_interface_discards_total", "device, interface, direction", "Packets discarded."),
            counted("Mislykkede SNMP-avspørringer", "normagent_snmp_poll_failures_total", "device, reason", "Failed or partly failed polls, by reason."),
            gauge("Varighet av SNMP-avspørring", f"normagent_snmp_poll_duration_seconds{{{H}}}", "{{instance}} {{device}}", "Seconds the last poll took.", "s"),
            gauge("Ekstra OID-er", f"normagent_snmp_oid_value{{{H}}}", "{{instance}} {{device}} {{name}}", "Named extra OIDs from the configuration."),
            P(
                "Nettverkstjenester oppe nå",
                "stat",
                (Query(f"normagent_service_up{{{H}}} * on (instance, service) group_left () normagent_service_info{{{H},network=\"true\"}}", "{{instance}} {{service}}", instant=True),),
                "Probed services tagged network (the network provider's share).",
                thresholds=RED_BELOW_1,
            ),
        ),
    ),
    Row(
        "Ondsinnet programvare (malware)",
        (
            counted("Funn og tiltak", "normagent_malware_detections_total", "engine, action, result", "Malware found (result=detected) and the actions taken on it (success or failed)."),
            gauge("Beskyttelse på", f"normagent_av_protection_enabled{{{H}}}", "{{instance}} {{engine}}", "1 if the antivirus protects (clamd runs; Defender's real-time protection was not reported off).", kind="stat", thresholds=RED_BELOW_1, width=4),
            gauge("Alder på signaturene", f"normagent_av_signature_age_seconds{{{H}}}", "{{instance}} {{engine}}", "Age of the newest signatures.", "s", "stat", width=4, thresholds=((None, "green"), (259200.0, "red"))),
            gauge("Signaturversjon", f"normagent_av_signature_info{{{H}}}", "{{instance}} {{engine}} {{version}}", "The version of the newest signature database.", kind="table", width=4),
            P(
                "Signaturoppdateringer",
                "bargauge",
                (
                    Query(rng("normagent_av_signature_updates_total", "engine"), "{{instance}} {{engine}} installert", instant=True),
                    Query(rng("normagent_av_update_failures_total", "engine"), "{{instance}} {{engine}} mislykket", instant=True),
                ),
                "Signature updates installed and failed in the time range.",
                width=4,
            ),
            month_vs_month("Funn: 30 døgn mot 30 døgn før", "instance:normagent_malware_detected:increase30d", "normagent_malware_detections_total", "Detections this month against the one before.", 'result="detected"'),
        ),
    ),
    Row(
        "Sikkerhetsbarriere: brannmur (firewall)",
        (
            graph("Blokkert", "normagent_firewall_blocked_total", "device, direction", "Packets or connections blocked per interval.", width=12),
            counted("Blokkert i perioden", "normagent_firewall_blocked_total", "device, direction, proto", "Blocked in the time range, by device, direction and protocol.", width=6),
            counted("Regelendringer", "normagent_firewall_rule_changes_total", "device", "Changes of a firewall's rule set or configuration.", width=6),
            counted("Meldinger fra brannmurene", "normagent_firewall_messages_total", "device", "Syslog messages from each device: a device whose count stops growing has stopped sending."),
            P(
                "Syslog-mottaket",
                "bargauge",
                (
                    Query(rng("normagent_syslog_messages_total", "transport, result"), "{{instance}} {{transport}} {{result}}", instant=True),
                    Query(rng("normagent_syslog_connections_total", "result"), "{{instance}} tcp {{result}}", instant=True),
                    Query(rng("normagent_syslog_spool_discarded_messages_total", ""), "{{instance}} tapt i spoolen", instant=True),
                ),
                "Messages the receiver got, TCP connections, messages lost in the spool (no reader kept up).",
            ),
            P(
                "Syslog-spoolen",
                "stat",
                (
                    Query(f"normagent_syslog_open_connections{{{H}}}", "{{instance}} åpne tilkoblinger", instant=True),
                    Query(f"normagent_syslog_spool_files{{{H}}}", "{{instance}} spoolfiler", instant=True),
                    Query(rng("normagent_syslog_spool_discarded_bytes_total", ""), "{{instance}} byte tapt", instant=True),
                ),
                "Open TCP connections, rotated spool files, bytes deleted unread.",
            ),
            month_vs_month("Blokkert: 30 døgn mot 30 døgn før", "instance:normagent_firewall_blocked:increase30d", "normagent_firewall_blocked_total", "This month against the one before (trend)."),
        ),
    ),
    Row(
        "Avvik: avvikskandidater (deviation candidates)",
        (
            gauge("Avvikskandidater", f"sum by (instance, state, severity) (normagent_deviations{{{H}}})", "{{instance}} {{state}} {{severity}}", "Deviation candidates by state (pending, firing, resolved) and severity.", kind="bargauge", width=8),
            gauge("Avvikskandidater over tid", f"sum by (instance, state) (normagent_deviations{{{H}}})", "{{instance}} {{state}}", "Candidates by state.", width=8),
            gauge("Venter i utboksen", f"normagent_outbox_pending{{{H}}}", "{{instance}} {{forwarder}}", "Candidate changes waiting for delivery.", kind="stat", width=4),
            gauge("Eldste i utboksen", f"normagent_outbox_oldest_seconds{{{H}}}", "{{instance}} {{forwarder}}", "Age of the oldest change waiting.", "s", "stat", width=4),
            counted("Leveringsforsøk", "normagent_forward_attempts_total", "forwarder, result", "Attempts to deliver a candidate change, by result.", width=12),
            counted("Ikke levert (døde brev)", "normagent_outbox_dead_letters_total", "forwarder", "Changes given up on: see `normagent deviations list`.", width=12),
        ),
    ),
    Row(
        "Innsamling: agentens helse (collector health)",
        (
            gauge("Innsamlere oppe", f"normagent_collector_up{{{H}}}", "{{instance}} {{collector}}", "1 if the collector's last run succeeded.", kind="table", width=8, thresholds=RED_BELOW_1),
            gauge("Siden siste vellykkede kjøring", f"time() - normagent_collector_last_success_timestamp_seconds{{{H}}}", "{{instance}} {{collector}}", "Seconds since each collector last succeeded.", "s", "table", width=8),
            gauge("Varighet av siste kjøring", f"normagent_collector_duration_seconds{{{H}}}", "{{instance}} {{collector}}", "How long each collector's last run took.", "s", width=8),
            P(
                "Agent og programtillegg",
                "table",
                (
                    Query(f'up{{{H},job=~".+"}}', "skrapt", instant=True),
                    Query(f"normagent_build_info{{{H}}}", "versjon", instant=True),
                    Query(f"normagent_plugin_up{{{H}}}", "programtillegg", instant=True),
                ),
                "Scrape health, the agent's version and whether each plugin loaded.",
            ),
            counted("Logglinjer", "normagent_log_lines_total", "source, result", "Lines read, by what the parser made of them: parsed, ignored, unparsed."),
            gauge("Lest fra loggene", f"sum by (instance, source) (rate(normagent_log_bytes_read_total{{{H}}}[$__rate_interval]))", "{{instance}} {{source}}", "Bytes per second read from log files.", "Bps"),
            gauge("Ulest i loggene", f"normagent_log_checkpoint_lag_bytes{{{H}}}", "{{instance}} {{source}}", "Bytes written to the log files and not yet read.", "bytes"),
            P(
                "Feil ved lesing",
                "bargauge",
                (
                    Query(rng("normagent_log_file_errors_total", "source, reason"), "{{instance}} {{source}} {{reason}}", instant=True),
                    Query(rng("normagent_log_files_unreadable_total", "source"), "{{instance}} {{source}} uleselig", instant=True),
                    Query(rng("normagent_log_block_failures_total", "source"), "{{instance}} {{source}} parserfeil", instant=True),
                    Query(rng("normagent_log_invalid_utf8_lines_total", "source"), "{{instance}} {{source}} ugyldig UTF-8", instant=True),
                    Query(rng("normagent_updates_history_unreadable_total", "source"), "{{instance}} {{source}} historikk uleselig", instant=True),
                    Query(rng("normagent_boot_records_invalid_total", "evidence"), "{{instance}} {{evidence}} ugyldige oppstartsposter", instant=True),
                ),
                "Paths that could not be read, unreadable files, parser failures, invalid UTF-8, unusable history records.",
            ),
            P(
                "HTTP-siden",
                "bargauge",
                (
                    Query(rng("normagent_http_requests_refused_total", "reason"), "{{instance}} avvist {{reason}}", instant=True),
                    Query(rng("normagent_http_connections_cut_total", "reason"), "{{instance}} brutt {{reason}}", instant=True),
                    Query(rng("normagent_http_request_errors_total", ""), "{{instance}} svar 500", instant=True),
                ),
                "Requests refused (wrong password …), connections cut off, answers 500.",
            ),
        ),
    ),
)


def _panel(panel: P, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, query in enumerate(panel.queries):
        target: dict[str, Any] = {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend or "__auto", "refId": chr(ord("A") + i)}
        if query.instant:
            target.update(instant=True, range=False)
        else:
            target.update(instant=False, range=True)
        if panel.kind == "table":
            target["format"] = "table"
        targets.append(target)
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in panel.thresholds]},
    }
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    options: dict[str, Any] = {}
    if panel.kind in ("stat", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "horizontal"}
    elif panel.kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "desc"}}
    elif panel.kind == "table":
        options = {"showHeader": True}
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "id": pid,
        "options": options,
        "targets": targets,
        "title": panel.title,
        "type": panel.kind,
    }
    if panel.kind == "table":
        out["transformations"] = [{"id": "merge", "options": {}}] if len(panel.queries) > 1 else []
    return out


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's classic JSON model (schemaVersion 42)."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in ROWS:
        panels.append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": pid, "panels": [], "title": row.title, "type": "row"})
        pid, y = pid + 1, y + 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel(panel, pid, x, y))
            pid, x, row_height = pid + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Normen factsheet 12 indicators from normagent, one row per section, host by host.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["normagent", "normen"],
        "templating": {
            "list": [
                {
                    "current": {"text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Datakilde",
                    "multi": False,
                    "name": "datasource",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "type": "datasource",
                },
                {
                    "current": {"text": ["All"], "value": ["$__all"]},
                    "datasource": DATASOURCE,
                    "hide": 0,
                    "includeAll": True,
                    "label": "Server",
                    "multi": True,
                    "name": "host",
                    "options": [],
                    "query": {"qryType": 1, "query": "label_values(normagent_build_info, instance)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "type": "query",
                },
            ]
        },
        "time": {"from": "now/M", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "normagent: Normen faktaark 12",
        "uid": "normagent-faktaark12",
        "version": 1,
        "weekStart": "monday",
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
