"""Charts of the class geometry (re-exported by :mod:`layerwise.book.charts`): the original study's cone view
and the reference-free centroid view, one panel per state (rows) and cone layer (columns: the first,
middle and last layers that ``probe_study`` computes), so a reader sees where the class cone forms."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..core.errors import LayerwiseError
from .render import MAX_ROWS
from ..core.schema import state_order
from .chart_kit import need_columns, panel_width
from ..words.prose_format import layer_span

#: Colours of the classes (distinct from the states')
CLASS_COLORS = ("#54a24b", "#b279a2", "#e45756", "#72b7b2")
#: Most layers one cone chart shows (columns), so that its panels fit the text column.
MAX_CONE_LAYERS = 3
#: A layer whose cosines span less than this in every state says nothing (every sentence's first token points
#: the same way: axes from 0.99999 to 1): the cone charts leave it out and name it in their subtitle.
FLAT_SPAN = 0.01


def _class_color(df: pd.DataFrame) -> alt.Color:
    """Colour by class name (column ``label``, named by :func:`_name_labels`), class palette."""
    names = list(dict.fromkeys(df.sort_values("label_id")["label"]))
    return alt.Color("label:N", title="class", scale=alt.Scale(domain=names, range=list(CLASS_COLORS[:len(names)])),
                     legend=alt.Legend(orient="bottom"))


def _name_labels(df: pd.DataFrame, labels: Sequence[str] | None) -> pd.DataFrame:
    """``label`` (class id) becomes the class name (``labels[id]``; the id when none), ``label_id`` keeps the id."""
    df = df.copy()
    df["label_id"] = df["label"].astype(int)
    df["label"] = [labels[i] if labels and 0 <= i < len(labels) else str(i) for i in df["label_id"]]
    return df


def bounded(df: pd.DataFrame, by: str | Sequence[str] = "state", max_rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows per ``by`` group (a seeded random subset, original order kept), so
    that point charts stay under the row limit whatever the number of test sentences."""
    parts = []
    for i, (_, g) in enumerate(df.groupby(by if isinstance(by, str) else list(by), sort=False)):
        if len(g) > max_rows:
            g = g.sample(n=max_rows, random_state=seed + i).sort_index()
        parts.append(g)
    return pd.concat(parts) if parts else df.copy()


def flat_layers(cones: pd.DataFrame, columns: Sequence[str]) -> list[int]:
    """The layers of a cone table where every state's values of every one of ``columns`` span less than
    :data:`FLAT_SPAN`."""
    span = cones.groupby(["layer", "state"])[list(columns)].agg(lambda v: float(v.max() - v.min()))
    flat = (span < FLAT_SPAN).all(axis=1).groupby(level="layer").all()
    return sorted(int(v) for v in flat[flat].index)


def shown_layers(cones: pd.DataFrame, layers: Sequence[int] | None = None,
                 columns: Sequence[str] = ()) -> tuple[list[int], list[int]]:
    """The layers a cone chart shows and the flat ones it leaves out: ``layers``, or the table's layers
    that are not flat in ``columns`` (:func:`flat_layers`; the last layer when all are), at most
    :data:`MAX_CONE_LAYERS` (the first, middle and last of them); a LayerwiseError for a layer the table lacks."""
    have = sorted(int(v) for v in cones["layer"].unique())
    left_out: list[int] = []
    if layers is None:
        left_out = flat_layers(cones, columns) if columns else []
        pool = [v for v in have if v not in left_out] or have[-1:]
        left_out = [v for v in left_out if v not in pool]
        layers = pool if len(pool) <= MAX_CONE_LAYERS else [pool[0], pool[len(pool) // 2], pool[-1]]
    layers = sorted({int(v) for v in ([layers] if isinstance(layers, (int, np.integer)) else layers)})
    missing = [v for v in layers if v not in have]
    if missing or not layers:
        raise LayerwiseError(f"no cone rows at layer(s) {missing or layers}", "charts.class_cones",
                             f"choose among layers {have}")
    return layers, left_out


def flat_note(left_out: Sequence[int]) -> list[str]:
    """The subtitle lines that name the layers a cone chart leaves out, and why."""
    if not left_out:
        return []
    return [f"{_layer_words(left_out)} left out: the cosines of every state span less than {FLAT_SPAN:g} there",
            "(the first token points the same way for every sentence)"]


def _cone_rows(cones: pd.DataFrame, layers: Sequence[int] | int | None, columns: Sequence[str], seed: int,
               labels: Sequence[str] | None) -> tuple[pd.DataFrame, list[int], list[str]]:
    """The rows of the chosen layers, at most ``MAX_ROWS`` in all (an equal seeded subset per state and
    layer), classes named; the shown layers and the subtitle naming the flat layers left out."""
    shown, left_out = shown_layers(cones, layers, columns)
    df = cones[cones["layer"].isin(shown)][["state", "layer", "sentence", "label", *columns]]
    groups = max(1, df[["state", "layer"]].drop_duplicates().shape[0])
    df = bounded(df, ["state", "layer"], max_rows=min(1500, (MAX_ROWS - 200) // groups), seed=seed)
    return _name_labels(df, labels).reset_index(drop=True), shown, flat_note(left_out)


def _facet(df: pd.DataFrame) -> dict:
    """Rows = states in the canonical order, columns = layers."""
    return {"row": alt.Row("state:N", title=None, sort=state_order(df["state"]),
                           header=alt.Header(labelOrient="left", labelAngle=0, labelAlign="left", labelPadding=40)),
            "column": alt.Column("layer:O", title="layer", header=alt.Header(labelOrient="top"))}


def _layer_words(shown: Sequence[int]) -> str:
    return layer_span(shown)


def class_cones(cones: pd.DataFrame, layers: Sequence[int] | int | None = None, *, seed: int = 0,
                title: str | None = None, labels: Sequence[str] | None = None) -> alt.Chart:
    """The original study's cone view: cosine of every test sentence's first-token embedding to one
    reference sentence, coloured by class, one panel per state (rows) and layer (columns: the table's
    first, middle and last cone layers), deterministic jitter; a bounded seeded subset of sentences."""
    need_columns(cones, ["model", "state", "layer", "sentence", "label", "cos_ref"], "charts.class_cones")
    df, shown, note = _cone_rows(cones, layers, ["cos_ref"], seed, labels)
    df["jitter"] = np.random.default_rng(seed).uniform(-0.4, 0.4, len(df))
    ch = alt.Chart().mark_circle(size=14, opacity=0.6).encode(
        # a short axis title and 3 ticks: each panel's own x axis is no wider than the panel (a wider
        # title or label widens every panel's cell, and the chart past the text column)
        x=alt.X("cos_ref:Q", title="cosine to reference", scale=alt.Scale(zero=False),
                axis=alt.Axis(tickCount=3, labelFlush=True)),
        y=alt.Y("label:N", title=None),
        yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.5, 0.5])),
        color=_class_color(df),
        tooltip=["state:N", "layer:O", "sentence:Q", "label:N", alt.Tooltip("cos_ref:Q", format=".3f")],
    ).properties(width=min(360, panel_width(len(shown), left=160, axis_each=False) - 10), height=80)
    return alt.layer(ch, data=df).facet(**_facet(df)).resolve_scale(x="independent").properties(
        title=alt.TitleParams(title or f"Class cones at {_layer_words(shown)}: the original study's view",
                              subtitle=note or alt.Undefined))


def centroid_scatter(cones: pd.DataFrame, layers: Sequence[int] | int | None = None, *, title: str | None = None,
                     labels: Sequence[str] | None = None, seed: int = 0) -> alt.Chart:
    """Reference-free class geometry: each test sentence's cosine to its own class centroid (x) and to
    the other class's centroid (y), coloured by class, one panel per state (rows) and layer (columns).
    Points below the diagonal are closer to their own class."""
    need_columns(cones, ["state", "layer", "label", "cos_own_centroid", "cos_other_centroid"], "charts.centroid_scatter")
    df, shown, note = _cone_rows(cones, layers, ["cos_own_centroid", "cos_other_centroid"], seed, labels)
    cols = ["cos_own_centroid", "cos_other_centroid"]
    ends = df.groupby(["state", "layer"])[cols].agg(["min", "max"])      # the diagonal, per panel
    diag = pd.DataFrame([{"state": st, "layer": ly, "label": "", "kind": "diagonal", "cos_own_centroid": v,
                          "cos_other_centroid": v} for (st, ly), r in ends.iterrows()
                         for v in (min(r[(c, "min")] for c in cols), max(r[(c, "max")] for c in cols))])
    df = pd.concat([df.assign(kind="point"), diag], ignore_index=True)
    scale = alt.Scale(zero=False, nice=False)
    line = alt.Chart().mark_line(color="gray", strokeDash=[4, 4]).encode(
        x=alt.X("cos_own_centroid:Q", scale=scale), y=alt.Y("cos_other_centroid:Q", scale=scale)
    ).transform_filter(alt.datum.kind == "diagonal")
    pts = alt.Chart().mark_circle(size=14, opacity=0.6).encode(
        x=alt.X("cos_own_centroid:Q", title="cosine to own centroid", scale=scale,
                axis=alt.Axis(tickCount=3)),
        y=alt.Y("cos_other_centroid:Q", title="cosine to other centroid", scale=scale, axis=alt.Axis(tickCount=3)),
        color=_class_color(df[df["kind"] == "point"]),
        tooltip=["state:N", "layer:O", "sentence:Q", "label:N", alt.Tooltip("cos_own_centroid:Q", format=".4f"),
                 alt.Tooltip("cos_other_centroid:Q", format=".4f")]).transform_filter(alt.datum.kind == "point")
    side = min(170, panel_width(len(shown), left=190, axis_each=True))
    return alt.layer(line, pts, data=df).properties(width=side, height=side).facet(**_facet(df)).resolve_scale(
        x="independent", y="independent").properties(
        title=alt.TitleParams(title or f"Reference-free class geometry at {_layer_words(shown)}",
                              subtitle=note or alt.Undefined))
