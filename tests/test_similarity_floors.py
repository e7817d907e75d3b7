"""Similarity measures with chance levels (issue #12): known answers of debiased CKA, U-centring,
Procrustes, mutual k-NN and their permutation nulls; the tidy rows of cka_between_states; the
seed-and-sentence interval; the floor rules; the floors chart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ortho_group

from layerwise.book import charts
from layerwise.words import claims
from layerwise.core import schema
from layerwise.measure import similarity, stats
from layerwise.measure import metrics as M
from layerwise.core.errors import LayerwiseError
from layerwise.measure.metrics import _hsic_unbiased


@pytest.fixture(autouse=True)
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _gram(X):
    Xc = X - X.mean(0)
    return Xc @ Xc.T


# ------------------------------------------------------------------------------------- definitions
def test_u_centring_gives_the_unbiased_hsic_and_debiased_cka_from_grams():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 7))
    X[:, 0] += 3.0
    K, L = X @ X.T, Y @ Y.T                                   # uncentred: U-centring removes the offsets
    n = len(X)
    assert np.sum(M.u_centre(K) * M.u_centre(L)) / (n * (n - 3)) == pytest.approx(_hsic_unbiased(K, L))
    np.testing.assert_allclose(M.u_centre(K).sum(axis=0), 0.0, atol=1e-9)
    Z = X @ rng.standard_normal((5, 5)) + 0.3 * rng.standard_normal((30, 5))
    grams = np.stack([_gram(X), _gram(Y), _gram(Z)])
    ref = np.array([[M.linear_cka(a, b, debiased=True) for b in (X, Y, Z)] for a in (X, Y, Z)])
    np.testing.assert_allclose(M.cka_from_grams(grams, debiased=True), ref, atol=1e-10)
    with pytest.raises(LayerwiseError):
        M.u_centre(np.eye(3))


def test_debiased_cka_of_independent_matrices_is_about_zero_while_biased_matches_its_null():
    rng = np.random.default_rng(1)
    n, d = 180, 384
    values, biased = [], []
    for _ in range(20):
        K = np.stack([_gram(rng.standard_normal((n, d))), _gram(rng.standard_normal((n, d)))])
        values.append(M.cka_from_grams(K[:1], K[1:], debiased=True)[0, 0])
        biased.append((K, M.cka_from_grams(K[:1], K[1:])[0, 0]))
    assert np.mean(np.abs(values)) < 0.02
    K, observed = biased[0]
    assert observed > 0.6                                   # the floor: 0.68 at 180 x 384
    unit = K / np.linalg.norm(K.reshape(2, -1), axis=1)[:, None, None]
    null = similarity.gram_permutation_null(unit[:1], unit[1:], similarity.permutations(n, 200, seed=2))[:, 0]
    assert np.quantile(null, 0.025) < observed < np.quantile(null, 0.975)
    assert null.mean() == pytest.approx(observed, abs=0.01)


def test_procrustes_known_answers_and_null():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 20))
    Q = ortho_group.rvs(20, random_state=4)
    assert M.procrustes_similarity(X, X @ Q) == pytest.approx(1.0)
    assert M.procrustes_similarity(X, 2.5 * X + 7.0) == pytest.approx(1.0)
    F = rng.standard_normal((60, 20))                          # held out: rotation fitted on other rows
    assert M.procrustes_similarity(X, X @ Q, F, F @ Q) == pytest.approx(1.0)
    assert M.procrustes_similarity(X, X @ Q, X, X @ Q) == pytest.approx(M.procrustes_similarity(X, X @ Q))
    assert M.procrustes_similarity(X, X @ Q, F, rng.standard_normal((60, 20))) < 0.5
    assert np.isnan(M.procrustes_similarity(np.ones((5, 3)), X[:5]))
    Y = rng.standard_normal((80, 30))
    observed = M.procrustes_similarity(X, Y)
    null = similarity.procrustes_permutation_null(X, Y, similarity.permutations(80, 200, seed=5))
    assert np.quantile(null, 0.025) < observed < np.quantile(null, 0.975)
    # the factor route equals the definition
    first = similarity.procrustes_permutation_null(X, Y, np.arange(80)[None])
    assert first[0] == pytest.approx(observed, rel=1e-5)
    with pytest.raises(LayerwiseError):
        M.procrustes_similarity(X, Y[:10])


def test_mutual_knn_known_answers():
    rng = np.random.default_rng(6)
    n, k = 180, 10
    X = rng.standard_normal((n, 16))
    assert M.mutual_knn(X, X, k) == 1.0
    assert M.mutual_knn(X, 3 * X + 1, k) == 1.0
    chance = [M.mutual_knn(X, rng.standard_normal((n, 16)), k) for _ in range(5)]
    assert np.mean(chance) == pytest.approx(k / (n - 1), abs=0.01)
    A, B = M.knn_adjacency(X, k), M.knn_adjacency(rng.standard_normal((n, 16)), k)
    assert A.sum(axis=1).tolist() == [k] * n and np.all(np.diag(A) == 0)
    null = similarity.gram_permutation_null(A[None], B[None], similarity.permutations(n, 200))[:, 0] / (n * k)
    assert null.mean() == pytest.approx(k / (n - 1), abs=0.005)
    assert np.isnan(M.mutual_knn(np.ones((20, 3)), X[:20], 5))
    with pytest.raises(LayerwiseError):
        M.mutual_knn(X, X, k=n)


# ----------------------------------------------------------------------------------- tidy rows
def _embeddings(n=60, layers=3, d=24, seed=7):
    rng = np.random.default_rng(seed)
    pre = rng.standard_normal((n, layers, d))
    pre[:, 0] = pre[0, 0]                                       # constant first token at layer 0
    ft = pre + 0.3 * rng.standard_normal((n, layers, d))
    ft[:, 0] = ft[0, 0]
    ran = rng.standard_normal((n, layers, d))
    return {s: {"cls": a.astype(np.float16), "mean": a[:, :, ::-1].astype(np.float16)}
            for s, a in (("pretrained", pre), ("finetuned", ft), ("random", ran))}


def test_cka_between_states_writes_the_declared_floor_rows():
    emb = _embeddings()
    fit = _embeddings(n=40, seed=8)
    tidy, cka = similarity.cka_between_states(emb, "m", fit_embeddings=fit, n_permutations=50,
                                              procrustes_permutations=20)
    assert list(cka.columns) == similarity.CKA_COLUMNS and len(cka) == 6 * 2 * 9
    for metric in tidy["metric"].unique():
        schema.lookup(metric)
    names = {m.removesuffix("_cls_vs_pretrained") for m in tidy.metric if m.endswith("_cls_vs_pretrained")}
    assert names == {"cka", "cka_debiased", "cka_std", "procrustes", "procrustes_heldout", "mutual_knn",
                     *(f"{m}_null_{s}" for m in similarity.FLOOR_MEASURES for s in ("mean", "q95"))}
    v = tidy.set_index(["state", "metric", "layer"])["value"]
    n = tidy.set_index(["state", "metric", "layer"])["n"]
    assert np.isnan(v[("finetuned", "cka_debiased_cls_vs_pretrained", 0)])
    assert np.isnan(v[("finetuned", "procrustes_null_q95_cls_vs_pretrained", 0)])
    X = emb["pretrained"]["mean"][:, 2].astype(float)
    Y = emb["random"]["mean"][:, 2].astype(float)
    assert v[("random", "cka_debiased_mean_vs_pretrained", 2)] == pytest.approx(M.linear_cka(X, Y, True), abs=1e-9)
    assert v[("random", "procrustes_mean_vs_pretrained", 2)] == pytest.approx(M.procrustes_similarity(X, Y), abs=1e-8)
    assert v[("random", "mutual_knn_mean_vs_pretrained", 2)] == pytest.approx(M.mutual_knn(X, Y))
    Z = lambda A: (A - A.mean(0)) / A.std(0)  # noqa: E731
    assert v[("random", "cka_std_mean_vs_pretrained", 2)] == pytest.approx(M.linear_cka(Z(X), Z(Y), True), abs=1e-9)
    assert n[("random", "cka_null_q95_mean_vs_pretrained", 2)] == 50
    assert n[("random", "procrustes_null_q95_mean_vs_pretrained", 2)] == 20
    # fine-tuned (close to pretrained) is above its null, random is not
    assert v[("finetuned", "cka_mean_vs_pretrained", 2)] > v[("finetuned", "cka_null_q95_mean_vs_pretrained", 2)]
    assert v[("random", "cka_debiased_mean_vs_pretrained", 2)] < v[("random", "cka_debiased_null_q95_mean_vs_pretrained", 2)] + 0.05
    with pytest.raises(LayerwiseError):
        similarity.cka_between_states(emb, "m", n_permutations=10, procrustes_permutations=20)


def test_similarity_matrices_equal_the_definitions():
    emb = _embeddings(n=40, layers=3, d=12)
    m = similarity.similarity_matrices(emb, "m")
    assert list(m.columns) == similarity.SIMILARITY_COLUMNS
    assert len(m) == 4 * 6 * 2 * 9
    row = m[(m.pooling == "cls") & (m.state_a == "pretrained") & (m.state_b == "random") & (m.layer_a == 1)
            & (m.layer_b == 2)].set_index("measure")["value"]
    X, Y = emb["pretrained"]["cls"][:, 1].astype(float), emb["random"]["cls"][:, 2].astype(float)
    assert row["cka_debiased"] == pytest.approx(M.linear_cka(X, Y, True), abs=1e-9)
    assert row["procrustes"] == pytest.approx(M.procrustes_similarity(X, Y), abs=1e-8)
    assert row["mutual_knn"] == pytest.approx(M.mutual_knn(X, Y))
    diag = m[(m.state_a == m.state_b) & (m.layer_a == m.layer_b) & (m.layer_a > 0)]
    np.testing.assert_allclose(diag.value, 1.0, atol=1e-6)


# ------------------------------------------------------------------------- seed-and-sentence interval
@pytest.mark.parametrize("S", [3, 10])
def test_seed_sentence_interval_covers_the_true_mean(S):
    rng = np.random.default_rng(11)
    sims, n, mu = 1000, 40, 0.3
    seed_effect = 0.05 * rng.standard_normal((sims, S, 1))
    sentence_effect = 0.2 * rng.standard_normal((sims, 1, n))      # the same sentences for every seed
    x = mu + seed_effect + sentence_effect + 0.1 * rng.standard_normal((sims, S, n))
    values = x.mean(axis=-1)
    se = x.std(axis=-1, ddof=1) / np.sqrt(n)
    ci = stats.seed_sentence_interval(values, se)
    coverage = np.mean((ci.low <= mu) & (mu <= ci.high))
    assert coverage >= 0.93
    seed_only = stats.seed_sentence_interval(values)               # the t-interval alone misses the sentences
    assert np.mean((seed_only.low <= mu) & (mu <= seed_only.high)) < coverage


def test_seed_sentence_interval_special_cases():
    one = stats.seed_sentence_interval([0.5], [0.1])
    assert not one.seed_variation_measured and one.n_seeds == 1
    assert one.high - 0.5 == pytest.approx(1.959964 * 0.1, rel=1e-5)
    t = stats.seed_sentence_interval([1.0, 2.0, 3.0])
    assert t.df == pytest.approx(2.0) and t.high - 2.0 == pytest.approx(4.302653 * 1 / np.sqrt(3), rel=1e-5)
    assert stats.se_from_ci(0.0, 2 * 1.959964) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(LayerwiseError):
        stats.seed_sentence_interval([])


# ----------------------------------------------------------------------------------- floor rules
def _rows(values, state="finetuned", metric="effect_token_cosine", layer=3, ci=None, n=180):
    out = pd.DataFrame([schema.tidy_row("m", state, layer, metric, v, *(ci[i] if ci else (np.nan, np.nan)), n=n)
                        for i, v in enumerate(values)])
    out["seed"] = range(len(values))
    return out


def test_seed_change_reads_tidy_rows_into_the_answer_model():
    assert claims.seed_change(_rows([0.30, 0.32, 0.29]), delta=0.05).word == claims.CHANGED
    assert claims.seed_change(_rows([0.010, 0.012, 0.011]), delta=0.05).word == claims.NO_CHANGE
    v = claims.seed_change(_rows([0.30, -0.02, 0.25]), delta=0.05)
    assert v.word == claims.NOT_ESTABLISHED and v.detail["direction"] is None
    # wide sentence intervals: the interval of the mean difference includes 0
    wide = claims.seed_change(_rows([0.10, 0.12, 0.11], ci=[(-0.3, 0.5)] * 3), delta=0.05)
    assert wide.word == claims.NOT_ESTABLISHED and wide.detail["direction"] == "up"
    one = claims.seed_change(_rows([0.30]), delta=0.05)                 # one run, no interval: nothing known
    assert one.word == "not measured" and one.detail["reason"] == claims.SEED_VARIATION_NOT_MEASURED
    assert one.n == 1 and len(one.rows) == 1
    run = claims.seed_change(_rows([0.30], ci=[(0.28, 0.32)]), delta=0.05)  # one run with its sentence interval
    assert run.word == claims.CHANGED and not run.detail["seed_variation_measured"]
    values = pd.concat([_rows([0.5], state="pretrained", metric="erank"), _rows([0.9, 0.95], metric="erank")])
    d = claims.difference_rows(values)
    assert d["value"].tolist() == pytest.approx([0.4, 0.45]) and d["ci_low"].isna().all()
    assert claims.seed_change(d, delta=0.1).word == claims.CHANGED
    # the difference's sentence interval: sqrt(SE_state^2 + SE_reference^2)
    with_ci = pd.concat([_rows([0.5], state="pretrained", metric="erank", ci=[(0.5 - 1.96 * 0.03, 0.5 + 1.96 * 0.03)]),
                         _rows([0.9], metric="erank", ci=[(0.9 - 1.96 * 0.04, 0.9 + 1.96 * 0.04)])])
    d = claims.difference_rows(with_ci)
    assert d["ci_high"].iloc[0] - 0.4 == pytest.approx(1.959964 * 0.05, rel=1e-3)


def test_similarity_to_pretrained_against_the_similarity_between_seeds():
    pairs = _rows([0.95, 0.96, 0.94], metric="cka_debiased_cls_between_seeds")
    pairs["seed"] = [0, 0, 1]                                            # pairs (0, 1), (0, 2), (1, 2)
    low = claims.seed_similarity_change(_rows([0.60, 0.62, 0.58], metric="cka_debiased_cls_vs_pretrained"), pairs, 0.05)
    assert low.word == claims.CHANGED and low.n == 3 and len(low.rows) == 6 and low.detail["mean"] < -0.3
    same = claims.seed_similarity_change(_rows([0.95, 0.94, 0.96], metric="cka_debiased_cls_vs_pretrained"), pairs, 0.05)
    assert same.word == claims.NO_CHANGE
    # D_s: seed 0's similarity to pretrained minus its mean similarity to seeds 1 and 2
    assert low.detail["per_seed"][0] == pytest.approx(0.60 - (0.95 + 0.96) / 2)
    one = claims.seed_similarity_change(_rows([0.6], metric="cka_debiased_cls_vs_pretrained"), pairs.iloc[:0])
    assert one.word == "not measured"


def test_chance_verdicts():
    obs = _rows([0.70], metric="cka_cls_vs_pretrained")
    assert claims.chance_verdict(obs, _rows([0.68], metric="cka_null_q95_cls_vs_pretrained", n=200)).word == "above chance"
    v = claims.chance_verdict(obs, _rows([0.72], metric="cka_null_q95_cls_vs_pretrained", n=200))
    assert v.word == "at chance" and v.n == 180 and v.detail["permutations"] == 200
    assert claims.chance_verdict(_rows([np.nan]), _rows([0.7])).word == "not measured"
    tidy, _ = similarity.cka_between_states(_embeddings(), "m", n_permutations=50, procrustes_permutations=20)
    verdicts = claims.chance_verdicts(tidy, "cka_debiased", "mean", "finetuned")
    assert [x.word for x in verdicts] == ["not measured", "above chance", "above chance"]  # layer 0 constant
    words = [x.word for x in claims.chance_verdicts(tidy, "cka", "cls", "random")]
    assert words[0] == "not measured" and all(w in ("at chance", "above chance") for w in words[1:])


# ----------------------------------------------------------------------------------------- chart
def test_similarity_floors_chart_builds_small():
    tidy, _ = similarity.cka_between_states(_embeddings(), "m", n_permutations=50, procrustes_permutations=20)
    chart = charts.similarity_floors(tidy, "mean")
    assert charts.chart_rows(chart) == (2 + 1) * 4 * 3         # (states + the null band) x measures x layers
    rows = pd.DataFrame(next(iter(chart.to_dict()["datasets"].values())))
    assert set(rows["series"]) == {"finetuned", "random", charts.NULL_NAME}      # the null: a legend entry
    null = rows[rows["kind"] == "null"]
    null = null.dropna(subset=["low", "high"])                  # (layer 0: the first token is constant, no null)
    assert len(null) and (null["low"] <= null["high"]).all()
    assert "<svg" in charts.to_svg(chart)
    with pytest.raises(LayerwiseError):
        charts.similarity_floors(tidy, "mean", measures=("no_such",))
