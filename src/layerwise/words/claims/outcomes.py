"""The answer model of a difference (issue 22): changed / changed, size unclear / no change beyond δ /
not established with k seeds; a similarity against the similarity between seeds; the seed that stands apart."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .verdict import SEED_VARIATION_NOT_MEASURED, Verdict, seeds_in


def difference_rows(rows: pd.DataFrame, reference: str = "pretrained", state: str = "finetuned",
                    level: float = 0.95) -> pd.DataFrame:
    """Rows of one metric at one layer (one ``reference`` row, one ``state`` row per seed) -> one row per
    seed whose value is the state's value minus the reference's. For statistics without a paired
    per-sentence difference (``effect_*`` rows already are differences). The difference's sentence
    interval is ``+- z sqrt(SE_state^2 + SE_reference^2)`` from each row's own interval
    (:func:`layerwise.measure.stats.se_from_ci`; conservative when, as on the same sentences, the two errors are
    positively correlated); NaN when neither row has an interval."""
    from scipy.stats import norm

    from ...measure.stats import se_from_ci

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
    ``low``/``high``: the interval that decides (90% for "no change beyond δ", else ``level``; a family's
    level comes from :func:`layerwise.words.claims.families.adjust`).
    ``leave_one_out`` (k >= 3 seeds): the outcome of each analysis without one seed, in seed order
    (sensitivity: "changed in 2 of 3 leave-one-out analyses"). Chance is a separate verdict (:func:`chance_verdict`, :func:`null_verdict`), never an outcome."""
    from scipy.stats import norm

    from ...measure.stats import minimum_detectable_effect, seed_sentence_interval

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
              "seeds": int(d.size), "per_seed": [float(x) for x in d], "sentence_se": [float(x) for x in se],
              "level": level, "direction": direction,
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
    from ...measure.stats import se_from_ci

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
    S = seeds_in(vs_reference)
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



def interval_versus(values, sentence_se, subject: str = "", rows: pd.DataFrame | None = None) -> Verdict:
    """Two scores without paired per-sentence rows (e.g. the fine-tuned classifier, one value per seed, against
    the lexical baseline): ``values`` the per-seed differences, ``sentence_se`` each one's SE from both sides'
    own intervals. "higher" / "lower" when the seed-and-sentence 95% interval of the mean difference
    (:func:`difference_outcome`, no margin) excludes 0, "tied" otherwise; ``detail`` adds ``paired`` False."""
    v = difference_outcome(values, sentence_se, subject=subject, rows=rows, leave_one_out=False)
    word = v.word if v.word == "not measured" else \
        "higher" if v.detail["ci_low"] > 0 else "lower" if v.detail["ci_high"] < 0 else "tied"
    return Verdict(word, subject, v.rows, v.n, {**v.detail, "paired": False})

