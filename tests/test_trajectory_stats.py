"""Known answers of the statistics beyond the end points: the similarity to the start of training
(``measure.trajectory``), the per-domain rows (``measure.domains``) and the paired change rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layerwise.core.tables import BEYOND_COLUMNS, beyond_frame
from layerwise.measure import domains, trajectory
from layerwise.measure.similarity import permutations


def _emb(n=40, layers=3, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, layers, d))


def test_start_similarity_known_answers():
    X = _emb()
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    perms = permutations(40, 50, 0)
    same, q95 = trajectory.start_similarity(X, X, perms)
    np.testing.assert_allclose(same, 1.0, atol=1e-12)
    rotated, _ = trajectory.start_similarity(X, 3.0 * X @ Q, perms)   # orthogonal map and a scale
    np.testing.assert_allclose(rotated, 1.0, atol=1e-10)
    independent, _ = trajectory.start_similarity(X, _emb(seed=5), perms)
    assert np.all(np.abs(independent) < 0.15)
    assert np.all(q95 < 0.2)                                           # the null of a shuffled pairing is near 0


def test_start_similarity_constant_layer_is_nan():
    X = _emb()
    X[:, 0] = 1.0                                                      # e.g. a first token at layer 0
    values, q95 = trajectory.start_similarity(X, X, permutations(40, 20, 0))
    assert np.isnan(values[0]) and np.isnan(q95[0]) and np.allclose(values[1:], 1.0)


def test_trajectory_rows_shape_and_start():
    pytest.importorskip("layerwise.measure.auxiliary")
    rng = np.random.default_rng(0)
    n_probe, n_test = 60, 60
    y = rng.integers(0, 2, n_probe + n_test)
    start = rng.normal(size=(n_probe + n_test, 3, 8))
    start[:, 2, 0] += 8 * y                                            # the label readable at layer 2
    moved = start.copy()
    moved[:, 1:] += rng.normal(size=moved[:, 1:].shape)                # layers 1-2 moved, layer 0 did not
    rows = beyond_frame(trajectory.trajectory_rows("m", 7, {0.0: start, 0.5: moved}, {0.0: 0, 0.5: 10}, n_probe,
                                                   y[:n_probe], y[n_probe:], n_permutations=20))
    assert list(rows.columns) == BEYOND_COLUMNS
    cka = rows[rows["metric"] == "cka_debiased"].set_index(["checkpoint", "layer"])["value"]
    assert np.allclose(cka.loc[0.0].to_numpy(), 1.0)
    assert cka.loc[(0.5, 0)] == pytest.approx(1.0) and cka.loc[(0.5, 1)] < 0.9
    acc = rows[rows["metric"] == "probe_acc"].set_index(["checkpoint", "layer"])["value"]
    assert acc.loc[(0.0, 2)] > 0.9 and acc.loc[(0.0, 0)] < 0.8
    assert set(rows["seed"].dropna()) == {7}
    assert rows[rows["metric"] == "step"].set_index("checkpoint")["value"].loc[0.5].eq(10).all()


def test_trajectory_needs_the_start():
    from layerwise.core.errors import LayerwiseError

    with pytest.raises(LayerwiseError, match="fraction 0"):
        trajectory.trajectory_rows("m", 1, {0.5: _emb()}, {0.5: 3}, 0, np.array([]), np.zeros(40))


def test_change_rows_identical_inputs_give_a_zero_width_interval():
    c = np.random.default_rng(0).integers(0, 2, (3, 50)).astype(float)
    rows = beyond_frame(domains.change_rows("m", "swap", "single", 1, c, c, metric="accuracy_change"))
    assert (rows["value"] == 0).all() and (rows["ci_low"] == 0).all() and (rows["ci_high"] == 0).all()
    lower = c.copy()
    lower[2, :] = 0                                                    # layer 2 loses every correct sentence
    rows = beyond_frame(domains.change_rows("m", "swap", "single", 1, c, lower, metric="accuracy_change"))
    top = rows[rows["layer"] == 2].iloc[0]
    assert top["value"] == pytest.approx(-c[2].mean()) and top["ci_high"] < 0


def test_domain_rows_per_domain_n_and_values():
    rng = np.random.default_rng(3)
    n = 40
    doms = np.array(["a"] * 24 + ["b"] * 12 + ["c"] * 4)               # c is too small for a statistic
    pre = rng.normal(size=(n, 2, 5))
    ft = pre.copy()
    ft[doms == "b", 1] = rng.normal(size=(12, 5))                      # only domain b moved, at layer 1
    test_rows = np.arange(100, 100 + n)
    correct = pd.concat([
        pd.DataFrame({"state": "pretrained", "seed": pd.array([pd.NA] * n * 2, dtype="Int64"),
                      "layer": np.repeat([0, 1], n), "sentence": np.tile(test_rows, 2), "correct": 1.0}),
        pd.DataFrame({"state": "finetuned", "seed": pd.array([5] * n * 2, dtype="Int64"),
                      "layer": np.repeat([0, 1], n), "sentence": np.tile(test_rows, 2), "correct": 0.5})])
    rows = beyond_frame(domains.domain_rows("m", doms, {"pretrained": pre, "finetuned@5": ft}, {5: "finetuned@5"},
                                            correct, test_rows, n_permutations=20))
    assert set(rows["group"]) == {"a", "b"}
    assert rows.groupby("group")["n"].max().to_dict() == {"a": 24, "b": 12}
    cka = rows[rows["metric"] == "cka_debiased"].set_index(["group", "layer"])["value"]
    assert cka[("a", 1)] == pytest.approx(1.0) and cka[("b", 1)] < 0.5
    change = rows[rows["metric"] == "probe_acc_change"]
    assert np.allclose(change["value"], -0.5)
