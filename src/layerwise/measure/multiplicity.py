"""Multiplicity: the p-value of the seed-and-sentence interval, and the level at which each test of a family
is decided, so that the interval printed beside a verdict is the one that decided it.

* :func:`interval_p_value`: the two-sided p-value that inverts
  :func:`layerwise.measure.stats.seed_sentence_interval` (the largest alpha whose (1 - alpha) interval
  still contains 0);
* :func:`deciding_alphas`: per test, the alpha_i at which Holm's step-down procedure (Holm 1979) or the
  Benjamini-Hochberg procedure (Benjamini & Hochberg 1995) decides it. The (1 - alpha_i) interval excludes 0
  exactly when the procedure rejects: for Holm, a rejected test at rank i keeps alpha / (m - i + 1) and every
  test from the first kept one on shares that test's alpha / (m - j + 1); for BH with R rejections, every
  test gets R alpha / m (the false-coverage-rate intervals of Benjamini & Yekutieli 2005), alpha / m when
  R = 0.
"""

from __future__ import annotations

import numpy as np
import scipy.stats as sps
from scipy.optimize import brentq

from ..core.errors import LayerwiseError

#: the smallest p-value reported (below it the interval's quantiles lose precision)
P_FLOOR = 1e-12
METHODS = ("holm", "bh")


def _half_width(alpha: float, k: int, s2: float, se2: float) -> float:
    z = sps.norm.ppf(1 - alpha / 2)
    seeds = sps.t.ppf(1 - alpha / 2, k - 1) ** 2 * s2 / k if k > 1 else 0.0
    return float(np.sqrt(seeds + z ** 2 * se2))


def interval_p_value(values, sentence_se=0.0) -> float:
    """The p-value of H0: mean difference = 0 that the seed-and-sentence interval implies: the alpha at
    which the half-width sqrt(t_{k-1,1-alpha/2}^2 s^2/k + z_{1-alpha/2}^2 SE_sent^2) equals |mean|
    (:func:`layerwise.measure.stats.seed_sentence_interval`, one quantile per variance component). It is
    monotone in alpha, so the (1 - alpha) interval excludes 0 iff p < alpha. Known answers: with no
    sentence term it is the one-sample t-test's p; with one seed, 2 (1 - Phi(|v| / SE)). A zero-width
    interval (identical seeds, no sentence term) gives 0 when the mean is not 0, 1 when it is; NaN without
    a finite value."""
    d = np.asarray(values, dtype=float).reshape(-1)
    se = np.broadcast_to(np.nan_to_num(np.asarray(sentence_se, dtype=float), nan=0.0), d.shape)[np.isfinite(d)]
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    k, mean = d.size, float(d.mean())
    s2 = float(d.var(ddof=1)) if k > 1 else 0.0
    se2 = float(np.mean(se ** 2))
    if mean == 0:
        return 1.0
    if s2 <= 1e-24 * mean ** 2 and se2 == 0:                   # identical seeds (up to rounding)
        return 0.0
    f = lambda a: _half_width(a, k, s2, se2) - abs(mean)  # noqa: E731  (decreasing in a)
    if f(P_FLOOR) <= 0:
        return P_FLOOR
    return float(brentq(f, P_FLOOR, 1.0, xtol=1e-14, rtol=1e-10))


def deciding_alphas(pvalues, method: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(rejected, alpha_i)`` for a family of p-values (NaN: not in the family, alpha_i NaN). ``method``
    "holm" (family-wise error rate ``alpha``) or "bh" (false discovery rate ``alpha``). Rejected iff
    p_i <= alpha_i, and the procedure's own rule holds: Holm rejects p_(1..j-1) where p_(j) is the first
    above alpha / (m - j + 1); BH rejects the R smallest, R = max{i: p_(i) <= i alpha / m}. Agrees with
    :func:`layerwise.measure.stats.holm` / ``benjamini_hochberg`` (adjusted p <= alpha)."""
    if method not in METHODS:
        raise LayerwiseError(f"unknown correction {method!r}", "multiplicity.deciding_alphas", f"use one of {METHODS}")
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    ok = np.flatnonzero(np.isfinite(p))
    alphas = np.full(p.shape, np.nan)
    rejected = np.zeros(p.shape, dtype=bool)
    m = ok.size
    if m == 0:
        return rejected, alphas
    order = ok[np.argsort(p[ok], kind="stable")]
    if method == "holm":
        level = alpha / (m - np.arange(m))                       # alpha / (m - i + 1), i = 1..m
        passed = p[order] <= level
        j = m if passed.all() else int(np.argmin(passed))        # the first kept rank
        alphas[order[:j]] = level[:j]
        alphas[order[j:]] = level[j] if j < m else np.nan
        rejected[order[:j]] = True
    else:
        below = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / m)
        r = int(below[-1]) + 1 if below.size else 0
        alphas[ok] = alpha * max(r, 1) / m
        rejected[order[:r]] = True
    return rejected, alphas
