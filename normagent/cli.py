"""The ``normagent`` command: run | collect --once | check-config | parse | plugins | deviations | rules | report | demo.

``main()`` is the one place that prints a ``NormagentError`` and turns it into an exit code:
``check-config`` exits 2 on a bad config, ``run`` exits 78 (EX_CONFIG) so systemd's
``RestartPreventExitStatus=78`` ends restart loops.

Imports everything; nothing imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TextIO, cast

from normagent.errors import EX_IOERR, ConfigError, NormagentError, OutputFailed, UsageError, printable

if TYPE_CHECKING:
    import argparse

CHECK_CONFIG_FAILED = 2


class EarlySignals:
    """SIGTERM, SIGINT and SIGHUP that reach ``normagent run`` while it is still importing the agent.

    The default action of SIGHUP (and SIGTERM) ends the process, and importing the agent takes a
    few hundred milliseconds: a ``systemctl reload`` or a logrotate ``postrotate`` that sends SIGHUP
    just after a (re)start would kill the daemon. So ``main`` records them before it does anything
    else (this module and the package import next to nothing) and hands the record to the agent
    once its own handlers are in place (``run_agent``). Only the interpreter's own start (site,
    .pth files: some 10–30 ms) comes before this; under systemd (Type=notify) ``ExecReload`` is
    not sent before READY=1.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        for signum in self.SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)

def build_parser() -> argparse.ArgumentParser:
    """Every command's parser (``normagent.cli_parser``), imported only when a command line needs it:
    ``normagent run`` as the service starts it is read by ``run_arguments`` (argparse and its
    parsers, about 0.6 MB, are then never imported)."""
    from normagent import cli_parser

    return cli_parser.build_parser()


def run_arguments(words: Sequence[str]) -> Any:
    """``normagent run``'s arguments read without argparse, or None for argparse to read them.

    Reads exactly ``run`` followed by ``--config PATH``, ``-c PATH``, ``--config=PATH``,
    ``-cPATH`` and ``--new-state`` (each as often as argparse takes it, the last path winning),
    giving what argparse's ``parse_args`` gives (``tests/unit/test_cli.py`` holds the two together
    over generated command lines). Anything else — help, an abbreviation, ``--``, a path that
    looks like an option, a word too many — is left to argparse, which says what is wrong.
    """
    if not words or words[0] != "run":
        return None
    config: Path | None = None
    new_state = False
    rest = list(words[1:])
    while rest:
        word = rest.pop(0)
        if word == "--new-state":
            new_state = True
            continue
        if word in ("--config", "-c"):
            if not rest:
                return None
            value = rest.pop(0)
        elif word.startswith("--config="):
            value = word[len("--config="):]
        elif word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            value = word[2:]
            if value.startswith("="):
                return None  # -c=PATH: argparse splits it at the "=", left to it
        else:
            return None
        if not value or value.startswith("-"):
            return None  # argparse's rules for what looks like an option are its own
        config = Path(value)
    return SimpleNamespace(command="run", config=config, new_state=new_state)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    early = EarlySignals() if words[:1] == ["run"] else None  # first of all: see EarlySignals
    args = run_arguments(words) if early is not None else None
    if args is None:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        del parser  # every command's options (~0.1 MB): `run` lasts as long as the agent does
    if args.command == "run":
        out = sys.stdout
    elif sys.stdout is None:  # started with fd 1 closed: print() would drop every line, exit 0
        print(f"normagent: standard output is closed ({args.command} prints its result there)", file=sys.stderr)
        return EX_IOERR
    else:
        out = cast(TextIO, _Output(sys.stdout))
    try:
        code = dispatch(args, out, early)
        if out is not sys.stdout:
            out.flush()  # here, not at exit: a full disk under it is an error that is said
        return code
    except OutputFailed as exc:
        # What is still buffered would fail again at exit, as a second error: it goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"normagent: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigError as exc:
        print(f"normagent: {exc}", file=sys.stderr)
        return CHECK_CONFIG_FAILED if args.command == "check-config" else exc.exit_code
    except NormagentError as exc:
        # Printable (a ConfigError's problems are already, each on its line): the message quotes
        # a path given on the command line or found on the host, what Prometheus, an SMTP server
        # or Chromium answered; an escape sequence there is text, and a newline forges no line.
        print(f"normagent: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `normagent parse … | head`: the reader left; say nothing more, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


class _Output:
    """A command's standard output: a write or flush that fails (a full disk under ``> file``, an
    I/O error) is an ``OutputFailed`` (exit 74, said on stderr), not a traceback; a reader that
    left (``BrokenPipeError``) is left to ``main``. ``buffer`` (the report's bytes) likewise."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _failed(self, exc: OSError) -> OutputFailed:
        return OutputFailed(f"standard output cannot be written: {exc.strerror or exc}; what was printed is incomplete")

    def write(self, text: Any) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    @property
    def buffer(self) -> Any:
        return _Output(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding …
        return getattr(self._stream, name)


def dispatch(args: argparse.Namespace, out: TextIO, early: EarlySignals | None = None) -> int:
    if args.command == "run":
        from normagent.agent import run_agent

        return run_agent(args.config, early.received if early is not None else (), new_state=args.new_state)
    if args.command == "check-config":
        return check_config(args.path, out)
    if args.command == "collect":
        return collect(args.config, args.format, out)
    if args.command == "plugins":
        return list_plugins(args.config, args.format, out)
    if args.command == "parse":
        return parse_files(args, out)
    if args.command in ("deviations", "rules"):
        return deviation_command(args, out)
    if args.command == "report":
        return report_command(args, out)
    if args.command == "demo":
        return demo_command(args, out)
    raise UsageError(f"unknown command {args.command}")


def deviation_command(args: argparse.Namespace, out: TextIO) -> int:
    from normagent import devcmd
    from normagent.agent import read_config

    _quiet_logging()
    config, plugins = read_config(args.config)
    if args.command == "deviations":
        if args.action == "list":
            return devcmd.deviations_list(config, args.state or [], args.format, out)
        if args.action == "show":
            return devcmd.deviations_show(config, args.id, args.format, out)
        return devcmd.deviations_ack(config, args.id, args.note, out)
    if args.action == "list":
        return devcmd.rules_list(config, plugins, args.format, out)
    if args.action == "test":
        return devcmd.rules_test(config, plugins, args.at, args.rule, args.expect, args.format, out)
    return devcmd.rules_export(config, plugins, out)


def report_command(args: argparse.Namespace, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.log import configure_logging

    configure_logging("info", "auto")
    config, plugins = read_config(args.config)
    try:
        from normagent.report.command import run_report
    except ImportError as exc:  # the report extra is not installed
        raise UsageError(
            f"normagent report needs the report extra ({exc.name or exc} is missing): pip install 'normagent[report]'"
        ) from None
    return run_report(args, config, plugins, out, sys.stderr)


def demo_command(args: argparse.Namespace, out: TextIO) -> int:
    try:
        import jinja2  # noqa: F401 - the report extra, which the demo's report needs
    except ImportError as exc:
        raise UsageError(f"normagent demo needs the report extra ({exc.name or exc} is missing): pip install 'normagent[report]'") from None
    from normagent.demo import run_demo

    run_demo(args, out, sys.stderr)
    return 0


def _quiet_logging() -> None:
    from normagent.log import configure_logging

    configure_logging("warning", "auto")


def check_config(path: Path | None, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.config import find_config_path, format_key, locate

    from normagent.devcmd import probe_forwarders

    _quiet_logging()
    config, plugins = read_config(path)
    probe_forwarders(config, plugins)  # an unreachable forwarder is a problem here, never at run time
    where = find_config_path(path)
    rules = len(plugins.rules()) + len([n for n in config.rules if n not in plugins.rules()])
    # Printable, as the problems are (errors.printable): a plugin's name comes from [plugins] extra or
    # an installed distribution, a load error quotes it, advice names paths found on the host.
    print(printable(f"{where or 'built-in defaults'}: OK ({len(config.collectors)} collectors, {rules} rules, "
                    f"{len(config.forwarders)} forwarders)"), file=out)
    for problem in plugins.problems:
        print(printable(f"  warning: {problem}"), file=out)
    for collector, advice in _advice(config, plugins).items():
        for item in advice:
            keypath = ("collectors", collector, *item.key.split(".")) if item.key else ("collectors", collector)
            line = locate(where, keypath)
            place = f"{where}:{line}: " if where and line else f"{where}: " if where else ""
            print(printable(f"  warning: {place}{format_key(keypath)}: {item.message}"), file=out)
    return 0


def _advice(config: Any, plugins: Any) -> dict[str, list[Any]]:
    """Each enabled collector's advice about its settings on this host (read-only checks)."""
    from normagent.agent import enabled_specs
    from normagent.oneshot import advise_once

    with _host_world(config) as world:
        return advise_once(enabled_specs(config, plugins), world)


@contextlib.contextmanager
def _host_world(config: Any) -> Iterator[Any]:
    """This host's real seams for a one-shot command (the SNMP client is closed afterwards)."""
    from normagent.clock import SystemClock
    from normagent.maintenance import Calendar
    from normagent.oneshot import OneShotWorld
    from normagent.sources.command import run_command
    from normagent.sources.host import ProcHost
    from normagent.sources.snmp_lazy import LazySnmpClient

    snmp = LazySnmpClient()
    try:
        yield OneShotWorld(
            clock=SystemClock(), host=ProcHost(), run_command=run_command, snmp=snmp,
            maintenance=Calendar(config.sections["maintenance"]),
        )
    finally:
        snmp.close()


def collect(path: Path | None, fmt: str, out: TextIO) -> int:
    from normagent.agent import enabled_specs, read_config
    from normagent.oneshot import collect_once, render_text

    _quiet_logging()
    config, plugins = read_config(path)
    jobs = enabled_specs(config, plugins)
    disabled = {name: "disabled in the configuration" for name in plugins.collectors() if name not in {s.name for s, _, _ in jobs}}
    with _host_world(config) as world:
        reports = collect_once(jobs, world, config.state_dir())
    if fmt == "json":
        doc: dict[str, Any] = {
            "collectors": [r.as_json() for r in reports],
            "disabled": disabled,
            "plugin_problems": [str(p) for p in plugins.problems],
        }
        json.dump(doc, out, indent=2, sort_keys=False)
        out.write("\n")
    else:
        out.write(render_text(reports, disabled))
        for problem in plugins.problems:
            print(printable(f"warning: {problem}"), file=out)
    return 0 if all(r.status in ("ok", "no_data", "disabled") for r in reports) else 1


def list_plugins(path: Path | None, fmt: str, out: TextIO) -> int:
    from normagent.agent import plugins_factory, read_config
    from normagent.config import PluginsSettings

    _quiet_logging()
    try:
        _, plugins = read_config(path)
    except ConfigError:
        # Listing plugins must work even when the config does not validate: show what loads.
        plugins = plugins_factory(PluginsSettings())
    collectors = plugins.collectors()
    rules, forwarders, sections = plugins.rules(), plugins.forwarders(), plugins.report_sections()
    rows: list[dict[str, Any]] = []
    for info in plugins.infos:
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "origin": info.origin,
                "module": info.module,
                "loaded": info.loaded,
                "collectors": [
                    {"name": c.name, "interval": c.interval.total_seconds(), "help": c.help}
                    for c in collectors.values() if c.plugin == info.name
                ],
                "rules": sorted(r.name for r in rules.values() if r.plugin == info.name),
                "report_sections": sorted(s.id for s in sections.values() if s.plugin == info.name),
                "forwarders": sorted(f.kind for f in forwarders.values() if f.plugin == info.name),
                "problems": [p.message for p in plugins.problems if p.plugin == info.name],
            }
        )
    if fmt == "json":
        json.dump({"plugins": rows}, out, indent=2)
        out.write("\n")
        return 0 if not plugins.problems else 1
    from datetime import timedelta

    from normagent.config import format_duration

    for row in rows:
        state = "loaded" if row["loaded"] and not row["problems"] else ("disabled" if not row["problems"] else "BROKEN")
        # Printable: a plugin's name, version and texts are a third party's, or [plugins] extra's.
        print(printable(f"{row['name']} {row['version']} ({row['origin']}) {state}"), file=out)
        for c in row["collectors"]:
            every = format_duration(timedelta(seconds=c["interval"]))
            print(printable(f"  collector {c['name']:<28} every {every:<6} {c['help']}"), file=out)
        for kind in ("rules", "report_sections", "forwarders"):
            if row[kind]:
                print(printable(f"  {kind.replace('_', ' ')}: {', '.join(row[kind])}"), file=out)
        for problem in row["problems"]:
            print(printable(f"  problem: {problem}"), file=out)
    return 0 if not plugins.problems else 1


def parse_files(args: argparse.Namespace, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.parsecmd import run_parse

    _quiet_logging()
    config, plugins = read_config(args.config)
    return run_parse(
        args.files,
        config=config,
        plugins=plugins,
        fmt=args.format,
        examples=args.examples,
        collectors=args.collector,
        out=out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
