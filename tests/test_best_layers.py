"""Known answers for claims.best_layers and claims.versus: paired comparisons on per-sentence correctness."""

import numpy as np
import pandas as pd

from layerwise.words import claims, prose_probes
from layerwise.core.schema import tidy_frame, tidy_row


def _tables(acc_by_layer: dict[int, float], n: int = 400, seed: int = 0, shared: bool = True):
    """Per-sentence correctness (0/1) per layer with the given accuracies; ``shared``: layers get the same
    sentences right (nested), so differences are well determined."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    rows, tidy = [], []
    for layer, acc in acc_by_layer.items():
        c = (u < acc) if shared else (rng.random(n) < acc)
        rows.append(pd.DataFrame({"model": "m", "state": "finetuned", "metric": "probe_acc_cls", "layer": layer,
                                  "sentence": np.arange(n), "correct": c.astype(float)}))
        tidy.append(tidy_row("m", "finetuned", layer, "probe_acc_cls", c.mean(), c.mean() - 0.05, c.mean() + 0.05, n))
    return pd.concat(rows, ignore_index=True), tidy_frame(tidy)


def test_overlapping_layers_give_a_best_layer_set():
    correct, tidy = _tables({0: 0.60, 1: 0.80, 2: 0.81, 3: 0.80}, n=150, shared=False)
    v = claims.best_layers(correct, tidy, "probe_acc_cls", "finetuned")
    assert v.word == "tied" and v.detail["top"] == 2
    assert set(v.detail["layers"]) == {1, 2, 3} and v.n == 150
    assert set(v.rows["layer"]) == {1, 2, 3}
    lo, hi = v.detail["diff_ci"][0]
    assert lo > 0                                        # layer 0 is clearly worse
    text = prose_probes.probe_sentence(tidy, "cls", correct=correct)
    assert "best layers 1–3, which the paired comparison" in text and "best at layer" not in text
    assert "highest at layer 2: 0.833" in text


def test_clearly_separated_layers_name_one_layer():
    correct, tidy = _tables({0: 0.55, 1: 0.70, 2: 0.95}, n=300)
    v = claims.best_layers(correct, tidy, "probe_acc_cls", "finetuned")
    assert v.word == "best" and v.detail["layers"] == [2] and len(v.rows) == 1
    assert "best at layer 2" in prose_probes.probe_sentence(tidy, "cls", correct=correct)
    assert "m (layers 0 to 2): best at layer 2" in prose_probes.models_best_sentence(tidy, correct=correct)
    # without per-sentence correctness no verdict is claimed
    assert claims.best_layers(correct.iloc[0:0], tidy, "probe_acc_cls", "finetuned").word == "not measured"
    assert "not tested" in prose_probes.probe_sentence(tidy, "cls")


def test_versus_reference():
    correct, tidy = _tables({2: 0.95, -1: 0.70}, n=300)
    correct.loc[correct.layer == -1, "metric"] = "lexical_probe_acc"
    v = claims.versus(correct, tidy, ("probe_acc_cls", 2), ("lexical_probe_acc", -1), "finetuned")
    assert v.word == "higher" and v.detail["diff_ci"][0] > 0 and v.n == 300
    w = claims.versus(correct, tidy, ("lexical_probe_acc", -1), ("probe_acc_cls", 2), "finetuned")
    assert w.word == "lower"
    same, tidy2 = _tables({2: 0.8, 3: 0.8}, n=100, shared=False)
    assert claims.versus(same, tidy2, ("probe_acc_cls", 2), ("probe_acc_cls", 3), "finetuned").word == "tied"
