"""Builtin plugins, installed as ``normagent.plugins``: one package per factsheet-12 area.

A builtin plugin has the same shape as a third-party one and loads through the same door
(``normagent.plugins.BUILTIN_PLUGINS`` names it as a string). Its package holds:

- ``__init__.py``   hookimpls only: what the plugin offers, nothing else;
- ``collectors.py`` the ``collect(ctx)`` functions, doing I/O only through ``RunContext``;
- ``parse.py``      pure parsers (text in, records out), tested from tables and fuzzed;
- ``rules.py``      default ``RuleSpec``s;
- ``report.py``     the ``ReportSection`` it contributes.

Plugins import only ``normagent`` (the public API); their tests also ``normagent.testing``.
"""
