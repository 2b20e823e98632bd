"""Configuration: every problem at once, each with line, key and expectation; defaults without a file."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import types
import typing
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent.config import (
    MAX_CONFIG_BYTES,
    AgentSettings,
    KeyPath,
    PluginsSettings,
    RuleSettings,
    find_config_path,
    format_duration,
    load_config,
    parse_duration,
    unsupported_settings,
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


def test_a_nul_character_in_a_path_or_name_is_a_problem_before_the_agent_runs(tmp_path: Path) -> None:
    """Before: check-config said OK; then `run` ended in a traceback ("ValueError: embedded null
    byte", a state_dir) or the collector failed with one on every run (a log path)."""
    config = tmp_path / "normagent.toml"
    config.write_text(
        '[agent]\nstate_dir = "/var/lib/x\\u0000y"\n\n'
        '[collectors."sample.events"]\npaths = ["/var/log/ok.log", "/var/log/\\u0000.log"]\n'
        'folders = [{ path = "/srv/in\\u0000", direction = "in" }]\n'
    )
    with pytest.raises(ConfigError) as err:
        load(config)
    nul = "a NUL character (\\u0000) cannot be in a path, name or text here"
    assert [str(p) for p in err.value.problems] == [
        f'{config}:2: agent.state_dir: {nul}, got "/var/lib/x\\u0000y"',
        f'{config}:5: collectors."sample.events".paths[1]: {nul}, got "/var/log/\\u0000.log"',
        f'{config}:6: collectors."sample.events".folders[0].path: {nul}, got "/srv/in\\u0000"',
    ]


def test_hostile_keys_and_values_are_shown_escaped_each_problem_on_one_line(tmp_path: Path) -> None:
    """Before: an ESC sequence in a key or value went to the terminal raw (clearing it, setting
    its title), and a newline in a key forged a problem line of its own."""
    config = tmp_path / "normagent.toml"
    config.write_text(
        '[agent]\nlog_level = "\\u001b]0;pwn\\u0007"\n'
        '"x\\n  normagent.toml:1: all is well\\u001b[2J" = 1\n'
        'log_format = "a\\"b\\\\c\\u202e"\n'
    )
    with pytest.raises(ConfigError) as err:
        load(config)
    text = str(err.value)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", text) and text.count("\n") == 3
    got = sorted(str(p).removeprefix(f"{config}:") for p in err.value.problems)
    assert got == [
        '2: agent.log_level: expected one of "debug", "info", "warning", "error", got "\\u001b]0;pwn\\u0007"',
        '3: agent."x\\n  normagent.toml:1: all is well\\u001b[2J": unknown key; expected one of: log_format, '
        "log_level, retention, shutdown_grace, state_dir",
        '4: agent.log_format: expected one of "auto", "json", "console", got "a\\"b\\\\c\\u202e"',
    ]


def test_what_is_no_config_file_is_one_clear_problem_without_blocking_or_reading_it_whole(tmp_path: Path) -> None:
    """A FIFO (which would block ``open`` until a writer came), a device that never ends, a file
    far too large and nesting deeper than tomllib's recursion: each one problem that says what."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    digits = tmp_path / "digits.toml"  # int() refuses over 4,300 decimal digits, inside tomllib
    digits.write_text("[agent]\nscrape_interval = " + "9" * 5000 + "\n")
    expected = {
        fifo: "cannot read: is a FIFO (named pipe), not a regular file",
        zero: "cannot read: is a character device, not a regular file",
        huge: f"cannot read: is larger than {MAX_CONFIG_BYTES:,} bytes",
        deep: "TOML syntax error: arrays or inline tables nested too deep",
        digits: f"TOML value error: an integer of more than {sys.get_int_max_str_digits():,} digits",
    }
    for path, message in expected.items():
        with pytest.raises(ConfigError) as err:
            load(path)
        assert [(p.file, p.message) for p in err.value.problems] == [(path, message)]
    with pytest.raises(ConfigError) as err:
        load(digits)
    assert err.value.problems[0].line == 2


def test_a_byte_order_mark_is_read_as_the_encodings_mark_and_bytes_not_utf8_are_named_by_line(tmp_path: Path) -> None:
    """A file Windows Notepad saved starts with a UTF-8 byte order mark: tomllib said "Invalid
    statement" at line 1, where nothing can be seen. Bytes that are no UTF-8 were named by their
    offset in the file ("position 21"); now by line, as every other problem is."""
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[agent]\r\nlog_level = \"debug\"\r\n")
    config, _ = load(bom)
    assert config.agent.log_level == "debug"

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"[agent]\nlog_level = \"info\"\n# Troms\xf8\n")
    with pytest.raises(ConfigError) as err:
        load(latin1)
    assert [(p.line, p.message) for p in err.value.problems] == [(3, "not UTF-8: byte 0xf8 cannot be decoded (invalid start byte)")]


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


@pytest.mark.parametrize("text", ["15x", "", "5", "m5", "1.5h", "-5s", "5m1h", "\u0661\u0662s", "\uff11\uff12s"])  # Arabic-Indic, full-width digits
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
    from normagent.config import ForwarderCommon, RuleSettings

    assert keys(RuleSettings) - written == set()
    assert keys(ForwarderCommon) - written == set()
    for kind, forwarder in plugins.forwarders().items():
        assert forwarder.settings is not None and keys(forwarder.settings) - written == set(), kind
        assert f'kind = "{kind}"' in text


# --------------------------------------------------------------------------------------------
# The settings tables of the core and of the builtin plugins


def builtin_plugins(settings: PluginsSettings) -> Plugins:
    return build_plugins(entry_points_enabled=False)


def load_builtin(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    from normagent.agent import sections

    path = tmp_path / "normagent.toml"
    path.write_text(text)
    return load_config(path, plugins_for=builtin_plugins, sections=sections())


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_builtin(tmp_path, text)
    return [f"{p.line}: {p.key}: {p.message}" for p in err.value.problems]


def settings_roots(plugins: Plugins) -> list[tuple[KeyPath, type]]:
    """Every settings table of the core and the builtin plugins, with the key path it is written at."""
    from normagent.agent import sections

    roots: list[tuple[KeyPath, type]] = [(("agent",), AgentSettings), (("plugins",), PluginsSettings)]
    roots += [((name,), section.settings) for name, section in sections().items()]
    roots += [(("rules", name), RuleSettings) for name in sorted(plugins.rules())[:1]]
    roots += [(("collectors", name), spec.settings) for name, spec in sorted(plugins.collectors().items()) if spec.settings]
    return roots


def unwrap(typ: Any) -> tuple[Any, str]:
    """(the type a value or an item has, "" | "item" | "entry") for X | None, tuple[X, ...], dict[str, X]."""
    if typing.get_origin(typ) in (types.UnionType, typing.Union):
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    if typing.get_origin(typ) is tuple:
        return typing.get_args(typ)[0], "item"
    if typing.get_origin(typ) is dict:
        return typing.get_args(typ)[1], "entry"
    return typ, ""


def format_key(path: KeyPath) -> str:
    """A key path as problems name it: ``collectors."access.logins".journal.identifiers``, ``services[0]``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + (p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else f'"{p}"')
    return out


def toml_header(path: KeyPath) -> str:
    if path and isinstance(path[-1], int):  # the first table of an array of tables
        return f"[[{format_key(path[:-1])}]]"
    return f"[{format_key(path)}]"


# --------------------------------------------------------------------------------------------
# Nested tables merge over the plugin's defaults (issue 9, item 22)


def toml_literal(value: Any) -> str | None:
    """``value`` as TOML, or None when a settings table cannot be written with it in one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, time):
        return f'"{value.strftime("%H:%M")}"'
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, tuple) and all(toml_literal(v) is not None and not isinstance(v, tuple) for v in value):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"  # type: ignore[misc]
    return None


def nested_tables(path: KeyPath, cls: type, instance: Any) -> Iterator[tuple[KeyPath, Any]]:
    """(key path, default instance) of every table nested in ``cls`` (not arrays of tables)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f.metadata.get("toml", f.name)
        inner, held = unwrap(hints[f.name])
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(inner) and not held and value is not None:
            yield (*path, key), value
            yield from nested_tables((*path, key), inner, value)  # type: ignore[arg-type]


def all_nested_tables() -> list[tuple[KeyPath, KeyPath, Any]]:
    plugins = build_plugins(entry_points_enabled=False)
    return [
        (root, path, default)
        for root, cls in settings_roots(plugins)
        for path, default in nested_tables(root, cls, cls())
    ]


def test_the_builtin_plugins_have_nested_tables_to_check() -> None:
    found = {format_key(path) for _, path, _ in all_nested_tables()}
    assert {'collectors."access.logins".journal', 'collectors."access.logins".files', 'collectors."edi.messages".business_hours'} <= found


@pytest.mark.parametrize(("root", "path", "default"), [pytest.param(*found, id=format_key(found[1])) for found in all_nested_tables()])
def test_a_partial_nested_table_keeps_the_plugins_defaults(tmp_path: Path, root: KeyPath, path: KeyPath, default: Any) -> None:
    """One key written in a nested table: the others keep the values of the plugin's default
    instance, not those of the nested class (which may differ: LoginSettings.journal)."""
    cls = type(default)
    plain = cls()
    written = [
        (f.metadata.get("toml", f.name), toml_literal(getattr(default, f.name)))
        for f in dataclasses.fields(cls)
        if toml_literal(getattr(default, f.name)) is not None
    ]
    # Prefer a key the plugin left at the class's default: the rest then shows whose defaults win.
    same = [(k, v) for (k, v), f in zip(written, dataclasses.fields(cls)) if getattr(default, f.name) == getattr(plain, f.name)]
    key, value = (same or written)[0]
    config, _ = load_builtin(tmp_path, f"{toml_header(path)}\n{key} = {value}\n")

    got: Any = config.collectors[root[1]].settings if root[0] == "collectors" else None
    if root[0] == "collectors":
        for part in path[len(root):]:
            got = getattr(got, next(f.name for f in dataclasses.fields(got) if f.metadata.get("toml", f.name) == part))
    else:
        got = config.sections[root[0]] if root[0] in config.sections else getattr(config, root[0])
        for part in path[1:]:
            got = getattr(got, part)
    assert got == default


def test_the_journal_table_of_logins_keeps_the_login_identifiers(tmp_path: Path) -> None:
    """The case in the issue: directory and start only, identifiers must stay the login programs'."""
    from normagent.plugins.access.collectors import LoginSettings

    config, _ = load_builtin(
        tmp_path, '[collectors."access.logins".journal]\ndirectory = "/var/log/journal/remote"\nstart = "beginning"\n'
    )

    journal = config.collectors["access.logins"].settings.journal
    assert (journal.directory, journal.start) == ("/var/log/journal/remote", "beginning")
    assert journal.identifiers == LoginSettings().journal.identifiers and "sshd" in journal.identifiers


def test_a_nested_table_merges_over_a_default_that_is_not_its_class_default(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[collectors."sample.events".home]\ndirection = "in"\n')
    config, _ = load(path)
    assert config.collectors["sample.events"].settings.home == sample_plugin.Folder(Path("/srv/home"), "in")


# --------------------------------------------------------------------------------------------
# Ranges: a value check-config accepts is one the agent can run with (issue 9, item 19)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[syslog]\nudp_receive_buffer = 99999999999999999999\n", "2: syslog.udp_receive_buffer: must be between 4096 and 268435456"),
        ("[syslog]\nmax_message_bytes = 100000000000\n", "2: syslog.max_message_bytes: must be between 480 and 1048576"),
        ('[collectors."access.logins".files]\nblock_bytes = 1000000000000\n',
         '2: collectors."access.logins".files.block_bytes: must be between 64 and 16777216'),
        ('[agent]\nretention = "0s"\n', '2: agent.retention: must be between "62d" and "3650d", got "0s"'),
    ],
    ids=["udp_receive_buffer", "max_message_bytes", "block_bytes", "retention"],
)
def test_limits_the_agent_cannot_run_with_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    got = problems_of(tmp_path, text)
    assert len(got) == 1 and got[0].startswith(problem), got


def numeric_fields(path: KeyPath, cls: type) -> Iterator[tuple[KeyPath, dataclasses.Field[Any], Any, str]]:
    """(key path, field, value type, how it is held) of every int, float and duration setting under ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f.metadata.get("toml", f.name)
        inner, held = unwrap(hints[f.name])
        if dataclasses.is_dataclass(inner):
            # A table of tables gets an entry "X"; an array of tables its first element, [[...]].
            marker: tuple[str | int, ...] = ("X",) if held == "entry" else (0,) if held == "item" else ()
            yield from numeric_fields((*path, key, *marker), inner)  # type: ignore[arg-type]
        elif inner in (int, float, timedelta):
            yield (*path, key), f, inner, held


def all_numeric_fields() -> list[tuple[KeyPath, dataclasses.Field[Any], Any, str]]:
    plugins = build_plugins(entry_points_enabled=False)
    return [found for path, cls in settings_roots(plugins) for found in numeric_fields(path, cls)]


def test_every_numeric_setting_declares_a_range_that_holds_its_default() -> None:
    found = all_numeric_fields()
    assert len(found) > 30
    for path, f, typ, held in found:
        assert "min" in f.metadata and "max" in f.metadata, f"{path}: no range"
        low, high = f.metadata["min"], f.metadata["max"]
        assert low <= high, path
        if f.default is not dataclasses.MISSING and f.default is not None:
            values = f.default if held == "item" else [f.default]
            assert all(low <= v <= high for v in values), f"{path}: default {f.default} outside its range"


def bound(value: Any) -> str:
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def toml_value(value: Any) -> str:
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    return repr(value)


def outside(f: dataclasses.Field[Any], typ: Any) -> list[Any]:
    """Values just outside the field's range that TOML can write (a duration cannot be negative)."""
    step = {int: 1, float: 0.5, timedelta: timedelta(milliseconds=1)}[typ]
    values = [f.metadata["max"] + step]
    if not (typ is timedelta and f.metadata["min"] == timedelta(0)):
        values.append(f.metadata["min"] - step)
    return values


@pytest.mark.parametrize(
    ("path", "field_", "typ", "held"), [pytest.param(*found, id=format_key(found[0])) for found in all_numeric_fields()]
)
def test_every_range_is_checked_where_the_key_is_written(tmp_path: Path, path: KeyPath, field_: Any, typ: Any, held: str) -> None:
    for bad in outside(field_, typ):
        written = f"[{toml_value(bad)}]" if held == "item" else toml_value(bad)
        text = f"# a comment first\n{toml_header(path[:-1])}\n{path[-1]} = {written}\n"
        key = format_key(path) + ("[0]" if held == "item" else "")
        got = problems_of(tmp_path, text)
        low, high = bound(field_.metadata["min"]), bound(field_.metadata["max"])
        assert got == [f"3: {key}: must be between {low} and {high}, got {toml_value(bad)}"]


def test_a_bad_plugin_range_is_a_load_problem() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        size: int = dataclasses.field(default=10, metadata={"min": "1", "max": 5})

    assert unsupported_settings(Odd) == 'Odd.size: range min "1" is not an integer'

    @dataclasses.dataclass(frozen=True)
    class Outside:
        size: int = dataclasses.field(default=10, metadata={"min": 1, "max": 5})

    assert unsupported_settings(Outside) == "Outside.size: default 10 is outside its range 1 … 5"
