"""The syslog receiver's own health as metrics: messages and connections by outcome, spool files.

The receiver counts in memory since it started; this collector commits what grew since its last
commit, so the exported counters keep their values across restarts like every other counter. The
receiver is the agent's, not a plugin's, so the agent adds this collector itself when ``[syslog]``
is configured.

What the receiver *received* is read by log plugins from its spool file like any other log file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Protocol

from normagent.model import Batch, CollectorSpec, Count, Gauge, MetricSpec, RunContext
from normagent.sources.syslog import CONNECTION_RESULTS, RESULTS, TRANSPORTS, SyslogStats

SECTION = "Sikkerhetsbarriere (brannmur)"
MESSAGES = MetricSpec(
    "normagent_syslog_messages_total",
    "counter",
    "Syslog messages the receiver got, by transport and result (received, oversized, malformed, dropped).",
    ("transport", "result"),
    preset=tuple((t, r) for t in TRANSPORTS for r in RESULTS),
    section=SECTION,
)
CONNECTIONS = MetricSpec(
    "normagent_syslog_connections_total",
    "counter",
    "TCP syslog connections by outcome (accepted, refused over max_connections, idle_closed).",
    ("result",),
    preset=tuple((r,) for r in CONNECTION_RESULTS),
    section=SECTION,
)
OPEN = MetricSpec("normagent_syslog_open_connections", "gauge", "TCP syslog connections open now.", section=SECTION)
SPOOL = MetricSpec(
    "normagent_syslog_spool_files", "gauge", "Rotated syslog spool files not yet read and removed.", section=SECTION
)


class StatsSource(Protocol):
    def stats(self) -> SyslogStats: ...


def syslog_collector(receiver: StatsSource, interval: timedelta = timedelta(seconds=15)) -> CollectorSpec:
    """A collector committing the receiver's counters as they grow."""
    committed: dict[tuple[str, ...], int] = {}

    def collect(ctx: RunContext) -> Iterator[Batch]:
        stats = receiver.stats()
        current: dict[tuple[str, ...], int] = {("m", *key): n for key, n in stats.messages.items()}
        current.update({("c", result): n for result, n in stats.connections.items()})
        counts = []
        for key, n in current.items():
            grown = n - committed.get(key, 0)
            if grown > 0:
                labels = {"transport": key[1], "result": key[2]} if key[0] == "m" else {"result": key[1]}
                counts.append(Count(MESSAGES.name if key[0] == "m" else CONNECTIONS.name, labels, grown))
        yield Batch([*counts, Gauge(OPEN.name, stats.open_connections), Gauge(SPOOL.name, stats.spool_files)])
        # The yield returns once the batch is committed: only now is it part of the counters.
        committed.update(current)

    return CollectorSpec(
        name="core.syslog",
        help="Health of the syslog receiver: messages and connections by outcome, spool backlog.",
        collect=collect,
        interval=interval,
        timeout=timedelta(seconds=10),
        metrics=(MESSAGES, CONNECTIONS, OPEN, SPOOL),
        plugin="core",
    )
