"""Size before significance (issue #11): per-sentence paired tests of the checkpoints at hand."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .verdict import Verdict

#
# A paired test between two states at one layer says "higher" or "lower" only when the effect is both
# large enough to matter and significant: with a few hundred sentences that all move the same tiny way,
# a difference of 0.001 gets p < 1e-20, and the p-value alone would call it a change. The rules, in
# order (size first):
#
# 1. negligible: |mean paired difference| < delta, delta = NEGLIGIBLE_SD x the between-sentence SD of
#    the metric in the reference (pretrained) state at that layer (``reference_sd_<metric>``);
# 2. not significant: the family-adjusted p-value (ONE family: every per-sentence test of the study, Holm,
#    ``stats.adjust_family``; a description of these checkpoints when there are several seeds, see
#    :mod:`layerwise.words.claims.families`) is not below ``alpha``, or missing;
# 3. higher / lower: the sign of the mean paired difference, always printed with its CI.

#: the negligible-effect threshold, in between-sentence SDs of the reference state (declared once here;
#: chapters/methods.qmd states it and tests/test_claims.py checks that it does)
NEGLIGIBLE_SD = 0.1
#: the significance level of every verdict, on family-adjusted p-values
ALPHA = 0.05


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
    from ...core.schema import P_VALUES, lookup

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

