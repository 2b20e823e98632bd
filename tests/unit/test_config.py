"""Configuration: every problem at once, each with line, key and expectation; defaults without a file."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from normagent.config import (
    PluginsSettings,
    find_config_path,
    format_duration,
    load_config,
    parse_duration,
)
from normagent.errors import ConfigError
from normagent.loader import Plugins, build_plugins
from tests.support import sample_plugin

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
BAD = sorted((FIXTURES / "bad").glob("*.toml"))


def sample_plugins(settings: PluginsSettings) -> Plugins:
    return build_plugins(builtins=(), entry_points_enabled=False, objects=[("sample", sample_plugin)])


def load(path: Path | None):  # type: ignore[no-untyped-def]
    return load_config(path, plugins_for=sample_plugins)


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_bad_config_names_every_problem(case: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(case)

    got = [f"{p.line}: {p.key + ': ' if p.key else ''}{p.message}" for p in err.value.problems]
    assert got == case.with_suffix(".expected").read_text().splitlines()
    assert all(p.file == case for p in err.value.problems)


def test_problem_text_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        load(FIXTURES / "bad" / "bad-duration.toml")
    assert str(err.value.problems[0]) == (
        f'{FIXTURES / "bad" / "bad-duration.toml"}:4: collectors."sample.events".interval: '
        'expected a duration like "30s", "5m" or "1h30m", got "15x"'
    )
    assert str(err.value).startswith("configuration has 1 problem:")


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "absent.toml")
    assert [p.message for p in err.value.problems] == ["file not found"]


def test_no_file_means_built_in_defaults() -> None:
    config, plugins = load(None)

    events = config.collectors["sample.events"]
    assert (events.enabled, events.interval, events.timeout) == (True, timedelta(seconds=30), timedelta(seconds=30))
    assert events.settings == sample_plugin.SampleSettings()
    assert config.path is None and config.agent.log_level == "info"


def test_valid_settings_of_every_type_are_converted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "normagent.toml"
    path.write_text(
        f"""
[agent]
state_dir = "state"
retention = "90d"

[collectors."sample.events"]
interval = "1m30s"
paths = ["/var/log/a.log", "/var/log/b*.log"]
start_at = "beginning"
ratio = 2
gap = "2h"
opens = "07:30"
folders = [{{ path = "/srv/out", direction = "out" }}]
per_type = {{ EPIKRISE = "4h" }}
ca_file = "{ca}"
"""
    )

    config, _ = load(path)

    s = config.collectors["sample.events"].settings
    assert config.collectors["sample.events"].interval == timedelta(seconds=90)
    assert s.paths == ("/var/log/a.log", "/var/log/b*.log") and s.start_at == "beginning"
    assert (s.ratio, s.gap, s.opens) == (2.0, timedelta(hours=2), time(7, 30))
    assert s.folders == (sample_plugin.Folder(Path("/srv/out"), "out"),)
    assert s.per_type == {"EPIKRISE": timedelta(hours=4)} and s.ca_file == ca
    assert config.agent.state_dir == tmp_path / "state"  # relative to the config file
    assert config.state_dir() == tmp_path / "state"


def test_disabling_a_collector(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[collectors."sample.events"]\nenabled = false\n')
    config, _ = load(path)
    assert config.collectors["sample.events"].enabled is False


def test_rule_overrides_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[rules."sample.many"]\nthreshold = 3\nfor = "5m"\nseverity = "critical"\n')
    config, _ = load(path)
    rule = config.rules["sample.many"]
    assert (rule.threshold, rule.for_, rule.severity) == (3.0, timedelta(minutes=5), "critical")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("250ms", 0.25), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed is not None and parsed.total_seconds() == seconds
    assert parse_duration(format_duration(parsed)) == parsed


@pytest.mark.parametrize("text", ["15x", "", "5", "m5", "1.5h", "-5s", "5m1h"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_config_path_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "a.toml"
    monkeypatch.setenv("NORMAGENT_CONFIG", str(tmp_path / "env.toml"))
    assert find_config_path(explicit) == explicit
    assert find_config_path(None) == tmp_path / "env.toml"


def test_example_config_is_valid_and_shows_every_key() -> None:
    """config/normagent.toml is the reference of every key: it validates, and it names every key
    of every builtin collector (set or commented out), so it cannot fall behind the code."""
    import dataclasses
    import re
    import typing

    from normagent.agent import read_config, sections

    example = Path(__file__).parents[2] / "config" / "normagent.toml"
    config, plugins = read_config(example)
    assert not plugins.problems
    text = example.read_text()
    written = set(re.findall(r"^[#\s]*([A-Za-z_]+) =", text, re.M)) | set(re.findall(r"[{,] *([A-Za-z_]+) =", text))
    written |= set(re.findall(r"^#? ?\[.*\.([A-Za-z_]+)\]$", text, re.M))  # sub-tables

    def keys(cls: type) -> set[str]:
        hints = typing.get_type_hints(cls)
        found = set()
        for f in dataclasses.fields(cls):
            found.add(f.metadata.get("toml", f.name))
            inner = hints[f.name]
            args = typing.get_args(inner)
            inner = args[0] if typing.get_origin(inner) is tuple else args[1] if typing.get_origin(inner) is dict else inner
            if dataclasses.is_dataclass(inner):
                found |= keys(inner)  # type: ignore[arg-type]
        return found

    for name, spec in plugins.collectors().items():
        assert f'[collectors."{name}"]' in text
        if spec.settings is not None:
            assert keys(spec.settings) - written == set(), name
    for section in sections().values():
        assert keys(section.settings) - written - {"basic_auth_users"} == set()
