"""⑨ The monthly report for the data controller (``normagent report``).

A data model first: ``build.build_report`` turns one host's ledger or a fleet's Prometheus
(``data``) into a JSON document, the source of truth; ``render`` draws HTML, Markdown and PDF from
that document alone; ``deliver`` sends or files it. ``settings`` is the ``[report]`` table.

Only ``settings`` is imported by the agent (to validate the configuration); everything else is
imported by the report command alone, with its libraries (the ``report`` extra: Jinja2, pygal,
Babel, tqdm), so the idle agent pays nothing for it.
"""
