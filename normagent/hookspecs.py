"""The plugin contract: every hook normagent calls, declared once, typed and documented here.

A plugin is a module (or object) with functions marked ``@normagent.hookimpl`` whose names match the
hooks below. Builtins under ``plugins/`` and third-party packages (entry-point group ``normagent``)
load the same way. All hooks take no arguments and return data: behaviour lives in the callables
inside the returned specs. None takes the configuration, so ``normagent plugins`` can answer without
a config file, and the settings types the specs declare are what ``config.py`` validates against.

The core calls each plugin's implementation on its own (see ``normagent.plugins.call_each``), so a
plugin that raises loses only its own contribution; pluggy by itself would end the whole call at the
first exception. Implementations must therefore not be ``wrapper=True``.

Imports only ``normagent.model`` (and only for types).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from normagent.model import CollectorSpec, ForwarderSpec, ReportSection, RuleSpec

PROJECT = "normagent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_collectors() -> Iterable[CollectorSpec]:
    """Offer the collectors this plugin provides.

    Called once when plugins load and again after a successful SIGHUP reload. Must not touch the
    host: anything that depends on the machine belongs in ``CollectorSpec.probe``, ``advise`` or
    ``collect``.

    Returns:
        Collector specs. Names must be unique across all plugins (``"<plugin>.<thing>"``); a later
        duplicate is rejected and reported, naming both plugins, and the first one keeps running.
        Metric names must also be unique: two collectors may emit the same metric only if they
        declare it identically. An empty iterable means the plugin collects nothing.
    """
    return ()


@hookspec
def register_rules() -> Iterable[RuleSpec]:
    """Offer this plugin's default deviation rules.

    Called when plugins load. Configuration may retune a rule's threshold, window, duration,
    severity, hold time, owner, CIA properties and texts, or disable it, by name
    (``[rules."<name>"]``); what a rule watches is fixed. ``normagent.rules`` evaluates the rules
    inside the ledger's commits and on a timer; ``check-config`` checks each against the metrics
    and labels the collectors declare.

    Returns:
        Rule specs with unique names (``"<plugin>.<thing>"``); each must watch a metric some
        collector declares (or the agent's ``normagent_collector_up``), a rollup or an event kind,
        and its texts may use only ``{value}``, ``{threshold}``, ``{window}``, ``{for}`` and its
        ``group_by`` labels. Without texts of its own a rule takes its section's (see
        ``normagent.rules.SECTION_DEFAULTS``). Empty: no default rules.
    """
    return ()


@hookspec
def register_report_sections() -> Iterable[ReportSection]:
    """Offer sections for the monthly report to the data controller.

    Called when a report is built (``normagent report``). A section's ``build`` reads numbers
    through ``ReportData`` only, so the same section works on one host's ledger and on a fleet's
    Prometheus (which keeps no rollups and no events: ``rollups`` and ``events`` answer empty,
    and the section should say what it cannot show). Its ``indicators`` are the key figures the
    report shows for this month, last month and as a 12-month trend; ``title_en`` titles it in
    an English report. Paragraphs and tables hold counts, closed-set values and pseudonyms only:
    never a user name, an address or a message id.

    Returns:
        Report sections with unique ids; ``order`` places them (factsheet order: 10 operations
        status, 20 deviations, 30 message communication, 40 system supplier, 50 data processor,
        60 network, 70 malware, 80 firewall). Empty: the plugin adds nothing to the report.
    """
    return ()


@hookspec
def register_forwarders() -> Iterable[ForwarderSpec]:
    """Offer kinds of destination for deviation candidates (webhook, Alertmanager, e-mail, file …).

    Called when plugins load. A configured ``[forwarders.<name>]`` with ``kind = "<kind>"`` uses the
    spec of that kind; its settings are validated against ``ForwarderSpec.settings`` and its
    ``check``, and ``check-config`` runs its ``probe``. The core's worker takes each change from
    the outbox and hands it to a ``Sender`` (``open(settings)``, or ``send`` for a plain function)
    as a ``Delivery``: return on success; raise ``DeliveryFailed(result, message)`` (or anything)
    and the change is tried again after a back-off, and kept as a dead letter after
    ``dead_letter_after``. ``Delivery.key`` is the idempotency key: send it, so the receiver can
    keep each change once. Never put more in a payload than the document holds: it is built to
    carry no personal data.

    Returns:
        Forwarder specs with unique kinds. Empty: the plugin forwards nothing.
    """
    return ()
