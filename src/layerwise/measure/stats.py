"""Statistical tests, confidence intervals and multiple-testing corrections, and the table builders that
turn the per-sentence metrics and the per-layer results into tidy rows.

Conventions: every resampling function takes a ``seed`` that feeds ``numpy.random.default_rng``; a
confidence interval is returned as ``(estimate, low, high)``; ``level`` is the two-sided coverage
(0.95 -> 2.5 % and 97.5 % percentiles). The tests come from ``scipy.stats`` wherever it has them; Holm's
step-down correction is not in scipy and is written out here (and checked against hand-worked values and
statsmodels' ``multipletests`` in ``tests/test_stats.py``); Benjamini-Hochberg's is scipy's
``false_discovery_control``.

Multiple testing: ONE family covers every p-value of a study's tidy tables (``tables.P_VALUES``), adjusted
by Holm's method (family-wise error rate) in :func:`adjust_family`; the adjusted p-value is stored next to
each raw one.

Tidy rows follow the table contract of :mod:`layerwise.core.tables` (``tidy_row``, ``tidy_frame``): model,
state, layer, metric, value, ci_low, ci_high, n.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..core.errors import LayerwiseError
from ..core.tables import P_VALUES, adjusted_name, tidy_frame


class TwoSampleResult(NamedTuple):
    """Outcome of a two-sample test.

    ``statistic``: the test statistic (difference of means, U, or W); ``p``: two-sided p-value;
    ``effect``: the effect size named by ``effect_name``; ``n``: the sample size(s) used.
    """

    statistic: float
    p: float
    effect: float
    effect_name: str
    n: int


def _check_level(level: float, where: str) -> None:
    if not 0 < level < 1:
        raise LayerwiseError(f"confidence level must lie in (0, 1), got {level}", where=where,
                             fix="pass e.g. level=0.95")


def _as_1d(values, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise LayerwiseError(f"expected a 1-D array of values, got shape {arr.shape}", where=where,
                             fix="flatten the values or pass one sample at a time")
    return arr


# --------------------------------------------------------------------------------------------------
# Confidence intervals
# --------------------------------------------------------------------------------------------------

def bootstrap_mean_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap CI of the mean (Efron & Tibshirani 1993, ch. 13), vectorised with one index
    matrix: the ``n`` values resampled with replacement ``n_boot`` times, the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled means (``scipy.stats.bootstrap(method="percentile")``
    up to the random draws, much faster for many small calls). NaNs are dropped; fewer than two values:
    the interval collapses to the estimate (NaN when there is none)."""
    _check_level(level, "bootstrap_mean_ci")
    x = _as_1d(values, "bootstrap_mean_ci")
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    est = float(x.mean())
    if x.size < 2:
        return (est, est, est)
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    boots = x[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return (est, float(lo), float(hi))


def bca_interval(estimate: float, boots, jackknife, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987; DiCiccio & Efron 1996, eq. 2.3)
    from the statistic on the sample (``estimate``), its bootstrap replicates ``boots`` and its
    leave-one-out (jackknife) values ``jackknife``:

        z0 = Phi^-1(#{boot < estimate} / B + #{boot == estimate} / 2B)   (bias correction)
        a = sum (m - J_i)^3 / (6 (sum (m - J_i)^2)^1.5), m = mean J_i      (acceleration)
        alpha_j = Phi(z0 + (z0 + z_j) / (1 - a (z0 + z_j))), z_j = Phi^-1((1 -/+ level) / 2)

    and the interval is the alpha_1 and alpha_2 quantiles of the replicates. Unlike the percentile
    interval it corrects for the statistic's bias (a biased statistic's percentile interval can miss its
    own estimate: the centroid angle between noisy centroids is biased upwards). The bias proportion is
    kept within [1 / 2B, 1 - 1 / 2B], so z0 stays finite. NaN replicates are dropped; fewer than two:
    (NaN, NaN). Known answers (``tests/test_stats.py``): within Monte-Carlo error of
    ``scipy.stats.bootstrap(method="BCa")`` for the variance of a skewed sample; the percentile interval
    when the replicates are centred on the estimate and the jackknife is symmetric."""
    b = np.asarray(boots, dtype=np.float64).reshape(-1)
    b = b[np.isfinite(b)]
    jk = np.asarray(jackknife, dtype=np.float64).reshape(-1)
    jk = jk[np.isfinite(jk)]
    if b.size < 2:
        return (np.nan, np.nan)
    prop = np.clip(np.mean(b < estimate) + 0.5 * np.mean(b == estimate), 0.5 / b.size, 1 - 0.5 / b.size)
    z0 = sps.norm.ppf(prop)
    d = jk.mean() - jk if jk.size > 1 else np.zeros(1)
    den = 6.0 * np.sum(d ** 2) ** 1.5
    a = float(np.sum(d ** 3) / den) if den > 0 else 0.0
    z = sps.norm.ppf([(1 - level) / 2, (1 + level) / 2])
    alpha = sps.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    low, high = np.quantile(b, alpha)
    return (float(low), float(high))


def respect_range(estimate: float, low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """An interval clipped to its statistic's range ``bounds`` (``tables.RANGES``) and widened to contain its
    ``estimate`` (both said in Methods); NaN ends stay NaN. Known answers: (0.06, -0.14, 0.26) in [0, 1]
    gives (0, 0.26); (5.8, 6.6, 8.3) gives (5.8, 8.3)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return (low, high)
    if np.isfinite(estimate):
        low, high = min(low, estimate), max(high, estimate)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return (float(low), float(high))


def replicate_mean_ci(values, replicate, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` with a CI from independent replicates of the whole sampling: ``replicate``
    labels each value with the independent draw it comes from (e.g. a disjoint group of sampled tokens
    and the random pairs made of them), the standard error is ``sd(replicate means) / sqrt(G)`` over the
    G replicates, and the interval is ``mean -/+ t_{G-1, (1+level)/2} SE`` (the method of independent
    replicates, "random groups": Wolter 2007, ch. 2). Unlike an interval over the values themselves it
    covers every random choice of a replicate (here: which tokens, not only which pairs). Returns
    ``(mean, low, high)``; NaN bounds with fewer than two replicates.

    Known answer: with one value per replicate it is the Student-t interval of the values.
    """
    _check_level(level, "replicate_mean_ci")
    v = _as_1d(values, "replicate_mean_ci")
    g = np.asarray(replicate).reshape(-1)
    if g.size != v.size:
        raise LayerwiseError(f"{v.size} values but {g.size} replicate labels", where="replicate_mean_ci",
                             fix="give one replicate label per value")
    ok = ~np.isnan(v)
    v, g = v[ok], g[ok]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    labels, inverse = np.unique(g, return_inverse=True)
    est = float(v.mean())
    if labels.size < 2:
        return (est, np.nan, np.nan)
    means = np.bincount(inverse, weights=v) / np.bincount(inverse)
    half = _t_half_width(means, level)
    return (est, est - half, est + half)


def _t_half_width(x: np.ndarray, level: float) -> float:
    """``t_{n-1, (1+level)/2} sd(x) / sqrt(n)``, the half-width of the Student-t interval of the mean of the
    ``n >= 2`` values ``x``."""
    return float(sps.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def t_interval(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of the finite values with their Student-t interval, ``mean -/+ t_{n-1, (1+level)/2} sd / sqrt(n)``:
    ``(mean, low, high, n)``; NaN bounds with fewer than two finite values (NaN mean with none). The one
    t-interval of the package (the geometry engine's per-sentence means, :func:`replicate_mean_ci` over
    replicate means). Known answer: ``[1, 2, 3]`` gives ``2 -/+ 4.303 / sqrt(3)``."""
    _check_level(level, "t_interval")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mu = float(x.mean())
    if x.size < 2:
        return mu, float("nan"), float("nan"), int(x.size)
    half = _t_half_width(x, level)
    return mu, mu - half, mu + half, int(x.size)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (Wilson 1927), via
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``:
    centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    Returns ``(k / n, low, high)``."""
    _check_level(level, "wilson_ci")
    if n <= 0 or not 0 <= k <= n:
        raise LayerwiseError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}", where="wilson_ci",
                             fix="pass the number of successes and of trials")
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return (k / n, float(ci.low), float(ci.high))


def binomial_vs_majority(correct: int, n: int, majority_rate: float) -> float:
    """One-sided exact binomial test that an accuracy ``correct / n`` beats the majority-class rate:
    H0 ``p = majority_rate``, H1 ``p > majority_rate`` (``scipy.stats.binomtest``,
    ``alternative="greater"``). Returns the p-value. Treats test items as independent trials."""
    if n <= 0 or not 0 <= correct <= n:
        raise LayerwiseError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}",
                             where="binomial_vs_majority", fix="pass counts, not rates")
    if not 0 < majority_rate < 1:
        raise LayerwiseError(f"majority_rate must lie in (0, 1), got {majority_rate}",
                             where="binomial_vs_majority", fix="pass the share of the most frequent class")
    return float(sps.binomtest(int(correct), int(n), p=majority_rate, alternative="greater").pvalue)


def macro_f1_ci(y_true, y_pred, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Macro-F1 (unweighted mean over classes of F1_k = 2 P_k R_k / (P_k + R_k), scikit-learn
    ``f1_score(average="macro")``) with a percentile bootstrap CI over test items (pairs
    ``(y_true_i, y_pred_i)`` resampled together)."""
    from sklearn.metrics import f1_score

    _check_level(level, "macro_f1_ci")
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim != 1 or yt.size == 0:
        raise LayerwiseError(f"y_true and y_pred must be 1-D of equal non-zero length, got {yt.shape} and {yp.shape}",
                             where="macro_f1_ci", fix="pass one label and one prediction per test item")
    labels = np.unique(np.concatenate([yt, yp]))
    est = float(f1_score(yt, yp, average="macro", labels=labels, zero_division=0))
    # Vectorised bootstrap: a resample is a vector of multiplicities w (multinomial(n, 1/n)); per class k,
    # TP_k = w . [y=k, p=k], FP_k = w . [y!=k, p=k], FN_k = w . [y=k, p!=k], F1_k = 2TP / (2TP + FP + FN)
    # (0 when the denominator is 0, as zero_division=0). Chunked so memory stays bounded.
    hit = (yt[None, :] == labels[:, None]) & (yp[None, :] == labels[:, None])      # [K, n]
    fp = (yt[None, :] != labels[:, None]) & (yp[None, :] == labels[:, None])
    fn = (yt[None, :] == labels[:, None]) & (yp[None, :] != labels[:, None])
    ind = np.stack([hit, fp, fn]).astype(np.float64)                                  # [3, K, n]
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // yt.size))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        w = rng.multinomial(yt.size, np.full(yt.size, 1.0 / yt.size), size=m).astype(np.float64)  # [m, n]
        tp_, fp_, fn_ = np.einsum("bn,ckn->cbk", w, ind)                               # each [m, K]
        den = 2 * tp_ + fp_ + fn_
        f1 = np.divide(2 * tp_, den, out=np.zeros_like(den), where=den > 0)
        boots[start:start + m] = f1.mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return (est, float(lo), float(hi))


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------

def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _two_samples(a, b, paired: bool, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as 1-D float arrays with NaNs dropped: pairwise (same items, equal lengths) when
    ``paired``, each on its own otherwise."""
    a, b = _as_1d(a, where), _as_1d(b, where)
    if not paired:
        return a[~np.isnan(a)], b[~np.isnan(b)]
    if a.shape != b.shape:
        raise LayerwiseError(f"paired samples need equal lengths, got {a.size} and {b.size}",
                             where=where, fix="align the two samples item by item")
    ok = ~(np.isnan(a) | np.isnan(b))
    return a[ok], b[ok]


def permutation_test(a, b, n_perm: int = 9999, seed: int = 0, paired: bool = False) -> TwoSampleResult:
    """Two-sided permutation test of the difference of means ``mean(a) - mean(b)``
    (``scipy.stats.permutation_test``; Good 2005).

    Independent samples: labels are permuted between the pooled samples; effect size = Cohen's d,
    (mean(a) - mean(b)) / s_pooled with s_pooled^2 = ((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a+n_b-2).
    Paired samples (``paired=True``, same items measured twice): the sign of each difference is
    flipped at random (``permutation_type="samples"``); effect size = d_z = mean(a-b) / sd(a-b).
    Two-sided p = min(1, 2 min(P_le, P_ge)) with P_ge = (1 + #{T* >= T}) / (1 + n_perm) over random
    permutations (exact enumeration when there are fewer than ``n_perm``), valid (uniform or conservative)
    under H0; its smallest value is 2 / (1 + n_perm).
    NaNs are dropped (pairwise when paired).
    """
    a, b = _two_samples(a, b, paired, "permutation_test")
    if a.size < 2 or b.size < 2:
        return TwoSampleResult(np.nan, np.nan, np.nan, "d_z" if paired else "cohen_d", int(min(a.size, b.size)))
    rng = np.random.default_rng(seed)
    if paired:
        d = a - b
        if np.all(d == 0):
            return TwoSampleResult(0.0, 1.0, 0.0, "d_z", int(a.size))
        res = sps.permutation_test((a, b), _mean_diff, permutation_type="samples", n_resamples=n_perm,
                                   alternative="two-sided", vectorized=True, rng=rng)
        sd = d.std(ddof=1)
        effect = float(d.mean() / sd) if sd > 0 else float(np.sign(d.mean()) * np.inf)
        return TwoSampleResult(float(res.statistic), float(res.pvalue), effect, "d_z", int(a.size))
    res = sps.permutation_test((a, b), _mean_diff, permutation_type="independent", n_resamples=n_perm,
                               alternative="two-sided", vectorized=True, rng=rng)
    na, nb = a.size, b.size
    sp = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    diff = a.mean() - b.mean()
    effect = float(diff / sp) if sp > 0 else (0.0 if diff == 0 else float(np.sign(diff) * np.inf))
    return TwoSampleResult(float(res.statistic), float(res.pvalue), effect, "cohen_d", int(na + nb))


def rank_test(a, b, paired: bool = False) -> TwoSampleResult:
    """Rank test between two samples, with a rank-biserial effect size in [-1, 1].

    Independent (default): Mann-Whitney U (``scipy.stats.mannwhitneyu``, two-sided); effect
    r = 2 U_a / (n_a n_b) - 1 = P(A > B) - P(A < B) (Kerby 2014), positive when ``a`` tends to exceed ``b``.
    Paired (``paired=True``; e.g. the same test sentences in two model states): Wilcoxon signed-rank test
    on d = a - b (``scipy.stats.wilcoxon``, zeros dropped); effect = matched-pairs rank-biserial
    r = (T+ - T-) / (T+ + T-), with T+/T- the rank sums of the positive/negative differences of |d|.
    NaNs are dropped (pairwise when paired). All-zero differences give p = 1, effect 0.
    """
    a, b = _two_samples(a, b, paired, "rank_test")
    if paired:
        d = a - b
        nz = d[d != 0]
        if nz.size == 0:
            return TwoSampleResult(0.0, 1.0, 0.0, "rank_biserial", int(d.size))
        ranks = sps.rankdata(np.abs(nz))
        t_plus, t_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
        res = sps.wilcoxon(nz, zero_method="wilcox", alternative="two-sided")
        return TwoSampleResult(float(res.statistic), float(res.pvalue), float((t_plus - t_minus) / (t_plus + t_minus)),
                          "rank_biserial", int(d.size))
    if a.size == 0 or b.size == 0:
        return TwoSampleResult(np.nan, np.nan, np.nan, "rank_biserial", 0)
    res = sps.mannwhitneyu(a, b, alternative="two-sided")
    return TwoSampleResult(float(res.statistic), float(res.pvalue), float(2 * res.statistic / (a.size * b.size) - 1),
                      "rank_biserial", int(a.size + b.size))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979), controlling the family-wise error rate.

    With the m non-NaN p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); returned in the input order. NaN stays NaN and
    does not count in m. Rejecting ``adj <= alpha`` is Holm's procedure at level alpha.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise LayerwiseError(f"expected a 1-D array of p-values, got shape {p.shape}", where="holm",
                             fix="pass one family of p-values at a time")
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise LayerwiseError("p-values must lie in [0, 1]", where="holm", fix="pass p-values, not statistics")
    out = np.full_like(p, np.nan)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * q[order])
    adj = np.empty(m)
    adj[order] = np.maximum.accumulate(scaled)
    out[ok] = adj
    return out


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (Benjamini & Hochberg 1995), controlling the false discovery
    rate: with the m non-NaN p-values sorted ascending, adj_(i) = min_{j >= i} min(1, m p_(j) / j)
    (``scipy.stats.false_discovery_control(method="bh")``); returned in the input order, NaN kept."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise LayerwiseError(f"expected a 1-D array of p-values, got shape {p.shape}", where="benjamini_hochberg",
                             fix="pass one family of p-values at a time")
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


#: multiple-testing methods of :func:`adjust_family`
CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


def adjust_family(tidy: pd.DataFrame, method: str = "holm") -> pd.DataFrame:
    """``tidy`` with one multiple-testing family over EVERY p-value in it: all rows whose metric is a
    raw p-value of ``tables.P_VALUES`` (every model, state, layer and statistic) are adjusted together
    (``method``: "holm", Holm 1979, family-wise error rate; or "bh", Benjamini-Hochberg 1995, false
    discovery rate) and the adjusted value is written as the declared adjusted metric (e.g.
    ``test_p_holm_<metric>``), replacing any adjusted rows already there (idempotent). ``n`` is kept;
    the family size is the number of non-NaN raw p-values."""
    if method not in CORRECTIONS:
        raise LayerwiseError(f"unknown correction {method!r}", where="adjust_family", fix=f"use one of {sorted(CORRECTIONS)}")
    names = {m: adjusted_name(m) for m in tidy["metric"].unique()}
    adjusted = {a for a in names.values() if a}
    base = tidy[~tidy["metric"].isin(adjusted)]
    raw = base[base["metric"].map(lambda m: names.get(m) is not None)]
    if raw.empty:
        return tidy_frame(base.reset_index(drop=True))
    out = raw.assign(metric=raw["metric"].map(names), value=CORRECTIONS[method](raw["value"].to_numpy()),
                     ci_low=np.nan, ci_high=np.nan)
    return tidy_frame(pd.concat([base, out], ignore_index=True))


def spearman_ci(x, y, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                method: str = "bootstrap") -> tuple[float, float, float, float]:
    """Spearman rank correlation rho (Pearson correlation of the ranks, ``scipy.stats.spearmanr``) with
    its two-sided p-value and a confidence interval. Returns ``(rho, p, low, high)``.

    The p-value is a permutation test of the pairing (``scipy.stats.permutation_test``,
    ``permutation_type="pairings"``; exact for n <= 7, else 9999 random pairings): the t approximation of
    ``spearmanr`` is poor for the handful of layers of a model (it gives p = 0 for a perfect ranking of 7
    points, whose exact p is 2 / 7! = 0.0004).

    ``method="bootstrap"``: percentile bootstrap over (x_i, y_i) pairs (resamples with a constant
    x or y are skipped). ``method="fisher"``: z = atanh(rho), SE = sqrt((1 + rho^2 / 2) / (n - 3))
    (Bonett & Wright 2000), CI = tanh(z -/+ z_{(1+level)/2} SE); better behaved than the bootstrap for the
    handful of points one gets across layers (n >= 4 needed). For a perfect rho = +/-1 (z infinite) the
    interval runs from the Fisher bound of the nearest attainable value, 1 - 12 / (n (n^2 - 1)) (one
    adjacent swap), to +/-1. NaN pairs are dropped.
    """
    _check_level(level, "spearman_ci")
    x, y = _as_1d(x, "spearman_ci"), _as_1d(y, "spearman_ci")
    if x.shape != y.shape:
        raise LayerwiseError(f"x and y must have equal lengths, got {x.size} and {y.size}", where="spearman_ci",
                             fix="pair the values item by item")
    if method not in ("bootstrap", "fisher"):
        raise LayerwiseError(f"unknown method {method!r}", where="spearman_ci", fix="use 'bootstrap' or 'fisher'")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = x.size
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return (np.nan, np.nan, np.nan, np.nan)
    rho = float(sps.spearmanr(x, y).statistic)
    rx0, ry0 = sps.rankdata(x), sps.rankdata(y)

    def _pearson(a, b, axis=-1):
        a = a - a.mean(axis=axis, keepdims=True)
        b = b - b.mean(axis=axis, keepdims=True)
        return (a * b).sum(axis=axis) / np.sqrt((a ** 2).sum(axis=axis) * (b ** 2).sum(axis=axis))

    # permutation p-value (exact enumeration of the n! pairings when n! <= 9999, i.e. n <= 7)
    # (one sample permuted against the fixed other: n! distinct pairings)
    p = float(sps.permutation_test((rx0,), lambda a, axis=-1: _pearson(a, ry0, axis), permutation_type="pairings",
                                   n_resamples=9999, vectorized=True, rng=np.random.default_rng(seed)).pvalue)
    if method == "fisher":
        if n < 4:
            return (rho, p, np.nan, np.nan)
        r = rho
        if abs(rho) >= 1 - 1e-12:  # atanh(1) is infinite: use the nearest attainable value below 1
            r = np.sign(rho) * (1 - 12 / (n * (n ** 2 - 1)))
        z = np.arctanh(r)
        se = np.sqrt((1 + r ** 2 / 2) / (n - 3))
        q = sps.norm.ppf((1 + level) / 2)
        lo, hi = float(np.tanh(z - q * se)), float(np.tanh(z + q * se))
        if r != rho:
            lo, hi = (lo, 1.0) if rho > 0 else (-1.0, hi)
        return (rho, p, lo, hi)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    rx = sps.rankdata(x[idx], axis=1)
    ry = sps.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    valid = den > 0
    boots = (rx * ry).sum(axis=1)[valid] / den[valid]
    if boots.size == 0:
        return (rho, p, np.nan, np.nan)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return (rho, p, float(lo), float(hi))


# --------------------------------------------------------------------------------------------------
# the final evaluation of a fine-tuned classifier
# --------------------------------------------------------------------------------------------------

def majority_baseline(y_true: np.ndarray) -> tuple[int, float]:
    """The best constant predictor on the test labels: ``(class, share)`` with ``share = max_c n_c / n``
    (a conservative baseline: at least the accuracy of predicting the training majority)."""
    values, counts = np.unique(np.asarray(y_true), return_counts=True)
    i = int(np.argmax(counts))
    return int(values[i]), float(counts[i] / counts.sum())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, seed: int = 0, n_boot: int = 1000,
                           level: float = 0.95) -> dict:
    """Accuracy with its Wilson CI (:func:`wilson_ci`), macro-F1 with a percentile bootstrap CI over
    test items (:func:`macro_f1_ci`, ``n_boot`` draws), the majority-class baseline
    (:func:`majority_baseline`) and the one-sided exact binomial p-value of the accuracy against it
    (:func:`binomial_vs_majority`: H0 accuracy = baseline, H1 accuracy > baseline); intervals at ``level``."""
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    y_pred = np.asarray(y_pred).astype(int).reshape(-1)
    n = int(len(y_true))
    correct = int(np.sum(y_true == y_pred))
    acc, acc_lo, acc_hi = wilson_ci(correct, n, level=level)
    f1, f1_lo, f1_hi = macro_f1_ci(y_true, y_pred, n_boot=n_boot, seed=seed, level=level)
    maj_class, maj = majority_baseline(y_true)
    p = binomial_vs_majority(correct, n, maj) if 0 < maj < 1 else float("nan")
    return {"n_test": n, "correct": correct, "accuracy": acc, "accuracy_ci": [acc_lo, acc_hi],
            "macro_f1": f1, "macro_f1_ci": [f1_lo, f1_hi], "majority_class": maj_class,
            "majority_baseline": maj, "binomial_p": p, "confidence": level}


# --------------------------------------------------------------------------------------------------
# fine-tuning seeds: the seed-and-sentence interval
# --------------------------------------------------------------------------------------------------

class SeedInterval(NamedTuple):
    """Mean over fine-tuning seeds with its interval (arrays of the batch shape, or floats):
    ``estimate``, ``low``, ``high``, ``n_seeds``, ``df`` (degrees of freedom of the t quantile; inf for
    the normal quantile) and ``seed_variation_measured`` (False with one seed: sentence-only interval)."""

    estimate: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    n_seeds: int
    df: np.ndarray | float
    seed_variation_measured: bool


def se_from_ci(low, high, level: float = 0.95) -> np.ndarray:
    """Standard error implied by a symmetric normal interval: ``(high - low) / (2 z_{(1+level)/2})``
    (an approximation for a percentile bootstrap interval). NaN bounds give 0: no sentence term."""
    _check_level(level, "se_from_ci")
    width = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    return np.nan_to_num(width / (2 * sps.norm.ppf((1 + level) / 2)), nan=0.0)


def seed_sentence_interval(values, sentence_se=0.0, level: float = 0.95) -> SeedInterval:
    """Interval of a fine-tuned state's value that combines seed and sentence variation.

    ``values`` ``[..., S]``: the statistic of each of S fine-tuning seeds, all measured on the same n
    test sentences; ``sentence_se`` (``[..., S]`` or broadcastable): each seed's standard error over
    sentences (e.g. :func:`se_from_ci` of its bootstrap interval). Model:
    ``v_s = mu + a_s + e + eps_s``, a seed effect ``a_s``, a sentence-sampling error ``e`` shared by the
    seeds (same sentences) and an idiosyncratic part ``eps_s``. The sample variance ``s^2`` of the
    ``v_s`` estimates ``Var(a + eps)``, but not the shared ``e``, which does not shrink with S;
    ``SE_sent^2`` is the mean of the squared per-seed sentence errors (conservative: it counts the
    idiosyncratic part twice). Each variance component gets its own quantile:

        half-width = sqrt(t_{S-1, (1+level)/2}^2 s^2 / S + z_{(1+level)/2}^2 SE_sent^2)

    so adding a variance component can never narrow the interval: it is never narrower than the
    seed-only t-interval (``t s / sqrt(S)``) nor than the sentence-only normal interval (``z SE_sent``),
    unlike Welch-Satterthwaite degrees of freedom (0.75x the seed-only width at S = 3, coverage 0.92).
    S = 1: the sentence-only ``v +- z SE_sent``, ``seed_variation_measured=False``. ``df`` = S - 1.
    References: Bouthillier et al. 2021 (seeds and data sampling as separate variance sources); Graybill
    & Wang 1980 (one quantile per variance component); Dodge et al. 2020 (seed-to-seed spread of BERT).

    Known answers (``tests/test_stats.py``): never narrower than the seed-only interval; simulated
    coverage of the true mean >= 0.945 at S = 3 and S = 5 over sentence/seed variance ratios 0.05 to 10;
    with ``sentence_se = 0`` and S >= 2 it is the t-interval with S - 1 degrees of freedom; S = 1 gives
    ``v +- 1.96 SE_sent`` at level 0.95; identical seeds without a sentence term give a zero-width
    interval at their value.
    """
    _check_level(level, "seed_sentence_interval")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] < 1:
        raise LayerwiseError("need the values of at least one seed (last axis = seeds)", "stats.seed_sentence_interval",
                             "pass one value per fine-tuning seed")
    S = v.shape[-1]
    se_sent2 = np.mean(np.broadcast_to(np.asarray(sentence_se, dtype=np.float64) ** 2, v.shape), axis=-1)
    mean = v.mean(axis=-1)
    z = sps.norm.ppf((1 + level) / 2)
    if S == 1:
        half = z * np.sqrt(se_sent2)
        return SeedInterval(mean, mean - half, mean + half, 1, np.inf, False)
    t = sps.t.ppf((1 + level) / 2, S - 1)
    half = np.sqrt(t ** 2 * v.var(axis=-1, ddof=1) / S + z ** 2 * se_sent2)
    return SeedInterval(mean, mean - half, mean + half, S, float(S - 1), True)


def minimum_detectable_effect(values, level: float = 0.95, power: float = 0.80) -> float:
    """The smallest mean difference a one-sample t-test over the S seeds' values detects with probability
    ``power`` at two-sided ``level``, from the observed seed SD s (a design quantity, not post-hoc power):
    MDE = (t_{S-1, (1+level)/2} + t_{S-1, power}) s / sqrt(S)

    (Bloom 1995, "Minimum detectable effects"). NaN with fewer than two values; 0 for identical values.
    Known answer: S = 3, s = 1 gives (4.303 + 1.061) / sqrt(3) = 3.097."""
    v = _as_1d(values, "minimum_detectable_effect")
    v = v[~np.isnan(v)]
    if v.size < 2:
        return float("nan")
    q = sps.t.ppf((1 + level) / 2, v.size - 1) + sps.t.ppf(power, v.size - 1)
    return float(q * v.std(ddof=1) / np.sqrt(v.size))
