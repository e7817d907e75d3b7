"""Charts of the floors (re-exported by :mod:`layerwise.book.charts`): the band of the fine-tuned state over
its fine-tuning seeds beside the pretrained line, and the same-layer similarity with its chance band and
its seed-to-seed band."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..core.schema import FIRST_TOKEN, POOLINGS, pooling_noun, pooling_of
from ..core.errors import LayerwiseError
from ..core.schema import STATES, lookup, state_order
from ..core.schema import label as schema_label
from ..core.schema import unit as schema_unit
from .chart_kit import HEIGHT, STATE_COLORS, WIDTH, color_by, layer_axis, metric_rows, panel_width

WHERE = "charts.seed_band"
#: with fewer fine-tuning seeds than this, a chart draws each seed's value as a point instead of a min-max
#: band over the seeds (a band over two to four values suggests a spread it has not measured)
MIN_SEEDS_FOR_BAND = 5


def seed_count(tidy: pd.DataFrame, metrics: Sequence[str] | None = None, state: str = "finetuned") -> int:
    """The number of fine-tuning seeds with per-seed rows of ``metrics`` (all metrics: None) for ``state``."""
    if "seed" not in tidy.columns:
        return 0
    rows = tidy[tidy["seed"].notna() & (tidy["state"] == state)]
    if metrics is not None:
        rows = rows[rows["metric"].isin(list(metrics))]
    return int(rows["seed"].nunique())


def first_seed_note(seeds: Sequence[int] | None, why: str) -> list[str]:
    """The subtitle lines of a chart drawn from the first fine-tuning seed only (``seeds.first_seed``
    tables: the lowest seed): which seed, then ``why``; none with one seed (or none)."""
    seeds = sorted(int(s) for s in seeds or ())
    if len(seeds) < 2:
        return []
    return [f"fine-tuned: seed {seeds[0]} only, the first of {len(seeds)} fine-tuning seeds", why]


def seed_histories(finetune: dict) -> dict[str, list]:
    """``{"seed 42": history, ...}``: every fine-tuning seed's training history (``finetune["seeds"]``). A
    study written before the seeds kept theirs has only the first seed's (``finetune["history"]``), named
    after the seed whose cache key it has; empty without a history."""
    per_seed = finetune.get("seeds") or {}
    out = {f"seed {s}": list(m["history"]) for s, m in per_seed.items() if m.get("history")}
    if not out and finetune.get("history"):
        first = next((s for s, m in per_seed.items() if m.get("cache_key") == finetune.get("cache_key")), None)
        out = {f"seed {first}" if first is not None else "fine-tuned": list(finetune["history"])}
    return out


def seed_band_frame(tidy: pd.DataFrame, metric: str, reference: str = "pretrained", state: str = "finetuned",
                    band: str = "minmax") -> pd.DataFrame:
    """Per layer: ``value`` of the reference (aggregate rows) and of ``state`` (the mean over seeds), and
    for ``state`` the band ``low``..``high``: the min and max over the seeds (``band="minmax"``) or the
    seed-and-sentence CI of the mean (``band="ci"``); ``seeds`` = the number of seeds."""
    if band not in ("minmax", "ci"):
        raise LayerwiseError(f"unknown band {band!r}", WHERE, "use band='minmax' or band='ci'")
    rows = tidy[(tidy["metric"] == metric) & (tidy["layer"] >= 0) & tidy["state"].isin([reference, state])]
    if rows.empty:
        raise LayerwiseError(f"no rows for metric {metric!r}", WHERE, "pass Study.tidy_all and a computed metric")
    is_seed = rows["seed"].notna() if "seed" in rows.columns else pd.Series(False, index=rows.index)
    agg, per = rows[~is_seed].copy(), rows[is_seed]
    agg["low"], agg["high"] = agg["ci_low"], agg["ci_high"]
    agg["seeds"] = 1
    if len(per):
        stat = per.groupby(["model", "layer"])["value"].agg(["min", "max", "count"])
        sel = agg["state"] == state
        idx = pd.MultiIndex.from_frame(agg.loc[sel, ["model", "layer"]])
        agg.loc[sel, "seeds"] = stat["count"].reindex(idx).fillna(1).to_numpy()
        if band == "minmax":
            agg.loc[sel, "low"] = stat["min"].reindex(idx).to_numpy()
            agg.loc[sel, "high"] = stat["max"].reindex(idx).to_numpy()
    agg.loc[agg["state"] == reference, ["low", "high"]] = float("nan")
    return agg[["model", "state", "layer", "value", "low", "high", "seeds"]].reset_index(drop=True)


def seed_points(tidy: pd.DataFrame, metric: str, state: str = "finetuned") -> pd.DataFrame:
    """Each fine-tuning seed's value of ``metric`` per layer (``model``, ``state``, ``seed``, ``layer``,
    ``value``): the points that replace the band with fewer than :data:`MIN_SEEDS_FOR_BAND` seeds."""
    if "seed" not in tidy.columns:
        return pd.DataFrame(columns=["model", "state", "seed", "layer", "value"])
    rows = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] >= 0) & tidy["seed"].notna()
                & tidy["value"].notna()]
    return rows.assign(seed=rows["seed"].astype(int).astype(str))[
        ["model", "state", "seed", "layer", "value"]].reset_index(drop=True)


def seed_band(tidy: pd.DataFrame, metric: str, *, reference: str = "pretrained", state: str = "finetuned",
              band: str = "minmax", title: str | None = None, y_title: str | None = None) -> alt.Chart:
    """The fine-tuned state's mean over seeds with its seed-to-seed band (min-max over the seeds, or the
    CI over seeds and sentences with ``band="ci"``) beside the pretrained line. ``tidy``: aggregate and
    per-seed rows (``Study.tidy_all``); with one seed the band is that seed's sentence CI; with two to
    ``MIN_SEEDS_FOR_BAND - 1`` seeds (``band="minmax"``) each seed's value is a hollow point instead."""
    df = seed_band_frame(tidy, metric, reference, state, band)
    seeds = int(df["seeds"].max())
    points = seed_points(tidy, metric, state) if band == "minmax" and 1 < seeds < MIN_SEEDS_FOR_BAND else None
    what = ("each seed a point" if points is not None else
            "min-max over seeds" if band == "minmax" else "95 % CI over seeds and sentences")
    base = alt.Chart().encode(x=layer_axis(False), color=color_by(df, "state"))
    area = base.mark_area(opacity=0.25).encode(y=alt.Y("low:Q", title=y_title or schema_label(metric)), y2="high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title=y_title or schema_label(metric)),
        tooltip=["model:N", "state:N", "layer:O", alt.Tooltip("value:Q", format=".4g"),
                 alt.Tooltip("low:Q", format=".4g"), alt.Tooltip("high:Q", format=".4g"), "seeds:Q"])
    marks = [area, line]
    if points is not None:
        marks = [line, alt.Chart(points).mark_point(filled=False, size=45, strokeWidth=1.5).encode(
            x=layer_axis(False), y="value:Q", color=color_by(df, "state"),
            tooltip=["seed:N", "layer:O", alt.Tooltip("value:Q", format=".4g")])]
    return alt.layer(*marks, data=df).properties(
        width=WIDTH, height=HEIGHT,
        title=title or f"{schema_label(metric)}: {state} over {seeds} seed{'s' if seeds > 1 else ''} ({what}) and {reference}")


def between_seed_values(tidy: pd.DataFrame, pooling: str, measures) -> pd.DataFrame:
    """``model``, ``measure``, ``layer``, ``value``: the same-layer similarity of each pair of fine-tuning
    seeds (``<measure>_<pooling>_between_seeds``, per-seed rows only)."""
    names = {f"{m}_{pooling}_between_seeds": m for m in measures}
    rows = tidy[tidy["metric"].isin(list(names)) & (tidy["layer"] >= 0)]
    # (only the per-seed rows: the aggregate view holds the mean over pairs, not their spread)
    rows = rows[rows["seed"].notna() & rows["value"].notna()] if "seed" in rows.columns else rows.iloc[0:0]
    return rows.assign(measure=rows["metric"].map(names))[["model", "measure", "layer", "value"]].reset_index(drop=True)


def between_seed_band(tidy: pd.DataFrame, pooling: str, measures) -> pd.DataFrame:
    """``measure``, ``layer``, ``seeds_low``, ``seeds_high``: the min and max over pairs of seeds of the
    same-layer similarity between fine-tuning seeds (``<measure>_<pooling>_between_seeds``)."""
    return between_seed_values(tidy, pooling, measures).groupby(["model", "measure", "layer"])["value"].agg(
        seeds_low="min", seeds_high="max").reset_index()


def _floors_frame(tidy: pd.DataFrame, pooling: str, reference: str, measures: Sequence[str],
                  states: Sequence[str] | None) -> tuple[pd.DataFrame, str]:
    """The rows of :func:`similarity_floors`: per state, measure and layer (``kind`` "state") the value,
    the null's mean and 95th percentile and the fine-tuned state's range over pairs of seeds
    (``seeds_low``..``seeds_high``); with two to ``MIN_SEEDS_FOR_BAND - 1`` seeds, one row per pair of
    seeds instead (``kind`` "pair", its value in ``pair``). Also the seed marks drawn: "band", "points", ""."""
    suffix = f"_{pooling}_vs_{reference}"
    names = {f"{m}{suffix}": (m, "value") for m in measures}
    names.update({f"{m}_null_{s}{suffix}": (m, f"null_{s}") for m in measures for s in ("mean", "q95")})
    df = metric_rows(tidy, list(names), "charts.similarity_floors")
    df = df[(df["layer"] >= 0) & (df["seed"].isna() if "seed" in df.columns else True)]
    if states is not None:
        df = df[df["state"].isin(list(states))]
    if df["state"].nunique() > 4:
        raise LayerwiseError(f"{df['state'].nunique()} states: at most 4 series per panel", "charts.similarity_floors",
                             "pass states=[...] (at most 4)")
    df["measure"] = df["metric"].map(lambda m: names[m][0])
    df["stat"] = df["metric"].map(lambda m: names[m][1])
    wide = df.pivot_table(index=["model", "state", "measure", "layer"], columns="stat", values="value",
                          aggfunc="first", dropna=False).reset_index().rename_axis(columns=None)
    for c in ("value", "null_mean", "null_q95"):
        if c not in wide.columns:
            wide[c] = np.nan
    wide = wide.assign(kind="state", pair=np.nan, seeds_low=np.nan, seeds_high=np.nan)
    pairs = between_seed_values(tidy, pooling, measures)          # the seed-to-seed similarity, with per-seed rows
    if pairs.empty:
        return wide, ""
    if seed_count(tidy, [f"{m}{suffix}" for m in measures]) < MIN_SEEDS_FOR_BAND:
        return pd.concat([wide, pairs.rename(columns={"value": "pair"}).assign(state="finetuned", kind="pair")],
                         ignore_index=True), "points"
    band = between_seed_band(tidy, pooling, measures).assign(state="finetuned")
    wide = wide.drop(columns=["seeds_low", "seeds_high"]).merge(band, how="left", on=["model", "state", "measure", "layer"])
    return wide, "band"


#: legend names of the similarity chart's references: the permutation null's band, the seed-to-seed similarity
NULL_NAME, SEEDS_NAME = "permutation null (mean to 95th pct.)", "between seeds"
#: their colours: a visible neutral grey band, a dark purple (not a state's colour: not read as a state's CI)
NULL_COLOR, SEEDS_COLOR = "#bdbdbd", "#6a3d9a"


def _floors_long(wide: pd.DataFrame) -> pd.DataFrame:
    """:func:`_floors_frame`'s rows with ``series`` (the legend entry) and ``kind``: the states' lines, one null
    band per measure and layer (from the lowest null mean to the highest 95th percentile over the states)
    and the seed-to-seed band or points."""
    states = wide[wide["kind"] == "state"]
    null = states.groupby(["model", "measure", "layer"]).agg(low=("null_mean", "min"), high=("null_q95", "max")).reset_index()
    parts = [states.assign(series=states["state"]), null.assign(kind="null", series=NULL_NAME)]
    if "seeds_low" in wide and wide["seeds_low"].notna().any():
        band = states[states["seeds_low"].notna()]
        parts.append(band.assign(kind="seeds", series=SEEDS_NAME, low=band["seeds_low"], high=band["seeds_high"]))
    pairs = wide[wide["kind"] == "pair"]
    if len(pairs):
        parts.append(pairs.assign(series=SEEDS_NAME))
    out = pd.concat(parts, ignore_index=True)
    return out[[c for c in ("model", "state", "measure", "layer", "kind", "series", "value", "low", "high", "pair",
                            "null_mean", "null_q95") if c in out.columns]]


def similarity_floors(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, reference: str = "pretrained",
                      measures: Sequence[str] = ("cka", "cka_debiased", "procrustes", "mutual_knn"), *,
                      states: Sequence[str] | None = None, title: str | None = None) -> alt.Chart:
    """Same-layer similarity of each state with ``reference`` per layer (one panel per measure, named by its
    registry short name, at most 4 states per panel), with the permutation null as a grey band (from the
    null mean ``<measure>_null_mean_...`` to its 95th percentile ``<measure>_null_q95_...``, over the states)
    in the legend. With per-seed rows (``Study.tidy_all``) the similarity between fine-tuning seeds
    (``<measure>_<pooling>_between_seeds``) is drawn in a colour of its own, named "between seeds": each
    pair of seeds a hollow point with fewer than :data:`MIN_SEEDS_FOR_BAND` seeds, else the band from its
    min to its max over the pairs."""
    wide, _ = _floors_frame(tidy, pooling, reference, measures, states)
    data = _floors_long(wide)
    order = [m for m in measures if m in set(data["measure"])]
    names = {m: schema_label(f"{m}_{pooling}_vs_{reference}", suffix_words=False) for m in order}
    data["measure"] = data["measure"].map(names)
    domain = [*[s for s in state_order(data["state"].dropna()) if s in set(data["series"])], SEEDS_NAME, NULL_NAME]
    domain = [d for d in domain if d in set(data["series"])]
    palette = dict(zip(STATES, STATE_COLORS)) | {SEEDS_NAME: SEEDS_COLOR, NULL_NAME: NULL_COLOR}
    colour = alt.Color("series:N", title=None, scale=alt.Scale(domain=domain, range=[palette.get(d, "#54a24b") for d in domain]),
                       legend=alt.Legend(symbolOpacity=1, symbolType="circle"))
    base = alt.Chart().encode(x=layer_axis(False), color=colour)
    null = base.transform_filter(alt.datum.kind == "null").mark_area(opacity=0.6).encode(
        y=alt.Y("low:Q", title=schema_unit(f"cka_debiased_{pooling}_vs_{reference}")), y2="high:Q",
        tooltip=["measure:N", "layer:O", alt.Tooltip("low:Q", format=".3f", title="null mean"),
                 alt.Tooltip("high:Q", format=".3f", title="null 95th percentile")])
    kinds = set(data["kind"])
    seeds = [base.transform_filter(alt.datum.kind == "seeds").mark_area(opacity=0.3).encode(y="low:Q", y2="high:Q")
             ] if "seeds" in kinds else [
             base.transform_filter(alt.datum.kind == "pair").mark_point(filled=False, size=40, strokeWidth=1.5).encode(
                 y="pair:Q", tooltip=["measure:N", "layer:O", alt.Tooltip("pair:Q", format=".3f", title="between two seeds")])
             ] if "pair" in kinds else []
    line = base.transform_filter(alt.datum.kind == "state").mark_line(point=True).encode(
        y="value:Q", tooltip=["state:N", "measure:N", "layer:O", alt.Tooltip("value:Q", format=".3f")])
    cols = min(2, len(order))                       # 2 x 2 panels: each wide enough to read, within the text column
    what = pooling_noun(pooling)
    return alt.layer(null, *seeds, line, data=data).properties(
        width=panel_width(cols, axis_each=True), height=HEIGHT * 2 // 3).facet(
        facet=alt.Facet("measure:N", title=None, sort=[names[m] for m in order]), columns=cols).resolve_scale(
        y="independent").properties(title=title or f"Similarity with {reference}, same layer ({what})")


def seed_accuracy_frame(tidy: pd.DataFrame, finetune: dict, metric: str = f"cka_debiased_{FIRST_TOKEN}_vs_pretrained",
                        state: str = "finetuned") -> pd.DataFrame:
    """One row per (fine-tuning seed, layer >= 1): the seed's test ``accuracy`` (``finetune["seeds"]``; one
    run: ``finetune["accuracy"]``) and its ``value`` of ``metric`` at that layer (per-seed rows of
    ``Study.tidy_all``; one run: the aggregate row)."""
    per_seed = {str(k): v for k, v in (finetune.get("seeds") or {}).items()} or {"run": finetune}
    rows = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] >= 1)]
    has_seed = "seed" in rows.columns and rows["seed"].notna().any()
    out = []
    for seed, m in per_seed.items():
        sel = rows[rows["seed"].astype("string") == seed] if has_seed else rows
        out += [{"seed": seed, "layer": int(r.layer), "accuracy": float(m.get("accuracy", np.nan)),
                 "value": float(r.value)} for r in sel.itertuples()]
    if not out:
        raise LayerwiseError(f"no per-seed {metric!r} rows with a fine-tuning accuracy", "charts.seed_accuracy_scatter",
                             "pass Study.tidy_all and Study.finetune of a study with a fine-tuned state")
    return pd.DataFrame(out)


#: the similarity the seed-accuracy scatter draws: the first of these the study has
SEED_ACCURACY_METRICS = (*(f"cka_debiased_{p}_vs_pretrained" for p in POOLINGS), *(f"cka_{p}_vs_pretrained" for p in POOLINGS))


def seed_accuracy_scatter(tidy: pd.DataFrame, finetune: dict, metric: str | None = None, *,
                          title: str | None = None) -> alt.Chart:
    """Each layer's change against each fine-tuning seed's accuracy (after Mosbach et al. 2021): one point
    per seed and layer, x the seed's test accuracy, y its ``metric`` (by default the debiased CKA with
    pretrained, else the first of :data:`SEED_ACCURACY_METRICS` the study has: lower = changed more),
    colour the layer, the seed written beside its last-layer point. A description: with a handful of
    seeds no test is made."""
    have = set(tidy.loc[(tidy["state"] == "finetuned") & tidy["value"].notna(), "metric"])
    metric = metric or next((m for m in SEED_ACCURACY_METRICS if m in have), SEED_ACCURACY_METRICS[0])
    df = seed_accuracy_frame(tidy, finetune, metric)
    name = schema_label(metric)
    if name == metric and metric.endswith("_vs_pretrained"):     # e.g. "debiased CKA with pretrained (first token)"
        name = f"{lookup(metric).label} with pretrained ({pooling_noun(pooling_of(metric) or metric)})"
    x = alt.X("accuracy:Q", title="the seed's test accuracy", scale=alt.Scale(zero=False))
    points = alt.Chart(df).mark_point(filled=True, size=60).encode(
        x=x, y=alt.Y("value:Q", title=name),
        color=alt.Color("layer:O", title="layer", scale=alt.Scale(scheme="viridis")),
        tooltip=["seed:N", "layer:O", alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("value:Q", format=".3f")])
    last = df[df["layer"] == df["layer"].max()]                      # the seed written once, at the last layer
    labels = alt.Chart(last).mark_text(dx=8, fontSize=10, align="left").encode(x=x, y="value:Q", text="seed:N")
    seeds = df["seed"].nunique()
    return alt.layer(points, labels).properties(
        width=WIDTH, height=HEIGHT,
        title=title or f"{name[:1].upper() + name[1:]} against each seed's accuracy ({seeds} seed{'s' if seeds > 1 else ''}, "
                       "no test)")
