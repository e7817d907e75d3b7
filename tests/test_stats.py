"""Known answers for layerwise.measure.stats: CIs, tests (calibrated under H0, powerful under a planted shift),
Holm's correction against hand-worked values, and the tidy table builders."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from layerwise.measure import comparisons, stats
from layerwise.core import schema
from layerwise.core.errors import LayerwiseError

# ---------------------------------------------------------------------------------------------- CIs


def test_bootstrap_mean_ci_matches_the_normal_interval():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    est, lo, hi = stats.bootstrap_mean_ci(x, n_boot=2000, seed=0)
    assert est == pytest.approx(x.mean())
    assert lo < est < hi
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)            # ~0.196
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert stats.bootstrap_mean_ci(x, n_boot=2000, seed=0) == (est, lo, hi)  # same seed, same interval


def test_bootstrap_mean_ci_degenerate_samples():
    assert stats.bootstrap_mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert stats.bootstrap_mean_ci([2.0]) == (2.0, 2.0, 2.0)
    assert np.isnan(stats.bootstrap_mean_ci([np.nan])[0])
    with pytest.raises(LayerwiseError, match="level"):
        stats.bootstrap_mean_ci([1.0, 2.0], level=95)


def test_t_interval_known_answers():
    mean, low, high, n = stats.t_interval([1.0, 2.0, 3.0, np.nan, np.inf])
    half = sps.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)             # 4.303 / sqrt(3)
    assert (mean, n) == (2.0, 3) and (low, high) == pytest.approx((2 - half, 2 + half), rel=1e-12)
    one = stats.t_interval([5.0])
    assert one[0] == 5.0 and np.isnan(one[1]) and np.isnan(one[2]) and one[3] == 1
    assert np.isnan(stats.t_interval([])[0]) and stats.t_interval([])[3] == 0
    # the replicate interval with one value per replicate is this interval
    x = np.random.default_rng(3).normal(size=12)
    assert stats.replicate_mean_ci(x, np.arange(12)) == stats.t_interval(x)[:3]


def test_wilson_ci_matches_the_formula_by_hand():
    k, n, z = 7, 10, sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    est, lo, hi = stats.wilson_ci(k, n)
    assert est == 0.7
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    assert lo == pytest.approx(0.3968, abs=1e-4) and hi == pytest.approx(0.8922, abs=1e-4)
    with pytest.raises(LayerwiseError):
        stats.wilson_ci(11, 10)


def test_binomial_vs_majority():
    # P(X >= 60 | n=100, p=0.5) = 0.02844
    assert stats.binomial_vs_majority(60, 100, 0.5) == pytest.approx(0.028444, abs=1e-5)
    assert stats.binomial_vs_majority(50, 100, 0.5) > 0.5
    with pytest.raises(LayerwiseError, match="majority_rate"):
        stats.binomial_vs_majority(5, 10, 1.0)


def test_macro_f1_hand_value_and_ci():
    # class 0: P=1, R=.5 -> F1=2/3; class 1: P=2/3, R=1 -> F1=.8; macro = 0.7333
    est, lo, hi = stats.macro_f1_ci([0, 0, 1, 1], [0, 1, 1, 1], n_boot=200, seed=0)
    assert est == pytest.approx((2 / 3 + 0.8) / 2)
    assert lo <= est <= hi
    est, lo, hi = stats.macro_f1_ci([0, 1] * 50, [0, 1] * 50, n_boot=100)
    assert est == lo == hi == 1.0


def test_macro_f1_bootstrap_equals_sklearn_on_the_same_resamples():
    # The vectorised bootstrap must give, resample by resample, what sklearn's f1_score gives on the
    # resampled items (3 classes, one class never predicted in some resamples).
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 60)
    p = np.where(rng.random(60) < 0.7, y, (y + 1) % 3)
    n_boot = 300
    est, lo, hi = stats.macro_f1_ci(y, p, n_boot=n_boot, seed=11)
    labels = np.unique(np.concatenate([y, p]))
    w = np.random.default_rng(11).multinomial(60, np.full(60, 1 / 60), size=n_boot)
    ref = [f1_score(y[np.repeat(np.arange(60), wi)], p[np.repeat(np.arange(60), wi)], average="macro",
                    labels=labels, zero_division=0) for wi in w]
    ref_lo, ref_hi = np.quantile(ref, [0.025, 0.975])
    assert est == pytest.approx(f1_score(y, p, average="macro"))
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)


# ---------------------------------------------------------------------------------------------- tests


def _null_pvalues(test, draws=300, n=15, paired=False):
    rng = np.random.default_rng(123)
    out = []
    for i in range(draws):
        a, b = rng.normal(size=n), rng.normal(size=n)
        out.append(test(a, b, i))
    return np.array(out)


def _assert_uniform(p, draws):
    assert sps.kstest(p, "uniform").pvalue > 0.01
    lo, hi = sps.binom.ppf([0.0005, 0.9995], draws, 0.05)     # 99.9 % binomial band around 5 %
    assert lo <= np.sum(p < 0.05) <= hi


@pytest.mark.parametrize("paired", [False, True])
def test_permutation_test_is_uniform_under_the_null(paired):
    p = _null_pvalues(lambda a, b, i: stats.permutation_test(a, b, n_perm=199, seed=i, paired=paired).p)
    _assert_uniform(p, 300)


def test_rank_tests_are_uniform_under_the_null():
    _assert_uniform(_null_pvalues(lambda a, b, i: stats.rank_test(a, b).p), 300)
    _assert_uniform(_null_pvalues(lambda a, b, i: stats.rank_test(a, b, paired=True).p), 300)


def test_permutation_test_detects_a_planted_shift():
    rng = np.random.default_rng(7)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40)
    res = stats.permutation_test(a, b, n_perm=1999, seed=0)
    assert res.p < 0.01 and res.effect_name == "cohen_d"
    assert res.statistic == pytest.approx(a.mean() - b.mean())
    assert 0.5 < res.effect < 1.6                              # planted d = 1
    # paired: the same items plus a shift of 0.3 with small noise
    base = rng.normal(size=30)
    res = stats.permutation_test(base + 0.3 + rng.normal(0, 0.1, 30), base, n_perm=999, seed=0, paired=True)
    assert res.p < 0.01 and res.effect > 2 and res.effect_name == "d_z"
    # no difference at all
    assert stats.permutation_test(base, base, paired=True).p == 1.0


def test_rank_test_known_answers():
    res = stats.rank_test([4, 5, 6], [1, 2, 3])
    assert res.statistic == 9 and res.effect == 1.0            # U = n_a n_b: every a beats every b
    assert res.p == pytest.approx(0.1)                         # exact: 2 / C(6, 3)
    assert stats.rank_test([1, 2, 3], [4, 5, 6]).effect == -1.0
    # paired: d = 1, 2, -3, 4 -> ranks 1..4, T+ = 7, T- = 3, r = 0.4; exact p = 2 * 5/16
    res = stats.rank_test([1, 2, -3, 4], [0, 0, 0, 0], paired=True)
    assert res.effect == pytest.approx(0.4) and res.p == pytest.approx(0.625)
    assert stats.rank_test([1, 2], [1, 2], paired=True).p == 1.0
    with pytest.raises(LayerwiseError, match="paired"):
        stats.rank_test([1, 2, 3], [1, 2], paired=True)


def test_holm_matches_hand_worked_values():
    # sorted: .005 (x4 = .02), .01 (x3 = .03), .03 (x2 = .06), .04 (x1 = .04 -> raised to .06 by monotonicity)
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.02, 0.5]), [0.04, 0.5])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])      # capped at 1
    # NaN is kept in place and not counted in m
    out = stats.holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert stats.holm([]).size == 0
    with pytest.raises(LayerwiseError):
        stats.holm([0.2, 1.5])


def test_spearman_ci():
    x = np.arange(10.0)
    rho, p, lo, hi = stats.spearman_ci(x, x**3)
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 10000)   # 9999 random pairings, none as extreme
    y = np.array([2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11.0])
    x = np.arange(12.0)
    rho, p, lo, hi = stats.spearman_ci(x, y, method="fisher")
    assert rho == pytest.approx(1 - 6 * 12 / (12 * 143))       # sum d^2 = 12 -> 0.958
    z, se = np.arctanh(rho), np.sqrt((1 + rho**2 / 2) / 9)
    assert lo == pytest.approx(np.tanh(z - 1.959964 * se), abs=1e-6)
    assert hi == pytest.approx(np.tanh(z + 1.959964 * se), abs=1e-6)
    rho_b, _, lo_b, hi_b = stats.spearman_ci(x, y, n_boot=500, seed=0)
    assert rho_b == rho and lo_b < rho <= hi_b <= 1
    assert np.isnan(stats.spearman_ci([1, 2, 3], [1, 1, 1])[0])
    # perfect ranking of 7 points: the Fisher bound of rho' = 1 - 12/336 (one swap), up to 1
    rho, p, lo, hi = stats.spearman_ci(np.arange(7), np.arange(7) ** 2, method="fisher")
    r = 1 - 12 / 336
    assert rho == pytest.approx(1.0) and hi == 1.0
    assert p == pytest.approx(2 / 5040)                        # exact: 2 of the 7! pairings reach |rho| = 1
    assert lo == pytest.approx(np.tanh(np.arctanh(r) - 1.959964 * np.sqrt((1 + r**2 / 2) / 4)), abs=1e-6)
    assert 0.6 < lo < 0.75
    assert stats.spearman_ci(np.arange(7), -np.arange(7.0), method="fisher")[2] == -1.0


# ---------------------------------------------------------------------------------------------- tables


def _per_sentence(shift_layer=2, shift=0.5, n=40, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for layer in range(layers):
        base = rng.normal(size=n)
        for state in schema.STATES:
            noise = rng.normal(0, 0.05, n)
            v = base + noise + (shift if state == "finetuned" and layer == shift_layer else 0.0)
            rows += [("m", state, layer, i, "token_cosine", v[i]) for i in range(n)]
    return pd.DataFrame(rows, columns=["model", "state", "layer", "sentence", "metric", "value"])


def test_compare_states_per_sentence_finds_the_planted_layer_and_one_family_adjusts_it():
    ps = _per_sentence()
    out = comparisons.compare_states_per_sentence(ps, n_boot=300, seed=0)
    assert list(out.columns) == schema.TIDY_COLUMNS
    assert set(out["state"]) == {"finetuned", "random"}
    assert set(out["metric"]) == {"test_p_token_cosine", "effect_token_cosine", "rank_biserial_token_cosine",
                                  "reference_sd_token_cosine"}
    out = stats.adjust_family(out)  # one family: both states, every layer
    ft = out[out.state == "finetuned"].pivot(index="layer", columns="metric", values="value")
    assert ft.loc[2, "test_p_holm_token_cosine"] < 1e-6
    assert ft.loc[0, "test_p_token_cosine"] > 0.01 and ft.loc[1, "test_p_token_cosine"] > 0.01
    raw = out[out.metric == "test_p_token_cosine"].value.to_numpy()
    np.testing.assert_allclose(out[out.metric == "test_p_holm_token_cosine"].value.to_numpy(), stats.holm(raw))
    eff = out[(out.state == "finetuned") & (out.layer == 2) & (out.metric == "effect_token_cosine")].iloc[0]
    assert eff.value == pytest.approx(0.5, abs=0.03) and eff.ci_low < 0.5 < eff.ci_high and eff.n == 40
    assert ft.loc[2, "rank_biserial_token_cosine"] == 1.0
    pre = ps[(ps.state == "pretrained") & (ps.layer == 1)].value
    assert ft.loc[1, "reference_sd_token_cosine"] == pytest.approx(pre.std(ddof=1))
    # the permutation variant agrees on the planted layer
    perm = stats.adjust_family(comparisons.compare_states_per_sentence(ps, n_boot=100, test="permutation", n_perm=1999))
    p = perm[(perm.state == "finetuned") & (perm.metric == "test_p_holm_token_cosine")].set_index("layer").value
    assert p[2] < 0.01 and p[0] > 0.01
    with pytest.raises(LayerwiseError, match="unknown correction"):
        stats.adjust_family(out, method="bonferroni")


def test_compare_states_per_sentence_errors():
    ps = _per_sentence()
    with pytest.raises(LayerwiseError, match="not in the per-sentence table"):
        comparisons.compare_states_per_sentence(ps, metrics=["cov_trace"])
    with pytest.raises(LayerwiseError, match="lacks columns"):
        comparisons.compare_states_per_sentence(ps.drop(columns="sentence"))
    assert comparisons.compare_states_per_sentence(ps[ps.state != "pretrained"]).empty
    with pytest.raises(LayerwiseError, match="unknown test"):
        comparisons.compare_states_per_sentence(ps, test="t-test")


def test_convergence_correlation():
    rows = []
    for layer in range(7):
        rows += [schema.tidy_row("m", "pretrained", layer, "token_cosine_mean", 0.1 * layer),
                 schema.tidy_row("m", "pretrained", layer, "probe_acc_cls", 0.5 + 0.05 * layer),
                 schema.tidy_row("m", "random", layer, "token_cosine_mean", 0.1 * layer),
                 schema.tidy_row("m", "random", layer, "probe_acc_cls", 0.9 - 0.05 * layer)]
    rows.append(schema.tidy_row("m", "finetuned", 3, "probe_acc_cls", 0.9))       # too few layers: skipped
    out = comparisons.convergence_correlation(schema.tidy_frame(rows))
    r = out[out.metric == "spearman_convergence_probe"].set_index("state")
    assert set(r.index) == {"pretrained", "random"}
    assert r.loc["pretrained", "value"] == pytest.approx(1.0) and r.loc["random", "value"] == pytest.approx(-1.0)
    assert (r["layer"] == -1).all() and (r["n"] == 7).all()
    assert (out[out.metric == "spearman_convergence_probe_p"]["value"] < 0.01).all()


# ------------------------------------------------------------------ against the authors' reference code

def test_holm_and_bh_equal_statsmodels_multipletests():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 1e-3, 10), [0.02, 0.02, 1.0]])
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(stats.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with_nan = np.r_[p[:5], np.nan]
    assert np.isnan(stats.benjamini_hochberg(with_nan)[-1])


def test_bootstrap_mean_ci_is_scipy_bootstrap_percentile():
    from scipy.stats import bootstrap

    x = np.random.default_rng(0).exponential(size=80)
    ref = bootstrap((x,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(5))
    est, lo, hi = stats.bootstrap_mean_ci(x, n_boot=4000, seed=1)  # the same method, other random draws
    assert est == pytest.approx(x.mean())
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05)


def test_replicate_mean_ci():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    est, lo, hi = stats.replicate_mean_ci(x, np.arange(30))  # one value per replicate: the t interval
    t = sps.t.interval(0.95, 29, loc=x.mean(), scale=sps.sem(x))
    assert est == pytest.approx(x.mean()) and (lo, hi) == pytest.approx(t)
    # pairs of tokens: token effects shared within a replicate widen the interval beyond the pair interval
    vals, groups = [], []
    for g in range(20):
        tokens = rng.normal(size=40)
        a, b = rng.integers(0, 40, 200), rng.integers(0, 40, 200)
        vals.append(tokens[a] + tokens[b] + rng.normal(0, 0.1, 200))
        groups.append(np.full(200, g))
    vals, groups = np.concatenate(vals), np.concatenate(groups)
    _, lo, hi = stats.replicate_mean_ci(vals, groups)
    _, plo, phi = stats.bootstrap_mean_ci(vals, n_boot=1000)
    assert hi - lo > 2 * (phi - plo)
    assert np.isnan(stats.replicate_mean_ci(x, np.zeros(30))[1])
    with pytest.raises(LayerwiseError):
        stats.replicate_mean_ci(x, np.arange(3))


# ----------------------------------------------------------------- the seed-and-sentence interval (issue 22)
def test_seed_sentence_interval_is_never_narrower_than_the_seed_only_interval():
    """Known answer: each variance component has its own quantile, so adding the sentence term can only
    widen the seed-only t-interval (the Welch-Satterthwaite version gave 0.75x at S = 3, sentence term
    half the seed term)."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((2000, 3))
    se = np.abs(rng.standard_normal((2000, 1))) * rng.choice([0.0, 0.01, 0.3, 1.0, 5.0], size=(2000, 1))
    both, seed_only = stats.seed_sentence_interval(values, se), stats.seed_sentence_interval(values)
    assert np.all(both.high - both.low >= seed_only.high - seed_only.low - 1e-12)
    # the worked case: s^2 / S = 1, SE_sent^2 = 0.5: sqrt(4.303^2 + 1.96^2 x 0.5) against 4.303
    v = np.array([-np.sqrt(3), 0.0, np.sqrt(3)])          # s^2 = 3, s^2 / S = 1
    ci = stats.seed_sentence_interval(v, np.sqrt(0.5))
    assert ci.high == pytest.approx(np.sqrt(4.302653 ** 2 + 1.959964 ** 2 * 0.5), rel=1e-5)
    same = stats.seed_sentence_interval([0.2, 0.2, 0.2])   # identical seeds, no sentence term: zero width
    assert same.low == pytest.approx(0.2) and same.high - same.low == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [3, 5])
def test_seed_sentence_interval_coverage_over_variance_ratios(k):
    """v_s = mu + a_s + e, a_s ~ N(0, 1) per seed, e ~ N(0, r) shared by the seeds (same sentences), the
    sentence SE sqrt(r) known: coverage of mu >= 0.945 for every ratio r in 0.05 .. 10 (40,000 vectorised
    simulations per ratio: the Monte-Carlo SE of a coverage near 0.95 is 0.001)."""
    rng = np.random.default_rng(22)
    for r in (0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0):
        v = rng.standard_normal((40_000, k)) + np.sqrt(r) * rng.standard_normal((40_000, 1))
        ci = stats.seed_sentence_interval(v, np.sqrt(r))
        assert np.mean((ci.low <= 0) & (0 <= ci.high)) >= 0.945, r


def test_minimum_detectable_effect_known_answer():
    assert stats.minimum_detectable_effect([-1.0, 0.0, 1.0]) == pytest.approx((4.302653 + 1.060660) / np.sqrt(3),
                                                                               rel=1e-5)
    assert stats.minimum_detectable_effect([0.3, 0.3, 0.3]) == 0.0
    assert np.isnan(stats.minimum_detectable_effect([0.3]))


# --------------------------------------------------------- intervals that respect their statistic (issue 22)
def test_bca_interval_matches_scipy_and_reduces_to_the_percentile_interval():
    rng = np.random.default_rng(5)
    x = rng.exponential(size=60)
    boots = np.var(x[rng.integers(0, x.size, size=(20_000, x.size))], axis=1, ddof=1)
    jack = np.array([np.var(np.delete(x, i), ddof=1) for i in range(x.size)])
    low, high = stats.bca_interval(np.var(x, ddof=1), boots, jack)
    ref = sps.bootstrap((x,), lambda a, axis=-1: np.var(a, axis=axis, ddof=1), method="BCa", n_resamples=20_000,
                        rng=np.random.default_rng(6)).confidence_interval
    assert low == pytest.approx(ref.low, rel=0.05) and high == pytest.approx(ref.high, rel=0.05)
    # replicates centred on the estimate (half below), symmetric jackknife: z0 = 0, a = 0 -> percentile
    b = np.linspace(-1, 1, 2001)
    assert stats.bca_interval(0.0, b, [-1.0, 1.0]) == pytest.approx(tuple(np.quantile(b, [0.025, 0.975])))


def test_respect_range_known_answers():
    assert stats.respect_range(0.06, -0.14, 0.26, (0.0, 1.0)) == (0.0, 0.26)           # IsoScore
    assert stats.respect_range(0.67, 0.30, 1.04, (-1.0, 1.0)) == (0.30, 1.0)            # debiased CKA
    assert stats.respect_range(0.25, -0.05, 0.55, (-1.0, 1.0)) == (-0.05, 0.55)         # silhouette: in range
    assert stats.respect_range(5.77, 6.63, 8.33, (0.0, 180.0)) == (5.77, 8.33)          # angle: misses estimate
    assert stats.respect_range(68.7, -1.6, 139.0, (0.0, 180.0)) == (0.0, 139.0)
    low, high = stats.respect_range(0.5, np.nan, np.nan, (0.0, 1.0))
    assert np.isnan(low) and np.isnan(high)


def test_centroid_angle_interval_contains_its_estimate_for_a_small_true_angle():
    """Two classes around nearly the same direction (true angle about 3°), noisy: the angle between the
    sample centroids is biased upwards and its percentile interval missed the estimate; the BCa interval,
    kept around the estimate, always contains it and stays in [0, 180]."""
    from layerwise.measure import probes

    for seed in range(5):
        rng = np.random.default_rng(seed)
        d, n = 50, 90
        base = np.zeros(d)
        base[0] = 1.0
        other = base.copy()
        other[1] = 0.05
        X = np.vstack([base + 0.4 * rng.standard_normal((n, d)), other + 0.4 * rng.standard_normal((n, d))])
        y = np.repeat([0, 1], n)
        g = probes.class_geometry(X, y, n_perm=10, n_boot=500, seed=seed)
        low, high = g["centroid_angle_ci"]
        assert 0.0 <= low <= g["centroid_angle"] <= high <= 180.0


def test_seed_aggregates_stay_in_their_range():
    """The demo's cases: IsoScore seeds 0.011 / 0.013 / 0.154 (the t-interval reached -0.14), debiased CKA
    between seeds 0.83 / 0.53 / 0.64 (reached 1.04) and silhouettes: every aggregate interval lies in the
    statistic's range and contains its estimate."""
    from layerwise.measure import seeds as seeds_mod

    rows = []
    for metric, values in (("isoscore", [0.011, 0.013, 0.154]), ("cka_debiased_cls_between_seeds", [0.83, 0.53, 0.64]),
                           ("silhouette_cls", [0.289, 0.357, 0.095]), ("centroid_angle_cls", [84.4, 89.1, 32.6])):
        rows += [{**schema.tidy_row("m", "finetuned", 6, metric, v), "seed": s} for s, v in zip((42, 43, 44), values)]
    agg = seeds_mod.aggregate_tidy(pd.DataFrame(rows).astype({"seed": "Int64"}))
    for r in agg.itertuples():
        lo, hi = schema.value_range(r.metric)
        assert lo <= r.ci_low <= r.value <= r.ci_high <= hi, r
    assert agg.set_index("metric").loc["isoscore", "ci_low"] == 0.0
    assert agg.set_index("metric").loc["cka_debiased_cls_between_seeds", "ci_high"] == 1.0
