"""Charts of the seed-to-seed floor (re-exported by :mod:`layerwise.charts`): the band of the fine-tuned
state over its fine-tuning seeds beside the pretrained line, and the seed-to-seed similarity band."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .errors import LayerwiseError

WHERE = "charts.seed_band"


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


def seed_band(tidy: pd.DataFrame, metric: str, *, reference: str = "pretrained", state: str = "finetuned",
              band: str = "minmax", title: str | None = None, y_title: str | None = None) -> alt.Chart:
    """The fine-tuned state's mean over seeds with its seed-to-seed band (min-max over the seeds, or the
    CI over seeds and sentences with ``band="ci"``) beside the pretrained line. ``tidy``: aggregate and
    per-seed rows (``Study.tidy_all``); with one seed the band is that seed's sentence CI."""
    from .charts import HEIGHT, WIDTH, _color, _x

    df = seed_band_frame(tidy, metric, reference, state, band)
    what = "min-max over seeds" if band == "minmax" else "95 % CI over seeds and sentences"
    base = alt.Chart().encode(x=_x(False), color=_color(df, "state"))
    area = base.mark_area(opacity=0.25).encode(y=alt.Y("low:Q", title=y_title or metric), y2="high:Q")
    line = base.mark_line(point=True).encode(
        y="value:Q", tooltip=["model:N", "state:N", "layer:O", alt.Tooltip("value:Q", format=".4g"),
                              alt.Tooltip("low:Q", format=".4g"), alt.Tooltip("high:Q", format=".4g"), "seeds:Q"])
    seeds = int(df["seeds"].max())
    return alt.layer(area, line, data=df).properties(
        width=WIDTH, height=HEIGHT,
        title=title or f"{metric}: {state} over {seeds} seed{'s' if seeds > 1 else ''} ({what}) and {reference}")


def between_seed_band(tidy: pd.DataFrame, pooling: str, measures) -> pd.DataFrame:
    """``measure``, ``layer``, ``seeds_low``, ``seeds_high``: the min and max over pairs of seeds of the
    same-layer similarity between fine-tuning seeds (``<measure>_<pooling>_between_seeds``)."""
    names = {f"{m}_{pooling}_between_seeds": m for m in measures}
    rows = tidy[tidy["metric"].isin(list(names)) & (tidy["layer"] >= 0)]
    # (only the per-seed rows: the aggregate view holds the mean over pairs, not their spread)
    rows = rows[rows["seed"].notna()] if "seed" in rows.columns else rows.iloc[0:0]
    out = rows.assign(measure=rows["metric"].map(names)).groupby(["model", "measure", "layer"])["value"].agg(
        seeds_low="min", seeds_high="max").reset_index()
    return out
