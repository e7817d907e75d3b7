"""Known answers of the analyses beyond the end points (issue 27), end to end on the tiny BERT (2 blocks):

* only the top block (and the head) is trained, on a label the top block alone can learn: the layers below never
  move (similarity to the start exactly 1) and setting them back to pretrained costs exactly nothing ("no change
  beyond δ" from zero-width intervals), while the top block moves and its swap costs accuracy beyond δ in every
  seed ("changed");
* a frozen run (learning rate 0): no layer moves, no swap costs anything, every outcome "no change beyond δ";
* an auxiliary probe finds a word planted in half of the sentences (the word task picks it), and its
  permuted-label control does not.

The trajectory is kept with :func:`layerwise.model.trajectory.capture` (what the Trainer callback runs) inside a
plain full-batch loop, which keeps the whole file within seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from layerwise.core.tables import beyond_frame
from layerwise.measure.auxiliary import aux_probe_correct, word_labels, word_task
from layerwise.measure.trajectory import trajectory_rows
from layerwise.model.models import load_model
from layerwise.model.swaps import swap_correct
from layerwise.model.testing import NUM_LAYERS, tiny_dataset, tiny_model_dir
from layerwise.model.trajectory import TrajectorySpec, capture
from layerwise.study.beyond import swap_rows
from layerwise.words import beyond, claims

SEEDS = (1, 2, 3)
STEPS = 30
TOP = NUM_LAYERS  # the last block's layer (0 = embeddings)
#: a word of the tiny tokenizer's vocabulary that no tiny sentence holds
PLANTED = "cuisine"


def planted(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` tiny sentences, half of them (at random) with :data:`PLANTED` inserted at a random word position:
    the label is the word's presence, which one attention block reading the first token can learn."""
    texts, _ = tiny_dataset(n, seed=seed)
    rng = np.random.default_rng(seed)
    labels = (rng.permutation(n) < n // 2).astype(int)
    out = []
    for t, y in zip(texts, labels):
        words = t.split()
        if y:
            words.insert(int(rng.integers(0, len(words) + 1)), PLANTED)
        out.append(" ".join(words))
    return out, labels.tolist()


TRAIN, PROBE, TEST = planted(80, 11), planted(40, 12), planted(40, 13)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(seed: int, lr: float, steps: int = STEPS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train the tiny BERT's top block and head (``lr`` 0: a frozen run) for ``steps`` full-batch Adam steps;
    the trajectory rows (kept at steps 0, steps/2 and steps) and the swap rows of the result."""
    torch.manual_seed(seed)
    model, tok = load_model(str(tiny_model_dir("bert")), 2)
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainable = (f"bert.encoder.layer.{NUM_LAYERS - 1}.", "bert.pooler.", "classifier.")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    spec = TrajectorySpec(PROBE[0] + TEST[0], (0.5,), ("mean",), batch_size=16, max_length=64)
    inputs = tok(TRAIN[0], padding=True, return_tensors="pt")
    y = torch.tensor(TRAIN[1])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    kept = {0.0: capture(model, tok, spec)["mean"]}
    torch.manual_seed(seed)
    for step in range(1, steps + 1):
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(**inputs).logits, y).backward()
        opt.step()
        if step in (steps // 2, steps):
            kept[step / steps] = capture(model, tok, spec)["mean"]
    model.eval()
    traj = beyond_frame(trajectory_rows("tiny", seed, kept, {0.0: 0, 0.5: steps // 2, 1.0: steps}, len(PROBE[0]),
                                        np.asarray(PROBE[1]), np.asarray(TEST[1]), n_permutations=20))
    swaps = beyond_frame(swap_rows("tiny", seed, swap_correct(model, pretrained, tok, TEST[0], TEST[1]), 200, 0))
    return traj, swaps


@pytest.fixture(scope="module")
def top_only():
    runs = [_run(s, 1e-2) for s in SEEDS]
    return pd.concat([r[0] for r in runs]), pd.concat([r[1] for r in runs])


@pytest.fixture(scope="module")
def frozen():
    runs = [_run(s, 0.0, steps=4) for s in SEEDS]  # nothing moves at learning rate 0: a few steps show it
    return pd.concat([r[0] for r in runs]), pd.concat([r[1] for r in runs])


def _cka(traj: pd.DataFrame) -> pd.Series:
    return traj[traj["metric"] == "cka_debiased"].set_index(["seed", "checkpoint", "layer"])["value"]


def test_training_only_the_top_block_moves_only_the_top(top_only):
    traj, swaps = top_only
    cka = _cka(traj)
    below = cka[cka.index.get_level_values("layer") < TOP]
    np.testing.assert_allclose(below.to_numpy(), 1.0, atol=1e-9)          # frozen layers: the same vectors
    final = cka.xs(1.0, level="checkpoint").xs(TOP, level="layer")
    assert (final < 0.95).all(), f"the top block moved in every seed: {final.to_dict()}"
    unswapped = swaps[(swaps["group"] == "none")]["value"]
    assert (unswapped >= 0.85).all(), "the top block learned the label"


def test_training_only_the_top_block_costs_accuracy_only_when_the_top_is_swapped(top_only):
    _, swaps = top_only
    for kind in ("single", "cumulative"):
        verdicts = beyond.change_verdicts(swaps, kind, "accuracy_change", kind)
        assert verdicts[TOP].word == claims.CHANGED and verdicts[TOP].detail["mean"] < -0.2, kind
        for layer in range(TOP):
            v = verdicts[layer]
            assert v.word == claims.NO_CHANGE, (kind, layer, v.word)
            assert v.detail["mean"] == 0 and v.detail["ci_low"] == v.detail["ci_high"] == 0


def test_a_frozen_run_shows_no_motion_and_no_swap_cost(frozen):
    traj, swaps = frozen
    np.testing.assert_allclose(_cka(traj).to_numpy(), 1.0, atol=1e-9)
    for kind in ("single", "cumulative"):
        verdicts = beyond.change_verdicts(swaps, kind, "accuracy_change", kind)
        assert sorted(verdicts) == list(range(TOP + 1))
        assert all(v.word == claims.NO_CHANGE for v in verdicts.values()), {k: v.word for k, v in verdicts.items()}


def test_an_auxiliary_probe_finds_a_planted_word():
    marked, labels = planted(120, 21)
    rng = np.random.default_rng(0)
    train, test = np.arange(80), np.arange(80, 120)
    assert word_task([marked[i] for i in train]) == PLANTED             # the most balanced word of the corpus
    y = word_labels(marked, PLANTED)
    assert np.array_equal(y, labels)
    # the property planted in the vectors of layer 1 only (layer 0: noise), as a model that wrote it there
    X = rng.normal(size=(len(marked), 2, 16))
    X[:, 1, 0] += 4.0 * y
    res = aux_probe_correct(X[train], y[train], X[test], y[test], seed=0)
    acc, control = res["correct"].mean(axis=1), res["control_correct"].mean(axis=1)
    assert acc[1] > 0.9 and abs(acc[0] - 0.5) < 0.2
    assert np.all(np.abs(control - 0.5) < 0.2)
