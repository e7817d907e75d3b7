"""Altair charts of the result tables (the chart grammar); :mod:`layerwise.book.render` draws them offline.

Every chart function takes the tidy frames of ``docs/architecture.md`` ("Result tables") and returns an
``alt.Chart`` built from *aggregates* only (quantiles, means with CIs, binned counts, bounded samples),
never from raw rows, so the data embedded in a chart stays far below Altair's 5000-row limit
(``render.MAX_ROWS``).

Rendering lives in :mod:`layerwise.book.render` (offline HTML that loads the report's one Vega bundle file,
plus SVG). :func:`enable`, which the chapters call, and the renderer functions the benchmarks use
(:func:`mimebundle`, :func:`javascript_bundle`, :func:`reset_library`, :func:`chart_rows`,
:func:`to_svg`) are re-exported from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..core.schema import FIRST_TOKEN, pooling_noun
from ..core.errors import LayerwiseError
from .render import chart_rows, enable, javascript_bundle, mimebundle, reset_library, to_svg  # noqa: F401
from ..core.schema import QUANTILES, STATES, state_order
from ..core.schema import label as schema_label
from .chart_kit import (AXIS_PX, BOOK_COLUMN, GAP_PX, HEIGHT, PAD_PX, STATE_COLORS, TEXT_WIDTH,  # noqa: F401
                        WIDTH, color_by, layer_axis, metric_rows, need_columns, panel_width)
from .charts_classes import CLASS_COLORS, bounded, centroid_scatter, class_cones  # noqa: F401  (re-exported)
from .charts_seeds import (MIN_SEEDS_FOR_BAND, NULL_NAME, SEEDS_NAME, between_seed_band, between_seed_values,  # noqa: F401
                           first_seed_note, seed_accuracy_scatter, seed_band, seed_band_frame, seed_count,
                           seed_histories, seed_points, similarity_floors)
from .chart_kit import seed_colors
from .charts_lines import add_depth, layer_lines, y_title_of  # noqa: F401  (re-exported)
from .charts_probes import mdl_lines, probe_lines, probe_lines_each  # noqa: F401  (re-exported)


# --------------------------------------------------------------------------------------------------
# aggregation (so that charts never carry raw rows)
# --------------------------------------------------------------------------------------------------

def quantiles_from_tidy(tidy: pd.DataFrame, prefix: str = "token_cosine", variant: str = "") -> pd.DataFrame:
    """Wide table of the precomputed quantiles ``<prefix>_q05 .. _q95<variant>`` (and ``_mean``) per
    model, state and layer: columns model, state, layer, q05, q25, q50, q75, q95[, mean]."""
    names = {f"{prefix}_{q}{variant}": q for q in QUANTILES}
    names[f"{prefix}_mean{variant}"] = "mean"
    df = metric_rows(tidy, list(names), "charts.quantiles_from_tidy")
    df["stat"] = df["metric"].map(names)
    wide = df.pivot_table(index=["model", "state", "layer"], columns="stat", values="value", aggfunc="first")
    missing = [q for q in QUANTILES if q not in wide.columns]
    if missing:
        raise LayerwiseError(f"quantile metric(s) {[f'{prefix}_{q}{variant}' for q in missing]} missing",
                             "charts.quantiles_from_tidy", "the geometry engine writes q05, q25, q50, q75, q95")
    return wide.reset_index().rename_axis(columns=None)


def quantiles_from_values(df: pd.DataFrame, value: str = "value",
                          by: Sequence[str] = ("model", "state", "layer")) -> pd.DataFrame:
    """Quantiles q05..q95, mean and n of ``value`` per group (e.g. per-sentence covariance traces)."""
    need_columns(df, [*by, value], "charts.quantiles_from_values")
    g = df.groupby(list(by), sort=True)[value]
    out = g.quantile(list(QUANTILES.values())).unstack()
    out.columns = list(QUANTILES)
    out["mean"] = g.mean()
    out["n"] = g.size()
    return out.reset_index()


def histogram(df: pd.DataFrame, value: str = "value", by: Sequence[str] = ("model", "state", "layer"),
              bins: int = 40, range_: tuple[float, float] | None = None) -> pd.DataFrame:
    """Binned densities of ``value`` per group (one row per group and bin: ``bin_start``, ``bin_end``,
    ``density``); the same bin edges for every group."""
    need_columns(df, [*by, value], "charts.histogram")
    v = df[value].to_numpy(dtype=float)
    lo, hi = range_ if range_ is not None else (float(np.nanmin(v)), float(np.nanmax(v)))
    if not hi > lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        counts, _ = np.histogram(g[value].to_numpy(dtype=float), bins=edges)
        total = counts.sum()
        dens = counts / (total * np.diff(edges)) if total else counts.astype(float)
        key = key if isinstance(key, tuple) else (key,)
        for i in range(bins):
            rows.append({**dict(zip(by, key)), "bin_start": edges[i], "bin_end": edges[i + 1],
                         "bin_mid": (edges[i] + edges[i + 1]) / 2, "density": float(dens[i])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# the charts
# --------------------------------------------------------------------------------------------------

def box_chart(q: pd.DataFrame, *, title: str, y_title: str, color: str = "state", column: str | None = None,
              width: int = WIDTH, height: int = HEIGHT) -> alt.Chart:
    """Box plots from precomputed quantiles: whisker rule q05..q95, box q25..q75, median tick; one box
    per layer and ``color`` value, side by side (``xOffset``)."""
    need_columns(q, ["layer", color, *QUANTILES], "charts.box_chart")
    sort = state_order(q[color]) if color == "state" else list(dict.fromkeys(q[color]))
    tooltip = [alt.Tooltip(f"{color}:N"), alt.Tooltip("layer:O")] + [
        alt.Tooltip(f"{c}:Q", format=".3f") for c in (*QUANTILES, *(["mean"] if "mean" in q.columns else []))]
    base = alt.Chart().encode(
        x=alt.X("layer:O", title="layer (0 = embeddings)", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset(f"{color}:N", sort=sort),
        tooltip=tooltip,
    )
    rule = base.mark_rule().encode(y=alt.Y("q05:Q", title=y_title), y2="q95:Q", color=color_by(q, color))
    box = base.mark_bar(opacity=0.85).encode(y="q25:Q", y2="q75:Q", color=color_by(q, color))
    tick = base.mark_tick(color="black", thickness=2).encode(y="q50:Q")
    layers = alt.layer(rule, box, tick, data=q)
    if column:
        cols = len(q[column].unique())
        return layers.properties(width=min(width, panel_width(cols)), height=height).facet(
            column=alt.Column(f"{column}:N", title=None)).properties(title=title)
    return layers.properties(width=width, height=height, title=title)


def token_cosine_boxes(tidy: pd.DataFrame, variant: str = "", *, title: str | None = None,
                       column: str | None = None) -> alt.Chart:
    """The original study's cosine analysis: per layer, the distribution of within-sentence pairwise
    token cosines (quantiles over every pair of every analysed sentence), states side by side.
    ``variant="_content"`` excludes special tokens."""
    q = quantiles_from_tidy(tidy, "token_cosine", variant)
    what = "content tokens" if variant == "_content" else "all tokens"
    return box_chart(q, title=title or f"Token cosine per layer ({what}): the original study's view",
                     y_title=schema_label("token_cosine"), column=column)


def per_sentence_boxes(per_sentence: pd.DataFrame, metric: str, *, title: str | None = None,
                       y_title: str | None = None, column: str | None = None) -> alt.Chart:
    """Box plots (quantiles computed here) of a per-sentence statistic per layer, states side by side:
    e.g. ``cov_trace`` (the original study's covariance analysis) or ``token_cosine_var``."""
    need_columns(per_sentence, ["model", "state", "layer", "metric", "value"], "charts.per_sentence_boxes")
    df = per_sentence[per_sentence["metric"] == metric]
    if df.empty:
        raise LayerwiseError(f"no per-sentence rows for metric {metric!r}", "charts.per_sentence_boxes",
                             f"choose among {sorted(per_sentence['metric'].unique())}")
    q = quantiles_from_values(df)
    return box_chart(q, title=title or f"{schema_label(metric)} per sentence", y_title=y_title or schema_label(metric),
                     column=column)


def cka_heatmap(cka: pd.DataFrame, pooling: str = FIRST_TOKEN, pairs: Sequence[tuple[str, str]] | None = None, *,
                model: str | None = None, title: str | None = None, size: int = 220) -> alt.Chart:
    """Linear CKA between the layers of two states (layer_a x layer_b), one panel per state pair, the
    pairs in the order of ``schema.STATES`` (pretrained vs finetuned first), the same layer axes in every
    panel. Layers where CKA is undefined everywhere (the first token at layer 0: the same vector for
    every sentence, so no variance) are left out and named in the subtitle."""
    need_columns(cka, ["model", "pooling", "state_a", "state_b", "layer_a", "layer_b", "value"], "charts.cka_heatmap")
    df = cka[cka["pooling"] == pooling]
    if model is not None:
        df = df[df["model"] == model]
    rank = {s: i for i, s in enumerate(state_order(pd.concat([df["state_a"], df["state_b"]])))}
    if pairs is None:
        pairs = [(a, b) for a, b in df[["state_a", "state_b"]].drop_duplicates().itertuples(index=False) if a != b]
        if not pairs:
            pairs = list(df[["state_a", "state_b"]].drop_duplicates().itertuples(index=False))
    pairs = sorted(pairs, key=lambda p: (rank.get(p[0], 99), rank.get(p[1], 99)))
    keep = pd.Series(False, index=df.index)
    for a, b in pairs:
        keep |= (df["state_a"] == a) & (df["state_b"] == b)
    df = df[keep].copy()
    if df.empty:
        raise LayerwiseError(f"no CKA rows for pooling {pooling!r} and pairs {list(pairs)}", "charts.cka_heatmap",
                             "check the states analysed (params analysis.states)")
    all_layers = sorted(set(df["layer_a"]) | set(df["layer_b"]))
    df = df[df["value"].notna()]
    layers = sorted(set(df["layer_a"]) | set(df["layer_b"]))
    dropped = [v for v in all_layers if v not in layers]
    df["pair"] = df["state_a"] + " vs " + df["state_b"]
    order = [f"{a} vs {b}" for a, b in pairs]
    df = df[["model", "pair", "layer_a", "layer_b", "value", "state_a", "state_b"]].reset_index(drop=True)
    side = min(size, panel_width(len(order), left=AXIS_PX + 20))
    rect = alt.Chart().mark_rect().encode(
        x=alt.X("layer_b:O", title="layer (second state)", axis=alt.Axis(labelAngle=0), scale=alt.Scale(domain=layers)),
        y=alt.Y("layer_a:O", title="layer (first state)", scale=alt.Scale(domain=layers[::-1])),
        color=alt.Color("value:Q", title=schema_label(f"cka_{pooling}_vs_pretrained"), scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["pair:N", "layer_a:O", "layer_b:O", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=side, height=side)
    what = pooling_noun(pooling)
    note = (f"layer {', '.join(map(str, dropped))} left out: CKA undefined (the same vector for every sentence)"
            if dropped else "")
    return alt.layer(rect, data=df).facet(column=alt.Column("pair:N", title=None, sort=order)).properties(
        title=alt.Title(title or f"Linear CKA between states, layer by layer ({what})", subtitle=note))


def original_grid(tidy: pd.DataFrame, layers: Sequence[int], metric: str = "probe_acc_cls", *,
              rows: Sequence[str] = ("state",), title: str | None = None) -> alt.Chart:
    """The original study's states x layers grid: a heat map of ``metric`` (probe accuracy on the first
    token) at the chosen layers, the value printed in each cell."""
    df = metric_rows(tidy, [metric], "charts.original_grid")
    df = df[df["layer"].isin([int(v) for v in layers])].copy()
    if df.empty:
        raise LayerwiseError(f"no {metric} rows at layers {list(layers)}", "charts.original_grid",
                             "choose layers the model has (0..L)")
    df["row"] = df[list(rows)].astype(str).agg(" · ".join, axis=1)
    order = sorted(df["row"].unique(), key=lambda r: [state_order(df["state"]).index(p) if p in STATES else 0
                                                      for p in r.split(" · ")] + [r])
    df = df[["row", "layer", "value", *[c for c in ("ci_low", "ci_high") if c in df.columns]]].reset_index(drop=True)
    base = alt.Chart().encode(x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
                              y=alt.Y("row:N", title=None, sort=order))
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", title=schema_label(metric, suffix_words=False), scale=alt.Scale(scheme="blues"),
                        legend=alt.Legend(gradientLength=max(28 * len(order), 60))),
        tooltip=["row:N", "layer:O", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
                 alt.Tooltip("ci_high:Q", format=".3f")])
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text("value:Q", format=".3f"),
        color=alt.condition(alt.datum.value > df["value"].median(), alt.value("white"), alt.value("black")))
    return alt.layer(rect, text, data=df).properties(
        width=max(60 * len(df["layer"].unique()), 240), height=max(28 * len(order), 60),
        title=title or "Probe accuracy on the first token, states x layers: the original study's view")


def _pick_layer(df: pd.DataFrame, layer: int | None) -> int:
    """The requested layer, or the table's last layer."""
    return int(df["layer"].max()) if layer is None else int(layer)


def rogue_dims(rogue: pd.DataFrame, layer: int | None = None, top: int = 10, *, title: str | None = None,
               seeds: Sequence[int] | None = None) -> alt.Chart:
    """Rogue dimensions: the share of the expected random-pair cosine carried by each of the top
    dimensions at one layer, one panel per state. The table holds the first fine-tuning seed's
    dimensions (``seeds.first_seed``): with the study's ``seeds`` the subtitle says which seed."""
    need_columns(rogue, ["state", "layer", "dim", "contribution"], "charts.rogue_dims")
    layer = _pick_layer(rogue, layer)
    df = rogue[rogue["layer"] == layer].copy()
    if "share" not in df.columns:
        df["share"] = df["contribution"] / df.groupby("state")["contribution"].transform("sum")
    if "rank" not in df.columns:
        df["rank"] = df.groupby("state")["contribution"].rank(ascending=False, method="first")
    df = df[df["rank"] <= top][["state", "dim", "rank", "contribution", "share"]].reset_index(drop=True)
    df["dim"] = df["dim"].astype(str)
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("dim:N", sort=alt.EncodingSortField("rank"), title="dimension (by rank)"),
        y=alt.Y("share:Q", title="share of the expected cosine", axis=alt.Axis(format="%")),
        color=color_by(df, "state"),
        tooltip=["state:N", "dim:N", "rank:Q", alt.Tooltip("share:Q", format=".1%"),
                 alt.Tooltip("contribution:Q", format=".4g")],
    ).properties(width=panel_width(df["state"].nunique()), height=HEIGHT * 3 // 4)
    note = first_seed_note(seeds, "(the dimensions of different runs do not match; the top-3 share averages "
                                  "every seed)") if "finetuned" in set(df["state"]) else []
    return alt.layer(bars, data=df).facet(column=alt.Column("state:N", sort=state_order(df["state"]), title=None)
                                           ).resolve_scale(x="independent").properties(
        title=alt.TitleParams(title or f"Rogue dimensions at layer {layer}: top {top} contributions", subtitle=note or alt.Undefined))


def cosine_histograms(cosine_sample: pd.DataFrame, layers: Sequence[int] | None = None, bins: int = 40, *,
                      title: str | None = None, seeds: Sequence[int] | None = None) -> alt.Chart:
    """Distribution of the bounded sample of within-sentence pairwise cosines at a few layers (binned
    densities, one step line per state). The sample is the first fine-tuning seed's
    (``seeds.first_seed``): with the study's ``seeds`` the subtitle says which seed."""
    need_columns(cosine_sample, ["model", "state", "layer", "value"], "charts.cosine_histograms")
    all_layers = sorted(cosine_sample["layer"].unique())
    if layers is None:
        layers = sorted({all_layers[0], all_layers[len(all_layers) // 2], all_layers[-1]})
    df = cosine_sample[cosine_sample["layer"].isin(list(layers))]
    h = histogram(df, bins=bins, range_=(-1.0, 1.0) if df["value"].min() < 0 else (0.0, 1.0))
    h = h.drop(columns=["model"])
    ch = alt.Chart().mark_line(interpolate="step-after").encode(
        x=alt.X("bin_start:Q", title=schema_label("token_cosine")),
        y=alt.Y("density:Q", title="density"),
        color=color_by(h, "state"),
        tooltip=["state:N", "layer:O", alt.Tooltip("bin_mid:Q", format=".2f"), alt.Tooltip("density:Q", format=".3f")],
    ).properties(width=panel_width(len(layers)), height=HEIGHT * 2 // 3)
    note = first_seed_note(seeds, "(the sample of pairs is kept for that seed only)") if "finetuned" in set(h["state"]) else []
    return alt.layer(ch, data=h).facet(column=alt.Column("layer:O", title="layer")).properties(
        title=alt.TitleParams(title or "Within-sentence token cosines (bounded sample)", subtitle=note or alt.Undefined))


def effect_heatmap(tidy: pd.DataFrame, state: str = "finetuned", *, marks: pd.DataFrame, key: str,
                   metrics: Mapping[str, str] | None = None, title: str | None = None) -> alt.Chart:
    """Effect of ``state`` against pretrained per layer and per-sentence metric: the mean paired
    difference (``effect_<metric>``), scaled per row, with each cell's mark from ``marks`` (columns
    ``metric``, ``layer``, ``mark``: :func:`layerwise.words.prose_outcomes.effect_marks`, the verdicts of
    :mod:`layerwise.words.claims`) and ``key`` saying what the marks mean. The chart draws the verdicts;
    it does not make them."""
    need_columns(tidy, ["state", "layer", "metric", "value"], "charts.effect_heatmap")
    need_columns(marks, ["metric", "layer", "mark"], "charts.effect_heatmap")
    eff = tidy[(tidy["state"] == state) & tidy["metric"].str.startswith("effect_")].copy()
    if eff.empty:
        raise LayerwiseError(f"no effect_* rows for state {state!r}", "charts.effect_heatmap",
                             "the tests compare each state with pretrained (layerwise probe)")
    eff["base"] = eff["metric"].str.removeprefix("effect_")
    if metrics is not None:
        eff = eff[eff["base"].isin(list(metrics))]
        eff["label"] = eff["base"].map(dict(metrics))
    else:
        eff["label"] = eff["base"].map(schema_label)           # the registry's short name, e.g. "covariance trace"
    p = tidy[(tidy["state"] == state) & tidy["metric"].str.startswith("test_p_holm_")].copy()
    p["base"] = p["metric"].str.removeprefix("test_p_holm_")
    eff = eff.merge(p[["base", "layer", "value"]].rename(columns={"value": "p_holm"}), on=["base", "layer"], how="left")
    # a signed, scale-free colour: the effect divided by the largest |effect| of its metric
    scale = eff.groupby("base")["value"].transform(lambda v: np.nanmax(np.abs(v)) or 1.0)
    eff["relative"] = eff["value"] / scale
    mark = {(m, int(layer)): str(s) for m, layer, s in zip(marks["metric"], marks["layer"], marks["mark"])}
    eff["star"] = [mark.get((b, int(layer)), "") for b, layer in zip(eff["base"], eff["layer"])]
    eff = eff[["label", "layer", "value", "relative", "p_holm", "star"]].reset_index(drop=True)
    rows = list(dict.fromkeys(eff["label"]))
    left = 6 * max(len(r) for r in rows) + 10                    # the row names, never cut (labelLimit 0)
    base = alt.Chart().encode(x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
                              y=alt.Y("label:N", title=None, sort=rows, axis=alt.Axis(labelLimit=0)))
    rect = base.mark_rect().encode(
        color=alt.Color("relative:Q", title="effect / max |effect| of the row", scale=alt.Scale(scheme="redblue", domain=[-1, 1],
                                                                                 reverse=True)),
        tooltip=["label:N", "layer:O", alt.Tooltip("value:Q", format=".4g", title="mean difference"),
                 alt.Tooltip("p_holm:Q", format=".3g", title="Holm p")])
    text = base.mark_text(fontSize=14, dy=4).encode(text="star:N")
    # the key on a subtitle line of its own: in the title it made the chart wider than the text column
    return alt.layer(rect, text, data=eff).properties(
        width=min(WIDTH, panel_width(1, left=left)), height=max(24 * len(rows), 60),
        title=alt.TitleParams(title or f"{state} minus pretrained", subtitle=key))


def finetune_curves(history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]], *,
                    key: str = "model", title: str | None = None, subtitle: str = "") -> alt.Chart:
    """Fine-tuning curves: training loss and evaluation loss (left), evaluation accuracy (right) against
    the optimisation step. ``history`` is the ``finetune["history"]`` list, or ``{name: history}`` where
    ``key`` says what the names are: ``"model"``, or ``"seed"`` (:func:`seed_histories`: one colour per
    seed, in shades of the fine-tuned orange, one dash per series)."""
    per_model = history if isinstance(history, Mapping) else {key: history}
    rows = []
    for model, hist in per_model.items():
        for rec in hist or []:
            for name, panel, series in (("loss", "loss", "training loss"), ("eval_loss", "loss", "evaluation loss"),
                                        ("eval_accuracy", "accuracy", "evaluation accuracy")):
                if name in rec and rec[name] is not None and "step" in rec:
                    rows.append({key: str(model), "step": int(rec["step"]),
                                 "epoch": float(rec.get("epoch", np.nan)),
                                 "panel": panel, "series": series, "value": float(rec[name])})
    if not rows:
        raise LayerwiseError("the fine-tuning history is empty", "charts.finetune_curves",
                             "fine-tune with logging (the finetune step records history.json)")
    df = pd.DataFrame(rows)
    color = key if len(per_model) > 1 or key == "seed" else "series"
    names = list(dict.fromkeys(df[color]))
    scale = (alt.Scale(range=["#1b9e77", "#7570b3", "#e7298a"]) if color == "series"      # not the states' colours
             else alt.Scale(domain=names, range=seed_colors(len(names))) if key == "seed" else alt.Undefined)
    enc: dict[str, Any] = {"color": alt.Color(f"{color}:N", title=color, scale=scale, sort=names)}
    if color != "series":
        enc["strokeDash"] = alt.StrokeDash("series:N", title="series", legend=alt.Legend(
            symbolType="stroke", symbolStrokeColor="black"))
    ch = alt.Chart().mark_line(point=True).encode(
        x=alt.X("step:Q", title="optimisation step"), y=alt.Y("value:Q", title=None),
        tooltip=[f"{key}:N", "series:N", "step:Q", alt.Tooltip("epoch:Q", format=".2f"),
                 alt.Tooltip("value:Q", format=".4f")], **enc,
    ).properties(width=panel_width(2, axis_each=True), height=HEIGHT * 3 // 4)
    return alt.layer(ch, data=df).facet(column=alt.Column("panel:N", title=None, sort=["loss", "accuracy"])
                                         ).resolve_scale(y="independent").properties(
        title=alt.TitleParams(title or "Fine-tuning: loss and accuracy during training", subtitle=subtitle or alt.Undefined))


def seed_curves(finetune: Mapping[str, Any], *, title: str | None = None) -> alt.Chart:
    """The fine-tuning curves of every fine-tuning seed (:func:`seed_histories`), one colour per seed; a
    study that kept only the first seed's history says so in the subtitle."""
    histories = seed_histories(dict(finetune))
    runs = len(finetune.get("seeds") or {}) or 1
    note = "" if len(histories) >= runs else (
        f"{', '.join(histories)} only, the first of {runs} fine-tuning seeds (this study kept its history only)")
    what = f" ({len(histories)} fine-tuning seeds)" if len(histories) > 1 else \
        "".join(f" ({k})" for k in histories if k.startswith("seed "))
    return finetune_curves(histories, key="seed", subtitle=note,
                           title=title or f"Fine-tuning: loss and accuracy during training{what}")
