"""Benchmark of the access plugin on a generated auth.log: exact counts, speed and peak memory.

Compares, in one run on the same file:

* **normagent** — the agent's own path: the ``access.logins`` collector (the log driver's
  rotation-safe tail in 1 MiB blocks, the parser's byte scans and fast paths, one ledger
  transaction per 16 MiB of blocks into a real SQLite ledger), run in a child process that
  reports its own peak RSS (``RUSAGE_SELF.ru_maxrss``; interpreter and imports included);
* ``LC_ALL=C grep -cE '<alternation of the failure messages>'`` — the floor: counting lines that
  mention a failure, without understanding them;
* ``fail2ban-regex FILE filter.d/sshd.conf`` — fail2ban's own tool with its sshd filter, from the
  Debian package (``apt-get download fail2ban`` + ``dpkg-deb -x``; nothing is installed or
  started), run by the system ``python3``.

and checks that the agent's counts equal the generator's ground truth, per metric and labels, and
that the report's rollups hold the truth's rows (distinct UTC day x network, day x account) and
attempts. Agent and grep runs are taken in turn and their medians compared (shared machine).

``--parse`` adds ``normagent parse --collector access.logins FILE`` (in-process, net of start-up:
``run_parse`` timed in a child), whose lines/s should equal the daemon path's. ``--compare-with
REV`` runs the agent (and parse) of another commit too, in turn with this tree's, for before and
after figures in one run: the commit's tree is unpacked with ``git archive`` into a temporary
directory and imported from there (the editable install's finder is taken out of the child).

Usage::

    python bench/bench_access.py [--lines 1000000] [--seed 1] [--log FILE] [--fail2ban-lines N]
                                 [--parse] [--compare-with REV]

Prints the figures; exits 1 if a count or rollup differs from the truth. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also when loaded from a file by the tests
from daemon_process import DAEMON_PROCESS  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
F2B_DIR = Path(tempfile.gettempdir()) / "normagent-bench-fail2ban"

# Put first in a child that must import another tree (--compare-with): the editable install's
# finder would otherwise hand out this worktree's normagent whatever PYTHONPATH says.
OTHER_TREE = r"""
import os, sys
if os.environ.get("BENCH_TREE"):
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, os.environ["BENCH_TREE"])
"""

# Runs in the child: the collector over the file, into a ledger; prints counts and timing as JSON.
CHILD = OTHER_TREE + r"""
import json, sys, time
from datetime import datetime, timezone
from pathlib import Path
from normagent import Period
from normagent.ledger import Ledger
from normagent.logs import FileSource
from normagent.testing import FakeClock, run_collector_once
from normagent.plugins.access.collectors import LOGINS, LoginSettings

""" + DAEMON_PROCESS + r"""
root, state = Path(sys.argv[1]), Path(sys.argv[2])
clock = FakeClock(datetime.now(timezone.utc))
# gen_authlog.py writes classic stamps in Europe/Oslo time (the fake root has no /etc/localtime).
settings = LoginSettings(prefer="files", files=FileSource(paths=("/auth.log",), start_at="beginning", timezone="Europe/Oslo"))
with Ledger.open(state / "ledger.db", clock=clock) as ledger:
    started, cpu = time.perf_counter(), time.process_time()
    batches = run_collector_once(LOGINS, ledger, settings=settings, root=root, clock=clock, timeout=3600)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    snap = ledger.snapshot()
    counts = {}
    for metric in ("normagent_failed_logins_total", "normagent_account_lockouts_total", "normagent_password_resets_total"):
        for labels, value in snap.values(metric).items():
            if value:
                counts[metric + json.dumps(dict(labels), sort_keys=True)] = value
    lines = {r: ledger.counter_value("normagent_log_lines_total", {"source": "access.logins", "result": r}) for r in ("parsed", "ignored", "unparsed")}
    everything = Period(datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc))
    rollups = {}
    for name in ("access.failed_by_network", "access.failed_by_account", "access.success_by_network"):
        rows = ledger.rollups(name, everything)
        rollups[name] = {"rows": len(rows), "total": sum(r.value for r in rows)}
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
compiled = sorted(n for n, m in list(sys.modules.items()) if n.startswith("normagent") and str(getattr(m, "__file__", "")).endswith(".so"))
print(json.dumps({"elapsed": elapsed, "cpu": cpu, "batches": len(batches), "counts": counts, "lines": lines, "rollups": rollups, "peak_mb": peak, "compiled": compiled}))
"""


# Runs in the child: ``normagent parse --collector access.logins`` on the file, in-process (the
# parse itself timed, not the interpreter's start), the counts as JSON. TZ=Europe/Oslo as the
# generator wrote (parse takes the host's zone without a configuration).
PARSE_CHILD = OTHER_TREE + r"""
import io, json, sys, time
from normagent.loader import build_plugins
from normagent.parsecmd import run_parse

plugins = build_plugins(entry_points_enabled=False)
out = io.StringIO()
started, cpu = time.perf_counter(), time.process_time()
chosen = [] if sys.argv[2] == "all" else sys.argv[2].split(",")
run_parse([sys.argv[1]], config=None, plugins=plugins, fmt="json", out=out, collectors=chosen)
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
[item] = json.loads(out.getvalue())["inputs"]
counts = {}
for c in item["collectors"]:
    if c["collector"] == "access.logins":
        for n in c["counts"]:
            counts[n["metric"] + json.dumps(n["labels"], sort_keys=True)] = n["value"]
print(json.dumps({"elapsed": elapsed, "cpu": cpu, "lines": item["lines"], "counts": counts}))
"""


def unpack(rev: str, into: Path) -> Path:
    """The tree of commit ``rev``, importable as ``normagent`` (plugins linked where the install maps them)."""
    tree = into / f"tree-{rev}"
    tree.mkdir()
    # Piped, never held here: a child's peak RSS must not start at this process's size.
    git = subprocess.Popen(["git", "-C", str(ROOT), "archive", rev], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=git.stdout, check=True)
    assert git.stdout is not None
    git.stdout.close()
    if git.wait() != 0:
        sys.exit(f"git archive {rev} failed")
    (tree / "normagent" / "plugins").symlink_to(tree / "plugins")
    return tree


def build_compiled(tree: Path) -> list[str]:
    """Compile the C modules ``tree``'s pyproject.toml declares, in place, as pip's build would
    (the interpreter's compiler and CFLAGS plus each module's own arguments): ``git archive``
    holds no built module, and without this the compared commit runs its Python fallbacks.
    Returns the modules built; a module that does not compile stops the benchmark."""
    pyproject = tomllib.loads((tree / "pyproject.toml").read_text())
    modules = pyproject.get("tool", {}).get("setuptools", {}).get("ext-modules", [])
    cc = str(sysconfig.get_config_var("CC") or "cc").split()
    flags = f"{sysconfig.get_config_var('CFLAGS')} {sysconfig.get_config_var('CCSHARED')}".split()
    built = []
    for module in modules:
        target = tree / (module["name"].replace(".", "/") + str(sysconfig.get_config_var("EXT_SUFFIX")))
        argv = [*cc, *flags, *module.get("extra-compile-args", []), f"-I{sysconfig.get_config_var('INCLUDEPY')}",
                "-shared", "-o", str(target), *(str(tree / source) for source in module["sources"])]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"building {module['name']} of the compared commit failed:\n{done.stderr}")
        built.append(module["name"])
    return built


def child_env(tree: Path | None) -> dict[str, str]:
    env = {**os.environ, "TZ": "Europe/Oslo"}
    env.pop("BENCH_TREE", None)
    if tree is not None:
        env["BENCH_TREE"] = str(tree)
    return env


def run_parse_child(log: Path, tree: Path | None, collectors: str = "access.logins") -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, str(log), collectors], capture_output=True, text=True, check=False, cwd=ROOT,
        env=child_env(tree),
    )
    if done.returncode != 0:
        sys.exit(f"parse run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def expected_counts(truth: dict) -> dict[str, float]:  # type: ignore[type-arg]
    out: dict[str, float] = {}
    exp = truth["expected"]
    for source, reasons in exp["normagent_failed_logins_total"].items():
        for reason, n in reasons.items():
            out["normagent_failed_logins_total" + json.dumps({"reason": reason, "source": source}, sort_keys=True)] = n
    for source, n in exp["normagent_account_lockouts_total"].items():
        out["normagent_account_lockouts_total" + json.dumps({"source": source}, sort_keys=True)] = n
    for source, kinds in exp["normagent_password_resets_total"].items():
        for kind, n in kinds.items():
            out["normagent_password_resets_total" + json.dumps({"kind": kind, "source": source}, sort_keys=True)] = n
    return out


def run_agent(log: Path, tree: Path | None = None) -> tuple[dict, float]:  # type: ignore[type-arg]
    """One child run over ``log``: its JSON report and its peak RSS in MB.

    The child reports its own ``RUSAGE_SELF.ru_maxrss``: ``RUSAGE_CHILDREN`` would be the largest
    of all children so far, the generator's included.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        try:
            os.link(log, root / "auth.log")
        except OSError:  # another file system
            shutil.copy(log, root / "auth.log")
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(root), tmp], capture_output=True, text=True, check=False, cwd=ROOT,
            env=child_env(tree),
        )
    if done.returncode != 0:
        sys.exit(f"agent run failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, float(report["peak_mb"])


def run_grep(log: Path, pattern: str) -> tuple[int, float, float]:
    """grep's count, wall time and CPU time (its own, from the children's usage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(["grep", "-cE", pattern, str(log)], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return int(done.stdout.strip() or 0), elapsed, cpu


def fail2ban() -> tuple[Path, Path] | None:
    """(fail2ban-regex, its sshd filter) from the Debian package, unpacked once into a temp dir."""
    script = F2B_DIR / "usr" / "bin" / "fail2ban-regex"
    if not script.exists():
        F2B_DIR.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "download", "fail2ban"], cwd=F2B_DIR, capture_output=True, check=False)
        debs = sorted(F2B_DIR.glob("fail2ban_*.deb"))
        if got.returncode != 0 or not debs:
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(F2B_DIR)], check=True)
    return script, F2B_DIR / "etc" / "fail2ban" / "filter.d" / "sshd.conf"


def run_fail2ban(log: Path, lines: int) -> tuple[str, float, int] | None:
    """fail2ban-regex over the first ``lines`` lines: (its summary line, seconds, lines)."""
    found = fail2ban()
    python = shutil.which("python3")
    if found is None or python is None:
        return None
    script, sshd = found
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as part:
        with log.open() as src:
            for n, line in enumerate(src):
                if n >= lines:
                    break
                part.write(line)
    try:
        env = {**os.environ, "PYTHONPATH": str(F2B_DIR / "usr" / "lib" / "python3" / "dist-packages")}
        started = time.perf_counter()
        done = subprocess.run([python, str(script), part.name, str(sshd)], capture_output=True, text=True, env=env, check=False)
        elapsed = time.perf_counter() - started
    finally:
        os.unlink(part.name)
    summary = next((l.strip() for l in done.stdout.splitlines() if l.startswith("Lines:")), done.stderr.strip()[-200:])
    return summary, elapsed, min(lines, sum(1 for _ in log.open()))


def expected_rollups(truth: dict) -> dict[str, dict[str, float]]:  # type: ignore[type-arg]
    """What the report's rollups must hold: distinct (UTC day, network|account) rows, attempts with an address."""
    roll = truth["rollups"]
    return {
        "access.failed_by_network": {"rows": roll["failed_by_network_rows"], "total": roll["attempts_with_address"]},
        "access.failed_by_account": {"rows": roll["failed_by_account_rows"]},
        "access.success_by_network": {"total": roll["successes_with_address"]},
    }


def spread(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s (best {min(times):.3f}, worst {max(times):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", type=Path, help="use this generated log (its .truth.json beside it) instead of writing one")
    parser.add_argument("--runs", type=int, default=5, help="agent and grep runs, taken in turn; medians count (shared machine)")
    parser.add_argument("--fail2ban-lines", type=int, default=200_000, help="lines given to fail2ban-regex (it is slow; 0: skip)")
    parser.add_argument("--parse", action="store_true", help="also time `normagent parse --collector access.logins FILE`")
    parser.add_argument("--compare-with", metavar="REV", help="also run the agent (and parse) of this commit, in turn")
    parser.add_argument("--compare-built", action="store_true",
                        help="build the compared commit's C modules (else it runs its Python fallbacks)")
    parser.add_argument("--parse-collectors", default="access.logins",
                        help='the collectors --parse names (comma-separated), or "all": every collector with a parser, as plain `normagent parse FILE`')
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.log is None:
            log = Path(tmp) / "auth.log"
            started = time.perf_counter()
            subprocess.run([sys.executable, str(HERE / "gen_authlog.py"), str(log), "--lines", str(args.lines), "--seed", str(args.seed)], check=True)
            print(f"generated {args.lines:,} lines in {time.perf_counter() - started:.1f} s")
        else:
            log = args.log
        truth = json.loads(log.with_name(log.name.removesuffix(".log") + ".truth.json").read_text())
        lines = truth["lines"]
        size = log.stat().st_size

        before = unpack(args.compare_with, Path(tmp)) if args.compare_with else None
        if before is not None and args.compare_built:
            print(f"built at {args.compare_with}: {', '.join(build_compiled(before)) or 'nothing (no C module declared)'}")
        # In turn, so that the machine's load at any moment weighs on all alike.
        reports: list[tuple[dict, float]] = []  # type: ignore[type-arg]
        greps: list[tuple[int, float, float]] = []
        befores: list[tuple[dict, float]] = []  # type: ignore[type-arg]
        parses: list[dict] = []  # type: ignore[type-arg]
        parses_before: list[dict] = []  # type: ignore[type-arg]
        for _ in range(args.runs):
            reports.append(run_agent(log))
            if before is not None:
                befores.append(run_agent(log, before))
            if args.parse:
                parses.append(run_parse_child(log, None, args.parse_collectors))
                if before is not None:
                    parses_before.append(run_parse_child(log, before, args.parse_collectors))
            greps.append(run_grep(log, truth["grep_pattern"]))
        f2b = run_fail2ban(log, args.fail2ban_lines) if args.fail2ban_lines else None

    first = reports[0][0]
    want = expected_counts(truth)
    got = first["counts"]
    counts_ok = all(r["counts"] == want and sum(r["lines"].values()) == lines for r, _ in reports + befores)
    counts_ok = counts_ok and all(p["counts"] == want and p["lines"] == lines for p in parses + parses_before)
    want_rollups = expected_rollups(truth)
    rollups_ok = all(
        r["rollups"][name][what] == value for r, _ in reports + befores for name, expect in want_rollups.items() for what, value in expect.items()
    )
    print(f"\nfile: {lines:,} lines, {size / 2**20:.0f} MiB, {truth['failure_lines']:,} failure lines ({truth['failure_lines'] / lines:.1%})")
    print(f"counts equal the ground truth: {'yes' if counts_ok else 'NO'} (every run{', parse and before too' if parses or befores else ''})")
    if not counts_ok:
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                print(f"  {key}: truth {want.get(key)} agent {got.get(key)}")
    print(f"  lines parsed/ignored/unparsed: {first['lines']}")
    if truth["not_counted"]:
        print(f"  attempts deliberately not counted (documented rules): {truth['not_counted']}")
    print(f"report rollups equal the ground truth: {'yes' if rollups_ok else 'NO'} (every run)")
    for name, expect in want_rollups.items():
        print(f"  {name}: {first['rollups'][name]} (truth {expect})")

    times = [r["elapsed"] for r, _ in reports]
    grep_times = [t for _, t, _ in greps]
    agent_time, grep_time = statistics.median(times), statistics.median(grep_times)
    agent_cpu, grep_cpu = statistics.median(r["cpu"] for r, _ in reports), statistics.median(c for _, _, c in greps)
    agent_rate = lines / agent_time
    print(f"\nnormagent (driver + parser + ledger), {args.runs} runs: {spread(times)} = {agent_rate:,.0f} lines/s, {first['batches']} batches")
    print(f"  peak RSS of the agent process: {max(peak for _, peak in reports):.1f} MB (largest of the runs)")
    print(f"  compiled modules in use: {', '.join(first.get('compiled', [])) or 'none'}")
    print(f"grep -cE, {args.runs} runs: {spread(grep_times)} = {lines / grep_time:,.0f} lines/s "
          f"({greps[0][0]:,} lines matched; truth {truth['failure_lines']:,})")
    print(f"  normagent / grep time (medians): {agent_time / grep_time:.1f}x")
    print(f"  CPU time (medians; what the machine's load does not stretch): normagent {agent_cpu:.3f} s = {lines / agent_cpu:,.0f} lines/s, "
          f"grep {grep_cpu:.3f} s, normagent / grep {agent_cpu / grep_cpu:.1f}x")
    if befores:
        times_before = [r["elapsed"] for r, _ in befores]
        before_time = statistics.median(times_before)
        before_cpu = statistics.median(r["cpu"] for r, _ in befores)
        print(f"normagent at {args.compare_with}, {args.runs} runs: {spread(times_before)} = {lines / before_time:,.0f} lines/s, "
              f"{before_time / grep_time:.1f}x grep; now / before time: {agent_time / before_time:.2f}")
        print(f"  CPU time (median): {before_cpu:.3f} s = {lines / before_cpu:,.0f} lines/s, {before_cpu / grep_cpu:.1f}x grep; "
              f"now / before: {agent_cpu / before_cpu:.2f}")
        print(f"  compiled modules in use: {', '.join(befores[0][0].get('compiled', [])) or 'none'}")
    daemon = {"": (agent_time, agent_cpu)}
    if befores:
        daemon[f" at {args.compare_with}"] = (before_time, before_cpu)
    for label, runs in (("", parses), (f" at {args.compare_with}", parses_before)):
        if runs:
            parse_time = statistics.median(p["elapsed"] for p in runs)
            parse_cpu = statistics.median(p["cpu"] for p in runs)
            wall, cpu = daemon[label]
            print(f"normagent parse ({args.parse_collectors}){label}, {args.runs} runs: "
                  f"{spread([p['elapsed'] for p in runs])} = {lines / parse_time:,.0f} lines/s; parse / daemon path{label}, "
                  f"medians: time {parse_time / wall:.2f}, CPU {parse_cpu / cpu:.2f} ({lines / parse_cpu:,.0f} lines/s of CPU)")
    if f2b is None:
        print("fail2ban-regex: skipped (--fail2ban-lines 0) or not available (apt-get download fail2ban failed)")
    else:
        summary, f2b_time, f2b_lines = f2b
        f2b_rate = f2b_lines / f2b_time
        print(f"fail2ban-regex sshd: {f2b_lines:,} lines in {f2b_time:.1f} s = {f2b_rate:,.0f} lines/s ({summary})")
        print(f"  normagent / fail2ban-regex speed: {agent_rate / f2b_rate:.0f}x")
    return 0 if counts_ok and rollups_ok else 1


if __name__ == "__main__":
    sys.exit(main())
