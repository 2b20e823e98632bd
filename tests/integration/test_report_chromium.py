"""The HTML report printed by a real headless Chromium (Debian's chromium): a PNG to look at, and a
PDF of A4 pages whose text (pdftotext, poppler-utils) holds every section heading."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from normagent.errors import Unavailable
from normagent.report.render import html_to, to_html
from tests.support.tools import require_tool

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
A4 = (595.0, 842.0)  # points
EXPECTED_PAGES = 10  # the fixture's November report: summary, completeness, eleven sections (18 deviations)


@pytest.fixture(scope="module")
def doc() -> dict[str, object]:
    return json.loads((GOLDEN / "report-2026-11.json").read_text())


def test_chromium_renders_the_report_to_png(doc: dict[str, object], tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    png = html_to(to_html(doc), "png", chromium)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1240, 1754)
    (tmp_path / "report.png").write_bytes(png)


def test_chromium_prints_a4_pages_with_every_heading(doc: dict[str, object], tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    pdftotext = require_tool("pdftotext", "poppler-utils")
    pdfinfo = require_tool("pdfinfo", "poppler-utils")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(html_to(to_html(doc), "pdf", chromium))
    info = subprocess.run([pdfinfo, "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    assert pages == EXPECTED_PAGES
    sizes = re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)
    assert len(sizes) == pages
    assert all(abs(float(w) - A4[0]) < 2 and abs(float(h) - A4[1]) < 2 for w, h in sizes)
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    host = doc["hosts"][0]  # type: ignore[index]
    headings = [s["title"] for s in host["sections"]] + ["Sammendrag for ledelsen", "Datagrunnlag", "SHA-256", "Tre ting som trenger en beslutning"]
    for heading in headings:
        assert " ".join(heading.split()) in flat, heading
    assert "ufullstendige data" in flat  # incomplete sections say so in their headings


def test_a_missing_chromium_is_a_clear_error(doc: dict[str, object]) -> None:
    with pytest.raises(Unavailable, match="not found; PDF needs headless Chromium"):
        html_to(to_html(doc), "pdf", "no-such-chromium-here")
