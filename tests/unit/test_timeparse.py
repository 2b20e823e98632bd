"""normagent.timeparse.strptime held to datetime.strptime: for every format the agent reads, over
generated text around each format's shape, the same datetime (zone included) or a ValueError from
both."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.timeparse import strptime

# Every format the agent and its plugins parse (grep datetime.strptime: none is left).
FORMATS = (
    "%Y%m%d%H%M%S%f",  # the syslog spool's rotation stamps
    "%Y%m%d%H%M%S",  # an EVTX anchor's seconds
    "%Y-%m-%d %H:%M:%S",  # dpkg.log, apt's history, systemd's timer times
    "%a %b %d %H:%M:%S %Y",  # ClamAV's ctime stamps
    "%d %b %Y %H-%M %z",  # a ClamAV database header's build time
    "%Y-%m-%d",  # an availability month's first day
)
NAMES = ["Mon", "tue", "WED", "Sun", "Jan", "feb", "MAR", "Dec", "May", "Sept", "Ma", "mond", "janu", "x"]
DIGITS = st.text("0123456789", min_size=0, max_size=5) | st.sampled_from(["0", "00", "1", "9", "12", "13", "29", "31", "32", "59", "60", "61", "99"])
ZONES = st.one_of(
    st.sampled_from(["Z", "z", "+0100", "-0530", "+01:00", "+01:0030", "+0100:30", "+01:00:30", "+010030.5", "+01:00:30.123456",
                     "+2400", "-2359", "+0160", "+1", "+01:00:30.1234567", "UTC"]),
    st.builds(lambda sign, body: sign + body, st.sampled_from(["+", "-", ""]), st.text("0123456789:.", max_size=12)),
)
SPACES = st.sampled_from([" ", "  ", "\t", " \t ", "", "\n", "-"])


@st.composite
def near(draw: st.DrawFn, format: str) -> str:
    """Text shaped like ``format``: each directive a plausible or wrong token, each literal kept,
    doubled, changed or dropped, sometimes something appended."""
    out, i = [], 0
    while i < len(format):
        char = format[i]
        if char == "%":
            directive = format[i + 1]
            if directive in "ab":
                out.append(draw(st.sampled_from(NAMES) | DIGITS))
            elif directive == "z":
                out.append(draw(ZONES))
            else:
                out.append(draw(DIGITS | st.sampled_from([" 5", "٣", "1a"])))
            i += 2
            continue
        out.append(draw(SPACES) if char == " " else draw(st.sampled_from([char, char, char, "", char * 2, ".", " "])))
        i += 1
    return "".join(out) + draw(st.sampled_from(["", "", "", " ", "0", "x"]))


def outcome(parse: object, text: str, format: str) -> object:
    try:
        got = parse(text, format)  # type: ignore[operator]
    except ValueError:
        return ValueError
    return got, got.tzinfo


@pytest.mark.parametrize("format", FORMATS)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_strptime_reads_as_datetime_strptime_does(format: str, data: st.DataObject) -> None:
    text = data.draw(near(format) | st.text(max_size=30))
    assert outcome(strptime, text, format) == outcome(datetime.strptime, text, format)


@pytest.mark.parametrize(
    ("text", "format"),
    [
        ("20261207230512123456", "%Y%m%d%H%M%S%f"),
        ("20261207230512", "%Y%m%d%H%M%S"),
        ("2026-11-20 06:25:12", "%Y-%m-%d %H:%M:%S"),
        ("2026-1-2 3:4:5", "%Y-%m-%d %H:%M:%S"),
        ("Mon Nov 23 07:56:25 2026", "%a %b %d %H:%M:%S %Y"),
        ("mon nov  3 07:56:25 2026", "%a %b %d %H:%M:%S %Y"),
        ("08 Dec 2026 07-42 -0500", "%d %b %Y %H-%M %z"),
        ("08 Dec 2026 07-42 +01:00:30.5", "%d %b %Y %H-%M %z"),
        ("2026-02-29", "%Y-%m-%d"),
        ("2024-02-29", "%Y-%m-%d"),
        ("2026-11-20 06:25:60", "%Y-%m-%d %H:%M:%S"),
        ("08 Dec 2026 07-42 +2400", "%d %b %Y %H-%M %z"),
    ],
)
def test_known_stamps_read_alike(text: str, format: str) -> None:
    assert outcome(strptime, text, format) == outcome(datetime.strptime, text, format)


def test_a_directive_it_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match="does not read the directive %j"):
        strptime("123", "%j")


def test_no_module_reads_time_through_the_standard_library_s_strptime() -> None:
    """Reading a stamp must not import _strptime (calendar, locale): the point of the module; and
    no module of the agent or its plugins calls the standard library's strptime."""
    root = Path(__file__).parents[2]
    callers = [f"{path.relative_to(root)}:{n}" for path in [*root.glob("normagent/**/*.py"), *root.glob("plugins/**/*.py")]
               if path.name != "timeparse.py"  # which names what it stands for
               for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\b(datetime|time)\.strptime\(", line)]
    assert callers == [], "use normagent.timeparse.strptime"
    probe = "import sys; from normagent.timeparse import strptime; strptime('Mon Nov 23 07:56:25 2026', '%a %b %d %H:%M:%S %Y'); print(sorted({'_strptime', 'calendar', 'locale'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
