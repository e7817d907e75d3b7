"""Probe charts (re-exported by :mod:`layerwise.book.charts`), one message per panel: the probes of the task
with their CIs in the top row, the control task (Hewitt & Liang 2019) in a row of its own, one column per
state; chance, the majority class and the lexical baseline are rules named on the chart, not bands. The MDL
charts carry a rule at 1 (no shorter than the uniform code)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..core.schema import FIRST_TOKEN, pooling_noun
from ..core.schema import label as schema_label
from ..core.schema import state_order
from .charts_lines import layer_lines
from .chart_kit import AXIS_PX, HEIGHT, WIDTH, color_by, layer_axis, metric_rows, panel_width, reference_rules

#: the rows of a probe chart: the task's probes, then the control task
TASK_ROW, CONTROL_ROW = "task", "control task"
#: colour of the control task's line (not a state's, not a probe's)
CONTROL_COLOR = "#7570b3"
#: the label of the MDL chart's rule at 1
MDL_RULE = "1 = no shorter than the uniform code"


def _probe_frame(tidy: pd.DataFrame, pooling: str, include_mlp: bool, relative_depth: bool) -> pd.DataFrame:
    """The lines of :func:`probe_lines`: ``row`` (task or control), ``measure`` (registry short name),
    model, state, layer (or depth), value and CI."""
    present = set(tidy["metric"])
    metrics = [m for m in (f"probe_acc_{pooling}", *([f"mlp_probe_acc_{pooling}"] if include_mlp else []),
                           f"control_acc_{pooling}") if m in present]
    df = metric_rows(tidy, metrics, "charts.probe_lines")
    df = df[df["layer"] >= 0].copy()
    df["row"] = np.where(df["metric"].str.startswith("control_acc"), CONTROL_ROW, TASK_ROW)
    df["measure"] = df["metric"].map(lambda m: schema_label(m, suffix_words=False))
    for c in ("ci_low", "ci_high"):
        if c not in df.columns:
            df[c] = np.nan
    if relative_depth:
        last = df.groupby("model")["layer"].transform("max")
        df["depth"] = df["layer"] / last.where(last > 0, 1)
    keep = ["row", "measure", "model", "state", "layer", *(["depth"] if relative_depth else []), "value", "ci_low", "ci_high"]
    return df[keep].reset_index(drop=True)


def _probe_rules(tidy: pd.DataFrame, pooling: str, baseline: float | None, lexical: bool,
                 states: Sequence[str], x_start: float, x_end: float) -> pd.DataFrame:
    """The reference rules of :func:`probe_lines`, one row per rule, state and row: chance (the permuted-label
    probe, its mean over layers) in both rows; the majority class and the lexical baseline (one model only)
    in the task row. ``x``/``align``/``dy``: where the rule's name is written."""
    one_model = tidy["model"].nunique() == 1
    chance = tidy[(tidy["metric"] == f"probe_chance_acc_{pooling}") & (tidy["layer"] >= 0)]
    lex = tidy.loc[tidy["metric"] == "lexical_probe_acc", "value"]
    rows = []
    for state in states:
        per_state = chance.loc[chance["state"] == state, "value"]
        if len(per_state):
            rows += [("chance (permuted labels)", float(per_state.mean()), row, state, "dotted", x_start, "left", 11)
                     for row in (TASK_ROW, CONTROL_ROW)]
        if baseline is not None and one_model:
            rows.append(("majority class", float(baseline), TASK_ROW, state, "dashed", x_end, "right", -5))
        if lexical and one_model and not lex.empty:
            rows.append(("lexical baseline", float(lex.iloc[0]), TASK_ROW, state, "solid", x_start, "left", -5))
    return pd.DataFrame(rows, columns=["rule", "baseline", "row", "state", "style", "x", "align", "dy"])


def probe_lines(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, *, color: str = "metric",
                baseline: float | None = None, include_mlp: bool = True, relative_depth: bool = False,
                column: str | None = "state", title: str | None = None, lexical: bool = True) -> alt.Chart:
    """Probe test accuracy per layer with its 95% CI band, one column per state: the top row holds the
    probes of the task (linear and, when present and ``include_mlp``, MLP: one colour each; several models:
    ``color="model"``), the bottom row the control task; chance (the permuted-label probe's mean over layers)
    is a dotted rule in both rows, the majority class (``baseline``, dashed) and the lexical baseline (solid,
    ``lexical``) rules in the top row (one model only), each named on the chart. ``column`` is kept for
    callers: the columns are always the states."""
    df = _probe_frame(tidy, pooling, include_mlp, relative_depth)
    field = "model" if color == "model" else "measure"
    df["series"] = df[field] if field == "model" else df["measure"]
    x_field = "depth" if relative_depth else "layer"
    x_start, x_end = float(df[x_field].min()), float(df[x_field].max())
    states = state_order(df["state"])
    rules = _probe_rules(tidy, pooling, baseline, lexical, states, x_start, x_end)
    data = pd.concat([df.assign(kind="line"), rules.assign(kind="rule")], ignore_index=True)
    palette = dict(zip(list(dict.fromkeys(df.loc[df["row"] == TASK_ROW, "series"])), ["#1b9e77", "#e7298a", "#66a61e", "#a6761d"]))
    if field == "measure":
        palette.update({m: CONTROL_COLOR for m in df.loc[df["row"] == CONTROL_ROW, "measure"]})
        scale = alt.Scale(domain=list(palette), range=list(palette.values()))
        colour = alt.Color("series:N", title="measure", scale=scale, legend=alt.Legend(symbolOpacity=1, symbolType="circle"))
    else:
        colour = color_by(df, "model")
        colour.shorthand = "series:N"
    x = layer_axis(relative_depth)
    lines = alt.Chart().encode(x=x, color=colour).transform_filter(alt.datum.kind == "line")
    band = lines.mark_area(opacity=0.15).encode(y=alt.Y("ci_low:Q"), y2="ci_high:Q", detail="series:N")
    line = lines.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="test accuracy", scale=alt.Scale(zero=False)),
        tooltip=["measure:N", "model:N", "state:N", "layer:O", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f")])
    rule_base = alt.Chart().transform_filter(alt.datum.kind == "rule")
    dash = alt.StrokeDash("style:N", legend=None, scale=alt.Scale(domain=["solid", "dashed", "dotted"],
                                                                   range=[[1, 0], [6, 3], [2, 2]]))
    rule = rule_base.mark_rule(color="#333", strokeWidth=1.2).encode(
        y="baseline:Q", strokeDash=dash, tooltip=["rule:N", alt.Tooltip("baseline:Q", format=".3f")])
    names = [rule_base.transform_filter(alt.datum.align == a).mark_text(align=a, fontSize=10, color="#333", dy=dy).encode(
        x=alt.X("x:Q"), y="baseline:Q", text="rule:N").transform_filter(alt.datum.dy == dy)
             for a, dy in (("left", 11), ("left", -5), ("right", -5))]
    cols = len(states)
    what = pooling_noun(pooling)
    return alt.layer(band, line, rule, *names, data=data).properties(
        width=panel_width(cols, left=AXIS_PX + 24), height=HEIGHT * 5 // 8).facet(
        row=alt.Row("row:N", title=None, sort=[TASK_ROW, CONTROL_ROW], header=alt.Header(labelFontWeight="bold")),
        column=alt.Column("state:N", title=None, sort=states)).properties(
        title=title or f"Probe accuracy per layer ({what})")


def probe_lines_each(tidy: pd.DataFrame, poolings: Sequence[str], **kwargs) -> alt.Chart:
    """:func:`probe_lines` of each of ``poolings`` (a study's other poolings), stacked into one figure; a
    chart that says so when there is none."""
    if not poolings:
        return alt.Chart(pd.DataFrame({"text": ["the study has no other pooling"]})).mark_text().encode(text="text:N")
    charts = [probe_lines(tidy, p, **kwargs) for p in poolings]
    return charts[0] if len(charts) == 1 else alt.vconcat(*charts)


def mdl_lines(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, *, seen: bool = False, title: str | None = None,
              color: str = "state") -> alt.Chart:
    """MDL compression per layer with its interval (``mdl_compression_<pooling>``; with ``seen`` also the code
    on fine-tuning sentences, ``mdl_compression_seen_<pooling>``, one panel per state), and the rule at 1
    named on the chart: a compression of 1 is no shorter than the uniform code (the label is not readable)."""

    metrics = [f"mdl_compression_{pooling}", *([f"mdl_compression_seen_{pooling}"] if seen else [])]
    have = metric_rows(tidy, metrics, "charts.mdl_lines")
    x_field = "layer"
    x_end = float(have.loc[have["layer"] >= 0, x_field].max())
    rule = reference_rules([(MDL_RULE, 1.0, [4, 3], "#333")], x_field, x_end)
    what = pooling_noun(pooling)
    return layer_lines(tidy, metrics, title=title or (f"Memorisation check: MDL compression ({what})" if seen else
                                                      f"MDL compression of the label ({what})"),
                       dash="metric" if seen else None, color=color, extra=rule, width=WIDTH)
