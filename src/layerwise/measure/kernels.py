"""Batched forms of the reference definitions in :mod:`layerwise.measure.metrics`, as the engine runs them.

The geometry engine (:mod:`layerwise.measure.extract`) sees a padded batch ``h`` of shape ``[B, T, d]`` (B
sentences, T positions, d dimensions) per layer, with token masks of shape ``[B, 2, T]``: variant 0 is
every valid (non-padding) token, variant 1 the content tokens (special tokens excluded). A kernel
computes, for every sentence and variant at once, what a :mod:`layerwise.measure.metrics` function computes on
one sentence's valid rows. Each docstring names the definition it mirrors and the identity it uses;
``tests/test_kernels.py`` checks every kernel against that definition.

Torch kernels run on the model's device in float32; the ``*_from_sums`` kernels run on the host (numpy,
float64) on the per-sentence sums the torch kernels return.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics

__all__ = [
    "RunningSums", "per_sentence_values", "DIMENSION_SUMS", "SENTENCE_SUMS", "BatchMasks", "batch_masks", "LayerStatistics", "layer_statistics", "variant_token_masks", "pair_masks", "token_sums", "unit_token_rows", "cosine_grams", "pair_cosine_moments",
    "pair_cosine_values", "intra_similarity", "histogram_bins", "histogram_counts", "cov_trace_from_sums",
    "cov_trace_scaled_from_sums", "mean_sd_from_sums", "within_sentence_cosine_mean", "single_threaded_blas", "word_vectors",
]


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------

def variant_token_masks(valid, special):
    """``(masks, weights, counts)``: the boolean token masks ``[B, 2, T]`` of the two variants (every
    valid token; valid and not special), the same as float32 weights, and the tokens per sentence and
    variant ``[B, 2]``."""
    import torch

    masks = torch.stack([valid, valid & ~special], 1)
    weights = masks.to(torch.float32)
    return masks, weights, weights.sum(-1)


def pair_masks(masks):
    """Per variant, the pairs ``(i, j)``, ``i < j``, of valid tokens of each sentence: float32 weights
    ``[B, T, T]`` (1 on a pair, 0 elsewhere, so padding never enters a pair statistic), the flat
    positions of the pairs in a ``[B, T, T]`` tensor, and the pair counts ``[B, 2]`` (``n (n - 1) / 2``).
    The pair order is that of :func:`layerwise.measure.metrics.pairwise_cosines_upper` within each sentence."""
    import torch

    T = masks.shape[-1]
    upper = torch.ones(T, T, dtype=torch.bool, device=masks.device).triu(1)
    pair_bool = [(masks[:, v, :, None] & masks[:, v, None, :]) & upper for v in range(masks.shape[1])]
    weights = [p.to(torch.float32) for p in pair_bool]
    flat_index = [p.reshape(-1).nonzero().squeeze(1) for p in pair_bool]
    counts = torch.stack([w.sum((1, 2)) for w in weights], 1)
    return weights, flat_index, counts


# --------------------------------------------------------------------------------------------------
# Token sums, unit rows, cosines
# --------------------------------------------------------------------------------------------------

def token_sums(weights, h):
    """``sum_i w_i x_i`` per sentence and variant, ``[B, 2, d]``, as one batched product ``W H``: the
    numerator of every mean of :mod:`layerwise.measure.metrics` (sentence mean vectors, per-dimension sums of
    ``metrics.standardise``'s mean and sd when ``h`` holds the squares)."""
    import torch

    return torch.bmm(weights, h)


def unit_token_rows(h, norms, valid):
    """Rows divided by their norm (:func:`layerwise.measure.metrics.unit_rows`); padding rows are divided by 1
    (never read: every statistic masks them)."""
    import torch

    return h / torch.where(valid, norms, torch.ones_like(norms)).unsqueeze(-1)


def cosine_grams(units):
    """Cosines of every pair of positions of each sentence, ``U U^T``, ``[B, T, T]``: the batched
    :func:`layerwise.measure.metrics.cosine_matrix` (not clipped; the pair values are clipped when read)."""
    import torch

    return torch.bmm(units, units.transpose(1, 2))


def pair_cosine_moments(grams, pair_weight, n_pairs):
    """``(sum, variance)`` per sentence of its within-sentence pair cosines (one variant): the sum and
    the ddof-0 variance of :func:`layerwise.measure.metrics.pairwise_cosines_upper`, read from the Gram matrices
    through the pair weights. The variance is two-pass, ``sum (c - mean)^2 / n_pairs``; a sentence without
    pairs gets sum 0 and variance 0 (the caller marks it missing)."""
    total = (grams * pair_weight).sum((1, 2))
    per_pair = n_pairs.clamp_min(1)
    deviation = (grams - (total / per_pair)[:, None, None]) * pair_weight
    return total, (deviation * deviation).sum((1, 2)) / per_pair


def pair_cosine_values(grams, flat_index):
    """The within-sentence pair cosines of a batch (one variant), clipped to ``[-1, 1]`` as
    :func:`layerwise.measure.metrics.pairwise_cosines_upper` clips them, in sentence then ``(i, j)`` order."""
    return grams.reshape(-1).index_select(0, flat_index).clamp(-1.0, 1.0)


def intra_similarity(units, means, mean_norms, weights, counts):
    """:func:`layerwise.measure.metrics.intra_similarity` of every sentence and variant, ``[B, 2]``:
    ``(1/n) sum_i cos(x_i, mean)`` with ``cos(x_i, mean) = u_i . (mean / |mean|)``, one batched product
    of the unit rows with the unit mean vectors. A zero mean (undefined) gives a meaningless value that
    the caller replaces by NaN."""
    import torch

    unit_means = means / mean_norms.clamp_min(1e-30).unsqueeze(-1)
    to_mean = torch.bmm(units, unit_means.transpose(1, 2))           # [B, T, 2]
    return (to_mean.transpose(1, 2) * weights).sum(-1) / counts.clamp_min(1)


def histogram_bins(values, bins: int):
    """Bin of each value in ``bins`` equal bins on ``[-1, 1]`` (the histogram that
    :func:`layerwise.measure.metrics.quantiles_from_histogram` reads); 1 falls in the last bin."""
    return ((values + 1.0) * (bins / 2.0)).long().clamp_(0, bins - 1)


def histogram_counts(bin_index, bins: int) -> np.ndarray:
    """Counts per bin of every layer at once, ``[L, bins]`` from ``[L, N]`` bin indices (one bincount
    over layer-shifted indices)."""
    import torch

    layers = bin_index.shape[0]
    shifted = bin_index + (torch.arange(layers, device=bin_index.device) * bins).unsqueeze(1)
    return torch.bincount(shifted.reshape(-1), minlength=layers * bins).reshape(layers, bins).cpu().numpy()


# --------------------------------------------------------------------------------------------------
# Host-side statistics from sums (numpy, float64)
# --------------------------------------------------------------------------------------------------

def cov_trace_from_sums(sum_sq_norms, n, mean_norms):
    """:func:`layerwise.measure.metrics.cov_trace` from sums, through the identity
    ``sum_i |x_i - mean|^2 = sum_i |x_i|^2 - n |mean|^2``: ``tr(Cov) = (S - n |mean|^2) / (n - 1)`` with
    ``S`` the sum of squared token norms. Clipped at 0 (rounding); meaningful where ``n >= 2``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(sum_sq_norms - n * mean_norms ** 2, 0.0, None) / np.where(n >= 2, n - 1, 1)


def cov_trace_scaled_from_sums(trace, sum_sq_norms, n):
    """:func:`layerwise.measure.metrics.cov_trace_scaled`: the trace divided by the mean squared token norm
    ``S / n``; NaN where ``S = 0``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return trace / np.where(sum_sq_norms > 0, sum_sq_norms / np.where(n > 0, n, 1), np.nan)


def mean_sd_from_sums(sums, sums_sq, n: int):
    """Mean and standard deviation (ddof = 0, as ``x.mean()``, ``x.std()``) of ``n`` values known through
    their streaming sums ``sum x`` and ``sum x^2``, through ``var = E[x^2] - E[x]^2`` (clipped at 0).
    Elementwise: per dimension, it gives the ``mu`` and ``sigma`` of :func:`layerwise.measure.metrics.standardise`;
    on the sums of the pair cosines, the mean and sd of :func:`layerwise.measure.metrics.pairwise_cosines_upper`
    over every pair of every sentence."""
    count = max(n, 1)
    mean = sums / count
    return mean, np.sqrt(np.clip(sums_sq / count - mean * mean, 0.0, None))


def within_sentence_cosine_mean(X: np.ndarray, index: np.ndarray, present: np.ndarray,
                                pair_weights: np.ndarray) -> tuple[float, int]:
    """Weighted mean over sentences of each sentence's mean within-sentence pair cosine, and the number
    of pairs it read: the mean of :func:`layerwise.measure.metrics.pairwise_cosines_upper` of each sentence's
    rows, weighted by ``pair_weights`` (the sentence's true number of pairs when only some tokens are
    kept). ``index`` ``[S, cap]``: rows of ``X`` of each sentence; ``present``: which slots hold a row
    of the variant. All sentences at once: padded unit rows ``[S, cap, d]``, one batched Gram product,
    masked to the strict upper triangle. A sentence with a zero row (NaN cosine) is left out."""
    S, cap = index.shape
    if S == 0:
        return float("nan"), 0
    with np.errstate(invalid="ignore", divide="ignore"):
        units = metrics.unit_rows(X, zero_rows="nan")
    padded = np.where(present[..., None], units[np.where(present, index, 0)], 0.0)   # [S, cap, d]
    grams = np.matmul(padded, padded.transpose(0, 2, 1))
    pair = present[:, :, None] & present[:, None, :] & np.triu(np.ones((cap, cap), bool), 1)
    n_pairs = pair.sum((1, 2))
    sums = np.where(pair, grams, 0.0).sum((1, 2), dtype=np.float64)
    ok = (n_pairs > 0) & np.isfinite(sums)
    if not ok.any():
        return float("nan"), 0
    weights = pair_weights[ok].astype(np.float64)
    return float(np.sum(weights * (sums[ok] / n_pairs[ok])) / np.sum(weights)), int(n_pairs[ok].sum())


# --------------------------------------------------------------------------------------------------
# One batch, one layer: every kernel together, as the engine runs them
# --------------------------------------------------------------------------------------------------

@dataclass
class BatchMasks:
    """The masks of one padded batch (variant 0: every valid token, variant 1: content tokens)."""

    valid: Any                 # [B, T] bool
    first: Any                 # [B] first valid position (left or right padding)
    weights: Any               # [B, 2, T] float token masks
    counts: Any                # [B, 2] tokens per sentence
    pair_weights: list         # per variant [B, T, T] float pair masks (valid tokens, i < j)
    pair_index: list           # per variant, flat positions of those pairs
    n_pairs: Any               # [B, 2]


def batch_masks(valid, special) -> BatchMasks:
    """Token and pair masks of a batch from its attention mask and special-token mask (``[B, T]``)."""
    import torch

    masks, weights, counts = variant_token_masks(valid, special)
    pair_weights, pair_index, n_pairs = pair_masks(masks)
    return BatchMasks(valid, torch.argmax(valid.to(torch.int8), dim=1), weights, counts, pair_weights, pair_index,
                      n_pairs)


@dataclass
class LayerStatistics:
    """What one layer of one batch contributes (device tensors; ``[B, 2]`` = sentence x variant)."""

    dim_sum: Any                # [2, d] per-dimension token sums
    dim_sum_sq: Any             # [2, d] per-dimension sums of squares
    mean_norm: Any              # [B, 2] norm of the sentence mean vector
    sum_sq_norm: Any            # [B, 2] sum of squared token norms
    norm_sum: Any               # [B, 2] sum of token norms
    intra_similarity: Any       # [B, 2]
    pair_cosine_sum: Any        # [B, 2] sum of within-sentence pair cosines
    pair_cosine_var: Any        # [B, 2] their variance (ddof 0)
    zero_norm: Any              # a valid token with a zero vector
    cosine_sample: Any = None   # [k] values of the requested pairs
    pool: Any = None            # [P, d] the requested tokens
    pair_values: dict = field(default_factory=dict)  # variant -> (min, max, sum, sum of squares, bins)


def layer_statistics(h, masks: BatchMasks, bins: int, sample_pairs=None, pool_tokens=None) -> LayerStatistics:
    """Every kernel on one layer ``h`` ``[B, T, d]`` (float32): sums, norms, unit rows, one Gram
    matrix of cosines per sentence and everything read from it. ``sample_pairs``: flat positions of
    pairs whose cosines to keep; ``pool_tokens``: ``(batch rows, positions)`` of tokens to keep."""
    import torch

    squares = h * h
    sq_norms = squares.sum(-1)                                   # [B, T]
    norms = sq_norms.sqrt()
    sums = token_sums(masks.weights, h)                          # [B, 2, d]
    means = sums / masks.counts.clamp_min(1).unsqueeze(-1)
    mean_norm = means.norm(dim=-1)
    units = unit_token_rows(h, norms, masks.valid)
    grams = cosine_grams(units)
    moments = [pair_cosine_moments(grams, masks.pair_weights[a], masks.n_pairs[:, a]) for a in (0, 1)]
    out = LayerStatistics(
        dim_sum=sums.sum(0),
        dim_sum_sq=token_sums(masks.weights, squares).sum(0), mean_norm=mean_norm,
        sum_sq_norm=(masks.weights * sq_norms.unsqueeze(1)).sum(-1),
        norm_sum=(masks.weights * norms.unsqueeze(1)).sum(-1),
        intra_similarity=intra_similarity(units, means, mean_norm, masks.weights, masks.counts),
        pair_cosine_sum=torch.stack([m[0] for m in moments], 1), pair_cosine_var=torch.stack([m[1] for m in moments], 1),
        zero_norm=((norms == 0) & masks.valid).any())
    for a in (0, 1):
        values = pair_cosine_values(grams, masks.pair_index[a])
        if values.numel():
            out.pair_values[a] = (values.amin(), values.amax(), values.sum(), (values * values).sum(),
                                  histogram_bins(values, bins))
    if sample_pairs is not None:
        out.cosine_sample = pair_cosine_values(grams, sample_pairs)
    if pool_tokens is not None:
        out.pool = h[pool_tokens[0], pool_tokens[1]]
    return out


def word_vectors(h, rows, positions):
    """The vectors of word occurrences: for occurrence k, the mean of ``h[rows[k], p]`` over its subword
    positions ``positions[k]`` (``[N, S]``, -1 padded), as :func:`layerwise.measure.metrics.word_vector` on one
    sentence's rows; ``[N, d]``. One gather and one masked sum for every occurrence of the batch."""
    import torch

    present = positions >= 0
    gathered = h[rows.unsqueeze(1), positions.clamp_min(0)]                 # [N, S, d]
    weights = present.to(h.dtype).unsqueeze(-1)
    return (gathered * weights).sum(1) / weights.sum(1).clamp_min(1)


# --------------------------------------------------------------------------------------------------
# Host side: running sums over batches, per-sentence values
# --------------------------------------------------------------------------------------------------

#: LayerStatistics fields per dimension and variant (``[2, d]`` per layer)
DIMENSION_SUMS = ("dim_sum", "dim_sum_sq")
#: LayerStatistics fields per sentence and variant (``[B, 2]`` per layer)
SENTENCE_SUMS = ("norm_sum", "mean_norm", "sum_sq_norm", "intra_similarity", "pair_cosine_sum", "pair_cosine_var")


class RunningSums:
    """Exact running sums of one token variant over the batches, per layer (float64 on the host): the
    pair cosines (count, sum, sum of squares, min, max, histogram), the tokens, their norms and the
    per-dimension sums behind :func:`mean_sd_from_sums`."""

    def __init__(self, n_layers: int, d: int, bins: int):
        self.pairs = np.zeros(n_layers, np.int64)
        self.sum = np.zeros(n_layers)
        self.sum_sq = np.zeros(n_layers)
        self.min = np.full(n_layers, np.inf)
        self.max = np.full(n_layers, -np.inf)
        self.bins = bins
        self.hist = np.zeros((n_layers, bins), np.int64)
        self.tokens = 0
        self.norm_sum = np.zeros(n_layers)
        self.dim_sum = np.zeros((n_layers, d))
        self.dim_sum_sq = np.zeros((n_layers, d))

    def add(self, dimension_sums: dict, sentence_sums: dict, counts: np.ndarray, pair_values: list,
            n_pairs: int) -> None:
        """Add one batch of this variant: ``dimension_sums`` ``[L, d]`` and ``sentence_sums`` ``[L, B]``
        (host arrays, see :data:`DIMENSION_SUMS`, :data:`SENTENCE_SUMS`), the tokens per sentence, and
        per layer the ``LayerStatistics.pair_values`` of the variant (None when the batch has no pair)."""
        import torch

        self.tokens += int(counts.sum())
        self.norm_sum += sentence_sums["norm_sum"].sum(1)
        self.dim_sum += dimension_sums["dim_sum"]
        self.dim_sum_sq += dimension_sums["dim_sum_sq"]
        if pair_values[0] is None:
            return
        minimum, maximum, total, total_sq = (torch.stack([values[k] for values in pair_values]).cpu().numpy()
                                             .astype(np.float64) for k in range(4))
        self.pairs += n_pairs
        self.sum += total
        self.sum_sq += total_sq
        self.min = np.minimum(self.min, minimum)
        self.max = np.maximum(self.max, maximum)
        self.hist += histogram_counts(torch.stack([values[4] for values in pair_values]), self.bins)


def per_sentence_values(sentence_sums: dict, n: np.ndarray, n_pairs: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sentence metrics of one variant, ``[L, B]`` each, NaN where undefined: the mean and
    variance of :func:`layerwise.measure.metrics.pairwise_cosines_upper` (``token_cosine``,
    ``token_cosine_var``; at least one pair), :func:`layerwise.measure.metrics.intra_similarity` (a token and
    a nonzero mean), :func:`layerwise.measure.metrics.cov_trace` and :func:`layerwise.measure.metrics.cov_trace_scaled`
    (two tokens), from the sums of :data:`SENTENCE_SUMS` and the token and pair counts ``[B]``."""
    has_pairs = n_pairs > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_mean = sentence_sums["pair_cosine_sum"] / np.where(has_pairs, n_pairs, 1)
    trace = cov_trace_from_sums(sentence_sums["sum_sq_norm"], n, sentence_sums["mean_norm"])
    scaled = cov_trace_scaled_from_sums(trace, sentence_sums["sum_sq_norm"], n)
    intra = np.where((n >= 1) & (sentence_sums["mean_norm"] > 0), sentence_sums["intra_similarity"], np.nan)
    values = {"token_cosine": (pair_mean, has_pairs), "token_cosine_var": (sentence_sums["pair_cosine_var"], has_pairs),
              "intra_similarity": (intra, n >= 1), "cov_trace": (trace, n >= 2), "cov_trace_scaled": (scaled, n >= 2)}
    return {name: np.where(defined[None, :], value, np.nan) for name, (value, defined) in values.items()}


def single_threaded_blas():
    """Limit BLAS to one thread for the engine's small host-side linear algebra (an idle spinning BLAS
    pool next to torch's OpenMP threads made eigendecompositions 50x slower on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
