"""Known answers for the held-out probing: memorisation (MDL on fine-tuning vs unseen sentences), the
control task against the chance baseline, the lexical baseline, the vectorised silhouette null and the
subsampled MDL."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples

from layerwise.measure import controls, mdl, probes
from layerwise.core.errors import LayerwiseError


def test_lexical_key_and_coverage():
    assert controls.lexical_key("Le livre est très bon !") == "livre"
    assert controls.lexical_key("Je n'ai pas aimé ce FILM.") == "aimé"
    assert controls.lexical_key("Le la les de 12 !") == ""
    cov = controls.covered(["a", "a", "b", "c", "c", ""], ["a", "b", "c", "d", ""])
    assert cov.tolist() == [True, False, True, False, False]
    tr, te = controls.control_labels(["x", "y", "x"], ["y", "z"], np.array([0, 1, 1]), np.random.default_rng(0))
    assert tr[0] == tr[2] and te[0] == tr[1]          # one label per type, shared by both splits


def _typed_features(n, n_types, d, rng, with_type=True):
    """Features = a random vector per key type + noise (or noise only), balanced task labels."""
    keys = np.array([f"w{i % n_types}" for i in range(n)])
    rng.shuffle(keys)
    type_vec = {f"w{k}": rng.normal(size=d) * 3 for k in range(n_types)}
    X = rng.normal(size=(n, d)) + (np.stack([type_vec[k] for k in keys]) if with_type else 0)
    return X, rng.integers(0, 2, n), keys


def test_control_task_reads_key_types_and_the_chance_baseline_does_not():
    rng = np.random.default_rng(0)
    X, y, keys = _typed_features(400, 20, 30, rng)
    kw = dict(seeds=5, n_boot=300)
    ctrl, cov = controls.control_task_accuracy(X[:200], y[:200], keys[:200], X[200:], keys[200:], **kw)
    chance = probes.probe_accuracy(X[:200], y[:200], X[200:], y[200:], permuted=True, **kw)
    assert cov.all() and ctrl.n_test == 200
    assert ctrl.acc > 0.85 and ctrl.ci_low > 0.6                   # memorises each type's random label
    assert chance.ci_low < 0.5 < chance.ci_high                    # the permuted baseline stays at chance
    # the opposite case: features that do not carry the key type -> the control falls to chance
    Xn, yn, keysn = _typed_features(400, 20, 30, np.random.default_rng(1), with_type=False)
    none, _ = controls.control_task_accuracy(Xn[:200], yn[:200], keysn[:200], Xn[200:], keysn[200:], **kw)
    assert none.ci_low < 0.5 < none.ci_high and none.acc < 0.62
    # selectivity on the covered sentences: task (random labels here) minus control
    task = probes.probe_accuracy(X[:200], y[:200], X[200:], y[200:], **kw)
    sel, lo, hi = probes.selectivity(task, ctrl, covered=cov, n_boot=300)
    assert sel == pytest.approx(task.acc - ctrl.acc) and hi < 0
    # only test sentences whose type occurs at least twice in the probe pool are scored
    keys_te = keys[200:].copy()
    keys_te[:50] = "unseen"
    part, cov2 = controls.control_task_accuracy(X[:200], y[:200], keys[:200], X[200:], keys_te, **kw)
    assert cov2.sum() == 150 and part.n_test == 150
    with pytest.raises(LayerwiseError, match="covered"):
        probes.selectivity(task, part)


def test_lexical_baseline_reads_words():
    rng = np.random.default_rng(0)
    good, bad, filler = ["superbe", "excellent", "génial"], ["nul", "ennuyeux", "raté"], ["le", "film", "livre", "album"]
    y = rng.integers(0, 2, 300)
    texts = [" ".join(rng.choice(filler, 4).tolist() + [rng.choice(good if v else bad)]) for v in y]
    res = controls.lexical_probe_accuracy(texts[:150], y[:150], texts[150:], y[150:], seeds=5, n_boot=200)
    assert res.acc > 0.95 and res.correct.shape == (5, 150)
    shuffled = controls.lexical_probe_accuracy(texts[:150], rng.permutation(y[:150]), texts[150:], y[150:], seeds=5,
                                               n_boot=200)
    assert shuffled.ci_low < 0.5 < shuffled.ci_high
    with pytest.raises(LayerwiseError, match="one text per label"):
        controls.lexical_probe_accuracy(texts[:10], y[:9], texts[150:], y[150:])


def test_crossed_ci_covers_training_set_variability():
    """The crossed interval (retraining x test resampling) is at least as wide as the test-only one."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(260, 40))
    y = (X[:, 0] + rng.normal(0, 1.5, 260) > 0).astype(int)
    crossed = probes.probe_accuracy(X[:60], y[:60], X[60:], y[60:], seeds=20, n_boot=1000)
    test_only = probes.probe_result(crossed.correct, crossed=False, n_boot=1000, seed=0, level=0.95)
    assert crossed.acc == pytest.approx(test_only.acc)
    assert crossed.ci_high - crossed.ci_low > test_only.ci_high - test_only.ci_low


def test_silhouette_null_matches_scikit_learn_and_is_vectorised():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = np.clip(1 - Xu @ Xu.T, 0, 2)
    np.fill_diagonal(D, 0)
    fast = probes.silhouette_null(D, y, 7, np.random.default_rng(1), chunk=3)
    r = np.random.default_rng(1)
    slow = [silhouette_samples(D, r.permutation(y), metric="precomputed").mean() for _ in range(7)]
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    geo = probes.class_geometry(X, y % 2)
    assert geo["silhouette_p"] >= 1 / 1001                         # 1000 permutations by default


def _memorising(n_seen, n_unseen, d, rng, memorise=True):
    """A 'fine-tuned' representation: fine-tuning sentences get a lookup vector carrying their label
    (memorised); unseen sentences carry it only when ``memorise`` is False (an honest representation)."""
    y = rng.integers(0, 2, n_seen + n_unseen)
    mu = rng.normal(size=(2, d)) * 2
    X = rng.normal(size=(y.size, d))
    signal = np.ones(y.size, bool) if not memorise else np.r_[np.ones(n_seen, bool), np.zeros(n_unseen, bool)]
    X[signal] += mu[y[signal]]
    return X, y


def test_memorisation_mdl_is_high_on_fine_tuning_sentences_and_the_state_reports_the_unseen_value():
    from layerwise.measure.probe_study import ProbeSettings, probe_study

    rng = np.random.default_rng(0)
    n_ft, n_pool, n_te, d = 200, 150, 100, 20
    for memorise in (True, False):
        X, y = _memorising(n_ft, n_pool + n_te, d, rng, memorise)
        split = np.array(["train"] * n_ft + ["probe"] * n_pool + ["test"] * n_te)
        arr = np.repeat(X[:, None, :], 2, axis=1).astype(np.float16)
        emb = {"finetuned": {"cls": arr, "mean": arr, "label": y, "split": split}}
        st = ProbeSettings(layers=[1], retrainings=3, n_boot=100, n_perm=10, mdl_subsamples=4, mlp=False,
                           poolings=("cls",))
        tidy = probe_study(emb, "toy", st).tidy.set_index("metric")
        seen, unseen = tidy.loc["mdl_compression_seen_cls", "value"], tidy.loc["mdl_compression_cls", "value"]
        assert tidy.loc["mdl_compression_cls", "n"] == tidy.loc["mdl_compression_seen_cls", "n"] == 120
        direct = mdl.mdl_subsampled(X[n_ft:n_ft + n_pool].astype(np.float16), y[n_ft:n_ft + n_pool], 120, 4, 0)[0]
        assert unseen == pytest.approx(direct)                  # the state's MDL is the unseen (probe-pool) value
        if memorise:
            assert seen > 2.0 and 0.85 < unseen < 1.1
            assert tidy.loc["probe_acc_seen_cls", "value"] < 0.7  # memorised labels do not transfer to test
        else:
            assert seen > 2.0 and abs(seen - unseen) < 0.35 * seen


def test_mdl_subsampled_draws_without_replacement():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 3)), rng.integers(0, 2, 100)
    idx = mdl.stratified_draw(y, 80, np.random.default_rng(1), replace=False)
    assert idx.size == 80 and np.unique(idx).size == 80
    mean, lo, hi, values = mdl.mdl_subsampled(X, y, 80, subsamples=5)
    assert values.shape == (5,) and lo <= mean <= hi and mean == pytest.approx(values.mean())
    assert mdl.mdl_subsampled(X, y, 80, subsamples=5) [0] == mean             # deterministic
    with pytest.raises(LayerwiseError, match="size"):
        mdl.mdl_subsampled(X, y, 200)
