"""The syslog receiver's own health as metrics: messages and connections by outcome, spool files,
and messages discarded unread from the spool.

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
    "TCP syslog connections by outcome (accepted, refused over max_connections, idle_closed, "
    "evicted to make room for another address's connection).",
    ("result",),
    preset=tuple((r,) for r in CONNECTION_RESULTS),
    section=SECTION,
)
OPEN = MetricSpec("normagent_syslog_open_connections", "gauge", "TCP syslog connections open now.", section=SECTION)
SPOOL = MetricSpec(
    "normagent_syslog_spool_files", "gauge", "Rotated syslog spool files on disk (at most spool_max_files).", section=SECTION
)
DISCARDED_MESSAGES = MetricSpec(
    "normagent_syslog_spool_discarded_messages_total",
    "counter",
    "Syslog messages received and spooled, then deleted unread with the oldest rotated spool file to keep "
    "spool_max_files (a loss: no reader kept up).",
    preset=((),),  # the empty label set is a closed one: 0 from the first scrape, so a loss shows as a rise
    section=SECTION,
)
DISCARDED_BYTES = MetricSpec(
    "normagent_syslog_spool_discarded_bytes_total",
    "counter",
    "Bytes of spool lines deleted unread with the oldest rotated spool file (see "
    "normagent_syslog_spool_discarded_messages_total).",
    preset=((),),  # the empty label set is a closed one: 0 from the first scrape, so a loss shows as a rise
    section=SECTION,
)
SYSLOG_METRICS = (MESSAGES, CONNECTIONS, OPEN, SPOOL, DISCARDED_MESSAGES, DISCARDED_BYTES)


class StatsSource(Protocol):
    def stats(self) -> SyslogStats: ...


def syslog_collector(receiver: StatsSource, interval: timedelta = timedelta(seconds=15)) -> CollectorSpec:
    """A collector committing the receiver's counters as they grow."""
    committed: dict[tuple[str, ...], int] = {}

    def collect(ctx: RunContext) -> Iterator[Batch]:
        stats = receiver.stats()
        # (metric, label values) → cumulative count since the receiver started
        current: dict[tuple[str, ...], int] = {(MESSAGES.name, *key): n for key, n in stats.messages.items()}
        current.update({(CONNECTIONS.name, result): n for result, n in stats.connections.items()})
        current[(DISCARDED_MESSAGES.name,)] = stats.discarded_messages
        current[(DISCARDED_BYTES.name,)] = stats.discarded_bytes
        label_names = {spec.name: spec.labels for spec in SYSLOG_METRICS}
        counts = []
        for (metric, *values), n in current.items():
            grown = n - committed.get((metric, *values), 0)
            if grown > 0:
                counts.append(Count(metric, dict(zip(label_names[metric], values)), grown))
        yield Batch([*counts, Gauge(OPEN.name, stats.open_connections), Gauge(SPOOL.name, stats.spool_files)])
        # The yield returns once the batch is committed: only now is it part of the counters.
        committed.update(current)

    return CollectorSpec(
        name="core.syslog",
        help="Health of the syslog receiver: messages and connections by outcome, spool backlog and losses.",
        collect=collect,
        interval=interval,
        timeout=timedelta(seconds=10),
        metrics=SYSLOG_METRICS,
        plugin="core",
    )
