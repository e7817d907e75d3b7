"""Line charts over the layers (one line per state, model or seed, with its interval band), shared by the
chapters' charts (:mod:`layerwise.book.charts`, which re-exports :func:`layer_lines`) and the probe charts
(:mod:`layerwise.book.charts_probes`): the names of the measures are the registry's short names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..core.schema import label as schema_label
from ..core.schema import state_order
from ..core.schema import unit as schema_unit
from .chart_kit import HEIGHT, WIDTH, color_by, layer_axis, metric_rows, panel_width


def _metric_labels(metrics: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``{metric: label}`` from a name or a list of names (each the registry's short name,
    :func:`layerwise.core.schema.label`; a pooling's words only where two names would be the same
    otherwise), or a mapping (the caller's names: the comparison chapter's models)."""
    if isinstance(metrics, Mapping):
        return {str(k): str(v) for k, v in metrics.items()}
    names = [metrics] if isinstance(metrics, str) else [str(m) for m in metrics]
    short = {m: schema_label(m, suffix_words=False) for m in names}
    if len(set(short.values())) < len(short):
        short = {m: schema_label(m) for m in names}
    return short


def y_title_of(metrics: Sequence[str], labels: Sequence[str]) -> str:
    """The y axis title of a chart of ``metrics``: the one measure's short name, else the unit they share
    (the legend names the measures), else "value"."""
    if len(set(labels)) == 1:
        return next(iter(labels))
    units = {schema_unit(m) for m in metrics}
    return units.pop() if len(units) == 1 and "" not in units else "value"


def add_depth(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``depth`` = layer / L per model (L = the model's last layer), to compare models of different
    depths on one axis (0 = embedding output, 1 = last layer)."""
    df = df.copy()
    last = df[df["layer"] >= 0].groupby("model")["layer"].transform("max")
    df["depth"] = df["layer"] / last.where(last > 0, 1)
    return df


def layer_lines(tidy: pd.DataFrame, metrics: str | Sequence[str] | Mapping[str, str], *, title: str,
                y_title: str | None = None, color: str = "state", dash: str | None = None,
                column: str | None = "auto", row: str | None = None, relative_depth: bool = False,
                log_y: bool = False, zero: bool = False, width: int = WIDTH, height: int = HEIGHT,
                independent_y: bool | None = None, extra: Sequence[alt.Chart] = ()) -> alt.Chart:
    """One line per ``color`` value (and ``dash`` value) over the layers, with its CI band
    (``ci_low``..``ci_high``) where the table has one. Several metrics: one panel each (``column="auto"``)
    with independent y scales, or one panel with ``dash="metric"``. ``relative_depth`` puts every model
    on a 0..1 depth axis (comparisons across models of different depths). Facet panels share the y
    scale unless they show different metrics (``independent_y=None``). ``extra``: more layers (with their
    own data: reference rules) drawn in every panel."""
    labels = _metric_labels(metrics)
    y_title = y_title or y_title_of(list(labels), list(labels.values()))
    df = metric_rows(tidy, list(labels), "charts.layer_lines")
    df = df[df["layer"] >= 0]
    df["metric"] = pd.Categorical(df["metric"].map(labels), categories=list(dict.fromkeys(labels.values())))
    df["metric"] = df["metric"].astype(str)
    for c in ("ci_low", "ci_high"):
        if c not in df.columns:
            df[c] = np.nan
    if relative_depth:
        df = add_depth(df)
    if column == "auto" and dash and color == "state" and df["state"].nunique() * df[dash].nunique() > 4:
        column, color, dash = "state", dash, None  # at most 4 series per panel: one panel per state
    if column == "auto":
        column = "metric" if len(labels) > 1 and dash != "metric" else None
    keep = [c for c in ("model", "state", "layer", "depth", "metric", "value", "ci_low", "ci_high", "n")
            if c in df.columns]
    df = df[keep].reset_index(drop=True)
    x = layer_axis(relative_depth)
    yscale = alt.Scale(type="log" if log_y else "linear", zero=zero)
    tooltip = [alt.Tooltip(f"{c}:N") for c in ("model", "state", "metric") if c in df.columns] + [
        alt.Tooltip("layer:O"), alt.Tooltip("value:Q", format=".4g"),
        alt.Tooltip("ci_low:Q", format=".4g"), alt.Tooltip("ci_high:Q", format=".4g")]
    enc: dict[str, Any] = {"x": x}
    detail = [c for c in (dash,) if c]
    if dash:
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", title="measure" if dash == "metric" else dash, sort=list(dict.fromkeys(df[dash])),
                                           legend=alt.Legend(symbolType="stroke", symbolStrokeColor="black"))
    base = alt.Chart().encode(**enc)
    band = base.mark_area(opacity=0.12 if dash else 0.18).encode(y=alt.Y("ci_low:Q", scale=yscale), y2="ci_high:Q",
                                                                 color=color_by(df, color),
                                               **({"detail": detail[0]} if detail else {}))
    line = base.mark_line(point=not dash).encode(y=alt.Y("value:Q", title=y_title, scale=yscale),
                                                 color=color_by(df, color), tooltip=tooltip)
    has_ci = bool(df[["ci_low", "ci_high"]].notna().all(axis=1).any())
    layers = alt.layer(band, line, *extra, data=df) if has_ci else alt.layer(line, *extra, data=df)
    if column or row:
        ncol = len(df[column].unique()) if column else 1
        facet: dict[str, Any] = {}
        if column:
            facet["column"] = alt.Column(f"{column}:N", title=None, sort=state_order(df[column]) if column == "state"
                                         else list(dict.fromkeys(df[column])))
        if row:
            facet["row"] = alt.Row(f"{row}:N", title=None, sort=list(dict.fromkeys(df[row])))
        own_y = independent_y if independent_y is not None else "metric" in (column, row)
        ch = layers.properties(width=min(width, panel_width(ncol, axis_each=own_y)),
                               height=height if not row else height * 2 // 3).facet(**facet)
        if own_y:
            ch = ch.resolve_scale(y="independent")
        return ch.properties(title=title)
    return layers.properties(width=width, height=height, title=title)
