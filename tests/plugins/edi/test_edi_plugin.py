"""The edi plugin as the core sees it: hooks, declared metrics, default rules, configuration."""

from __future__ import annotations

import string
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from normagent.config import load_config
from normagent.errors import ConfigError
from normagent.loader import build_plugins
from normagent.plugins import edi
from normagent.plugins.edi import codes
from normagent.plugins.edi.collectors import FILE_OUTCOMES, METRICS, SECTION
from normagent.plugins.edi.rules import RULES
from normagent.plugins.edi.settings import EdiFolder, EdiSettings, MaintenanceWindow, TypeTimeouts

ISSUE_METRICS = {
    "normagent_edi_messages_total": ("direction", "msg_type"),
    "normagent_edi_unacknowledged_messages": ("msg_type", "receipt"),
    "normagent_edi_oldest_unacknowledged_age_seconds": ("msg_type", "receipt"),
    "normagent_edi_receipts_total": ("msg_type", "status"),
    "normagent_edi_receipt_errors_total": ("msg_type", "code_list", "error_code"),
    "normagent_edi_transport_errors_total": ("error_code",),
    "normagent_edi_misaddressed_messages_total": ("direction", "msg_type"),
    "normagent_edi_stop_seconds_total": ("direction", "planned"),
}


def plugins() -> object:
    return build_plugins(builtins=("normagent.plugins.edi",), entry_points_enabled=False)


def test_hook_register_collectors() -> None:
    (spec,) = edi.register_collectors()
    assert spec.name == "edi.messages" and spec.settings is EdiSettings
    assert spec.metrics == METRICS


def test_hook_register_rules() -> None:
    assert tuple(edi.register_rules()) == RULES


def test_hook_register_report_sections() -> None:
    (section,) = edi.register_report_sections()
    assert section.title == SECTION


def test_the_loader_takes_the_plugin_without_problems() -> None:
    loaded = plugins()
    assert loaded.problems == []  # type: ignore[attr-defined]
    assert list(loaded.collectors()) == ["edi.messages"]  # type: ignore[attr-defined]


def test_the_metrics_of_the_issue_are_declared_exactly() -> None:
    declared = {m.name: m.labels for m in METRICS}
    for name, labels in ISSUE_METRICS.items():
        assert declared[name] == labels
    assert all(m.section == SECTION and m.help for m in METRICS)


def test_closed_label_sets_exist_at_zero() -> None:
    preset = {m.name: set(m.preset) for m in METRICS}
    assert preset["normagent_edi_stop_seconds_total"] == {(d, p) for d in ("in", "out") for p in ("true", "false")}
    assert preset["normagent_edi_files_total"] == {(o,) for o in FILE_OUTCOMES}
    assert preset["normagent_edi_unmatched_receipts"] == {("transport",), ("application",)}
    assert preset["normagent_edi_receipts_for_unknown_messages_total"] == {("transport",), ("application",)}


def test_every_file_outcome_that_is_not_a_message_has_a_text_in_the_report() -> None:
    """Outcomes without a text are left out of the report's table of files not read."""
    from normagent.plugins.edi.report import OUTCOME

    assert set(FILE_OUTCOMES) - {"ok", "moved", "copy", "rewritten"} == set(OUTCOME)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rules_watch_declared_series_and_render_without_personal_data(rule: object) -> None:
    spec = {m.name: m for m in METRICS}[rule.watch]  # type: ignore[attr-defined]
    assert set(rule.labels) <= set(spec.labels)  # type: ignore[attr-defined]
    assert set(rule.group_by) <= set(spec.labels)  # type: ignore[attr-defined]
    assert (rule.window is None) == (spec.kind == "gauge")  # type: ignore[attr-defined]
    fields = {f for _, f, _, _ in string.Formatter().parse(rule.summary) if f}  # type: ignore[attr-defined]
    assert fields <= {"value", "threshold", *rule.group_by}  # type: ignore[attr-defined]
    text = rule.summary.format(value=3, threshold=0, **{g: "X" for g in rule.group_by})  # type: ignore[attr-defined]
    assert text and rule.name.startswith("edi.") and rule.section == SECTION  # type: ignore[attr-defined]


def test_msg_type_labels_are_bounded() -> None:
    types = codes.MsgTypes(["KOMMUNE_X"])
    assert [types.label(t) for t in ("EPIKRISE", " epikrise ", "kommune_x", "WHATEVER", "")] == [
        "EPIKRISE", "EPIKRISE", "KOMMUNE_X", "other", "unknown"]
    assert codes.error_code_label("free text with spaces") == "other"
    assert codes.code_list_label("2.16.578.1.12.4.1.1.8221") == "8221"
    assert codes.code_list_label("1.2.3") == "other"
    assert codes.transport_code_label("eb:DeliveryFailure") == "DeliveryFailure"
    assert codes.status_label(" 2 ") == "2" and codes.status_label("73") == "unknown"


# --------------------------------------------------------------------------------------------
# configuration


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "normagent.toml"
    path.write_text(text)
    config, _ = load_config(path, plugins_for=lambda _: plugins())  # type: ignore[arg-type,return-value]
    return config.collectors["edi.messages"].settings


def test_a_full_configuration_is_validated_into_settings(tmp_path: Path) -> None:
    settings = load(tmp_path, """
[collectors."edi.messages"]
own_her_ids = ["1000001"]
stop_gap = "45m"
type_timeouts.LOM = { application = "7d" }

[collectors."edi.messages".business_hours]
start = "07:30"
end = "17:00"
closed_dates = ["2026-12-25"]

[[collectors."edi.messages".folders]]
path = "/srv/edi/ut"
direction = "out"

[[collectors."edi.messages".folders]]
path = "inn"
direction = "in"
role = "receipts"
recursive = true

[[collectors."edi.messages".maintenance]]
start = "2026-12-01T22:00:00+01:00"
end = "2026-12-02T02:00:00+01:00"

[[collectors."edi.messages".maintenance]]
weekday = "wed"
from = "22:00"
to = "23:00"

[collectors."edi.messages".service]
systemd_unit = "meldingstjener.service"
""")
    assert isinstance(settings, EdiSettings)
    assert settings.folders == (
        EdiFolder(path=Path("/srv/edi/ut"), direction="out"),
        EdiFolder(path=tmp_path / "inn", direction="in", role="receipts", recursive=True),
    )
    assert settings.stop_gap == timedelta(minutes=45)
    assert settings.type_timeouts == {"LOM": TypeTimeouts(application=timedelta(days=7))}
    assert settings.timeouts("LOM") == (4 * 3600, 7 * 86400, 72 * 3600)
    assert settings.business_hours.start == time(7, 30)
    assert settings.maintenance[0].start == datetime(2026, 12, 1, 22, 0, tzinfo=timezone(timedelta(hours=1)))
    assert settings.maintenance[1] == MaintenanceWindow(weekday="wed", from_=time(22), to=time(23))
    assert settings.service.systemd_unit == "meldingstjener.service"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[[collectors."edi.messages".folders]]\npath = "/x"\ndirection = "sideways"', 'expected one of "out", "in", "unknown"'),
        ('[[collectors."edi.messages".folders]]\ndirection = "in"', "a folder needs a path"),
        ('[collectors."edi.messages"]\nnaive_time_zone = "Europe/Atlantis"', "unknown time zone"),
        ('[[collectors."edi.messages".maintenance]]\nstart = "2026-12-01T22:00:00"', "needs both start and end"),
        ('[[collectors."edi.messages".maintenance]]\nweekday = "wed"\nfrom = "22:00"', "needs weekday, from and to"),
        ('[collectors."edi.messages".business_hours]\nstart = "17:00"\nend = "08:00"', "must be after start"),
        ('[collectors."edi.messages".service]\nsystemd_unit = "a"\nprocess = "b"', "either a systemd_unit or a process"),
        ('[collectors."edi.messages"]\nstop_gap = "0s"', 'stop_gap: must be between "1m" and "7d", got "0s"'),
        ('[[collectors."edi.messages".folders]]\npath = "/a/inn"\n[[collectors."edi.messages".folders]]\npath = "/b/inn"',
         "folders share the label 'inn'"),
    ],
)
def test_bad_configuration_names_the_problem(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, table)
    assert any(message in str(p) for p in err.value.problems), err.value.problems
