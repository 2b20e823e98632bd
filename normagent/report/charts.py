"""The 12-month trend of an indicator as a small SVG bar chart, inline in the HTML report.

pygal writes the SVG (pure Python, no numpy: the report extra stays small; matplotlib would bring
numpy and a font cache for twelve bars). Two things of pygal's are taken out because the report
must be self-contained and reproducible: the ``<script>`` it puts in every chart (its tooltips;
the report has no JavaScript) and its comments (one says the day the chart was drawn), removed by
an XML filter (``add_xml_filter``), and its random chart id, replaced by one derived from the
indicator, so the same data gives the same bytes on any day.

A month without data has no bar, and the report lists the missing months under the chart, so a
missing month is never read as zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLOR = "#2f5d8a"


def _reproducible(root: Any) -> Any:
    """pygal's xml filter: drop every ``<script>`` (its tooltip config) and every comment from the
    chart. pygal's first comment carries the day the chart was drawn ("Generated with pygal …
    on 2026-12-06"): the same month's report drawn a day later would differ in its bytes."""
    for parent in root.iter():
        for child in list(parent):
            # A comment's tag is a function (ElementTree's and lxml's Comment alike), not a name.
            if callable(child.tag) or child.tag == "script" or str(child.tag).endswith("}script"):
                parent.remove(child)
    return root


def trend_svg(chart_id: str, points: Sequence[Mapping[str, Any]], unit: str, lang: str = "nb") -> str:
    """An SVG bar chart of twelve monthly values (``{"label", "value"}``; value None: no data)."""
    import pygal
    from pygal.style import Style

    style = Style(
        background="white",
        plot_background="white",
        foreground="#333",
        foreground_strong="#333",
        foreground_subtle="#ddd",
        colors=(COLOR,),
        font_family="DejaVu Sans, Liberation Sans, Arial, sans-serif",
        label_font_size=10,
        major_label_font_size=10,
        value_font_size=9,
        title_font_size=11,
    )
    scale = 3600.0 if unit == "seconds" else 1.0
    values = [None if p["value"] is None else round(float(p["value"]) / scale, 2) for p in points]
    chart = pygal.Bar(
        width=400,
        height=170,
        truncate_label=-1,
        x_label_rotation=0,
        explicit_size=True,
        show_legend=False,
        style=style,
        js=[],
        disable_xml_declaration=True,
        print_values=False,
        show_y_guides=True,
        margin=4,
        spacing=4,
        y_title=("timer" if lang == "nb" else "hours") if unit == "seconds" else None,
        range=(0, max([v for v in values if v is not None] + [1])),
        min_scale=2,
        max_scale=4,
    )
    chart.add_xml_filter(_reproducible)
    chart.uuid = chart_id  # deterministic ids: the same report gives the same bytes
    chart.x_labels = [str(p["label"]) for p in points]
    chart.add("", values)
    return str(chart.render(is_unicode=True))
