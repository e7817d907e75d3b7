"""Similarity between model states: linear CKA on the stored sentence embeddings.

Not a forward-pass statistic: it reads the first-token (``cls``) and mean-pooled (``mean``) embeddings
``[n, L+1, d]`` that :func:`layerwise.extract.run_state` stores for each state, on the same sentences.
Definition: :func:`layerwise.metrics.linear_cka` (Kornblith et al. 2019), computed for every pair of
layers through centred Gram matrices with :func:`layerwise.metrics.cka_from_grams`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics
from .errors import LayerwiseError
from .kernels import single_threaded_blas
from .schema import POOLINGS, tidy_frame, tidy_row

__all__ = ["cka_between_states", "CKA_COLUMNS"]

#: Columns of the ``cka`` table (one row per pooling, pair of states and pair of layers).
CKA_COLUMNS = ["model", "pooling", "state_a", "state_b", "layer_a", "layer_b", "value"]


def cka_between_states(embeddings: dict[str, dict[str, np.ndarray]], model_name: str,
                       reference: str = "pretrained") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Linear CKA (:func:`layerwise.metrics.linear_cka`) between model states on the same sentences
    (pass the test split), for the first-token (``cls``) and mean-pooled (``mean``) embeddings
    (``[n, L+1, d]`` per state).

    Returns ``(tidy_rows, cka)``: tidy rows ``cka_cls_vs_pretrained`` / ``cka_mean_vs_pretrained`` (layer
    l of each state against layer l of the reference, n = sentences), and the full layer x layer
    matrices for every pair of states, the within-state ones included (columns :data:`CKA_COLUMNS`). A
    representation that is the same for every sentence (the first token at layer 0 of BERT-like models)
    has no variance: its CKA is undefined (NaN).
    """
    states = sorted(embeddings, key=lambda s: s != reference)  # the reference first, then the given order
    tidy_rows: list[dict] = []
    cka_parts: list[pd.DataFrame] = []
    with single_threaded_blas():
        for pooling in POOLINGS:
            grams, n_sentences = _centred_grams(embeddings, states, pooling)
            if n_sentences < 2:
                continue
            for position, state_a in enumerate(states):
                for state_b in states[position:]:
                    matrix = metrics.cka_from_grams(grams[state_a], grams[state_b])
                    cka_parts.append(_cka_frame(matrix, model_name, pooling, state_a, state_b))
                    if state_a == reference and state_b != reference:
                        tidy_rows += [tidy_row(model_name, state_b, layer, f"cka_{pooling}_vs_{reference}",
                                               matrix[layer, layer], n=n_sentences) for layer in range(len(matrix))]
    cka = pd.concat(cka_parts, ignore_index=True) if cka_parts else pd.DataFrame(columns=CKA_COLUMNS)
    return tidy_frame(tidy_rows), cka


def _centred_grams(embeddings, states: list[str], pooling: str) -> tuple[dict[str, np.ndarray], int]:
    """Per state, the centred Gram matrices ``Xc Xc^T`` of every layer (``[L+1, n, n]``, float64), and
    the number of sentences. A constant layer (every sentence the same vector) gets a zero Gram, hence
    a NaN CKA."""
    representations = {}
    for state in states:
        array = embeddings[state].get(pooling)
        if array is None:
            raise LayerwiseError(f"state {state!r} has no {pooling!r} embeddings", "similarity.cka_between_states",
                                 "pass the arrays stored by run_state")
        representations[state] = np.asarray(array, dtype=np.float64)
    shapes = {s: r.shape[:2] for s, r in representations.items()}
    if len(set(shapes.values())) > 1:
        raise LayerwiseError(f"states describe different sentences or depths: {shapes}",
                             "similarity.cka_between_states", "pass the same sentences for every state")
    if not shapes:
        return {}, 0
    n_sentences, n_layers = next(iter(shapes.values()))
    grams = {}
    for state, r in representations.items():
        centred = r - r.mean(axis=0, keepdims=True)                       # [n, L+1, d], centred per layer
        centred[:, np.all(r == r[:1], axis=(0, 2))] = 0.0
        grams[state] = np.stack([centred[:, layer] @ centred[:, layer].T for layer in range(n_layers)])
    return grams, n_sentences


def _cka_frame(matrix: np.ndarray, model_name: str, pooling: str, state_a: str, state_b: str) -> pd.DataFrame:
    """One ``[L+1, L+1]`` CKA matrix as rows of the ``cka`` table."""
    layer_a, layer_b = np.meshgrid(np.arange(len(matrix)), np.arange(matrix.shape[1]), indexing="ij")
    return pd.DataFrame({"model": model_name, "pooling": pooling, "state_a": state_a, "state_b": state_b,
                         "layer_a": layer_a.reshape(-1).astype(np.int64),
                         "layer_b": layer_b.reshape(-1).astype(np.int64), "value": matrix.reshape(-1)})
