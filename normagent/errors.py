"""The errors normagent expects, each carrying the exit code the CLI returns for it.

Code either logs an error or raises it, never both; ``cli.main()`` is the one place that prints a
``NormagentError`` and turns it into an exit code. Unexpected exceptions inside a collector are the
scheduler's business, not the CLI's.

Imports nothing from normagent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from normagent.records import dataclass

EX_USAGE = 64  # sysexits.h: the command was used incorrectly
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69  # a service or program the command needs is not there (Prometheus, Chromium, SMTP)
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74  # the command's output could not be written (a full disk under stdout, stdout closed)
EX_CONFIG = 78  # systemd's RestartPreventExitStatus=78 ends restart loops on a bad config

# What reorders or breaks a line without being a control character: Unicode's line and paragraph
# separators, the bidirectional embeddings, overrides and isolates ("Trojan Source").
REORDERING = (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
# ... and C0 and C1 controls.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(map(chr, REORDERING)) + "]")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with every control character escaped as TOML writes it (``\\n``, ``\\u001b``), for
    a message a person reads on a terminal.

    A value, key or file name in a message may come from a hostile file: raw, an ESC sequence
    there rewrites the terminal, and a newline forges a message line of its own.
    """
    return _UNPRINTABLE.sub(lambda m: _SHORT_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)



class NormagentError(Exception):
    """Base of every failure normagent reports to a person rather than to a log."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file: where, which key, and what was expected."""

    file: Path | None
    key: str  # dotted path, e.g. 'collectors."system.host".interval'
    message: str  # 'expected a duration like "30s" or "5m", got "15x"'
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<built-in defaults>"
        if self.line:
            where = f"{where}:{self.line}"
        # One line, whatever the file held: keys and values in it are written as TOML writes them.
        return printable(f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}")


class ConfigError(NormagentError):
    """The configuration cannot be used; every problem found is listed, not only the first."""

    exit_code = EX_CONFIG

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"configuration has {count} problem{'s' if count != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class StateError(NormagentError):
    """The state directory or the ledger in it cannot be used (permissions, corruption, newer schema)."""

    exit_code = EX_CANTCREAT
    reason = "state_error"  # a collector run that fails with it is recorded with this reason


class DiskFull(StateError):
    """The state filesystem has no room left: nothing of the write that failed was stored.

    Not a bug and not damage: the agent keeps running, marks the runs that could not commit as
    failed and retries them; everything is stored once there is room again.
    """

    reason = "disk_full"


class StateLost(StateError):
    """The agent's state is gone: its ledger was deleted or replaced (while running, or since the last run).

    Starting a new ledger silently would count every log again from its start position, under a new
    pseudonym key; the agent refuses instead, and says how to start afresh on purpose.
    """

    reason = "state_lost"


class UsageError(NormagentError):
    """A command line that asks for something impossible (a missing input file, a bad option mix)."""

    exit_code = EX_USAGE


class InputError(NormagentError):
    """An input given on the command line cannot be read."""

    exit_code = EX_NOINPUT


class Unavailable(NormagentError):
    """Something the command needs is not there or does not answer: a Prometheus that is down, a
    Chromium that is not installed, an SMTP server that refuses. Nothing was half done."""

    exit_code = EX_UNAVAILABLE


class OutputFailed(NormagentError):
    """The command's standard output cannot be written: closed (``>&-``), or a write failed (a
    full disk under ``> file``, an I/O error). What it printed before may be incomplete."""

    exit_code = EX_IOERR


class NoData(Exception):
    """Raised by a collector whose source is legitimately absent on this host.

    Not a failure: the run counts as successful (``normagent_collector_up`` stays 1) and the reason
    is logged at debug level, as node_exporter does with ``ErrNoData``.
    """


class RunFailed(Exception):
    """Raised by a collector whose run failed for a reason it has logged already, saying what and
    where (a configured log path that is a FIFO, or that the agent may not read).

    The run counts as failed (``normagent_collector_up`` 0) under ``reason``; the scheduler logs
    no second error with a traceback of it, as there is nothing unexpected to show.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def of(cls, errors: Sequence[Exception], reason: str) -> RunFailed:
        """The failure of a run that met ``errors`` (each logged already), named by the first."""
        first, more = errors[0], len(errors) - 1
        failed = cls(f"{first}{f' (and {more} more)' if more else ''}", reason)
        failed.__cause__ = first
        return failed


class SnmpError(ConnectionError):
    """An SNMP request failed: the agent refused it, answered with an error, or was unreachable.

    ``reason`` is a short closed-set word a collector may use as a label value: ``"error"`` here,
    narrowed by the subclasses. Messages never hold a community string or a key.
    """

    reason = "error"


class SnmpTimeout(SnmpError, TimeoutError):
    """The agent did not answer within the timeout (after the retries). SNMPv1/v2c agents also stay
    silent to a wrong community (RFC 3584), so a wrong community is a timeout too."""

    reason = "timeout"


class SnmpAuthError(SnmpError):
    """The agent refused who we are: an unknown SNMPv3 user, a wrong key (wrong digest), a security
    level the user may not use, or an access-control refusal (authorizationError, noAccess)."""

    reason = "auth"


class SnmpTooManyRows(SnmpError):
    """A walk returned more variables than the caller allowed: a table far larger than expected."""

    reason = "too_many_rows"
