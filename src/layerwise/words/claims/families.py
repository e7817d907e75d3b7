"""The answer model at every layer of a statistic, and which tests are decided together (issue 22).

Families, declared before the data:

* **primary**, per model: fine-tuned against pretrained, the similarity to pretrained (debiased CKA,
  against the similarity between seeds, :func:`similarity_outcomes`) and the probe accuracy, at every
  layer, for each pooling (:data:`PRIMARY_METRICS`). Holm (1979) inside the family: family-wise error 5%.
* **secondary**: every other statistic, and every state other than fine-tuned: one family per statistic
  and state, over its layers. Benjamini-Hochberg (1995) inside it: false discovery rate 5%.

A change ("changed", "changed, size unclear") is judged on the interval at the level the family's
procedure gives the test (:func:`layerwise.measure.multiplicity.deciding_alphas`), and that interval is the
one printed, so no printed interval contradicts its word. "No change beyond δ" keeps its 90% interval: each
equivalence test is at 5% on its own (not adjusted). The leave-one-seed-out analyses use the same level.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...core.schema import FIRST_TOKEN
from ...core.tables import POOLINGS
from .effects import ALPHA
from .outcomes import OUTCOMES, difference_outcome, difference_rows, seed_apart, seed_change, \
    seed_similarity_change
from .verdict import Verdict, at_layer

#: the family-wise correction inside the primary family, the false-discovery correction inside a secondary one
PRIMARY_CORRECTION, SECONDARY_CORRECTION = "holm", "bh"
#: the primary family's measures, per pooling: the similarity to pretrained and the probe accuracy
PRIMARY_MEASURES = ("cka_debiased_{pooling}_vs_pretrained", "probe_acc_{pooling}")
PRIMARY_METRICS = tuple(m.format(pooling=p) for p in POOLINGS for m in PRIMARY_MEASURES)
#: probes whose sentence term comes from the paired per-sentence correctness (``probe_correct``)
PROBE_METRICS = tuple(f"probe_acc_{p}" for p in POOLINGS)


def _reference_value(aggregate: pd.DataFrame, metric: str, reference: str, layer: int) -> float:
    """The reference state's value of ``metric`` (a per-sentence metric: its registry row, e.g.
    ``token_cosine_var`` -> ``token_cosine_var_mean``) at ``layer``, for a relative margin; NaN if absent."""
    from ...core.schema import PER_SENTENCE_SPECS

    stem, suffix = (metric[:-len("_content")], "_content") if metric.endswith("_content") else (metric, "")
    name = PER_SENTENCE_SPECS[stem] + suffix if stem in PER_SENTENCE_SPECS else metric
    r = aggregate[(aggregate["metric"] == name) & (aggregate["state"] == reference) & (aggregate["layer"] == layer)]
    return float(r["value"].mean()) if len(r) else math.nan


def _delta(aggregate: pd.DataFrame, metric: str, reference: str, layer: int) -> float:
    """The declared margin of ``metric`` at ``layer`` (``schema.MARGINS``; NaN when none is declared)."""
    from ...core.schema import margin

    m = margin(metric)
    return math.nan if m is None else m.delta(_reference_value(aggregate, metric, reference, layer))


def paired_probe_se(correct: pd.DataFrame | None, metric: str, layer: int, state: str, reference: str) -> float:
    """The sentence SE of a probe's accuracy difference, paired on the same test sentences:
    ``sd_i(c_state(i) - c_reference(i)) / sqrt(n)`` (``probe_correct``: c = the share of retrainings, and
    of seeds, that got sentence i right); NaN without both states' rows."""
    if correct is None or correct.empty:
        return math.nan
    at = correct[(correct["metric"] == metric) & (correct["layer"] == layer)]
    both = pd.concat([at[at["state"] == s].set_index("sentence")["correct"] for s in (state, reference)], axis=1,
                     join="inner").dropna()
    if len(both) < 2:
        return math.nan
    d = both.iloc[:, 0].to_numpy(float) - both.iloc[:, 1].to_numpy(float)
    return float(d.std(ddof=1) / math.sqrt(len(d)))


def per_layer_differences(tidy: pd.DataFrame, metric: str, reference: str, state: str,
                          correct: pd.DataFrame | None = None) -> dict[int, tuple]:
    """``{layer: (per-seed difference rows, delta)}`` for ``metric``: a per-sentence metric reads its
    paired ``effect_<metric>`` rows per seed; any other the per-seed value minus the reference's
    (:func:`difference_rows`), a probe's sentence interval from the paired correctness
    (:func:`paired_probe_se`). delta: the declared margin (``schema.MARGINS``). A state without per-seed
    rows (the random state, one draw) uses its aggregate row as its one seed."""
    from scipy.stats import norm

    has_seed = "seed" in tidy.columns
    seeds = tidy[tidy["seed"].notna()] if has_seed else tidy.iloc[0:0]
    aggregate = tidy[tidy["seed"].isna()] if has_seed else tidy
    if seeds[seeds["state"] == state].empty:
        seeds = aggregate
    out: dict[int, tuple] = {}
    effect = seeds[(seeds["metric"] == f"effect_{metric}") & (seeds["state"] == state) & (seeds["layer"] >= 0)]
    if len(effect):
        for layer, g in effect.groupby("layer"):
            out[int(layer)] = (g, _delta(aggregate, metric, reference, int(layer)))
        return out
    rows = pd.concat([aggregate[aggregate["state"] == reference], seeds[seeds["state"] == state]])
    rows = rows[(rows["metric"] == metric) & (rows["layer"] >= 0)]
    z = float(norm.ppf(0.975))
    for layer, g in rows.groupby("layer"):
        if g[g["state"] == reference].empty or g[g["state"] == state].empty:
            continue
        diff = difference_rows(g, reference, state)
        se = paired_probe_se(correct, metric, int(layer), state, reference) if metric in PROBE_METRICS else math.nan
        if se == se:
            diff = diff.assign(ci_low=diff["value"] - z * se, ci_high=diff["value"] + z * se)
        out[int(layer)] = (diff, _delta(aggregate, metric, reference, int(layer)))
    return out


def _unadjusted(tidy: pd.DataFrame, metric: str, reference: str, state: str,
                correct: pd.DataFrame | None) -> list[Verdict]:
    out = []
    for layer, (diff, delta) in per_layer_differences(tidy, metric, reference, state, correct).items():
        v = seed_change(diff, delta, subject=f"{metric}, layer {layer}")
        out.append(Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": layer, "metric": metric}))
    return out


def _unadjusted_similarity(tidy: pd.DataFrame, pooling: str, measure: str, reference: str) -> list[Verdict]:
    from ...core.schema import margin

    if "seed" not in tidy.columns:
        return []
    seeds = tidy[tidy["seed"].notna() & (tidy["state"] == "finetuned")]   # (not the random draws)
    metric = f"{measure}_{pooling}_vs_{reference}"
    vs = seeds[seeds["metric"] == metric]
    between = seeds[seeds["metric"] == f"{measure}_{pooling}_between_seeds"]
    m = margin(metric)
    out = []
    for layer in sorted(set(vs["layer"]) - {-1}):
        v = seed_similarity_change(vs[vs["layer"] == layer], between[between["layer"] == layer],
                                   m.value if m else float("nan"), subject=f"{measure} {pooling}, layer {layer}")
        if v.word != "not measured":
            out.append(Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": int(layer), "metric": metric}))
    return out


def adjust(verdicts: list[Verdict], method: str, family: str, alpha: float = ALPHA) -> list[Verdict]:
    """``verdicts`` of one family re-judged at the level its procedure gives each test: the p-value of each
    difference (:func:`layerwise.measure.multiplicity.interval_p_value`), alpha_i from
    :func:`layerwise.measure.multiplicity.deciding_alphas`, then :func:`difference_outcome` at 1 - alpha_i.
    Verdicts outside the answer model ("not measured") stay as they are and do not count in the family.
    ``detail`` adds ``p``, ``family``, ``correction``, ``family_size``; ``deciding_level`` is the adjusted
    level unless the outcome is "no change beyond δ" (its 90% interval)."""
    from ...measure.multiplicity import deciding_alphas, interval_p_value

    judged = [i for i, v in enumerate(verdicts) if v.word in OUTCOMES]
    ps = [interval_p_value(verdicts[i].detail["per_seed"], verdicts[i].detail["sentence_se"]) for i in judged]
    _, alphas = deciding_alphas(ps, method, alpha)
    out = list(verdicts)
    for i, p, a in zip(judged, ps, alphas):
        v, d = verdicts[i], verdicts[i].detail
        level = 1 - float(a) if np.isfinite(a) else d["level"]
        new = difference_outcome(d["per_seed"], d["sentence_se"], d["delta"], level=level, subject=v.subject,
                                 rows=v.rows)
        detail = {**d, **new.detail, "p": float(p), "family": family, "correction": method, "family_size": len(judged)}
        out[i] = Verdict(new.word, v.subject, v.rows, v.n, _clipped(detail))
    return out


def _clipped(detail: dict) -> dict:
    """The printed interval kept inside the range a difference of the statistic can take (b - a at most,
    for a statistic in [a, b], ``core.tables.value_range``): clipping moves no end past 0 or δ, so it changes
    no outcome; ``clipped`` says it happened."""
    from ...core.tables import value_range

    bounds = value_range(detail.get("metric", ""))
    if bounds is None:
        return detail
    width = bounds[1] - bounds[0]
    ends = {k: float(np.clip(detail[k], -width, width)) for k in ("low", "high", "ci_low", "ci_high", "ci90_low",
                                                                  "ci90_high") if k in detail}
    return {**detail, **ends, "clipped": any(ends[k] != detail[k] for k in ends)}


def primary_family(tidy: pd.DataFrame, correct: pd.DataFrame | None = None) -> dict[str, list[Verdict]]:
    """The primary family of one model (``tidy``: its ``Study.tidy_all`` rows; ``correct``: its probes'
    paired correctness, without which a probe's sentence term is the unpaired one), Holm-adjusted:
    ``{metric: verdicts by layer}`` for :data:`PRIMARY_METRICS` present in ``tidy``."""
    raw: list[Verdict] = []
    for pooling in POOLINGS:
        raw += _unadjusted_similarity(tidy, pooling, "cka_debiased", "pretrained")
        raw += _unadjusted(tidy, f"probe_acc_{pooling}", "pretrained", "finetuned", correct)
    out: dict[str, list[Verdict]] = {}
    for v in adjust(raw, PRIMARY_CORRECTION, "primary"):
        out.setdefault(v.detail["metric"], []).append(v)
    return out


def _model_rows(tidy: pd.DataFrame, correct: pd.DataFrame | None, model: str | None):
    if model is None:
        return tidy, correct
    return tidy[tidy["model"] == model], None if correct is None else correct[correct["model"] == model]


def seed_floor_verdicts(tidy: pd.DataFrame, metric: str, *, reference: str = "pretrained", state: str = "finetuned",
                        model: str | None = None, correct: pd.DataFrame | None = None) -> list[Verdict]:
    """The answer model (:func:`seed_change`, :func:`difference_outcome`) at every layer of ``metric``
    (``tidy``: aggregate and per-seed rows, ``Study.tidy_all``; ``correct``: the probes' paired
    correctness, for a probe's sentence term), judged inside its family (:func:`primary_family` for a
    primary metric of the fine-tuned state, else Benjamini-Hochberg over the statistic's layers).
    ``detail["layer"]`` added."""
    tidy, correct = _model_rows(tidy, correct, model)
    if state == "finetuned" and reference == "pretrained" and metric in PRIMARY_METRICS:
        return primary_family(tidy, correct).get(metric, [])
    return adjust(_unadjusted(tidy, metric, reference, state, correct), SECONDARY_CORRECTION, f"secondary: {metric}")


def similarity_outcomes(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, measure: str = "cka_debiased", *,
                        reference: str = "pretrained", correct: pd.DataFrame | None = None,
                        model: str | None = None) -> list[Verdict]:
    """The answer model of a similarity to ``reference`` at every layer (:func:`seed_similarity_change`
    with the measure's margin): no change = within delta of the similarity between fine-tuning seeds.
    The debiased CKA with pretrained is in the primary family (pass ``correct`` so the family's probes
    have their paired sentence term); another measure is its own secondary family. ``tidy``:
    ``Study.tidy_all``. ``detail["layer"]`` added."""
    tidy, correct = _model_rows(tidy, correct, model)
    metric = f"{measure}_{pooling}_vs_{reference}"
    if metric in PRIMARY_METRICS:
        return primary_family(tidy, correct).get(metric, [])
    return adjust(_unadjusted_similarity(tidy, pooling, measure, reference), SECONDARY_CORRECTION,
                  f"secondary: {metric}")


def seed_apart_verdict(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, measure: str = "cka_debiased") -> Verdict:
    """:func:`seed_apart` on the per-seed profile of ``measure`` with pretrained over the layers, the
    margin the measure's δ (``tidy``: ``Study.tidy_all``); "not measured" without per-seed rows."""
    from ...core.schema import margin

    metric = f"{measure}_{pooling}_vs_pretrained"
    if "seed" not in tidy.columns:
        return Verdict("not measured", metric, tidy.iloc[0:0], 0)
    rows = tidy[tidy["seed"].notna() & (tidy["state"] == "finetuned") & (tidy["metric"] == metric) & (tidy["layer"] >= 0)]
    m = margin(metric)
    return seed_apart(rows, m.value if m else 0.0)


def layer_verdicts(verdicts: list[Verdict], layers) -> list[Verdict]:
    """``verdicts`` each tagged with its layer (:func:`layerwise.words.claims.verdict.at_layer`)."""
    return [at_layer(v, lay) for v, lay in zip(verdicts, layers)]
