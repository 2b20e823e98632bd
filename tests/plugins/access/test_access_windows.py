"""Windows: the real EVTX fixtures through the real collector path, checked against an independent
count from evtx's XML rendering, and the status tables record by record."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from evtx import PyEvtxParser
from structlog.testing import capture_logs

from normagent import Count, ParseContext, RecordBlock, Rollup, WindowsEvent
from normagent.plugins.access.collectors import WINDOWS, WindowsSettings
from normagent.plugins.access.tally import EVENTLOG_ERRORS, FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS, SUCCESS_BY_NETWORK
from normagent.plugins.access.windows import hex_value, logon_failure_reason, parse_windows
from normagent.testing import EPOCH, observations, run_collector_once, test_pseudonymiser

EVTX = Path(__file__).parents[2] / "fixtures" / "evtx"
NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# The 4625 table of docs/access-counting-rules.md (W1), restated here on purpose: the test must
# not take its expectations from the code it checks.
W1 = {
    0xC000006A: "bad_password",
    0xC0000064: "unknown_user",
    0xC0000234: "locked_out",
    0xC0000072: "disabled",
    0xC0000193: "expired",
    0xC0000071: "password_expired",
    0xC000006F: "outside_hours",
    0xC0000070: "workstation_restricted",
    0xC0000224: "must_change_password",
    0xC000015B: "not_allowed",
    0xC0000413: "not_allowed",
}


def xml_records(path: Path) -> list[dict[str, object]]:
    """Every readable record of an EVTX file, from evtx's XML, as plain values."""
    out = []
    records = PyEvtxParser(str(path)).records()
    while True:
        try:
            rec = next(records)
        except StopIteration:
            break
        except RuntimeError:  # the damaged record of sample-with-zero-data-size-event.evtx
            continue
        # security.evtx holds a control character XML 1.0 does not allow: keep the parser going.
        root = ET.fromstring(CONTROL.sub(b"?", rec["data"].encode("utf-8")))
        system = root.find(f"{NS}System")
        assert system is not None
        data = {d.get("Name") or str(i): (d.text or "") for i, d in enumerate(root.iter(f"{NS}Data"))}
        out.append(
            {
                "id": int(system.findtext(f"{NS}EventID") or 0),
                "level": int(system.findtext(f"{NS}Level") or 0),
                "keywords": int(system.findtext(f"{NS}Keywords") or "0", 16),
                "channel": system.findtext(f"{NS}Channel") or "",
                "provider": system.find(f"{NS}Provider").get("Name"),  # type: ignore[union-attr]
                "data": data,
            }
        )
    return out


def independent_counts(path: Path) -> Counter[tuple[str, ...]]:
    """What the rules of the document give for a file, counted from the XML."""
    counts: Counter[tuple[str, ...]] = Counter()
    for r in xml_records(path):
        data: dict[str, str] = r["data"]  # type: ignore[assignment]
        if r["channel"] == "Security":
            if r["id"] == 4625:
                status, sub = int(data["Status"], 16), int(data.get("SubStatus") or "0x0", 16)
                code = sub if status in (0xC000006D, 0xC000006E) and sub else status
                counts[(FAILED_LOGINS, "windows", W1.get(code, "other"))] += 1
            elif r["id"] == 4776 and int(data["Status"], 16) != 0:
                code = int(data["Status"], 16)
                counts[(FAILED_LOGINS, "ntlm", W1.get(code, "other"))] += 1
            elif r["id"] == 4740:
                counts[(LOCKOUTS, "windows")] += 1
            elif r["id"] in (4723, 4724) and r["keywords"] & 0x0020000000000000:
                counts[(PASSWORD_RESETS, "windows", "change" if r["id"] == 4723 else "reset")] += 1
        elif r["channel"] in ("System", "Application") and r["level"] in (1, 2):
            counts[(EVENTLOG_ERRORS, str(r["channel"]).lower(), str(r["provider"]))] += 1
    return counts


def collected_counts(path: Path) -> Counter[tuple[str, ...]]:
    """What the access.windows collector counts over a file, read through the real EVTX reader."""
    providers = tuple({str(r["provider"]) for r in xml_records(path)})
    settings = WindowsSettings(paths=(str(path),), origins=providers)
    counts: Counter[tuple[str, ...]] = Counter()
    for obs in observations(run_collector_once(WINDOWS, settings=settings)):
        if isinstance(obs, Count) and obs.value and obs.metric in (FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS, EVENTLOG_ERRORS):
            labels = dict(obs.labels)
            if obs.metric == FAILED_LOGINS:
                key: tuple[str, ...] = (obs.metric, labels["source"], labels["reason"])
            elif obs.metric == LOCKOUTS:
                key = (obs.metric, labels["source"])
            elif obs.metric == PASSWORD_RESETS:
                key = (obs.metric, labels["source"], labels["kind"])
            else:
                key = (obs.metric, labels["log"], labels["origin"])
            counts[key] += int(obs.value)
    return counts


FILES = sorted(EVTX.glob("*.evtx"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_real_file_counts_what_the_xml_says(path: Path) -> None:
    assert collected_counts(path) == independent_counts(path)


# Checked by hand in evtx's XML (and logformats.md 12.1); a change here means a change in the rules.
HAND_COUNTED = {
    "Security_with_size_t.evtx": {
        (FAILED_LOGINS, "windows", "bad_password"): 3,  # 0xc000006d/0xc000006a
        (FAILED_LOGINS, "windows", "unknown_user"): 4,  # 0xc000006d/0xc0000064 from 10.20.0.118
        (FAILED_LOGINS, "windows", "disabled"): 4,  # 0xc000006e/0xc0000072, Guest
        (FAILED_LOGINS, "windows", "must_change_password"): 2,  # 0xc0000224/0x0
        (FAILED_LOGINS, "windows", "other"): 2,  # 0xc000006d/0x0, NTLM
    },  # and 21 x 4776, all Status 0x0: successes, not counted
    "Security_short_selected.evtx": {
        (FAILED_LOGINS, "windows", "bad_password"): 1,  # RDP, 0xc000006d/0xc000006a
        (FAILED_LOGINS, "ntlm", "bad_password"): 1,  # the same attempt's 4776, 0xc000006a (rule W2)
    },
    "security.evtx": {(PASSWORD_RESETS, "windows", "change"): 1, (PASSWORD_RESETS, "windows", "reset"): 1},
    "new-user-security.evtx": {},
    "system.evtx": {
        (EVENTLOG_ERRORS, "system", "Microsoft-Windows-DistributedCOM"): 18,
        (EVENTLOG_ERRORS, "system", "Service Control Manager"): 16,
        (EVENTLOG_ERRORS, "system", "Microsoft-Windows-WindowsUpdateClient"): 5,
        (EVENTLOG_ERRORS, "system", "BTHUSB"): 2,
    },
    "sample-with-zero-data-size-event.evtx": {  # 335 readable records of 450
        (EVENTLOG_ERRORS, "system", "Microsoft-Windows-DistributedCOM"): 6,
        (EVENTLOG_ERRORS, "system", "Service Control Manager"): 5,
    },
}


@pytest.mark.parametrize("name", sorted(HAND_COUNTED))
def test_hand_counted_numbers(name: str) -> None:
    assert dict(collected_counts(EVTX / name)) == HAND_COUNTED[name]


def test_the_damaged_file_is_read_past_its_damage() -> None:
    """Every record has an outcome, the ones the damage made unreadable included."""
    settings = WindowsSettings(paths=(str(EVTX / "sample-with-zero-data-size-event.evtx"),))
    obs = observations(run_collector_once(WINDOWS, settings=settings))

    lines: Counter[str] = Counter()
    for o in obs:
        if isinstance(o, Count) and o.metric == "normagent_log_lines_total":
            lines[dict(o.labels)["result"]] += int(o.value)
    # 335 readable records: 11 errors counted, the rest of no interest; the 115 records the damage
    # made unreadable are counted by the driver as unparsed, so nothing is silently dropped.
    assert lines == {"parsed": 11, "ignored": 324, "unparsed": 115}


def test_a_damaged_newest_chunk_is_unparsed_and_logged_with_its_file_and_offset(tmp_path: Path) -> None:
    """security.evtx's newest chunk (records 2202..2261, at offset 4,096 + 25 x 64 KiB) with a
    damaged header: no chunk after it tells its numbers, so its 60 records were lost without a
    count or a log line. They are unparsed, and the warning says which file and where."""
    data = bytearray((EVTX / "security.evtx").read_bytes())
    offset = 4096 + 25 * 65536
    data[offset : offset + 8] = b"XXXXXXXX"
    path = tmp_path / "Security.evtx"
    path.write_bytes(bytes(data))

    with capture_logs() as logs:
        obs = observations(run_collector_once(WINDOWS, settings=WindowsSettings(paths=(str(path),))))

    lines: Counter[str] = Counter()
    for o in obs:
        if isinstance(o, Count) and o.metric == "normagent_log_lines_total":
            lines[dict(o.labels)["result"]] += int(o.value)
    assert sum(lines.values()) == 2261 and lines["unparsed"] == 60
    said = [(e["path"], e["unreadable"], e["offset"]) for e in logs if e["event"] == "evtx_records_unreadable"]
    assert said == [(str(path), 60, offset)]


# ---------------------------------------------------------------------------------------------
# record by record


def event(event_id: int, data: dict[str, str], *, channel: str = "Security", level: int = 0, keywords: int = 0x8010000000000000, provider: str = "Microsoft-Windows-Security-Auditing") -> WindowsEvent:
    return WindowsEvent(
        record_id=1,
        time=datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc),
        channel=channel,
        provider=provider,
        event_id=event_id,
        level=level,
        keywords=keywords,
        computer="SRV1",
        data=data,
    )


def parse_one(ev: WindowsEvent, **settings: object) -> list[object]:
    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=WindowsSettings(**settings))  # type: ignore[arg-type]
    return parse_windows(RecordBlock((ev,), "t"), ctx).observations  # type: ignore[return-value]


def counts_of(obs: list[object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(o.metric, o.labels): o.value for o in obs if isinstance(o, Count)}


@pytest.mark.parametrize(
    ("status", "substatus", "reason"),
    [
        ("0xc000006d", "0xc000006a", "bad_password"),
        ("0xC000006D", "0xC000006A", "bad_password"),
        ("0xc000006d", "0xc0000064", "unknown_user"),
        ("0xc000006e", "0xc0000072", "disabled"),
        ("0xc000006e", "0xc0000193", "expired"),
        ("0xc000006e", "0xc0000071", "password_expired"),
        ("0xc000006e", "0xc000006f", "outside_hours"),
        ("0xc000006e", "0xc0000070", "workstation_restricted"),
        ("0xc0000224", "0x0", "must_change_password"),
        ("0xc0000234", "0x0", "locked_out"),
        ("0xc000015b", "0x0", "not_allowed"),
        ("0xc000006d", "0x0", "other"),
        ("0xc000006d", "", "other"),
        ("0xc0000133", "0x0", "other"),
        ("garbage", "0x0", "other"),
        ("", "", "other"),
    ],
)
def test_4625_reasons(status: str, substatus: str, reason: str) -> None:
    assert logon_failure_reason(status, substatus) == reason


def test_4625_counts_account_and_network_as_pseudonyms() -> None:
    obs = parse_one(event(4625, {"Status": "0xc000006d", "SubStatus": "0xc000006a", "TargetUserName": "Administrator", "IpAddress": "::ffff:23.94.153.202"}))

    keys = {o.name: o.key for o in obs if isinstance(o, Rollup)}  # type: ignore[attr-defined]
    assert keys["access.failed_by_account"] == test_pseudonymiser().account("administrator")
    assert keys["access.failed_by_network"] == test_pseudonymiser().network("23.94.153.202")
    assert "23.94" not in repr(obs) and "Administrator" not in repr(obs)


@pytest.mark.parametrize(
    ("event_id", "data", "rollup"),
    [
        (4625, {"Status": "0xc000006a"}, "access.failed_by_account"),
        (4776, {"Status": "0xc000006a"}, "access.failed_by_account"),
        (4771, {"Status": "0x18"}, "access.failed_by_account"),
        (4740, {}, "access.lockout_by_account"),
    ],
)
def test_windows_account_names_are_one_account_whatever_their_case(event_id: int, data: dict[str, str], rollup: str) -> None:
    """G6: Windows compares account names without case, so the report must too (Linux does not)."""
    block = RecordBlock(tuple(event(event_id, {**data, "TargetUserName": name}) for name in ("Administrator", "ADMINISTRATOR", "administrator")), "t")
    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=WindowsSettings())  # type: ignore[arg-type]

    rows = [o for o in parse_windows(block, ctx).observations if isinstance(o, Rollup) and o.name == rollup]

    assert [(r.key, r.value) for r in rows] == [(test_pseudonymiser().account("administrator"), 3.0)]


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (event(4776, {"Status": "0x0", "TargetUserName": "a"}), {}),
        (event(4776, {"Status": "0xc0000234", "TargetUserName": "a"}), {(FAILED_LOGINS, (("reason", "locked_out"), ("source", "ntlm"))): 1.0}),
        (event(4771, {"Status": "0x18", "TargetUserName": "a", "IpAddress": "::ffff:10.0.0.5"}), {(FAILED_LOGINS, (("reason", "bad_password"), ("source", "kerberos"))): 1.0}),
        (event(4771, {"Status": "0x12", "TargetUserName": "a"}), {(FAILED_LOGINS, (("reason", "other"), ("source", "kerberos"))): 1.0}),
        (event(4740, {"TargetUserName": "a", "TargetDomainName": "PC7"}, keywords=0x8020000000000000), {(LOCKOUTS, (("source", "windows"),)): 1.0}),
        (event(4723, {"TargetUserName": "a"}, keywords=0x8020000000000000), {(PASSWORD_RESETS, (("kind", "change"), ("source", "windows"))): 1.0}),
        (event(4723, {"TargetUserName": "a"}, keywords=0x8010000000000000), {}),
        (event(4724, {"TargetUserName": "a"}, keywords=0x8020000000000000), {(PASSWORD_RESETS, (("kind", "reset"), ("source", "windows"))): 1.0}),
        (event(4624, {"IpAddress": "10.0.0.5"}, keywords=0x8020000000000000), {}),
        (event(7000, {}, channel="System", level=2, provider="Service Control Manager"), {(EVENTLOG_ERRORS, (("log", "system"), ("origin", "other"))): 1.0}),
        (event(1000, {}, channel="Application", level=1, provider="Application Error"), {(EVENTLOG_ERRORS, (("log", "application"), ("origin", "other"))): 1.0}),
        (event(7036, {}, channel="System", level=4, provider="Service Control Manager"), {}),
        (event(1108, {}, channel="Security", level=2, provider="Microsoft-Windows-Eventlog"), {}),
    ],
)
def test_records(ev: WindowsEvent, expected: dict[object, float]) -> None:
    assert counts_of(parse_one(ev)) == expected


def test_4624_with_an_address_is_a_success_for_the_rule() -> None:
    obs = parse_one(event(4624, {"IpAddress": "10.0.0.5"}, keywords=0x8020000000000000))

    assert [o.name for o in obs if isinstance(o, Rollup)] == [SUCCESS_BY_NETWORK]  # type: ignore[attr-defined]


def test_credential_validation_can_be_left_out() -> None:
    """W2: on a server that checks only its own accounts, 4776 repeats its 4625."""
    assert counts_of(parse_one(event(4776, {"Status": "0xc000006a"}), count_credential_validation=False)) == {}
    assert counts_of(parse_one(event(4771, {"Status": "0x18"}), count_credential_validation=False)) == {}


def test_provider_labels_compare_case_insensitively() -> None:
    obs = parse_one(event(1074, {}, channel="System", level=2, provider="USER32"), origins=("User32",))

    assert counts_of(obs) == {(EVENTLOG_ERRORS, (("log", "system"), ("origin", "User32"))): 1.0}


@pytest.mark.parametrize(("text", "value"), [("0x18", 0x18), ("0XC000006A", 0xC000006A), ("24", 24), ("", None), ("0xZZ", None), ("-", None)])
def test_hex_value(text: str, value: int | None) -> None:
    assert hex_value(text) == value


def test_records_of_another_kind_are_ignored() -> None:
    from normagent import JournalEntry

    entry = JournalEntry(fields={"MESSAGE": "x"}, realtime=EPOCH, cursor="c")
    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser())

    result = parse_windows(RecordBlock((entry, replace(event(4625, {}), channel="Security")), "t"), ctx)

    assert (result.parsed, result.ignored) == (1, 1)
