"""The geometry of the hidden states in words: token self-similarity, the standardised cosines, the class
geometry and the convergence of the layers."""

from __future__ import annotations

import pandas as pd
from ..core.schema import FIRST_TOKEN, pooling_adjective
from . import claims
from .prose_format import states_of, and_list, fmt, series
from ..core.schema import state_order
from .prose_format import fmt_ci, fmt_p, layer_span
from .prose_layers import capitalised, change_claim, layers_sentence, metric_summary
from .prose_similarity import value_span


def _last_layer(tidy: pd.DataFrame, metric: str) -> int | None:
    layers = tidy.loc[(tidy["metric"] == metric) & (tidy["layer"] >= 0), "layer"]
    return None if layers.empty else int(layers.max())


def _value_at(tidy: pd.DataFrame, metric: str, state: str, layer: int, model: str | None = None):
    s = series(tidy, metric, state, model)
    s = s[s["layer"] == layer]
    return None if s.empty else s.iloc[0]


def self_similarity_paragraph(tidy: pd.DataFrame, *, tidy_all: pd.DataFrame | None = None,
                              model: str | None = None) -> str:
    """Self-similarity (Ethayarajh 2019), raw and adjusted for anisotropy, each as a
    :func:`layerwise.words.prose_layers.metric_summary` (the outcome over the seeds, ``claims.seed_change``, and the
    shape through the layers in words, the numbers in a per-layer table), then how many words it rests on."""
    raw = series(tidy, "self_similarity", next(iter(states_of(tidy, "self_similarity")), ""), model)
    if raw.empty:
        return ""
    words = int(tidy.loc[tidy["metric"] == "self_similarity", "n"].max())
    parts = [metric_summary(tidy, "self_similarity", "self-similarity", tidy_all=tidy_all, model=model),
             metric_summary(tidy, "self_similarity_adjusted", "adjusted self-similarity", tidy_all=tidy_all,
                            model=model),
             f"Self-similarity is measured on {words:,} frequent words. The lower it is, the more a word's vector "
             "depends on its context."]
    return "\n\n".join(p for p in parts if p)


def standardised_sentence(tidy: pd.DataFrame, layer: int | None = None, model: str | None = None) -> str:
    """What standardising the dimensions does at one layer (default the last), descriptively (no
    verdict): the anisotropy baseline raw → standardised per state, and the within-sentence mean cosine
    standardised beside it."""
    lay = _last_layer(tidy, "anisotropy_baseline_std") if layer is None else layer
    if lay is None:
        return ""
    base, within = [], []
    for state in states_of(tidy, "anisotropy_baseline_std"):
        raw = _value_at(tidy, "anisotropy_baseline", state, lay, model)
        std = _value_at(tidy, "anisotropy_baseline_std", state, lay, model)
        cos = _value_at(tidy, "token_cosine_mean_std", state, lay, model)
        if raw is not None and std is not None:
            base.append(f"{state} {fmt(raw.value, 3)} → {fmt(std.value, 3)}")
        if cos is not None and std is not None:
            within.append(f"{state} {fmt(cos.value, 3)} against {fmt(std.value, 3)}")
    if not base:
        return ""
    text = (f"Standardising each dimension (z-scores per layer) moves the anisotropy baseline, the expected "
            f"cosine of random token pairs, at layer {lay} (raw → standardised): {'; '.join(base)}")
    if within:
        text += (f". The standardised within-sentence mean cosine against the standardised baseline: "
                 f"{'; '.join(within)}")
    return text + "."


def class_geometry_paragraph(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, *, tidy_all: pd.DataFrame | None = None,
                             model: str | None = None) -> str:
    """Where the classes separate: per state, the layers whose silhouette is above its permuted-label
    null (``claims.null_verdicts``); whether fine-tuning separated them beyond the seed floor
    (:func:`change_claim` on the silhouette); the shape with the numbers; the centroid angle at the last
    layer."""
    metric, pool = f"silhouette_{pooling}", pooling_adjective(pooling)
    where, nulls = [], []
    for state in states_of(tidy, metric):
        vs = [v for v in claims.null_verdicts(tidy, metric, f"silhouette_perm_{pooling}", state, model)
              if v.word != "not measured"]
        above = [v.detail["layer"] for v in vs if v.word == "above chance"]
        nulls += [v.detail["null_upper"] for v in vs]
        if vs:
            where.append(f"at {layer_span(above)} in {state}" if above else f"at no layer in {state}")
    if not where:
        return ""
    parts = [f"The classes separate above chance in the {pool} embeddings {and_list(where)}.",
             f"Above chance: the silhouette exceeds the 97.5th percentile of its permuted-label null, "
             f"{value_span(nulls, 3)} here.",
             capitalised(change_claim(tidy, metric, "the silhouette", tidy_all=tidy_all, model=model, digits=3)),
             layers_sentence(tidy, metric, "the silhouette", digits=3, model=model)]
    lay = _last_layer(tidy, f"centroid_angle_{pooling}")
    angles = [f"{s} {fmt(r.value, 1)}°" for s in states_of(tidy, f"centroid_angle_{pooling}")
              if (r := _value_at(tidy, f"centroid_angle_{pooling}", s, lay, model)) is not None] if lay is not None else []
    if angles:
        parts.append(f"Angle between the class centroids at layer {lay}: {', '.join(angles)}.")
    return " ".join(p for p in parts if p)


def convergence_paragraph(tidy: pd.DataFrame, name: str = "spearman_convergence_probe",
                          model: str | None = None, pooling: str = FIRST_TOKEN) -> str:
    """The original study's question, is the convergence of the token cosines linked to probe accuracy?
    One verdict per state (``claims.correlation_verdict``: the Spearman interval excludes 0), states
    grouped by verdict, each with rho and its interval. ``pooling``: the probe's (the study's primary pooling,
    whose probe :func:`layerwise.measure.comparisons.convergence_correlation` was given)."""
    df = tidy[tidy["metric"] == name]
    if model is not None:
        df = df[df["model"] == model]
    if df.empty:
        return "The convergence-performance correlation was not computed (too few layers)."
    groups: dict[str, list[str]] = {}
    for state in states_of(tidy, name):
        row = df[df["state"] == state]
        v = claims.correlation_verdict(row, f"{name} {state}")
        if v.word == "not measured":
            groups.setdefault(v.word, []).append(state)
            continue
        d = v.detail
        groups.setdefault(v.word, []).append(f"{state} (rho = {fmt(d['value'], 2)}, 95% CI {fmt(d['low'], 2)} to "
                                             f"{fmt(d['high'], 2)})")
    layers = int(df["n"].max())
    order = ("significant", "not significant", "not measured")
    parts = [f"It is {word} in {and_list(groups[word])}." for word in order if word in groups]
    return (f"The Spearman correlation across the {layers} layers links the mean within-sentence token cosine to "
            f"the {pooling_adjective(pooling)} probe accuracy. It is significant when its 95% interval excludes 0. {' '.join(parts)} "
            "With so few layers, only a strong monotone link reaches significance. A trend both curves share "
            "through depth is enough to produce one.")


def convergence_table(tidy: pd.DataFrame, name: str = "spearman_convergence_probe") -> pd.DataFrame:
    """Spearman correlation across layers between the mean token cosine and the probe accuracy, per
    model and state, with CI and p-value."""
    rho = tidy[tidy["metric"] == name]
    p = tidy[tidy["metric"] == f"{name}_p"][["model", "state", "value"]].rename(columns={"value": "p"})
    df = rho.merge(p, on=["model", "state"], how="left")
    df = df.assign(_o=df["state"].map(state_order(df["state"]).index)).sort_values(["model", "_o"])
    return pd.DataFrame({
        "model": df["model"], "state": df["state"],
        "Spearman rho": [fmt_ci(v, lo, hi) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"])],
        "p-value": [fmt_p(v) for v in df["p"]], "layers": df["n"].astype(int)}).set_index(["model", "state"])
