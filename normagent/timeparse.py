"""``datetime.strptime`` for the time formats the agent reads, without ``_strptime``.

Why: the first ``datetime.strptime`` imports ``_strptime``, and with it ``calendar`` and
``locale``, and compiles its regular expressions for the locale: some 0.3 MB of the idle agent's
resident memory (issue 15) for parsing a handful of fixed formats (dpkg's and ClamAV's stamps,
systemd's timer times, rotation stamps). ``strptime`` here accepts what ``datetime.strptime``
accepts for the directives below and gives the same ``datetime``, or raises ``ValueError`` where
it does; ``tests/unit/test_timeparse.py`` holds the two together over generated text.

What it copies of ``_strptime``'s rules (CPython 3.11, the C locale, as the agent runs):

- each directive is a regular expression, the whole format matched case-insensitively from the
  text's start, and text left over after the match is an error;
- ``%Y`` four digits; ``%m`` 1-12, ``%d`` 1-31 (also with a leading space), ``%H`` 0-23, ``%M``
  0-59, ``%S`` 0-61, each one or two digits; ``%f`` one to six digits, padded on the right;
- ``%a`` and ``%b`` the English abbreviated day and month names (the day is read, not checked);
- ``%z`` ``+HHMM``, ``+HH:MM``, with optional seconds and fraction, or ``Z``;
- whitespace in the format matches any run of whitespace; ``%%`` a percent sign; anything else
  itself.

Another directive is refused (``ValueError``) when the format is first used.

Imports only the standard library.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DIRECTIVES = {
    "Y": r"(?P<Y>\d\d\d\d)",
    "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])",
    "d": r"(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])",
    "H": r"(?P<H>2[0-3]|[0-1]\d|\d)",
    "M": r"(?P<M>[0-5]\d|\d)",
    "S": r"(?P<S>6[0-1]|[0-5]\d|\d)",
    "f": r"(?P<f>[0-9]{1,6})",
    "a": "(?P<a>" + "|".join(_DAYS) + ")",
    "b": "(?P<b>" + "|".join(_MONTHS) + ")",
    "z": r"(?P<z>[+-]\d\d:?[0-5]\d(:?[0-5]\d(\.\d{1,6})?)?|(?-i:Z))",
}


def strptime(text: str, format: str) -> datetime:
    """``datetime.strptime(text, format)`` for the directives above.

    Raises:
        ValueError: ``text`` does not match ``format`` (or leaves text over, or names a day that
            does not exist), as ``datetime.strptime`` raises it; or ``format`` has a directive
            not listed above.
    """
    match = _compiled(format)(text)
    if match is None or match.end() != len(text):
        raise ValueError(f"time data {text!r} does not match format {format!r}")
    found = match.groupdict()
    year = int(found["Y"]) if found.get("Y") else 1900
    month = _MONTHS.index(found["b"].lower()) + 1 if found.get("b") else int(found.get("m") or 1)
    day = int(found.get("d") or 1)
    fraction = found.get("f")
    zone = found.get("z")
    return datetime(
        year, month, day, int(found.get("H") or 0), int(found.get("M") or 0), int(found.get("S") or 0),
        int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=_zone(zone) if zone else None,
    )  # fmt: skip


def _zone(text: str) -> timezone:
    """A ``%z`` match as ``_strptime`` reads it: colons between all parts or none."""
    if text == "Z":
        return timezone.utc
    given = text
    if text[3] == ":":
        text = text[:3] + text[4:]
        if len(text) > 5:
            if text[5] != ":":
                raise ValueError(f"Inconsistent use of : in {given!r}")
            text = text[:5] + text[6:]
    # int() refuses a colon left in the seconds (+0100:30), as _strptime's does
    offset = timedelta(hours=int(text[1:3]), minutes=int(text[3:5]), seconds=int(text[5:7] or 0),
                       microseconds=int(text[8:].ljust(6, "0")))  # fmt: skip
    return timezone(-offset if text[0] == "-" else offset)


@functools.lru_cache(maxsize=32)
def _compiled(format: str) -> Callable[[str], re.Match[str] | None]:
    parts: list[str] = []
    i = 0
    while i < len(format):
        char = format[i]
        if char == "%":
            directive = format[i + 1 : i + 2]
            if directive == "%":
                parts.append("%")
            elif directive in _DIRECTIVES:
                parts.append(_DIRECTIVES[directive])
            else:
                raise ValueError(f"normagent.timeparse does not read the directive %{directive} (in {format!r})")
            i += 2
        elif char.isspace():
            while i < len(format) and format[i].isspace():
                i += 1
            parts.append(r"\s+")
        else:
            parts.append(re.escape(char))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE).match
