"""What every chart of the book shares: the state colours, the widths that fit the book's text column,
the colour and layer-axis channels, and the checks of a table's columns and rows. :mod:`layerwise.book.charts`
and its satellites (:mod:`layerwise.book.charts_seeds`, :mod:`layerwise.book.charts_classes`) and
:mod:`layerwise.book.original` draw with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from ..core.errors import LayerwiseError
from ..core.schema import STATES, state_order

#: Colours of the model states, in the canonical order of ``schema.STATES`` (same in every chart).
STATE_COLORS = ("#4c78a8", "#f58518", "#9d9d9d")
#: The text column of the Quarto book's HTML page at a 1280 px viewport (cosmo theme), in px: no chart or
#: table of the report may be wider (``tests/test_book_layout.py``).
BOOK_COLUMN = 678
#: Width every chart is laid out to: the book's column less a margin for the browser's text metrics,
#: which draw labels a little wider than vl-convert's SVG measures them (the A4 PDF scales the SVG).
TEXT_WIDTH = 640
#: What a panel's y axis (title and labels), the space between facet panels and the padding around a chart take.
AXIS_PX, GAP_PX, PAD_PX = 72, 20, 10
HEIGHT = 240


def panel_width(columns: int = 1, *, axis_each: bool = False, left: int = AXIS_PX) -> int:
    """Width of each of ``columns`` side-by-side panels so that the whole chart (``left`` for the first
    y axis, the gaps, one more y axis per panel when ``axis_each``: independent y scales) fits
    :data:`TEXT_WIDTH`. Legends go below the plot (``render``), so they take no width."""
    columns = max(1, int(columns))
    gaps = (columns - 1) * (GAP_PX + (AXIS_PX if axis_each else 0))
    return int((TEXT_WIDTH - PAD_PX - left - gaps) // columns)


#: Width of a one-panel chart.
WIDTH = panel_width(1) - 40


def need_columns(df: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise a LayerwiseError naming the columns a table lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LayerwiseError(f"table lacks column(s) {missing}", where,
                             "pass the table named in docs/architecture.md (Result tables)")


def metric_rows(tidy: pd.DataFrame, metrics: Sequence[str], where: str) -> pd.DataFrame:
    """The tidy rows of ``metrics`` (a copy); a LayerwiseError when there are none."""
    need_columns(tidy, ["model", "state", "layer", "metric", "value"], where)
    df = tidy[tidy["metric"].isin(list(metrics))]
    if df.empty:
        raise LayerwiseError(f"no rows for metric(s) {list(metrics)}", where,
                             "run the analysis that produces them (layerwise analyze / probe) or pick another metric")
    return df.copy()


def state_scale(values) -> alt.Scale:
    """Colour scale of the states present: the fixed palette, in the canonical order."""
    order = state_order(values)
    palette = dict(zip(STATES, STATE_COLORS))
    extra = iter(["#54a24b", "#e45756", "#72b7b2", "#b279a2"])
    return alt.Scale(domain=order, range=[palette.get(s) or next(extra) for s in order])


def _channel_args(df: pd.DataFrame, field: str) -> dict[str, Any]:
    """Shorthand, scale and sort of a colour-like channel on ``field``."""
    if field == "state":
        return {"shorthand": "state:N", "scale": state_scale(df["state"]), "sort": state_order(df["state"])}
    return {"shorthand": f"{field}:N", "scale": alt.Scale(scheme="dark2"),  # not the states' blue/orange
            "sort": list(dict.fromkeys(df[field]))}


def color_by(df: pd.DataFrame, field: str, title: str | None = None) -> alt.Color:
    """Colour by ``field``: the fixed state palette for states, category10 otherwise (legend symbols
    drawn opaque, whatever the mark's opacity)."""
    return alt.Color(title=title or {"metric": "measure"}.get(field, field), legend=alt.Legend(symbolOpacity=1, symbolType="circle"),
                     **_channel_args(df, field))


def layer_axis(relative_depth: bool) -> alt.X:
    """The layer axis (integers) or the relative-depth axis (0..1)."""
    if relative_depth:
        return alt.X("depth:Q", title="relative depth (layer / last layer)", scale=alt.Scale(domain=[0, 1]))
    return alt.X("layer:Q", title="layer (0 = embeddings)", axis=alt.Axis(tickMinStep=1, format="d"))


def reference_rules(rules: Sequence[tuple[str, float, list[int], str]], field: str, x: float) -> list[alt.Chart]:
    """Horizontal reference rules, each named on the chart at its right end (``field`` = ``x``):
    ``(label, value, dash, colour)``."""
    out = []
    for lab, value, dash, colour in rules:
        base = alt.Chart(pd.DataFrame({"label": [lab], "baseline": [value], field: [x]}))
        out += [base.mark_rule(color=colour, strokeDash=dash, strokeWidth=1.2).encode(
                    y="baseline:Q", tooltip=["label:N", alt.Tooltip("baseline:Q", format=".3f")]),
                base.mark_text(align="right", dy=-6 if dash == [1, 0] else 9, fontSize=10, color=colour).encode(
                    x=f"{field}:Q", y="baseline:Q", text="label:N")]
    return out


def seed_colors(n: int) -> list[str]:
    """``n`` shades of the fine-tuned state's orange, dark to light (one per fine-tuning seed): the seeds
    stay the fine-tuned colour and can still be told apart."""
    dark, light = (0xa6, 0x4b, 0x00), (0xfd, 0xb8, 0x63)
    if n <= 1:
        return [STATE_COLORS[1]] * max(n, 0)
    mix = [tuple(round(d + (lo - d) * i / (n - 1)) for d, lo in zip(dark, light)) for i in range(n)]
    return ["#%02x%02x%02x" % c for c in mix]
