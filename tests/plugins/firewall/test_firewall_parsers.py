"""The firewall parsers over real lines no one here wrote (tests/fixtures/logs/firewall), then
over garbage: every line one outcome, labels from the closed sets, never a crash."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent import Count, Event, JournalEntry, ParseContext, ParseResult, RecordBlock
from normagent.plugins.firewall.collectors import ApplianceSettings, Device, LinuxSettings, WindowsLogSettings
from normagent.plugins.firewall.parse import (
    BLOCKED,
    DIRECTIONS,
    MESSAGES,
    PROTOS,
    RULE_CHANGES,
    JOURNAL_FIELDS,
    parse_appliance_lines,
    parse_linux_journal,
    parse_linux_lines,
    parse_pfirewall,
)
from normagent.sources.syslog import spool_line
from normagent.testing import parse_text, rollup_rows, test_pseudonymiser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs" / "firewall"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def counts(result: ParseResult, metric: str) -> dict[tuple[str, ...], float]:
    out: Counter[tuple[str, ...]] = Counter()
    for obs in result.observations:
        if isinstance(obs, Count) and obs.metric == metric:
            out[tuple(v for _, v in obs.labels)] += obs.value
    return dict(out)


def rollup(result: ParseResult, name: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for o in rollup_rows(result.observations):
        if o.name == name:
            out[o.key] += o.value
    return out


def test_netfilter_ufw_firewalld_lines() -> None:
    result = parse_text(parse_linux_lines, (FIXTURES / "netfilter" / "kern.log").read_bytes(), now=NOW, settings=LinuxSettings())
    # 13 lines: 10 LOG lines, of which [UFW AUDIT] is an allowed packet; 2 firewalld errors; all understood.
    assert (result.parsed, result.ignored, result.unparsed) == (10, 3, 0)
    # labels: device, direction, proto (sorted label names)
    assert counts(result, BLOCKED) == {
        ("local", "out", "tcp"): 4,  # FIREWALL_OUT, the lo line, two DROP out wlan0
        ("local", "in", "udp"): 2,  # IPTABLE, UFW BLOCK udp
        ("local", "in", "icmp"): 1,
        ("local", "in", "tcp"): 3,  # OpenWRT DROP(src wan), UFW BLOCK tcp, IPT: CBLK
    }
    assert rollup(result, "firewall.blocked_by_port")["tcp/443"] == 2
    assert sum(rollup(result, "firewall.blocked_by_network").values()) == 10


def test_audit_netfilter_cfg_counts_one_change_per_audit_event() -> None:
    result = parse_text(parse_linux_lines, (FIXTURES / "audit" / "audit.log").read_bytes(), now=NOW, settings=LinuxSettings())
    # six records, five audit events: the nftables transaction's two records share serial 162
    assert (result.parsed, result.ignored, result.unparsed) == (5, 1, 0)
    assert counts(result, RULE_CHANGES) == {("local", "false"): 5}  # a pure parser knows no calendar
    events = [o for o in result.observations if isinstance(o, Event)]
    assert len({e.key for e in events}) == 5 and {e.attrs["source"] for e in events} == {"auditd"}


def test_a_service_reload_is_a_rule_change_unless_turned_off() -> None:
    line = "Nov 23 07:00:00 host systemd[1]: Reloaded firewalld.service - firewalld - dynamic firewall daemon."
    on = parse_text(parse_linux_lines, line, now=NOW, settings=LinuxSettings())
    off = parse_text(parse_linux_lines, line, now=NOW, settings=LinuxSettings(count_service_reloads=False))
    assert counts(on, RULE_CHANGES) == {("local", "false"): 1} and on.parsed == 1
    assert counts(off, RULE_CHANGES) == {} and off.ignored == 1


def test_pfirewall_log_columns_from_the_header() -> None:
    result = parse_text(parse_pfirewall, (FIXTURES / "windows" / "pfirewall.log").read_bytes(), settings=WindowsLogSettings(device="edge1"))
    # 8 records (one with its path cut: direction unknown), 4 header lines and a blank line
    assert (result.parsed, result.unparsed) == (8, 0)
    assert counts(result, BLOCKED) == {("edge1", "in", "udp"): 7, ("edge1", "unknown", "udp"): 1}
    assert rollup(result, "firewall.blocked_by_port") == Counter({"udp/5353": 8})


def test_pfirewall_a_header_that_changes_mid_block_changes_the_columns() -> None:
    text = (
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n"
        "2024-01-01 10:00:00 DROP TCP 198.51.100.7 10.0.0.5 51514 445 60 S - - - - - - RECEIVE\n"
        "#Fields: date time path action dst-port protocol src-ip\n"
        "2024-01-01 10:00:01 SEND DROP 3389 TCP 198.51.100.9\n"
        "2024-01-01 10:00:02 SEND ALLOW 443 TCP 198.51.100.9\n"
    )
    result = parse_text(parse_pfirewall, text, settings=WindowsLogSettings())
    assert counts(result, BLOCKED) == {("other", "in", "tcp"): 1, ("other", "out", "tcp"): 1}
    assert rollup(result, "firewall.blocked_by_port") == Counter({"tcp/445": 1, "tcp/3389": 1})
    assert (result.parsed, result.ignored, result.unparsed) == (2, 3, 0)


def test_a_time_with_no_utc_instant_is_an_unparsed_line_not_a_failed_block() -> None:
    """Year 1 in a zone east of UTC (or 9999 west of it) has no UTC instant: ``astimezone`` raised
    OverflowError, the whole block failed the parser and was held back for retries."""
    oslo = ZoneInfo("Europe/Oslo")
    pfirewall = (
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n"
        "0001-01-01 00:00:00 DROP TCP 198.51.100.7 10.0.0.5 51514 445 60 S - - - - - - RECEIVE\n"
        "2024-01-01 10:00:00 DROP TCP 198.51.100.7 10.0.0.5 51514 445 60 S - - - - - - RECEIVE\n"
    )
    result = parse_text(parse_pfirewall, pfirewall, tz=oslo, settings=WindowsLogSettings())
    assert (result.parsed, result.unparsed) == (1, 1)
    kern = (
        "0001-01-01T00:00:00 fw kernel: [UFW BLOCK] IN=eth0 OUT= MAC= SRC=198.51.100.7 DST=10.0.0.5 LEN=60 PROTO=TCP SPT=51514 DPT=22\n"
        "2024-01-01T10:00:00 fw kernel: [UFW BLOCK] IN=eth0 OUT= MAC= SRC=198.51.100.7 DST=10.0.0.5 LEN=60 PROTO=TCP SPT=51514 DPT=22\n"
    )
    result = parse_text(parse_linux_lines, kern, now=NOW, tz=oslo, settings=LinuxSettings())
    assert counts(result, BLOCKED) == {("local", "in", "tcp"): 2}  # an unreadable stamp: the block's time, as for any


def test_filterlog_lines_of_a_syslog_file() -> None:
    devices = ApplianceSettings(devices={"pfsense": Device(senders=("pfSense",))})
    result = parse_text(parse_appliance_lines, (FIXTURES / "pfsense" / "filterlog.log").read_bytes(), now=NOW, settings=devices)
    assert (result.parsed, result.ignored, result.unparsed) == (1, 3, 0)  # one block, three passes
    assert counts(result, BLOCKED) == {("pfsense", "in", "udp"): 1}
    assert rollup(result, "firewall.blocked_by_port") == Counter({"udp/17600": 1})
    assert counts(result, MESSAGES) == {("other",): 3, ("pfsense",): 1}


def test_fortigate_denies_and_configuration_changes() -> None:
    result = parse_text(parse_appliance_lines, (FIXTURES / "fortigate" / "fortigate.log").read_bytes(), now=NOW, settings=ApplianceSettings())
    # 5 traffic denies (FortiOS 3/4 status=deny, 5 action=deny), 3 configuration changes; an
    # accept, a web filter block (not the firewall policy) and an admin login are of no interest
    assert (result.parsed, result.ignored, result.unparsed) == (8, 3, 0)
    assert counts(result, BLOCKED) == {("other", "unknown", "tcp"): 4, ("other", "unknown", "udp"): 1}
    assert counts(result, RULE_CHANGES) == {("other", "false"): 3}


def test_cisco_asa_denies_and_configuration_changes() -> None:
    result = parse_text(parse_appliance_lines, (FIXTURES / "asa" / "asa.log").read_bytes(), now=NOW, settings=ApplianceSettings())
    assert (result.parsed, result.ignored, result.unparsed) == (12, 4, 0)
    blocked = counts(result, BLOCKED)
    assert sum(blocked.values()) == 10
    assert blocked[("other", "in", "tcp")] == 1 and blocked[("other", "in", "udp")] == 1
    assert blocked[("other", "in", "icmp")] == 1 and blocked[("other", "in", "other")] == 1  # protocol 47
    assert counts(result, RULE_CHANGES) == {("other", "false"): 2}
    assert rollup(result, "firewall.blocked_by_port")["tcp/1433"] == 1


def test_spool_lines_name_the_device_by_sender_or_host() -> None:
    lines = (FIXTURES / "pfsense" / "filterlog.log").read_bytes().splitlines()
    at = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    spooled = b"".join(spool_line(at, "192.0.2.1" if i % 2 else "192.0.2.77", b"<134>" + line) for i, line in enumerate(lines))
    settings_ = ApplianceSettings(devices={"edge": Device(senders=("192.0.2.1",)), "core": Device(senders=("bbfw01",))})
    result = parse_text(parse_appliance_lines, spooled, now=NOW, settings=settings_)
    assert (result.parsed, result.ignored, result.unparsed) == (1, 3, 0)
    assert counts(result, BLOCKED) == {("edge", "in", "udp"): 1}  # line 1, from 192.0.2.1
    assert counts(result, MESSAGES) == {("other",): 1, ("edge",): 2, ("core",): 1}


# --------------------------------------------------------------------------------------------
# Bad input


def check_closed(result: ParseResult, lines: int) -> None:
    assert result.parsed + result.ignored + result.unparsed == lines
    for obs in result.observations:
        if isinstance(obs, Count) and obs.metric == BLOCKED:
            labels = dict(obs.labels)
            assert labels["device"] in ("local", "other", "edge")
            assert labels["direction"] in DIRECTIONS and labels["proto"] in PROTOS
        elif isinstance(obs, Count):
            assert dict(obs.labels)["device"] in ("local", "other", "edge")


BAD = [
    "filterlog: 5,,,1000102433,em0,match,block,in,4,0x0",  # CSV cut short
    "filterlog: ,,,,,,,,,,,,,,,,,,,,,,,",
    "filterlog: 5,,,x,em0,match,block,sideways,9,a,b,c",
    'date=2016 time=1 type=traffic devid=F action=deny proto="6 dstport=99999999999999999999',
    "type= logid= devid=",
    "%ASA-4-106023: Deny tcp src",
    "%ASA-9-99999",
    "\x00\x01\x02 garbage \xff",
    "SonicWall id=firewall sn=0017C5 time=\"2024-01-01\" fw=1.2.3.4 pri=1 c=32 m=1197 msg=\"NAT Mapping\"",
]


def spooled(lines: list[str]) -> bytes:
    at = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    return b"".join(spool_line(at, "198.51.100.1", b"<134>" + line.encode("utf-8", "surrogateescape")) for line in lines)


def test_malformed_and_unknown_appliance_lines_are_unparsed_never_a_crash() -> None:
    """From the spool, everything not understood is unparsed; so is a spool line that is none."""
    garbage = b"not a spool line\n2026-01-01T00:00:00.000000Z 192.0.2.1 no pri\n"
    result = parse_text(parse_appliance_lines, spooled(BAD) + garbage, now=NOW, settings=ApplianceSettings(), examples=20, origin="/state/syslog/syslog.log")
    check_closed(result, len(BAD) + 2)
    assert result.unparsed == len(BAD) + 2 and result.parsed == 0
    assert not [o for o in result.observations if isinstance(o, Count) and o.metric == BLOCKED]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from([b.encode("utf-8", "surrogateescape") for b in BAD])), max_size=30))
def test_garbage_never_crashes_and_labels_stay_closed(lines: list[bytes]) -> None:
    data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    n = data.count(b"\n")
    settings_ = ApplianceSettings(devices={"edge": Device(senders=("192.0.2.1",))})
    for parser, s in ((parse_appliance_lines, settings_), (parse_linux_lines, LinuxSettings()), (parse_pfirewall, WindowsLogSettings())):
        check_closed(parse_text(parser, data, now=NOW, settings=s), n)


SENDERS = st.sampled_from(["192.0.2.1", "203.0.113.5", "fw01", "x" * 300, "[::1]", "\u00e6\u00f8\u00e5"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(SENDERS, st.integers(1, 5), st.sampled_from(["block", "pass", "reject", "nonsense"]), st.sampled_from(["in", "out", "up"])), max_size=20))
def test_any_sender_is_a_configured_device_or_other(rows: list[tuple[str, int, str, str]]) -> None:
    """However many senders, and whatever they claim: the device label is configured or other."""
    at = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    data = b"".join(
        spool_line(at, sender, f"<134>Nov 23 07:00:00 {sender} filterlog[1]: 5,,,0,em0,match,{action},{d},4,0x0,,64,1,0,none,6,tcp,60,198.51.100.{n},10.0.0.1,1234,22,0".encode())
        for sender, n, action, d in rows
    )
    result = parse_text(parse_appliance_lines, data, now=NOW, settings=ApplianceSettings(devices={"edge": Device(senders=("192.0.2.1",))}))
    check_closed(result, len(rows))
    blocked = sum(v for k, v in counts(result, BLOCKED).items())
    assert blocked == sum(1 for _, _, a, d in rows if a in ("block", "reject") and d in ("in", "out"))


def test_the_journal_parser_reads_no_field_it_does_not_declare() -> None:
    """The collector declares JOURNAL_FIELDS, and the libsystemd reader reads only those: the
    parser must give the same result on entries cut down to them."""
    netfilter = (FIXTURES / "netfilter" / "kern.log").read_text().splitlines()
    common = {"_HOSTNAME": "fw1", "_PID": "1", "SYSLOG_IDENTIFIER": "kernel", "_TRANSPORT": "kernel", "PRIORITY": "4"}
    messages = [dict(common, MESSAGE=line.split(": ", 1)[-1]) for line in netfilter]
    messages += [
        dict(common, MESSAGE="table=filter family=2 entries=12", _AUDIT_TYPE_NAME="NETFILTER_CFG", _AUDIT_TYPE="1325", _AUDIT_ID="77"),
        dict(common, MESSAGE="table=nat family=2 entries=3", _AUDIT_TYPE="1325", _AUDIT_ID="77"),
        dict(common, MESSAGE="table=nat family=2 entries=4", _AUDIT_TYPE="1325", _AUDIT_ID="78"),
        dict(common, MESSAGE="Reloaded firewalld - dynamic firewall daemon.", SYSLOG_IDENTIFIER="systemd", _SYSTEMD_UNIT="init.scope"),
        dict(common, MESSAGE="Reloaded firewalld - dynamic firewall daemon.", SYSLOG_IDENTIFIER="systemd", _SYSTEMD_UNIT="init.scope"),
    ]
    entries = [
        JournalEntry({**fields, "__CURSOR": f"s=1;i={n:x};t={n:x}"}, NOW, f"s=1;i={n:x};t={n:x}") for n, fields in enumerate(messages)
    ]
    cut = [JournalEntry({k: v for k, v in e.fields.items() if k in JOURNAL_FIELDS}, e.realtime, e.cursor) for e in entries]
    ctx = ParseContext(now=NOW, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=LinuxSettings())

    full = parse_linux_journal(RecordBlock(tuple(entries), "journal"), ctx)

    assert full.parsed > len(netfilter) // 2 and counts(full, RULE_CHANGES)
    assert parse_linux_journal(RecordBlock(tuple(cut), "journal"), ctx) == full


@pytest.mark.parametrize("stamp", ["1494907217558.1", "99999999999999999999", "2020-13-28 17:46:41.878", "2020-05-28 25:46:41"])
def test_an_audit_record_of_a_time_no_clock_shows_is_unparsed_never_a_crash(stamp: str) -> None:
    """A damaged NETFILTER_CFG record (its time out of any calendar) is unparsed; the others in
    the block still count."""
    lines = f"type=NETFILTER_CFG msg=audit({stamp}:5403): table=filter family=7 entries=0\n" + (FIXTURES / "audit" / "audit.log").read_text()

    result = parse_text(parse_linux_lines, lines, now=NOW, settings=LinuxSettings())

    assert (result.parsed, result.unparsed) == (5, 1)
