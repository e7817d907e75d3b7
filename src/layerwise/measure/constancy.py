"""How much the first token's vector varies between sentences, layer by layer (issue 23).

BERT-like encoders put a special token first (``[CLS]``, ``<s>``); its input is the same in every
sentence, and in a model not trained to summarise the sentence with it (a sentence-transformers model
that declares mean pooling, a plain masked-language model) it can stay almost the same vector whatever
the sentence. Then every statistic of the first token (its probe, its class geometry, its CKA) measures
a nearly constant vector. :func:`first_token_constancy` measures that constancy per layer and
:func:`constant_layers` names the layers where it passes :data:`CONSTANT_FIRST_TOKEN`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .metrics import unit_rows

#: mean cosine between sentences from which the first token counts as constant: at 0.99 the vectors of
#: two sentences are at most about 8° apart on average, so what differs between sentences is a small
#: part of the vector (for unit vectors, ``|u - v|^2 = 2 (1 - cos)``, 2% of the squared norm)
CONSTANT_FIRST_TOKEN = 0.99


def _layers(cls: np.ndarray | Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """``{layer: [n_sentences, dim] matrix}`` from a ``[n_sentences, n_layers, dim]`` array or a mapping."""
    if isinstance(cls, Mapping):
        return {int(k): np.asarray(v) for k, v in cls.items()}
    arr = np.asarray(cls)
    if arr.ndim != 3:
        raise ValueError(f"first-token vectors must be [n_sentences, n_layers, dim], got shape {arr.shape}")
    return {layer: arr[:, layer, :] for layer in range(arr.shape[1])}


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine between the rows of ``x`` over the pairs of different rows (uncentred), in O(n·dim):
    with the rows scaled to unit length (:func:`~layerwise.measure.metrics.unit_rows`, ``zero_rows="zero"``:
    a zero row stays zero, so its cosines count as 0), ``(|Σ u_i|^2 - Σ |u_i|^2) / (n (n - 1))``.
    Clipped to [-1, 1] (rounding); NaN with fewer than two rows."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    u = unit_rows(x, zero_rows="zero")
    total = u.sum(axis=0)
    return float(np.clip((total @ total - (u * u).sum()) / (n * (n - 1)), -1.0, 1.0))


def first_token_constancy(cls: np.ndarray | Mapping[int, np.ndarray]) -> pd.DataFrame:
    """Per layer, the mean cosine between different sentences' first-token vectors (uncentred):
    ``value(l) = 2 / (n (n - 1)) Σ_{i<j} cos(h_i(l), h_j(l))`` over the ``n`` sentences.

    This is the anisotropy measure of Ethayarajh (2019, "How Contextual are Contextualized Word
    Representations?", EMNLP: the expected cosine between the representations of random words) applied
    to one position, the first token: 1 when every sentence gives the same direction, about 0 for
    directions spread uniformly. It is invariant under a rotation of the space and a rescaling of each vector.
    ``cls``: ``[n_sentences, n_layers, dim]`` (the ``cls`` array of an ``embeddings_<state>.npz``) or
    ``{layer: [n_sentences, dim]}``. Returns a DataFrame with columns ``layer`` (int) and ``value`` (float)."""
    rows = [(layer, mean_pairwise_cosine(x)) for layer, x in sorted(_layers(cls).items())]
    return pd.DataFrame({"layer": pd.array([r[0] for r in rows], dtype="int64"),
                         "value": np.array([r[1] for r in rows], dtype=np.float64)})


def constant_layers(frame: pd.DataFrame, threshold: float = CONSTANT_FIRST_TOKEN) -> list[int]:
    """The layers of a :func:`first_token_constancy` frame whose value is at least ``threshold``."""
    return [int(v) for v in frame.loc[frame["value"] >= threshold, "layer"]]
