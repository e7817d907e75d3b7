"""Known answers for layerwise.measure.probes: probes on separable / permuted / XOR data, MDL code lengths,
class geometry on constructed clusters, the cone view, and the shape of probe_study's tables."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_score

from layerwise.measure import probe_study, probes
from layerwise.core import schema
from layerwise.core.errors import LayerwiseError
from layerwise.inputs.config import AnalysisSpec
from layerwise.core.schema import DEFAULT_POOLINGS, STATES, TIDY_COLUMNS

POOLINGS = DEFAULT_POOLINGS["encoder"]  # the fakes store the two poolings of an encoder study


def blobs(n=300, d=20, sep=8.0, seed=0):
    """Two Gaussian classes whose means differ by ``sep`` along the first axis (separable for sep=8)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    X[:, 0] += sep * (y - 0.5)
    return X, y


def test_probe_separable_data_reaches_100_and_the_chance_baseline_sits_at_chance():
    X, y = blobs(400)
    Xtr, ytr, Xte, yte = X[:200], y[:200], X[200:], y[200:]
    real = probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=5, n_boot=500)
    assert real.acc >= 0.99 and real.ci_high == 1.0
    assert real.correct.shape == (5, 200) and real.per_seed.shape == (5,)
    ctrl = probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=5, n_boot=500, permuted=True)
    assert 0.38 < ctrl.acc < 0.62                      # chance = 0.5 (balanced classes)
    assert len(set(ctrl.per_seed.round(6))) > 1        # a fresh permutation per seed
    sel, lo, hi = probes.selectivity(real, ctrl, n_boot=500)
    assert sel == pytest.approx(real.acc - ctrl.acc)
    assert lo < sel < hi and lo > 0.3
    # same seed, same result
    again = probes.probe_accuracy(Xtr, ytr, Xte, yte, seeds=5, n_boot=500, permuted=True)
    assert again.acc == ctrl.acc and again.ci_low == ctrl.ci_low


def test_probe_on_noise_is_at_chance_with_a_ci_covering_it():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 10)), rng.integers(0, 2, 400)
    res = probes.probe_accuracy(X[:200], y[:200], X[200:], y[200:], seeds=3, n_boot=500)
    assert res.ci_low < 0.5 < res.ci_high


def test_mlp_head_solves_xor_where_the_linear_probe_cannot():
    rng = np.random.default_rng(0)
    n = 400
    s = rng.choice([-1.0, 1.0], size=(n, 2))
    X = np.hstack([s * 2 + rng.normal(0, 0.3, (n, 2)), rng.normal(size=(n, 2))])
    y = (s[:, 0] * s[:, 1] > 0).astype(int)
    lin = probes.probe_accuracy(X[:300], y[:300], X[300:], y[300:], seeds=2, n_boot=200)
    mlp = probes.mlp_probe_accuracy(X[:300], y[:300], X[300:], y[300:], seeds=2, n_boot=200, hidden=16,
                                    method="sequential")   # the trained head (random features: test_logistic_batch)
    assert lin.acc < 0.7
    assert mlp.acc > 0.95


def test_probe_errors():
    X, y = blobs(50)
    with pytest.raises(LayerwiseError, match="single class"):
        probes.probe_accuracy(X, np.zeros(50, int), X, y)
    with pytest.raises(LayerwiseError, match="dimensions differ"):
        probes.probe_accuracy(X, y, X[:, :5], y)
    with pytest.raises(LayerwiseError, match="NaN"):
        probes.probe_accuracy(np.full_like(X, np.nan), y, X, y)


def test_mdl_known_answers():
    # two blocks: the first half is sent with the uniform code (50 items x 1 bit), the second with a probe
    # that separates the classes (a few bits: the L2 penalty keeps p(y|x) near 0.95, not 1):
    # code length just above 50, compression just below 2
    X, y = blobs(100, d=2, sep=20.0)
    r = probes.mdl_online(X, y, seed=0, fractions=(50, 100), C=1.0)
    assert list(r.boundaries) == [50, 100] and r.uniform == 100.0
    assert 50.0 < r.codelength < 55.0 and r.compression == pytest.approx(100 / r.codelength)
    assert 1.8 < r.compression < 2.0
    # default blocks: separable data compresses well, random labels do not
    X, y = blobs(400, sep=8.0)
    good = probes.mdl_online(X, y, seed=0)
    assert list(good.boundaries) == [1, 3, 6, 12, 25, 50, 100, 200, 400]
    noise = probes.mdl_online(X, np.random.default_rng(1).integers(0, 2, 400), seed=0)
    assert good.compression > 4
    assert noise.compression < 1.1
    # the default code is the Bayesian mixture over the C grid: within log2 |grid| bits of the best single C
    singles = [probes.mdl_online(X, y, seed=0, C=c).codelength for c in probes.MDL_C_GRID]
    assert good.per_C == pytest.approx(dict(zip(probes.MDL_C_GRID, singles)), rel=1e-3)  # warm start: tolerance
    own = min(good.per_C.values())
    assert own <= good.codelength <= own + np.log2(len(singles)) + 1e-9
    assert good.codelength == pytest.approx(-np.log2(np.mean(np.exp2(-np.array(list(good.per_C.values()))))))
    with pytest.raises(LayerwiseError, match="fractions"):
        probes.mdl_online(X, y, fractions=(50, 10))


def test_class_geometry_on_orthogonal_and_opposite_clusters():
    # exact: duplicates on e1 and e2 -> 90 degrees, within-class distance 0, between 1 -> silhouette 1
    X = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    g = probes.class_geometry(X, [0, 0, 1, 1], n_perm=5, n_boot=100)
    assert g["centroid_angle"] == pytest.approx(90.0)
    assert g["silhouette"] == pytest.approx(1.0)
    np.testing.assert_allclose(g["cos_own_centroid"], 1.0)
    np.testing.assert_allclose(g["cos_other_centroid"], 0.0, atol=1e-12)
    # noisy clusters around orthogonal axes, then opposite ones
    rng = np.random.default_rng(0)
    n, d = 200, 50
    y = np.repeat([0, 1], n // 2)
    axes = np.zeros((2, d))
    axes[0, 0], axes[1, 1] = 10.0, 10.0
    X = axes[y] + rng.normal(size=(n, d))
    g = probes.class_geometry(X, y, n_perm=20, n_boot=300, seed=0)
    assert g["centroid_angle"] == pytest.approx(90.0, abs=2.0)
    lo, hi = g["centroid_angle_ci"]
    assert lo < g["centroid_angle"] < hi and hi - lo < 6
    assert g["silhouette"] > 0.3
    assert abs(g["silhouette_perm"]) < 0.05 and g["silhouette_perm_ci"][1] < g["silhouette"]
    assert g["silhouette_p"] == pytest.approx(1 / 21)
    assert g["centroid_margin"] > 0.5
    # the silhouette is scikit-learn's with the cosine metric
    assert g["silhouette"] == pytest.approx(silhouette_score(X, y, metric="cosine"))
    X2 = np.where(y[:, None] == 0, 1, -1) * 3 * axes[0] + rng.normal(size=(n, d))
    assert probes.class_geometry(X2, y, n_perm=2, n_boot=50)["centroid_angle"] == pytest.approx(180, abs=3)
    with pytest.raises(LayerwiseError, match="two classes"):
        probes.class_geometry(X, np.zeros(n, int))


def test_cone_view():
    X = np.array([[1.0, 0], [0, 2.0], [-3.0, 0], [1.0, 1.0]])
    cv = probes.cone_view(X, np.array([0, 1, 1, 0]))
    assert list(cv.columns) == ["sentence", "label", "cos_ref"]
    np.testing.assert_allclose(cv["cos_ref"], [1, 0, -1, np.sqrt(0.5)])
    with pytest.raises(LayerwiseError, match="out of range"):
        probes.cone_view(X, np.zeros(4), ref_index=9)


WORDS = ("livre", "film", "album", "roman", "disque", "manga", "série", "concert", "auteur", "acteur")


def fake_embeddings(n_train=120, n_test=60, n_layers=3, d=16, seed=0, n_probe=0):
    """Stored-embedding dicts for three states; class signal grows with the layer, most for 'finetuned'.
    With ``n_probe`` a probe pool sits between the fine-tuning and the test rows."""
    rng = np.random.default_rng(seed)
    n = n_train + n_probe + n_test
    y = rng.integers(0, 2, n)
    split = np.array(["train"] * n_train + ["probe"] * n_probe + ["test"] * n_test)
    text = np.array([f"Le {WORDS[i % len(WORDS)]} numéro {i}" for i in range(n)])
    out = {}
    for state, strength in zip(STATES, (1.0, 4.0, 0.0)):
        arr = {}
        for pool in POOLINGS:
            x = rng.normal(size=(n, n_layers, d)) + 3.0
            x[:, :, 0] += strength * np.arange(n_layers)[None, :] * (y[:, None] - 0.5)
            arr[pool] = x.astype(np.float16)
        out[state] = {**arr, "label": y, "split": split, "text": text,
                      "index": np.r_[np.arange(n_train + n_probe), np.arange(n_test) + 1000]}
    return out


def test_probe_study_tables():
    emb = fake_embeddings(n_train=100, n_probe=120)
    timings = {}
    tidy, cones, correct = probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(seeds=2, retrainings=3, n_boot=100,
                                                                              n_perm=5, mdl_subsamples=2),
                                              timings=timings)
    assert list(tidy.columns) == TIDY_COLUMNS
    assert set(tidy["state"]) == set(STATES) and set(tidy["model"]) == {"toy"}
    expected = {f"{m}_{p}" for m in ("probe_acc", "probe_chance_acc", "control_acc", "selectivity", "silhouette",
                                     "silhouette_perm", "centroid_angle", "centroid_margin") for p in POOLINGS}
    expected |= {"mlp_probe_acc_cls", "mdl_compression_cls", "probe_acc_seen_cls", "mdl_compression_seen_cls",
                 "probe_majority_baseline", "control_coverage", "lexical_probe_acc"}
    assert set(tidy["metric"]) == expected
    assert all(schema.lookup(m) for m in expected)
    per_layer = tidy[tidy.metric == "probe_acc_cls"]
    assert len(per_layer) == 3 * 3 and set(per_layer.layer) == {0, 1, 2}
    acc = per_layer.pivot(index="state", columns="layer", values="value")
    assert acc.loc["finetuned", 2] > 0.95 and acc.loc["random", 2] < 0.75
    assert acc.loc["finetuned", 2] > acc.loc["pretrained", 2] - 0.02
    for m in ("probe_majority_baseline", "control_coverage", "lexical_probe_acc"):
        assert tidy[tidy.metric == m]["layer"].eq(-1).all() and len(tidy[tidy.metric == m]) == 3
    assert (tidy.loc[tidy.metric == "probe_acc_cls", "n"] == 60).all()
    assert (tidy.loc[tidy.metric == "mdl_compression_cls", "n"] == 96).all()          # 80 % of the 120 pool rows
    assert (tidy.loc[tidy.metric == "mdl_compression_seen_cls", "n"] == 96).all()     # equal n
    assert set(timings) >= {"probe", "control", "mlp", "mdl", "geometry", "memorisation", "lexical"}
    # per-sentence correctness: every linear probe's test rows, plus the lexical baseline
    assert list(correct.columns) == probe_study.probe_study.__globals__["CORRECT_COLUMNS"]
    assert set(correct["sentence"]) == set(range(220, 280))
    assert len(correct) == 3 * 2 * 3 * 60 + 3 * 60
    # cones: first token, test rows, at the first, middle and last layers (0, 1, 2 of L = 2)
    assert list(cones.columns) == probe_study.CONE_COLUMNS
    assert set(cones["layer"]) == {1, 2} and len(cones) == 3 * 2 * 60
    assert sorted(set(cones["sentence"])) == list(range(220, 280))    # rows of the stored arrays
    ref = cones[(cones.state == "finetuned")].iloc[0]
    assert ref.cos_ref == pytest.approx(1.0, abs=1e-6)


def test_probes_train_on_the_probe_pool_only():
    """The probe pool is the only training set: relabelling the fine-tuning rows changes no probe or MDL value
    (but the memorisation rows); without a probe pool the fine-tuning rows are the fallback."""
    st = probe_study.ProbeSettings(layers=[2], seeds=1, retrainings=3, n_boot=50, n_perm=5, mdl_subsamples=2, mlp=False,
                              poolings=("cls",))
    emb = fake_embeddings(n_train=80, n_probe=80)
    flipped = {s: {**e, "label": np.where(e["split"] == "train", 1 - e["label"], e["label"])} for s, e in emb.items()}
    a, b = probe_study.probe_study(emb, "toy", st).tidy, probe_study.probe_study(flipped, "toy", st).tidy
    keep = ~a.metric.str.contains("seen")
    pd.testing.assert_frame_equal(a[keep].reset_index(drop=True), b[keep].reset_index(drop=True))
    assert not np.allclose(a[~keep].value, b[~keep].value)
    old = fake_embeddings(n_train=80)                      # no probe pool: fine-tuning rows, no memorisation rows
    tidy = probe_study.probe_study(old, "toy", st).tidy
    assert not tidy.metric.str.contains("seen").any() and (tidy.loc[tidy.metric == "mdl_compression_cls", "n"] == 64).all()


def test_probe_study_options_and_errors():
    emb = fake_embeddings()
    st = probe_study.ProbeSettings(layers=[2], seeds=1, n_boot=100, mlp=False, mdl=False, n_perm=2, poolings=("cls",),
                              cone_layers=[0, 2])
    tidy, cones, _ = probe_study.probe_study(emb, "toy", st)
    assert set(tidy.layer) == {-1, 2}
    assert not tidy.metric.str.startswith(("mlp", "mdl")).any()
    assert set(cones.layer) == {2}                   # cones only where the cls probes ran
    with pytest.raises(LayerwiseError, match="out of range"):
        probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(layers=[7]))
    with pytest.raises(LayerwiseError, match="unknown pooling"):
        probe_study.probe_study(emb, "toy", probe_study.ProbeSettings(poolings=("max",)))
    bad = {"pretrained": {k: v for k, v in emb["pretrained"].items() if k != "split"}}
    with pytest.raises(LayerwiseError, match="lack"):
        probe_study.probe_study(bad, "toy")
    only_train = {"pretrained": {**emb["pretrained"], "split": np.array(["train"] * 180)}}
    with pytest.raises(LayerwiseError, match="split"):
        probe_study.probe_study(only_train, "toy")


def test_probe_settings_from_the_analysis_spec():
    spec = AnalysisSpec(probe_seeds=3, bootstrap=200, seed=7)
    st = probe_study.ProbeSettings.from_analysis(spec)
    assert (st.seeds, st.retrainings, st.n_boot, st.seed) == (3, 20, 200, 7)
    assert st == probe_study.ProbeSettings(seeds=3, n_boot=200, seed=7)          # the rest: the defaults
    assert probe_study.ProbeSettings.from_analysis(AnalysisSpec(probe_retrainings=4)).retrainings == 4
    assert probe_study.ProbeSettings.from_analysis(spec, mlp=False).mlp is False
    assert probe_study.ProbeSettings(layers=[1, 2]).layers == (1, 2)             # frozen, hashable
    with pytest.raises(AttributeError):
        st.seeds = 9


def test_default_cone_layers_are_the_first_middle_and_last():
    emb = fake_embeddings(n_layers=8, d=4)                 # hidden states 0..7: L = 7: first 1, middle 4
    st = probe_study.ProbeSettings(seeds=1, retrainings=2, n_boot=20, n_perm=1, mlp=False, mdl=False, poolings=("cls",))
    _, cones, _ = probe_study.probe_study(emb, "toy", st)
    assert sorted(set(cones.layer)) == [1, 4, 7]   # not 0: the first token is one vector there
    assert len(cones) == 3 * 3 * cones.sentence.nunique()    # bounded: three layers per state, one row per test sentence
    st = probe_study.ProbeSettings(layers=[3, 5, 7], seeds=1, retrainings=2, n_boot=20, n_perm=1, mlp=False, mdl=False,
                              poolings=("cls",))
    assert sorted(set(probe_study.probe_study(emb, "toy", st).cones.layer)) == [7]   # only where the probes ran
