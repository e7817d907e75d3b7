"""MDL probing: the online (prequential) code length of the labels given the representations (Voita &
Titov 2020), and its subsampled version whose spread gives the CI.

Sentences: the probe study (``probe_study.probe_study``) codes the labels of the probe pool (sentences the
fine-tuning never saw); its memorisation check codes, at equal n, the labels of fine-tuning sentences.
MDL compression grows with n, so two values are compared only at equal n.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.errors import LayerwiseError

#: MDL block boundaries in percent of the coded items (Voita & Titov 2020).
MDL_FRACTIONS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25.0, 50.0, 100.0)


def check_xy(X, y, where: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise LayerwiseError(f"expected X [n, d] and y [n], got {X.shape} and {y.shape}", where=where,
                             fix="pass one embedding row and one label per sentence")
    if X.shape[0] == 0:
        raise LayerwiseError("no sentences", where=where, fix="check the data selection")
    if not np.all(np.isfinite(X)):
        raise LayerwiseError("embeddings contain NaN or inf", where=where,
                             fix="check the extraction (float16 overflow?) and rerun the geometry engine")
    return X, y

@dataclass
class MDLResult:
    """Online code length of the labels given the representations (bits).

    ``codelength``: total bits; ``uniform``: n log2 K; ``compression``: uniform / codelength
    (1 = no better than the uniform code); ``boundaries``: block end points (items); ``per_C``: the online
    code length with each single regularisation strength C of the grid.
    """

    codelength: float
    uniform: float
    compression: float
    boundaries: np.ndarray = field(repr=False)
    per_C: dict = field(default_factory=dict)


#: regularisation strengths mixed in the MDL code (``mdl_online``).
MDL_C_GRID = (0.001, 0.01, 0.1, 1.0)


def mdl_online(X, y, seed: int = 0, fractions: Sequence[float] = MDL_FRACTIONS,
               C: float | Sequence[float] = MDL_C_GRID, method: str = "batched") -> MDLResult:
    """MDL probe, online (prequential) code (Voita & Titov 2020, "Information-theoretic probing with minimum
    description length").

    The items are shuffled (``seed``); block boundaries t_i = floor(n f_i / 100) for the ``fractions`` f_i in
    percent (duplicates and zeros dropped, the last is n). The first block (items 1..t_1) is sent with the
    uniform code, t_1 log2 K bits; each next block (t_i, t_{i+1}] is sent with the code of a probe
    (standardise + logistic regression with inverse L2 strength C, as ``probe_accuracy``) trained on items
    1..t_i: -sum log2 p(y_j | x_j). When the prefix lacks one of the K classes the block is sent with the
    uniform code (no discriminative model of all classes can be fitted). Probabilities are clipped at 1e-12
    (at most ~40 bits per item). Compression = n log2 K / codelength.

    The code length of a probe trained on a few items depends strongly on its regularisation (an
    under-regularised probe is over-confident on the first small blocks and can cost more than the uniform
    code). With a grid of C values (default ``MDL_C_GRID``) the labels are sent with the Bayesian mixture of
    the per-C online codes under a uniform prior (Grunwald 2007, "The MDL principle", ch. 6 and 9):
    L = -log2( (1/|grid|) sum_C 2^(-L_C) ), which lies between min_C L_C and min_C L_C + log2 |grid|. It is a
    valid code (decodable: every choice depends only on the items already sent), unlike picking the best C
    after the fact. A single float C gives the plain code of that probe.

    ``method="batched"`` (default): with two classes every (block, C) probe is fitted in one batched Newton
    solve of the same objective (:func:`mdl_batched`, converged where scikit-learn's L-BFGS stops at tol
    1e-4); ``"sequential"`` (and more than two classes): scikit-learn, block after block, warm-started
    along the increasing C path.
    """
    return mdl_batched([(X, y, seed)], fractions, C)[0] if method == "batched" else _mdl_sequential(X, y, seed,
                                                                                                     fractions, C)


def _code_plan(X, y, seed: int, fractions, C, where: str = "mdl_online"):
    """Checked inputs of one online code: ``(X, y)`` in coding order, classes, block bounds, the C grid."""
    X, y = check_xy(X, y, where)
    classes = np.unique(y)
    K, n = classes.size, y.size
    if K < 2:
        raise LayerwiseError("a single class: the code length is zero", where="mdl_online",
                             fix="pass labels with at least two classes")
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or np.any(f <= 0) or np.any(f > 100) or np.any(np.diff(f) <= 0):
        raise LayerwiseError(f"fractions must be increasing percentages in (0, 100], got {list(fractions)}",
                             where="mdl_online", fix="use the default MDL_FRACTIONS")
    grid = [float(C)] if np.isscalar(C) else [float(c) for c in C]
    if not grid or any(c <= 0 for c in grid):
        raise LayerwiseError(f"C must be positive, got {C}", where="mdl_online", fix="use the default MDL_C_GRID")
    bounds = np.unique(np.floor(n * f / 100).astype(int))
    bounds = bounds[bounds > 0]
    if bounds[-1] != n:
        bounds = np.append(bounds, n)
    order = np.random.default_rng(seed).permutation(n)
    return X[order], y[order], classes, bounds, grid


def _mixture(bits: np.ndarray, grid, n: int, K: int, bounds) -> MDLResult:
    """The Bayesian mixture code over the grid from the per-C code lengths ``bits``."""
    best = bits.min()
    total = float(best - np.log2(np.mean(np.exp2(best - bits))))   # -log2 mean 2^-L_C, computed stably
    uniform = n * np.log2(K)
    return MDLResult(total, float(uniform), float(uniform / total), bounds, dict(zip(grid, bits.tolist())))


def _mdl_sequential(X, y, seed: int, fractions, C) -> MDLResult:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y, classes, bounds, grid = _code_plan(X, y, seed, fractions, C)
    K, n = classes.size, y.size
    log2k = np.log2(K)
    bits = np.full(len(grid), bounds[0] * log2k)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if np.unique(y[:start]).size < K:
            bits += (stop - start) * log2k
            continue
        scaler = StandardScaler().fit(X[:start])
        Ztr, Zbl = scaler.transform(X[:start]), scaler.transform(X[start:stop])
        model = LogisticRegression(max_iter=1000, warm_start=True)  # warm start along the increasing C path
        for i in np.argsort(grid):
            model.set_params(C=grid[i])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(Ztr, y[:start])
            proba = model.predict_proba(Zbl)
            col = np.searchsorted(model.classes_, y[start:stop])
            p = np.clip(proba[np.arange(stop - start), col], 1e-12, 1.0)
            bits[i] += float(-np.log2(p).sum())
    return _mixture(bits, grid, n, K, bounds)


def mdl_batched(codes: Sequence[tuple], fractions: Sequence[float] = MDL_FRACTIONS,
                C: float | Sequence[float] = MDL_C_GRID) -> list[MDLResult]:
    """:func:`mdl_online` of every ``(X, y, seed)`` in ``codes``: for each block, the probes of every
    two-class code and every C fitted together (one :func:`layerwise.measure.logistic_batch.fit_scores`
    solve per prefix length); a code with more than two classes is coded sequentially."""
    plans = [_code_plan(X, y, seed, fractions, C) for X, y, seed in codes]
    binary = [k for k, p in enumerate(plans) if p[2].size == 2]
    bits = {k: np.full(len(plans[k][4]), plans[k][3][0] * 1.0) for k in binary}   # first block: 1 bit each
    blocks: dict = {}
    for k in binary:
        y, bounds = plans[k][1], plans[k][3]
        for a, b in zip(bounds[:-1], bounds[1:]):
            if np.unique(y[:a]).size == 2:
                blocks.setdefault((a, b), []).append(k)
            else:
                bits[k] += b - a                                                  # uniform code, 1 bit each
    for (a, b), ks in blocks.items():
        _code_block(plans, ks, a, b, bits)
    return [_mixture(bits[k], plans[k][4], plans[k][1].size, 2, plans[k][3]) if k in bits
            else _mdl_sequential(*codes[k], fractions, C) for k in range(len(plans))]


def _code_block(plans, ks, a: int, b: int, bits: dict) -> None:
    """Add to ``bits[k]`` (per C) the code length of items a+1..b of each code ``k`` in ``ks`` (same grid),
    sent with the probes trained on items 1..a, all fitted in one batch."""
    from .logistic_batch import fit_scores

    X = np.stack([plans[k][0] for k in ks])
    y = np.stack([plans[k][1] == plans[k][2][1] for k in ks])
    f = fit_scores(X[:, :a], np.ones((len(ks), a)), y[:, :a], X[:, a:b], plans[ks[0]][4])   # [codes, C, items]
    sign = np.where(y[:, None, a:b], 1.0, -1.0)                 # log p(y) = -softplus(-sign f)
    p_y = np.clip(np.exp(-np.logaddexp(0.0, -sign * f)), 1e-12, 1.0)
    for row, k in enumerate(ks):
        bits[k] = bits[k] - np.log2(p_y[row]).sum(axis=-1)


def stratified_draw(y: np.ndarray, size: int, rng: np.random.Generator, replace: bool) -> np.ndarray:
    """``size`` indices drawn per class in proportion to the class counts of ``y`` (each class at least
    one), with or without replacement; sorted."""
    classes, counts = np.unique(y, return_counts=True)
    want = np.maximum(1, np.round(size * counts / y.size).astype(int))
    want[np.argmax(counts)] += size - want.sum()        # the rounding remainder goes to the largest class
    if not replace:
        want = np.minimum(want, counts)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == k), size=int(w), replace=replace)
                                   for k, w in zip(classes, want)]))


def mdl_subsampled(X, y, size: int, subsamples: int = 10, seed: int = 0, level: float = 0.95,
                   C: float | Sequence[float] = MDL_C_GRID,
                   method: str = "batched") -> tuple[float, float, float, np.ndarray]:
    """MDL compression (``mdl_online``) on ``subsamples`` stratified subsamples of ``size`` sentences drawn
    WITHOUT replacement (no sentence twice inside one code), each sent in its own random order.

    Returns ``(mean, low, high, values)``: the mean compression over subsamples and the
    ((1 - level) / 2, (1 + level) / 2) quantiles of the per-subsample values: the spread of the compression
    over training sets of ``size`` sentences drawn from these ones (percentile subsampling interval,
    Politis, Romano & Wolf 1999, "Subsampling", ch. 2; with 10 subsamples the interval is close to the range).
    Compression grows with the number of coded items, so two calls are comparable only at equal ``size``.
    Draws depend only on ``(seed, s)``: every layer and state sees the same subsamples of a sentence set.
    ``method``: as :func:`mdl_online`'s (``"batched"``: every subsample's code in one solve).
    """
    X, y = check_xy(X, y, "mdl_subsampled")
    if not 2 <= size <= y.size or subsamples < 1:
        raise LayerwiseError(f"need 2 <= size <= {y.size} and subsamples >= 1, got size={size}, "
                             f"subsamples={subsamples}", where="mdl_subsampled",
                             fix="code at most as many sentences as there are")
    codes = []
    for s in range(subsamples):
        rng = np.random.default_rng([seed, s, 17])
        idx = stratified_draw(y, size, rng, replace=False)
        codes.append((X[idx], y[idx], int(rng.integers(2 ** 31 - 1))))
    results = (mdl_batched(codes, C=C) if method == "batched"
               else [_mdl_sequential(*code, MDL_FRACTIONS, C) for code in codes])
    values = np.array([r.compression for r in results])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if subsamples > 1 else (np.nan, np.nan)
    return float(values.mean()), float(lo), float(hi), values
