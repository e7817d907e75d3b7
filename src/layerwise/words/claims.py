"""The verdict rules of the report, in one place.

Every sentence or table of the report that says "higher", "lower", "changed", "no change beyond δ",
"not established", "best", "significant", "negligible", "stands apart" (or that a floor was not measured)
takes its verdict from a function of this module. A verdict is a :class:`Verdict`: the word, the tidy rows
it rests on and their ``n``, so a reader (and a test) can trace each claim to its data. The prose module
turns verdicts into sentences; it never decides a verdict itself.

Sections (each added by the issue that defines its rules):

* the answer model of a difference (issue 22): changed / changed, size unclear / no change beyond δ /
  not established with k seeds (:func:`difference_outcome`), against the similarity between seeds for a
  similarity (:func:`seed_similarity_change`), leave-one-seed-out sensitivity, the seed that stands apart
  (:func:`seed_apart`); chance judged apart (permutation nulls);
* effect size before significance, a description of the checkpoints at hand (issue #11), best layers by
  paired comparison (held-out probing issue);
* the shape of a statistic through the layers: rises, falls, peaks, dips, flat (issue #15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import math

import numpy as np
import pandas as pd

#: The verdict words the report may print; every verdict's ``word`` is one of them.
WORDS = ("higher", "lower", "changed", "negligible", "significant", "not significant", "best",
         "tied", "above chance", "at chance", "not measured", "rises", "falls", "peaks", "dips", "flat", "changed, size unclear",
         "no change beyond δ", "not established", "stands apart", "no seed stands apart")


@dataclass(frozen=True)
class Verdict:
    """One claim: ``word`` (from :data:`WORDS`), what it is about (``subject``), the tidy rows it
    rests on (``rows``), their sample size ``n`` and the numbers that decided it (``detail``)."""

    word: str
    subject: str
    rows: pd.DataFrame
    n: int
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of claims.WORDS")


# ==================================================================================================
# floors: chance (permutation nulls) and seed-to-seed variation
# ==================================================================================================

#: Detail of a verdict made with a single fine-tuning seed.
SEED_VARIATION_NOT_MEASURED = "seed variation not measured (one fine-tuning seed)"


def _seeds(rows: pd.DataFrame) -> int:
    """Fine-tuning seeds among ``rows``: distinct values of a ``seed`` column, else one per row."""
    return int(rows["seed"].nunique()) if "seed" in rows.columns else len(rows)


def difference_rows(rows: pd.DataFrame, reference: str = "pretrained", state: str = "finetuned",
                    level: float = 0.95) -> pd.DataFrame:
    """Rows of one metric at one layer (one ``reference`` row, one ``state`` row per seed) -> one row per
    seed whose value is the state's value minus the reference's. For statistics without a paired
    per-sentence difference (``effect_*`` rows already are differences). The difference's sentence
    interval is ``+- z sqrt(SE_state^2 + SE_reference^2)`` from each row's own interval
    (:func:`layerwise.measure.stats.se_from_ci`; conservative when, as on the same sentences, the two errors are
    positively correlated); NaN when neither row has an interval."""
    from scipy.stats import norm

    from ..measure.stats import se_from_ci

    ref = rows.loc[rows["state"] == reference]
    if ref.empty:
        raise ValueError(f"no {reference!r} row to subtract")
    out = rows[rows["state"] == state].copy()
    out["value"] = out["value"] - float(ref["value"].mean())
    se_ref = float(np.mean(se_from_ci(ref["ci_low"].to_numpy(float), ref["ci_high"].to_numpy(float), level)))
    se = np.sqrt(se_from_ci(out["ci_low"].to_numpy(float), out["ci_high"].to_numpy(float), level) ** 2 + se_ref ** 2)
    half = np.where(se > 0, float(norm.ppf(0.5 + level / 2)) * se, np.nan)
    out["ci_low"], out["ci_high"] = out["value"].to_numpy(float) - half, out["value"].to_numpy(float) + half
    return out


# --------------------------------------------------------------------------------------------------
# The answer model of a difference (issue 22): four outcomes, chance judged apart
# --------------------------------------------------------------------------------------------------

#: the outcomes of a difference (fine-tuned - pretrained, random - pretrained), Lakens et al. 2018's grid
CHANGED, SIZE_UNCLEAR, NO_CHANGE, NOT_ESTABLISHED = ("changed", "changed, size unclear", "no change beyond δ",
                                                     "not established")
OUTCOMES = (CHANGED, SIZE_UNCLEAR, NO_CHANGE, NOT_ESTABLISHED)
#: the level of the equivalence (TOST) interval: two one-sided tests at 5 % each
EQUIVALENCE_LEVEL = 0.90


def difference_outcome(values, sentence_se=0.0, delta: float = math.nan, *, level: float = 0.95, subject: str = "",
                       rows: pd.DataFrame | None = None, leave_one_out: bool = True) -> Verdict:
    """The answer model of a difference D (one value per fine-tuning seed, e.g. fine-tuned - pretrained),
    with I the seed-and-sentence interval of its mean (:func:`layerwise.measure.stats.seed_sentence_interval`,
    ``sentence_se`` each seed's sentence SE) and ``delta`` the statistic's declared margin
    (``schema.MARGINS``). The equivalence-testing grid (Lakens, Scheel & Isager 2018; TOST: Schuirmann
    1987), in order:

    * **changed**: the 95% I lies wholly beyond +-delta (``low > delta`` or ``high < -delta``);
    * **no change beyond δ**: the 90% I lies within (-delta, delta) (two one-sided tests at 5%);
    * **changed, size unclear**: the 95% I excludes 0 but overlaps +-delta;
    * **not established**: anything else (printed "not established with k seeds"); the detail keeps the
      direction when every seed moved the same way and the minimum detectable effect from the seed SD,
      (t_{k-1,.975} + t_{k-1,.80}) s / sqrt(k) (:func:`layerwise.measure.stats.minimum_detectable_effect`).

    A NaN delta (none declared) allows neither "changed" nor "no change": excluding 0 is "changed, size
    unclear". A zero-width interval (identical seeds, no sentence term) is judged like any other: at
    |D| > delta "changed", within delta "no change beyond δ". One seed: the sentence-only interval,
    ``seed_variation_measured`` False. ``equivalence_reachable``: whether the sentences alone allow a 90%
    half-width below delta (z_{.95} SE_sent < delta); when not, the test set is too small for "no change".
    ``sentence_term``: False when no seed has a sentence interval (the interval covers the seeds only).
    (:func:`seed_change`: one run without a sentence interval is "not measured", no variance is known.)
    ``low``/``high``: the interval that decides (90% for "no change beyond δ", else 95%).
    ``leave_one_out`` (k >= 3 seeds): the outcome of each analysis without one seed, in seed order
    (sensitivity: "changed in 2 of 3 leave-one-out analyses"). Chance is a separate verdict (:func:`chance_verdict`, :func:`null_verdict`), never an outcome."""
    from scipy.stats import norm

    from ..measure.stats import minimum_detectable_effect, seed_sentence_interval

    d = np.asarray(values, dtype=float).reshape(-1)
    rows = pd.DataFrame() if rows is None else rows
    se = np.broadcast_to(np.nan_to_num(np.asarray(sentence_se, dtype=float), nan=0.0), d.shape)
    keep = np.isfinite(d)
    d, se = d[keep], se[keep]
    if d.size == 0:
        return Verdict("not measured", subject, rows, 0, {"reason": "no finite difference"})
    wide, narrow = seed_sentence_interval(d, se, level), seed_sentence_interval(d, se, EQUIVALENCE_LEVEL)
    lo, hi, lo90, hi90 = (float(x) for x in (wide.low, wide.high, narrow.low, narrow.high))
    has_delta = bool(np.isfinite(delta) and delta >= 0)
    if has_delta and (lo > delta or hi < -delta):
        word = CHANGED
    elif has_delta and -delta < lo90 and hi90 < delta:
        word = NO_CHANGE
    elif lo > 0 or hi < 0:
        word = SIZE_UNCLEAR
    else:
        word = NOT_ESTABLISHED
    floor = float(norm.ppf(0.5 + EQUIVALENCE_LEVEL / 2) * np.sqrt(np.mean(se ** 2)))
    direction = "up" if np.all(d > 0) else "down" if np.all(d < 0) else None
    decide = (lo90, hi90, EQUIVALENCE_LEVEL) if word == NO_CHANGE else (lo, hi, level)
    detail = {"mean": float(wide.estimate), "ci_low": lo, "ci_high": hi, "ci90_low": lo90, "ci90_high": hi90,
              "low": decide[0], "high": decide[1], "deciding_level": decide[2], "delta": float(delta),
              "seeds": int(d.size), "per_seed": [float(x) for x in d], "direction": direction,
              "mde": minimum_detectable_effect(d, level), "seed_variation_measured": bool(d.size > 1),
              "equivalence_reachable": bool(has_delta and floor < delta), "sentence_term": bool(np.any(se > 0))}
    if leave_one_out and d.size >= 3:
        detail["leave_one_out"] = [difference_outcome(np.delete(d, i), np.delete(se, i), delta, level=level,
                                                      leave_one_out=False).word for i in range(d.size)]
    return Verdict(word, subject, rows, int(d.size), detail)


def outcome_label(v: Verdict, unit: str = "seed") -> str:
    """The outcome as printed: "not established with 3 seeds" (``unit``: what is counted, "seed" or
    "random draw"; one: "with one random draw"), "no change beyond δ = 0.05", "changed", "changed, size
    unclear"."""
    d = v.detail
    if v.word == NOT_ESTABLISHED:
        k = d.get("seeds", v.n)
        return f"not established with {'one' if k == 1 else k} {unit}{'s' if k != 1 else ''}"
    if v.word == NO_CHANGE:
        return f"no change beyond δ = {d['delta']:.3g}"
    return v.word


def seed_change(differences: pd.DataFrame, delta: float, level: float = 0.95, subject: str = "") -> Verdict:
    """:func:`difference_outcome` of per-seed difference rows (tidy rows, e.g. ``effect_*``, or
    :func:`difference_rows`), each seed's sentence SE from its interval (``ci_low``/``ci_high``, NaN: no
    sentence term, :func:`layerwise.measure.stats.se_from_ci`). ``n`` = seeds. One row without an interval: "not
    measured" (no variance is known)."""
    from ..measure.stats import se_from_ci

    low, high = differences["ci_low"].to_numpy(float), differences["ci_high"].to_numpy(float)
    if len(differences) == 1 and not np.isfinite(high - low).any():
        return Verdict("not measured", subject, differences, 1, {"reason": SEED_VARIATION_NOT_MEASURED})
    se = se_from_ci(low, high, level)
    return difference_outcome(differences["value"].to_numpy(float), se, delta, level=level, subject=subject,
                              rows=differences)


def seed_similarity_change(vs_reference: pd.DataFrame, between_seeds: pd.DataFrame, delta: float = math.nan,
                           level: float = 0.95, subject: str = "") -> Verdict:
    """The answer model for a similarity to the reference (e.g. debiased CKA with pretrained): "no change"
    means as similar to pretrained as the fine-tuning seeds are to each other. Per seed s, D_s =
    sim(reference, s) - mean of sim(s, s') over the pairs holding s (``between_seeds``: one row per pair,
    ``seed`` its first seed, ``seed_b`` its second when present, else the pairs in
    ``itertools.combinations`` order of the seeds), then :func:`difference_outcome` with ``delta`` (the
    margin of ``cka_debiased``). The D_s share pairs, so the interval is approximate. Fewer than two seeds
    (no pair): "not measured"."""
    from itertools import combinations

    rows = pd.concat([vs_reference, between_seeds], ignore_index=True)
    S = _seeds(vs_reference)
    if S < 2 or between_seeds.empty:
        return Verdict("not measured", subject, rows, S, {"reason": SEED_VARIATION_NOT_MEASURED})
    seeds = sorted(vs_reference["seed"].tolist()) if "seed" in vs_reference.columns else list(range(S))
    pairs = list(combinations(seeds, 2))
    if "seed_b" in between_seeds.columns:
        pairs = list(zip(between_seeds["seed"], between_seeds["seed_b"]))
    elif "seed" in between_seeds.columns:
        between_seeds = between_seeds.sort_values("seed", kind="stable")
        if [int(x) for x in between_seeds["seed"]] != [int(a) for a, _ in pairs]:
            pairs = []
    if len(pairs) != len(between_seeds):
        return Verdict("not measured", subject, rows, S, {"reason": "pairs of seeds do not match the seeds"})
    pair_values = between_seeds["value"].to_numpy(float)
    own = vs_reference.set_index("seed")["value"] if "seed" in vs_reference.columns else \
        pd.Series(vs_reference["value"].to_numpy(float), index=seeds)
    d = [float(own[s]) - float(np.mean([v for (a, b), v in zip(pairs, pair_values) if s in (a, b)])) for s in seeds]
    v = difference_outcome(d, 0.0, delta, level=level, subject=subject, rows=rows)
    return Verdict(v.word, subject, rows, S, {**v.detail, "seed_pairs_mean": float(np.mean(pair_values)),
                                              "vs_reference_mean": float(own.mean())})


def seed_apart(profile: pd.DataFrame, margin: float, min_layers: int = 2, subject: str = "") -> Verdict:
    """The declared rule for a seed that stands apart (issue 22; with 3 seeds leave-one-out always finds a
    farthest seed, so naming one needs a rule). ``profile``: per-seed rows of one statistic (e.g. debiased
    CKA with pretrained) at several layers (``seed``, ``layer``, ``value``, ``ci_low``/``ci_high``). At a
    layer, seed s lies apart when its value is outside the other seeds' range widened by m = max(``margin``,
    the mean half-width of the other seeds' sentence intervals); s "stands apart" when it lies apart at
    ``min_layers`` or more layers (the seed with most such layers; ties: the first). Otherwise "no seed
    stands apart"; fewer than three seeds: "not measured". ``detail``: ``seed``, ``layers`` (where it lies
    apart), ``counts`` per seed."""
    seeds = sorted(int(x) for x in profile["seed"].dropna().unique()) if "seed" in profile.columns else []
    if len(seeds) < 3:
        return Verdict("not measured", subject, profile, len(seeds), {"reason": "fewer than three seeds"})
    apart: dict[int, list[int]] = {s: [] for s in seeds}
    for layer, g in profile.groupby("layer"):
        v = g.set_index(g["seed"].astype(int))
        if v["value"].isna().any() or len(v) != len(seeds):
            continue
        half = ((v["ci_high"] - v["ci_low"]) / 2).fillna(0.0)
        for s in seeds:
            others = v.drop(index=s)
            m = max(float(margin), float(half.drop(index=s).mean()))
            if not others["value"].min() - m <= v.loc[s, "value"] <= others["value"].max() + m:
                apart[s].append(int(layer))
    counts = {s: len(ls) for s, ls in apart.items()}
    top = max(seeds, key=lambda s: counts[s])
    if counts[top] < min_layers:
        return Verdict("no seed stands apart", subject, profile, len(seeds), {"counts": counts, "margin": margin})
    return Verdict("stands apart", subject, profile, len(seeds), {"seed": top, "layers": apart[top], "counts": counts,
                                                                  "margin": margin})


def chance_verdict(observed: pd.DataFrame, null_q95: pd.DataFrame, subject: str = "") -> Verdict:
    """Above-chance structure of a similarity: "above chance" iff the observed value exceeds the 95th
    percentile of its permutation null (a one-sided test at 5 %), "at chance" otherwise, "not
    measured" when either is missing or NaN. One row each (same model, state, layer); ``n`` = the
    observed row's sentences."""
    return _beyond_null(observed, null_q95, "value", subject,
                        lambda null: {"null_q95": float(null["value"].iloc[0]),
                                      "permutations": int(null["n"].iloc[0])},
                        nan_reason="undefined value (constant representation)")


def _beyond_null(observed: pd.DataFrame, null: pd.DataFrame, bound: str, subject: str, detail, *,
                 nan_reason: str = "undefined value") -> Verdict:
    """The one chance rule: "above chance" iff the observed row's value exceeds the null row's ``bound``
    column (its 95th-percentile value, or its upper interval end); "at chance" otherwise; "not measured"
    without exactly one row each or with a NaN. ``detail(null)``: what the verdict adds about the null."""
    rows = pd.concat([observed, null], ignore_index=True)
    if len(observed) != 1 or len(null) != 1:
        return Verdict("not measured", subject, rows, 0, {"reason": "need one observed and one null row"})
    value, limit = float(observed["value"].iloc[0]), float(null[bound].iloc[0])
    n = int(observed["n"].iloc[0])
    if not (np.isfinite(value) and np.isfinite(limit)):
        return Verdict("not measured", subject, rows, n, {"reason": nan_reason})
    return Verdict("above chance" if value > limit else "at chance", subject, rows, n,
                   {"value": value, **detail(null)})


def chance_verdicts(tidy: pd.DataFrame, measure: str, pooling: str = "cls", state: str = "finetuned",
                    reference: str = "pretrained") -> list[Verdict]:
    """:func:`chance_verdict` at every layer for ``<measure>_<pooling>_vs_<reference>`` of ``state``
    (measure in ``similarity.FLOOR_MEASURES``), against ``<measure>_null_q95_<pooling>_vs_<reference>``."""
    suffix = f"_{pooling}_vs_{reference}"
    rows = tidy[tidy["state"] == state]
    obs = rows[rows["metric"] == f"{measure}{suffix}"]
    null = rows[rows["metric"] == f"{measure}_null_q95{suffix}"]
    out = []
    for (model, layer), o in obs.groupby(["model", "layer"], sort=True):
        q = null[(null["model"] == model) & (null["layer"] == layer)]
        out.append(chance_verdict(o, q, f"{measure} {pooling} {state} vs {reference}, {model} layer {layer}"))
    return out


def probe_chance_verdict(tidy: pd.DataFrame, metric: str, layer: int, state: str = "finetuned") -> Verdict:
    """Above-chance accuracy of a probe: :func:`null_verdict` of the probe's accuracy (``metric``, e.g.
    ``probe_acc_cls``) against its permuted-label probe (``probe_chance_acc_<pooling>``, whose interval is
    the spread of probes trained on permuted labels over the same resamples): "above chance" iff the
    accuracy exceeds the null's upper interval end (97.5th percentile, one-sided at 2.5 %). ``n`` = test
    sentences."""
    chance = metric.replace("probe_acc", "probe_chance_acc")
    at = tidy[(tidy["state"] == state) & (tidy["layer"] == layer)]
    return null_verdict(at[at["metric"] == metric], at[at["metric"] == chance],
                        f"{metric} {state} layer {layer} vs permuted labels")


# ==================================================================================================
# Size before significance (issue #11)
# ==================================================================================================
#
# A paired test between two states at one layer says "higher" or "lower" only when the effect is both
# large enough to matter and significant: with a few hundred sentences that all move the same tiny way,
# a difference of 0.001 gets p < 1e-20, and the p-value alone would call it a change. The rules, in
# order (size first):
#
# 1. negligible: |mean paired difference| < delta, delta = NEGLIGIBLE_SD x the between-sentence SD of
#    the metric in the reference (pretrained) state at that layer (``reference_sd_<metric>``);
# 2. not significant: the family-adjusted p-value (ONE family: every test of the study, Holm,
#    ``stats.adjust_family``) is not below ``alpha``, or missing;
# 3. higher / lower: the sign of the mean paired difference, always printed with its CI.

#: the negligible-effect threshold, in between-sentence SDs of the reference state (declared once here;
#: chapters/methods.qmd states it and tests/test_claims.py checks that it does)
NEGLIGIBLE_SD = 0.1
#: the significance level of every verdict, on family-adjusted p-values
ALPHA = 0.05
#: the multiple-testing correction of the study's one family (``stats.adjust_family``)
CORRECTION = "holm"


def negligible_threshold(reference_sd: float, fraction: float = NEGLIGIBLE_SD) -> float:
    """delta = ``fraction`` x the reference state's between-sentence SD (NaN when the SD is unknown)."""
    sd = float(reference_sd) if reference_sd is not None else float("nan")
    return fraction * sd if sd == sd and sd >= 0 else float("nan")


def effect_verdict(effect: float, p_adjusted: float, delta: float, *, alpha: float = ALPHA, subject: str = "",
                   rows: pd.DataFrame | None = None, n: int = 0, **detail: Any) -> Verdict:
    """Size before significance: "negligible" when ``|effect| < delta``; else "not significant" when
    ``p_adjusted`` is NaN or ``>= alpha``; else "higher" (effect > 0) or "lower". A NaN ``delta`` (no
    reference SD) skips the size rule. ``detail`` keeps the numbers that decided it."""
    effect, p_adjusted, delta = float(effect), float(p_adjusted), float(delta)
    if delta == delta and abs(effect) < delta:
        word = "negligible"
    elif not p_adjusted < alpha:
        word = "not significant"
    else:
        word = "higher" if effect > 0 else "lower"
    return Verdict(word, subject, rows if rows is not None else pd.DataFrame(), int(n),
                   {"effect": effect, "p_adjusted": p_adjusted, "delta": delta, "alpha": alpha, **detail})


def family_size(tidy: pd.DataFrame) -> int:
    """The number of tests in the study's one correction family: non-NaN raw p-values of
    ``schema.P_VALUES`` metrics in ``tidy``."""
    from ..core.schema import P_VALUES, lookup

    def is_raw_p(metric: str) -> bool:
        try:
            return lookup(metric).name in P_VALUES
        except KeyError:
            return False

    raw = tidy[tidy["metric"].map(is_raw_p)]
    return int(raw["value"].notna().sum())


def state_change_verdicts(tidy: pd.DataFrame, metric: str, state: str = "finetuned", reference: str = "pretrained",
                          model: str | None = None, alpha: float = ALPHA) -> list[Verdict]:
    """One :func:`effect_verdict` per layer for ``state`` against ``reference`` on a per-sentence
    ``metric`` (rows ``effect_<metric>``, ``test_p_<metric>``, ``test_p_holm_<metric>`` of ``state`` and
    ``reference_sd_<metric>``), in layer order. ``detail``: layer, effect CI, raw and adjusted p."""
    names = {f"effect_{metric}", f"test_p_{metric}", f"test_p_holm_{metric}", f"reference_sd_{metric}"}
    sub = tidy[tidy["metric"].isin(names) & (tidy["state"] == state) & (tidy["layer"] >= 0)]
    if model is not None:
        sub = sub[sub["model"] == model]
    out = []
    for (mdl, layer), g in sub.groupby(["model", "layer"], sort=True):
        by = g.set_index("metric")
        if f"effect_{metric}" not in by.index:
            continue
        eff = by.loc[f"effect_{metric}"]
        p_adj = by["value"].get(f"test_p_holm_{metric}", float("nan"))
        delta = negligible_threshold(by["value"].get(f"reference_sd_{metric}", float("nan")))
        out.append(effect_verdict(eff["value"], p_adj, delta, alpha=alpha, subject=f"{mdl} {state} vs {reference}, "
                                  f"{metric}, layer {int(layer)}", rows=g, n=int(eff["n"]), layer=int(layer),
                                  low=float(eff["ci_low"]), high=float(eff["ci_high"]),
                                  p=float(by["value"].get(f"test_p_{metric}", float("nan")))))
    return out


def effect_words(tidy: pd.DataFrame, state: str = "finetuned", alpha: float = ALPHA) -> pd.DataFrame:
    """The :func:`effect_verdict` word of every ``effect_<metric>`` row of ``state`` (its family-adjusted
    ``test_p_holm_<metric>`` and its ``reference_sd_<metric>``): columns ``metric`` (without the
    ``effect_`` prefix), ``layer``, ``word``. What :func:`layerwise.book.charts.effect_heatmap` marks."""
    rows = tidy[tidy["state"] == state]

    def by(prefix: str, name: str) -> pd.DataFrame:
        sub = rows[rows["metric"].str.startswith(prefix)]
        return pd.DataFrame({"metric": sub["metric"].str.removeprefix(prefix), "layer": sub["layer"],
                             name: sub["value"]})

    eff = by("effect_", "effect").merge(by("test_p_holm_", "p_holm"), on=["metric", "layer"], how="left")
    eff = eff.merge(by("reference_sd_", "sd"), on=["metric", "layer"], how="left")
    eff["word"] = [effect_verdict(v, p_, negligible_threshold(sd_), alpha=alpha).word
                   for v, p_, sd_ in zip(eff["effect"], eff["p_holm"], eff["sd"])]
    return eff[["metric", "layer", "word"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Best layers by paired comparison (held-out probing issue)
# --------------------------------------------------------------------------------------------------

def _paired_diff_ci(diff, n_boot: int, level: float, rng) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired per-sentence differences ``diff [layers, n]``,
    every layer resampled on the same sentences."""
    idx = rng.integers(0, diff.shape[1], size=(n_boot, diff.shape[1]))
    boots = diff[:, idx].mean(axis=2)                                  # [layers, n_boot]
    q = [(1 - level) / 2, (1 + level) / 2]
    return np.quantile(boots, q[0], axis=1), np.quantile(boots, q[1], axis=1)


def best_layers(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, state: str, model: str | None = None, *,
                n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Verdict:
    """The best-layer set of a probe, by paired comparison on the same test sentences.

    ``correct``: per-sentence correctness (``probe_study.CORRECT_COLUMNS``: the fraction of retrainings
    that got sentence i right, c_l(i)). Top layer t = argmax_l mean_i c_l(i); for every layer l, the
    paired percentile bootstrap CI (``n_boot`` resamples of the sentences, the same resample for every
    layer) of acc(t) - acc(l) = mean_i (c_t(i) - c_l(i)) (Efron & Tibshirani 1993, ch. 13). The best-layer
    set is t and every layer whose CI contains 0. Verdict ``best`` when the set has one member, ``tied``
    otherwise (the prose then names the set, never one layer); ``not measured`` without correctness rows.
    ``rows``: the tidy rows of ``metric`` at the layers of the set; ``n``: test sentences; ``detail``:
    ``layers`` (the set), ``top``, ``diff`` / ``diff_ci`` per layer.
    """
    sel = (correct["metric"] == metric) & (correct["state"] == state) & (correct["layer"] >= 0)
    if model is not None:
        sel &= correct["model"] == model
    wide = correct[sel].pivot_table(index="layer", columns="sentence", values="correct", aggfunc="first")
    wide = wide.dropna(axis=1)
    subject = f"{metric} ({state}{', ' + model if model else ''})"
    if wide.empty or wide.shape[1] < 2:
        return Verdict("not measured", subject, tidy.iloc[0:0], 0)
    c = wide.to_numpy(dtype=float)
    layers = wide.index.to_numpy(dtype=int)
    top = int(np.argmax(c.mean(axis=1)))
    diff = c[top][None, :] - c
    lo, hi = _paired_diff_ci(diff, n_boot, level, np.random.default_rng(seed))
    tied = (lo <= 0) & (hi >= 0)
    tied[top] = True
    members = [int(v) for v in layers[tied]]
    t = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & tidy["layer"].isin(members)]
    if model is not None:
        t = t[t["model"] == model]
    detail = {"layers": members, "top": int(layers[top]), "level": level,
              "diff": dict(zip(layers.tolist(), diff.mean(axis=1).tolist())),
              "diff_ci": {int(v): (float(a), float(b)) for v, a, b in zip(layers, lo, hi)}}
    return Verdict("best" if len(members) == 1 else "tied", subject, t.sort_values("layer"), int(c.shape[1]), detail)


def versus(correct: pd.DataFrame, tidy: pd.DataFrame, a: tuple[str, int], b: tuple[str, int], state: str,
           model: str | None = None, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Verdict:
    """Probe ``a`` = (metric, layer) against probe ``b`` on the same test sentences (e.g. the top layer
    against the lexical baseline, layer -1): the paired percentile bootstrap CI of acc(a) - acc(b) =
    mean_i (c_a(i) - c_b(i)). ``higher`` / ``lower`` when the CI excludes 0, ``tied`` otherwise,
    ``not measured`` without both probes' correctness. ``detail``: ``diff``, ``diff_ci``."""
    def per_sentence(metric, layer):
        sel = (correct["metric"] == metric) & (correct["layer"] == layer) & (correct["state"] == state)
        if model is not None:
            sel &= correct["model"] == model
        return correct[sel].set_index("sentence")["correct"]

    both = pd.concat([per_sentence(*a), per_sentence(*b)], axis=1, join="inner").dropna()
    subject = f"{a[0]} at layer {a[1]} vs {b[0]}" + (f" at layer {b[1]}" if b[1] >= 0 else "") + f" ({state})"
    rows = tidy[(tidy["state"] == state) & (((tidy["metric"] == a[0]) & (tidy["layer"] == a[1]))
                                             | ((tidy["metric"] == b[0]) & (tidy["layer"] == b[1])))]
    if model is not None:
        rows = rows[rows["model"] == model]
    if len(both) < 2:
        return Verdict("not measured", subject, rows, 0)
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)[None, :]
    lo, hi = _paired_diff_ci(d, n_boot, level, np.random.default_rng(seed))
    word = "higher" if lo[0] > 0 else "lower" if hi[0] < 0 else "tied"
    return Verdict(word, subject, rows, int(d.shape[1]), {"diff": float(d.mean()), "diff_ci": (float(lo[0]), float(hi[0])),
                                                          "level": level})


def state_versus(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, layer: int, state: str,
                 reference: str = "pretrained", model: str | None = None, *, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> Verdict:
    """A probe of ``state`` against the same probe of ``reference`` (same metric and layer) on the same
    test sentences: the paired percentile bootstrap CI of acc(state) - acc(reference). ``higher`` /
    ``lower`` when it excludes 0, ``tied`` otherwise, ``not measured`` without both. ``detail``:
    ``diff``, ``diff_ci``, ``layer``."""
    def per_sentence(s):
        sel = (correct["metric"] == metric) & (correct["layer"] == layer) & (correct["state"] == s)
        if model is not None:
            sel &= correct["model"] == model
        return correct[sel].set_index("sentence")["correct"]

    both = pd.concat([per_sentence(state), per_sentence(reference)], axis=1, join="inner").dropna()
    rows = tidy[(tidy["metric"] == metric) & (tidy["layer"] == layer) & tidy["state"].isin([state, reference])]
    if model is not None:
        rows = rows[rows["model"] == model]
    subject = f"{metric} at layer {layer}: {state} vs {reference}"
    if len(both) < 2:
        return Verdict("not measured", subject, rows, 0, {"layer": int(layer)})
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)[None, :]
    lo, hi = _paired_diff_ci(d, n_boot, level, np.random.default_rng(seed))
    word = "higher" if lo[0] > 0 else "lower" if hi[0] < 0 else "tied"
    return Verdict(word, subject, rows, int(d.shape[1]), {"diff": float(d.mean()), "level": level, "layer": int(layer),
                                                          "diff_ci": (float(lo[0]), float(hi[0]))})


def interval_versus(values, sentence_se, subject: str = "", rows: pd.DataFrame | None = None) -> Verdict:
    """Two scores without paired per-sentence rows (e.g. the fine-tuned classifier, one value per seed, against
    the lexical baseline): ``values`` the per-seed differences, ``sentence_se`` each one's SE from both sides'
    own intervals. "higher" / "lower" when the seed-and-sentence 95% interval of the mean difference
    (:func:`difference_outcome`, no margin) excludes 0, "tied" otherwise; ``detail`` adds ``paired`` False."""
    v = difference_outcome(values, sentence_se, subject=subject, rows=rows, leave_one_out=False)
    word = v.word if v.word == "not measured" else \
        "higher" if v.detail["ci_low"] > 0 else "lower" if v.detail["ci_high"] < 0 else "tied"
    return Verdict(word, subject, v.rows, v.n, {**v.detail, "paired": False})

# --------------------------------------------------------------------------------------------------
# The shape of a statistic through the layers (issue #15)
# --------------------------------------------------------------------------------------------------

def layer_trend(rows: pd.DataFrame, tolerance: float, subject: str = "") -> Verdict:
    """The shape of one state's per-layer series (``rows``: one tidy row per layer, ``layer >= 0``),
    with ``tolerance`` the smallest difference that counts (the prose passes half a unit of the last
    printed digit, so values that print the same never make a trend):

    "flat" when max - min <= tolerance; else "rises" / "falls" when the last layer is more than
    ``tolerance`` above / below the first; else (both ends within ``tolerance``) "peaks" when an inner
    layer exceeds both ends by more than ``tolerance``, "dips" otherwise. A description of one series,
    not a comparison between states: it says nothing about what fine-tuning changed. ``n``: layers;
    ``detail``: first, last, max/min and their layers. Empty rows: "not measured"."""
    s = rows[rows["layer"] >= 0].sort_values("layer")
    if s.empty or s["value"].isna().all():
        return Verdict("not measured", subject, s, 0)
    s = s[s["value"].notna()]
    v, layers = s["value"].to_numpy(dtype=float), s["layer"].to_numpy(dtype=int)
    first, last, hi, lo = v[0], v[-1], int(np.argmax(v)), int(np.argmin(v))
    detail = {"first": float(first), "last": float(last), "first_layer": int(layers[0]),
              "last_layer": int(layers[-1]), "max": float(v[hi]), "max_layer": int(layers[hi]),
              "min": float(v[lo]), "min_layer": int(layers[lo]), "tolerance": float(tolerance)}
    if v.max() - v.min() <= tolerance:
        word = "flat"
    elif abs(last - first) > tolerance:
        word = "rises" if last > first else "falls"
    else:
        word = "peaks" if v.max() - max(first, last) > tolerance else "dips"
    return Verdict(word, subject, s, len(v), detail)


# --------------------------------------------------------------------------------------------------
# A statistic against its own permuted-label null; a correlation over layers (issue #15)
# --------------------------------------------------------------------------------------------------

def null_verdict(observed: pd.DataFrame, null: pd.DataFrame, subject: str = "") -> Verdict:
    """Above-chance structure of a statistic with a permuted-label null stored as its own row (e.g.
    ``silhouette_cls`` against ``silhouette_perm_cls``, whose interval is the 2.5/97.5 % quantiles of the
    statistic over label permutations): "above chance" iff the observed value exceeds the null's upper
    interval end (a one-sided permutation test at 2.5 %, the rule of :func:`probe_chance_verdict`); "at
    chance" otherwise; "not measured" when either row is missing or NaN. One row each (same model, state,
    layer); ``n`` = the observed row's ``n``."""
    return _beyond_null(observed, null, "ci_high", subject,
                        lambda nr: {"null_value": float(nr["value"].iloc[0]), "null_upper": float(nr["ci_high"].iloc[0]),
                                    "layer": int(observed["layer"].iloc[0])})


def null_verdicts(tidy: pd.DataFrame, metric: str, null_metric: str, state: str,
                  model: str | None = None) -> list[Verdict]:
    """:func:`null_verdict` at every layer (``layer >= 0``) of ``metric`` for ``state`` (aggregate rows:
    pass ``Study.tidy``)."""
    rows = tidy[(tidy["state"] == state) & (tidy["layer"] >= 0)]
    if model is not None:
        rows = rows[rows["model"] == model]
    obs, null = rows[rows["metric"] == metric], rows[rows["metric"] == null_metric]
    return [null_verdict(o, null[(null["model"] == m) & (null["layer"] == layer)], f"{metric} {state}, {m} layer {layer}")
            for (m, layer), o in obs.groupby(["model", "layer"], sort=True)]


def correlation_verdict(row: pd.DataFrame, subject: str = "") -> Verdict:
    """A correlation (one tidy row with a 95 % interval, e.g. ``spearman_convergence_probe``):
    "significant" iff its interval excludes 0, "not significant" otherwise, "not measured" when the value
    or an interval end is NaN. The interval decides, not the p-value, so the printed interval and the
    verdict always agree. ``n``: the row's ``n`` (points correlated)."""
    if len(row) != 1:
        return Verdict("not measured", subject, row, 0, {"reason": "need one row"})
    r = row.iloc[0]
    value, low, high = float(r["value"]), float(r["ci_low"]), float(r["ci_high"])
    if not all(np.isfinite([value, low, high])):
        return Verdict("not measured", subject, row, int(r["n"]), {"reason": "undefined value or interval"})
    word = "significant" if low > 0 or high < 0 else "not significant"
    return Verdict(word, subject, row, int(r["n"]), {"value": value, "low": low, "high": high})
