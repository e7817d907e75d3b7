"""How each layer moved during fine-tuning: the statistics of the pooled embeddings kept at checkpoints of the
training run (:mod:`layerwise.model.trajectory` keeps them; issue 27).

At each checkpoint (a fraction of the training steps) and layer, on the test sentences:

* **similarity to the start**: debiased linear CKA (Kornblith et al. 2019; the U-centred Grams of Song et al.
  2012, :func:`layerwise.measure.metrics.u_centre`) between the layer at the checkpoint and the same layer at
  step 0 of the same run, where the encoder still has its pretrained weights (the classifier head is not in
  the hidden states). ``CKA_t = <U(K_0), U(K_t)>_F / (|U(K_0)|_F |U(K_t)|_F)`` with ``K = X X^T``; 1 at step 0.
  Its chance level is a permutation null: the sentences of one side shuffled (the same permutations for every
  layer and checkpoint), the 95th percentile in ``cka_debiased_null_q95``;
* **probe accuracy**: a logistic probe per layer trained on the probe-pool sentences and scored on the test
  sentences (:func:`layerwise.measure.auxiliary.aux_probe_correct`), with its Wilson interval over sentences.

Tracking layers through training follows Raghu et al. 2017 (SVCCA, "learning dynamics") and Merchant et al.
2020 ("What happens to BERT embeddings during fine-tuning?"), who found the change concentrated in the top
layers; Mosbach et al. 2021 trace failed fine-tuning runs to the first steps.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..core.errors import LayerwiseError
from ..core.tables import beyond_row
from .similarity import gram_permutation_null, permutations, unit_debiased_grams
from .stats import wilson_ci

#: the permutations of the similarity null at each checkpoint
NULL_PERMUTATIONS = 200


def start_similarity(start: np.ndarray, other: np.ndarray, perms: np.ndarray, *,
                     start_grams: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Debiased CKA between each layer of ``start`` and the same layer of ``other`` (both ``[n, L+1, d]``, the
    same n sentences), and the 95th percentile of its permutation null (``perms``: ``[P, n]`` row orders);
    NaN where a layer is constant. ``start_grams``: :func:`layerwise.measure.similarity.unit_debiased_grams` of
    ``start`` when the caller compares it with several others (computed here otherwise). Known answers
    (``tests/test_trajectory_stats.py``): 1 for the same embeddings, 1 under an orthogonal map and a scale, about
    0 for independent embeddings."""
    if start.shape[:2] != other.shape[:2]:
        raise LayerwiseError(f"embeddings of shapes {start.shape} and {other.shape} are not the same sentences and "
                             "layers", "trajectory.start_similarity", "pass the same checkpoint texts for both")
    A, ok_a = start_grams if start_grams is not None else unit_debiased_grams(start)
    B, ok_b = unit_debiased_grams(other)
    ok = ok_a & ok_b
    values = np.where(ok, np.einsum("lij,lij->l", A, B), np.nan)
    null = gram_permutation_null(A, B, perms)
    with np.errstate(invalid="ignore"):
        q95 = np.where(ok, np.quantile(null, 0.95, axis=0), np.nan)
    return values, q95


def trajectory_rows(model: str, seed: int, embeddings: Mapping[float, np.ndarray], steps: Mapping[float, int],
                    n_probe: int, y_probe: np.ndarray, y_test: np.ndarray, *, probe_seed: int = 0,
                    n_permutations: int = NULL_PERMUTATIONS, level: float = 0.95) -> list[dict]:
    """The ``beyond`` rows (analysis ``trajectory``, state ``finetuned``) of one fine-tuning seed: for every
    checkpoint fraction f of ``embeddings`` (``{f: [n_probe + n_test, L+1, d]}``, the probe-pool sentences
    first, one pooling) and layer, ``cka_debiased`` to the first checkpoint (which must be fraction 0),
    ``cka_debiased_null_q95`` and ``probe_acc`` (probe trained on the probe pool; none when ``n_probe`` is 0)
    with its Wilson interval, and the checkpoint's training step (``step``)."""
    fractions = sorted(embeddings)
    if not fractions or fractions[0] != 0.0:
        raise LayerwiseError(f"checkpoints {fractions} lack the start of training (fraction 0)",
                             "trajectory.trajectory_rows", "keep fraction 0 in finetune.checkpoints")
    start = np.asarray(embeddings[0.0])[n_probe:]
    n_test = start.shape[0]
    if len(y_test) != n_test or len(y_probe) != n_probe:
        raise LayerwiseError(f"{n_probe} probe and {n_test} test embeddings for {len(y_probe)} and {len(y_test)} "
                             "labels", "trajectory.trajectory_rows", "pass the labels of the checkpoint texts")
    perms = permutations(n_test, n_permutations, probe_seed)
    start_grams = unit_debiased_grams(start)                 # the reference of every checkpoint, computed once
    rows: list[dict] = []
    for f in fractions:
        X = np.asarray(embeddings[f], dtype=np.float32)
        values, q95 = start_similarity(start, X[n_probe:], perms, start_grams=start_grams)
        for layer, (v, q) in enumerate(zip(values, q95)):
            rows += [beyond_row(model, "trajectory", "", "finetuned", seed, layer, "cka_debiased", v, n=n_test,
                                checkpoint=f),
                     beyond_row(model, "trajectory", "", "finetuned", seed, layer, "cka_debiased_null_q95", q,
                                n=n_permutations, checkpoint=f),
                     beyond_row(model, "trajectory", "", "finetuned", seed, layer, "step", steps[f], checkpoint=f)]
        if n_probe:
            from .auxiliary import aux_probe_correct

            correct = aux_probe_correct(X[:n_probe], y_probe, X[n_probe:], y_test, seed=probe_seed,
                                        control=False)["correct"]
            for layer, c in enumerate(np.asarray(correct, dtype=float)):
                acc, lo, hi = wilson_ci(int(round(c.sum())), c.size, level)
                rows.append(beyond_row(model, "trajectory", "", "finetuned", seed, layer, "probe_acc", acc, lo, hi,
                                       n=c.size, checkpoint=f))
    return rows
