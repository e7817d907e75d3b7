"""Known answers for the batched probes (layerwise.measure.logistic_batch, probes_batch, mdl.mdl_batched):
the same coefficients and predictions as scikit-learn's StandardScaler + LogisticRegression on small cases,
and the batched probe study equal to the sequential one (method="sequential") within the stated tolerance."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from layerwise.measure import logistic_batch as lb
from layerwise.measure import mdl, probe_study, probes


def _case(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)
    y = (X[:, 0] - X[:, 0].mean() + rng.normal(size=n) > 0).astype(int)
    return X, y, rng.normal(size=(40, d)) + X.mean(axis=0)


@pytest.mark.parametrize("n,d,C", [(60, 10, 1.0), (40, 100, 1.0), (100, 384, 0.01), (30, 50, 100.0), (80, 5, 1e-3)])
def test_coefficients_and_scores_equal_scikit_learn(n, d, C):
    X, y, Xte = _case(n, d, n + d)
    scaler = StandardScaler().fit(X)
    ref = LogisticRegression(C=C, max_iter=100000, tol=1e-12).fit(scaler.transform(X), y)
    w, b = lb.coefficients(X[None], np.ones((1, n)), y[None].astype(float), np.array([C]))
    assert np.abs(w[0] - ref.coef_[0]).max() <= 1e-4 * np.abs(ref.coef_).max()
    assert b[0] == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-6)
    f = lb.fit_scores(X[None], np.ones((1, n)), y[None].astype(float), Xte[None], C)[0, 0]
    expect = ref.decision_function(scaler.transform(Xte))
    np.testing.assert_allclose(f, expect, rtol=1e-4, atol=1e-5 * np.abs(expect).max())


def test_weights_equal_repeated_rows_and_padding_changes_nothing():
    X, y, Xte = _case(50, 20, 3)
    rows = np.r_[np.arange(50), np.arange(10)]                       # ten rows twice (a bootstrap resample)
    scaler = StandardScaler().fit(X[rows])
    ref = LogisticRegression(max_iter=100000, tol=1e-12).fit(scaler.transform(X[rows]), y[rows])
    Xb, c, t = lb.pack([rows, np.arange(30)], X, [y[rows], y[:30]])
    f = lb.fit_scores(Xb, c, t, np.stack([Xte, Xte]), 1.0)[:, 0]
    np.testing.assert_allclose(f[0], ref.decision_function(scaler.transform(Xte)), rtol=1e-4, atol=1e-5)
    alone = lb.fit_scores(X[None, :30], np.ones((1, 30)), y[None, :30].astype(float), Xte[None], 1.0)
    np.testing.assert_allclose(f[1], alone[0, 0], rtol=1e-4, atol=1e-5)   # each stops at its own decrement


def test_a_constant_feature_and_an_all_constant_layer_fit_the_intercept():
    X, y, Xte = _case(60, 8, 5)
    X[:, 3] = 2.5
    ref = LogisticRegression().fit(StandardScaler().fit_transform(X), y)
    w, _ = lb.coefficients(X[None], np.ones((1, 60)), y[None].astype(float), np.array([1.0]))
    assert w[0, 3] == 0 and np.abs(w[0] - ref.coef_[0]).max() < 1e-3
    const = np.ones((60, 8)) * 0.7                                   # layer 0's first token: one vector
    f = lb.fit_scores(const[None], np.ones((1, 60)), y[None].astype(float), const[None, :5], np.array([1.0]))
    assert np.allclose(f, np.log(y.mean() / (1 - y.mean())), atol=1e-4)


def _blobs(n=240, d=30, sep=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    X[:, 0] += sep * (y - 0.5)
    return X[:n // 2], y[:n // 2], X[n // 2:], y[n // 2:]


def test_batched_probe_and_control_equal_sequential_within_one_test_sentence():
    Xtr, ytr, Xte, yte = _blobs()
    for permuted in (False, True):
        a = probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=6, n_boot=200, permuted=permuted, method="batched")
        b = probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=6, n_boot=200, permuted=permuted, method="sequential")
        assert np.all(np.abs(a.correct.sum(axis=1) - b.correct.sum(axis=1)) <= 1)
        assert (a.correct != b.correct).mean() <= 0.01


def test_batched_mdl_equals_sequential_and_many_classes_fall_back():
    Xtr, ytr, _, _ = _blobs(n=300, d=20)
    for C in (mdl.MDL_C_GRID, 1.0):
        a = mdl.mdl_online(Xtr, ytr, seed=3, C=C, method="batched")
        b = mdl.mdl_online(Xtr, ytr, seed=3, C=C, method="sequential")
        assert a.codelength == pytest.approx(b.codelength, rel=2e-3)
        for c in a.per_C:
            assert a.per_C[c] == pytest.approx(b.per_C[c], rel=5e-3)
    y3 = np.arange(ytr.size) % 3
    assert mdl.mdl_online(Xtr, y3, seed=1).codelength == mdl.mdl_online(Xtr, y3, seed=1, method="sequential").codelength
    m = mdl.mdl_subsampled(Xtr, ytr, 100, subsamples=3)
    s = mdl.mdl_subsampled(Xtr, ytr, 100, subsamples=3, method="sequential")
    np.testing.assert_allclose(m[3], s[3], rtol=2e-3)


def test_many_class_probe_falls_back_to_the_sequential_fit():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(150, 6)), np.arange(150) % 3
    X[:, 0] += 2 * y
    a = probes.probe_accuracy(X[:90], y[:90], X[90:], y[90:], seeds=3, n_boot=100)
    b = probes.probe_accuracy(X[:90], y[:90], X[90:], y[90:], seeds=3, n_boot=100, method="sequential")
    assert np.array_equal(a.correct, b.correct)


def test_random_feature_head_solves_xor_where_the_linear_probe_cannot():
    rng = np.random.default_rng(0)
    s = rng.choice([-1.0, 1.0], size=(400, 2))
    X = np.hstack([s * 2 + rng.normal(0, 0.3, (400, 2)), rng.normal(size=(400, 2))])
    y = (s[:, 0] * s[:, 1] > 0).astype(int)
    lin = probes.probe_accuracy(X[:300], y[:300], X[300:], y[300:], seeds=2, n_boot=200)
    head = probes.mlp_probe_accuracy(X[:300], y[:300], X[300:], y[300:], seeds=2, n_boot=200, hidden=64)
    assert lin.acc < 0.7 and head.acc > 0.95


def test_unknown_method_is_refused():
    Xtr, ytr, Xte, yte = _blobs(n=60, d=4)
    with pytest.raises(Exception, match="unknown method"):
        probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=2, n_boot=100, method="fast")


def test_probe_study_batched_equals_sequential_within_the_stated_tolerance():
    """The comparison of bench/RESULTS-probes.md on a tiny study: every accuracy (probe, chance, control,
    memorisation) within one test sentence of the sequential fit and equal on >= 99 % of the
    (retraining, sentence) pairs, MDL compressions within 0.1 % (relative), the geometry identical;
    the threads (workers) change nothing."""
    from test_probes import fake_embeddings

    emb = fake_embeddings(n_train=100, n_probe=120)
    st = dict(seeds=2, retrainings=4, n_boot=100, n_perm=5, mdl_subsamples=2)
    old = probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(**st, method="sequential", workers=1))
    new = probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(**st))
    one = probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(**st, workers=1))
    assert new.tidy.equals(one.tidy) and new.correct.equals(one.correct)
    m = old.tidy.merge(new.tidy, on=["state", "layer", "metric"], suffixes=("_o", "_n"))
    fam = m.metric.str.replace("_cls$|_mean$", "", regex=True)
    diff = (m.value_n - m.value_o).abs()
    acc = fam.isin(["probe_acc", "probe_chance_acc", "control_acc", "probe_acc_seen"])
    assert (diff[acc] * m.n_o[acc] <= 1 + 1e-9).all()
    mdl_rows = fam.str.startswith("mdl_compression")
    assert (diff[mdl_rows] <= 1e-3 * m.value_o[mdl_rows].abs()).all()
    geo = fam.isin(["silhouette", "silhouette_perm", "centroid_angle", "centroid_margin", "lexical_probe_acc"])
    assert (diff[geo] == 0).all()
    c = old.correct.merge(new.correct, on=["state", "metric", "layer", "sentence"])
    assert (c.correct_x - c.correct_y).abs().mean() <= 0.01        # flipped (retraining, sentence) pairs
