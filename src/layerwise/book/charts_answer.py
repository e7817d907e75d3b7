"""The report's answer in one figure (its first page), after Merchant et al. 2020 ("What happens to BERT
embeddings during fine-tuning?"): left, how similar each layer stays to the pretrained model (debiased CKA,
one line per fine-tuning seed, the random-weights state, the permutation null's 95th percentile and the
seed-to-seed range); right, the probe accuracy per layer (pretrained, each fine-tuned seed, random) with the
lexical baseline and the majority class. :func:`summary_frames` gives the frames :func:`summary_figure` draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..core.schema import FIRST_TOKEN, pooling_noun
from ..core.schema import state_order
from .chart_kit import HEIGHT, STATE_COLORS, layer_axis, panel_width, reference_rules, seed_colors
from .charts_seeds import MIN_SEEDS_FOR_BAND, between_seed_band, between_seed_values

#: the names of the figure's parts (the ``series`` field of its data), besides "pretrained", "random" and
#: "seed <n>" (one per fine-tuning seed)
NULL, BETWEEN, LEXICAL, MAJORITY = "null 95th percentile", "between seeds", "lexical baseline", "majority class"
#: the fine-tuned line when the table has no per-seed rows and the seed is unknown
FINETUNED = "fine-tuned"
_BAND_COLOR, _NULL_COLOR = "#fdd0a2", "#555555"


@dataclass(frozen=True)
class SummaryFrames:
    """What the summary figure draws. ``similarity`` and ``probe``: ``series``, ``part`` ("line", "null",
    "band"), ``layer``, ``value``, ``low``, ``high`` (the band's range); ``rules``: ``series``, ``value``
    (lexical baseline, majority class); ``seeds``: the fine-tuned lines' names, one per seed drawn."""
    similarity: pd.DataFrame
    probe: pd.DataFrame
    rules: pd.DataFrame
    seeds: list[str] = field(default_factory=list)
    pooling: str = FIRST_TOKEN

    @property
    def series(self) -> list[str]:
        """Every series of the two panels, in the legend's order."""
        have = set(self.similarity["series"]) | set(self.probe["series"])
        order = [*state_order([s for s in have if s in ("pretrained", "random")])]
        order = [s for s in order if s == "pretrained"] + self.seeds + [s for s in order if s == "random"]
        return [s for s in order if s in have] + [s for s in (BETWEEN, NULL) if s in have]

    @property
    def note(self) -> str:
        """The figure's subtitle: how many seeds it draws and what the band and the dashed line are."""
        names = ", ".join(s.removeprefix("seed ") for s in self.seeds)
        if len(self.seeds) > 1:
            seeds = f"{len(self.seeds)} fine-tuning seeds ({names}), one line each"
            parts = set(self.similarity.loc[self.similarity["series"] == BETWEEN, "part"])
            seeds += (f"; band: {BETWEEN} (min to max over pairs)" if "band" in parts else
                      f"; hollow points: {BETWEEN} (one per pair of seeds)" if "points" in parts else "")
        else:
            seeds = f"one fine-tuning run ({names or 'seed unknown'}): seed variation not measured"
        return seeds + ("; dashed: the 95th percentile of the permutation null (chance level)" if NULL in set(self.similarity["series"]) else "")


def _tables(study_or_tables: Any) -> tuple[pd.DataFrame, list[int] | None, float | None]:
    """The tidy table (aggregate and per-seed rows), the study's seeds and its majority baseline."""
    if isinstance(study_or_tables, pd.DataFrame):
        tidy, seeds, majority = study_or_tables, None, None
    else:
        tidy = study_or_tables.tidy_all
        seeds = [int(s) for s in getattr(getattr(study_or_tables, "params", None), "finetune", None).seeds] \
            if getattr(study_or_tables, "params", None) is not None else None
        majority = (getattr(study_or_tables, "finetune", None) or {}).get("majority_baseline")
    if "seed" not in tidy.columns:
        tidy = tidy.assign(seed=pd.array([pd.NA] * len(tidy), dtype="Int64"))
    return tidy, seeds, majority


def _lines(tidy: pd.DataFrame, metric: str, seeds: list[int] | None) -> pd.DataFrame:
    """One line per state (aggregate rows), the fine-tuned state one line per seed (its per-seed rows; the
    aggregate row when there are none); layers with no value are left out."""
    rows = tidy[(tidy["metric"] == metric) & (tidy["layer"] >= 0) & tidy["value"].notna()]
    per_seed = rows[rows["seed"].notna() & (rows["state"] == "finetuned")]
    agg = rows[rows["seed"].isna() & ~((rows["state"] == "finetuned") & (len(per_seed) > 0))]
    one = f"seed {seeds[0]}" if seeds and len(seeds) == 1 else FINETUNED
    names = agg["state"].map(lambda s: one if s == "finetuned" else s)
    out = pd.concat([agg.assign(series=names),
                     per_seed.assign(series="seed " + per_seed["seed"].astype(int).astype(str))])
    return out.assign(part="line", low=np.nan, high=np.nan)[
        ["series", "state", "part", "layer", "value", "low", "high"]].reset_index(drop=True)


def _null_line(tidy: pd.DataFrame, pooling: str) -> pd.DataFrame:
    """The permutation null's 95th percentile per layer: the highest over the states' aggregate rows."""
    rows = tidy[(tidy["metric"] == f"cka_debiased_null_q95_{pooling}_vs_pretrained") & tidy["seed"].isna()
                & (tidy["layer"] >= 0) & tidy["value"].notna()]
    out = rows.groupby("layer", as_index=False)["value"].max()
    return out.assign(series=NULL, state="", part="null", low=np.nan, high=np.nan)


def _band(tidy: pd.DataFrame, pooling: str) -> pd.DataFrame:
    """The range over pairs of fine-tuning seeds of their same-layer similarity (per-seed rows only)."""
    band = between_seed_band(tidy, pooling, ["cka_debiased"]).dropna(subset=["seeds_low", "seeds_high"])
    band = band.rename(columns={"seeds_low": "low", "seeds_high": "high"})
    return band.assign(series=BETWEEN, state="finetuned", part="band", value=(band["low"] + band["high"]) / 2)


def _pair_points(tidy: pd.DataFrame, pooling: str) -> pd.DataFrame:
    """Each pair of fine-tuning seeds' same-layer similarity, one point each (fewer than
    ``MIN_SEEDS_FOR_BAND`` seeds: too few pairs for a band)."""
    pts = between_seed_values(tidy, pooling, ["cka_debiased"])
    return pts.assign(series=BETWEEN, state="finetuned", part="points", low=np.nan, high=np.nan)


def _rules(tidy: pd.DataFrame, majority: float | None) -> pd.DataFrame:
    """The lexical baseline and the majority class (one value each), when the study has them."""
    def first(metric: str) -> float | None:
        v = tidy.loc[(tidy["metric"] == metric) & tidy["value"].notna(), "value"]
        return float(v.iloc[0]) if len(v) else None
    values = {LEXICAL: first("lexical_probe_acc"), MAJORITY: first("probe_majority_baseline") or majority}
    return pd.DataFrame([{"series": k, "value": float(v)} for k, v in values.items() if v is not None],
                        columns=["series", "value"])


def _pooling(study_or_tables: Any, pooling: str | None) -> str:
    """``pooling``, else the study's primary pooling (``Study.primary_pooling``; the first token for a table)."""
    return pooling or getattr(study_or_tables, "primary_pooling", None) or FIRST_TOKEN


def summary_frames(study_or_tables: Any, pooling: str | None = None) -> SummaryFrames:
    """The frames of :func:`summary_figure`, from a ``Study`` (its ``tidy_all``, seeds and majority
    baseline) or a tidy table (aggregate rows, and per-seed rows with a ``seed`` column). A metric the
    study lacks leaves its series out; with fewer than two seeds there is no seed-to-seed floor, with fewer
    than ``MIN_SEEDS_FOR_BAND`` each pair of seeds is a point (part "points"), from that many on a band.
    ``pooling``: default the study's primary pooling."""
    pooling = _pooling(study_or_tables, pooling)
    tidy, seeds, majority = _tables(study_or_tables)
    cols = ["series", "state", "part", "layer", "value", "low", "high"]
    sim = _lines(tidy, f"cka_debiased_{pooling}_vs_pretrained", seeds)
    sim = sim[sim["state"] != "pretrained"]                      # (the pretrained model is the reference)
    probe = _lines(tidy, f"probe_acc_{pooling}", seeds)
    drawn = [s for s in dict.fromkeys([*sim["series"], *probe["series"]]) if s.startswith("seed ") or s == FINETUNED]
    drawn = sorted(drawn, key=lambda s: (not s.startswith("seed "), int(s[5:]) if s.startswith("seed ") else 0))
    k = len([s for s in drawn if s.startswith("seed ")])
    band = pd.DataFrame(columns=cols) if k < 2 else _band(tidy, pooling) if k >= MIN_SEEDS_FOR_BAND else \
        _pair_points(tidy, pooling)
    sim = pd.concat([sim, _null_line(tidy, pooling)[cols], band[cols] if len(band) else None], ignore_index=True)
    for df in (sim, probe):
        df["layer"] = df["layer"].astype(int)
    return SummaryFrames(sim[cols], probe[cols], _rules(tidy, majority), drawn, pooling)


def _color(frames: SummaryFrames) -> tuple[alt.Color, alt.StrokeDash]:
    """The shared colour (fixed state colours, the seeds in shades of the fine-tuned orange) and dash
    (the null dashed) of every series, one legend."""
    palette = {"pretrained": STATE_COLORS[0], "random": STATE_COLORS[2], BETWEEN: _BAND_COLOR, NULL: _NULL_COLOR,
               **dict(zip(frames.seeds, seed_colors(len(frames.seeds))))}
    domain = frames.series
    legend = alt.Legend(orient="bottom", direction="horizontal", columns=4, symbolType="stroke", symbolStrokeWidth=3,
                        symbolOpacity=1, title=None, labelLimit=0)
    color = alt.Color("series:N", scale=alt.Scale(domain=domain, range=[palette[s] for s in domain]), legend=legend,
                      sort=domain)
    dash = alt.StrokeDash("series:N", scale=alt.Scale(domain=domain, range=[[5, 3] if s == NULL else [1, 0]
                                                                             for s in domain]), legend=legend, sort=domain)
    return color, dash


def _panel(df: pd.DataFrame, frames: SummaryFrames, title: list[str], y_title: str, y_scale: alt.Scale,
           extra=()) -> alt.LayerChart:
    """One panel: its band (when any), lines and the extra layers (rules), layers on an integer axis."""
    color, dash = _color(frames)
    layers = [*frames.similarity["layer"], *frames.probe["layer"]]
    x = layer_axis(False)
    x.scale = alt.Scale(domain=[min(layers), max(layers)], nice=False) if layers else alt.Undefined
    base = alt.Chart().encode(x=x, color=color)
    marks = []
    if (df["part"] == "band").any():
        marks.append(base.transform_filter(alt.datum.part == "band").mark_area(opacity=0.7).encode(
            y=alt.Y("low:Q", title=y_title, scale=y_scale), y2="high:Q",
            tooltip=["series:N", "layer:O", alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f")]))
    if (df["part"] == "points").any():
        marks.append(base.transform_filter(alt.datum.part == "points").mark_point(filled=False, size=30).encode(
            y=alt.Y("value:Q", title=y_title, scale=y_scale),
            tooltip=["series:N", "layer:O", alt.Tooltip("value:Q", format=".3f")]))
    marks.append(base.transform_filter((alt.datum.part != "band") & (alt.datum.part != "points")).mark_line(
        point=alt.OverlayMarkDef(size=18), strokeWidth=1.8).encode(
        y=alt.Y("value:Q", title=y_title, scale=y_scale), strokeDash=dash,
        tooltip=["series:N", "layer:O", alt.Tooltip("value:Q", format=".3f")]))
    return alt.layer(*marks, *extra, data=df).properties(
        width=panel_width(2, axis_each=True), height=HEIGHT, title=alt.TitleParams(title, fontSize=12))


def summary_figure(study_or_tables: Any, pooling: str | None = None, *, title: str | None = None) -> alt.HConcatChart:
    """The page-1 figure (see the module doc): the similarity to the pretrained model per layer beside the
    probe accuracy per layer, one legend for both; the two panels together fit the book's text column
    (``TEXT_WIDTH``, within ``BOOK_COLUMN``)."""
    frames = summary_frames(study_or_tables, pooling)
    what = pooling_noun(frames.pooling)
    left = _panel(frames.similarity, frames, ["Similarity to pretrained", f"(debiased CKA, {what})"],
                  "debiased CKA with pretrained", alt.Scale(domain=[0, 1]))
    x_end = float(max([*frames.probe["layer"], 0]))
    rules = [(r.series, r.value, [1, 0] if r.series == LEXICAL else [6, 3], "black" if r.series == LEXICAL else "#555")
             for r in frames.rules.itertuples()]
    right = _panel(frames.probe, frames, [f"Probe accuracy ({what})"], "probe test accuracy",
                   alt.Scale(zero=False), extra=reference_rules(rules, "layer", x_end))
    return alt.hconcat(left, right, spacing=20).resolve_scale(color="shared", strokeDash="shared").properties(
        title=alt.TitleParams(title or "What fine-tuning changes, layer by layer", subtitle=_wrap(frames.note)))


def _wrap(text: str, width: int = 95) -> list[str]:
    """The subtitle in lines of at most ``width`` characters (a subtitle line never wraps by itself)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
