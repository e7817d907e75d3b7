"""Probes and class geometry on the stored sentence embeddings (no second forward pass).

Inputs are the pooled embeddings the geometry engine stores per state (``embeddings_<state>.npz``):
``cls`` and ``mean`` (float16 ``[n_sentences, L+1, d]``), ``label`` (int ``[n]``), ``split``
(``"train"``/``"test"``) and optionally ``index`` (row in the split). Everything here is computed in
float64 from those arrays.

What is measured, per model state and layer, on the first-token (``_cls``) and mean-pooled (``_mean``)
embeddings:

* linear probe (standardise + logistic regression, trained on the train split, accuracy on the test
  split), its permuted-label control and the selectivity (Hewitt & Liang 2019);
* the original study's RoBERTa-style head (dense + tanh + linear) as a one-hidden-layer tanh MLP, for comparison;
* MDL online code length (Voita & Titov 2020), a probe-capacity-robust alternative to accuracy;
* class geometry: the angle between class centroids, cosine to the own / nearest other class centroid,
  silhouette (cosine distance) against its permuted-label baseline, and the original study's cone view
  (cosine to one reference sentence).

What varies across probe seeds: each seed ``s`` trains on a different stratified random subsample
(``subsample``, default 80 %) of the train split (and, for the MLP, a different weight initialisation;
for the control, a different label permutation). The subsamples and permutations depend only on
``(seed, s)``, so every layer and state sees the same ones (common random numbers: differences between
layers are not due to different draws). The reported accuracy is the mean over seeds of the test
accuracy; its CI is a percentile bootstrap over test sentences, each resample keeping all the seeds'
predictions of a sentence (so it covers both test-set sampling and training-subsample variation).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from collections import namedtuple
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import LayerwiseError
from .schema import ORIGINAL_LAYERS, POOLINGS, state_order, tidy_frame, tidy_row
from .stats import bootstrap_mean_ci, wilson_ci

#: MDL block boundaries in percent of the train set (Voita & Titov 2020).
MDL_FRACTIONS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25.0, 50.0, 100.0)
CONE_COLUMNS = ["model", "state", "layer", "sentence", "label", "cos_ref", "cos_own_centroid", "cos_other_centroid"]


# --------------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    """Test accuracy of a probe trained over several seeds.

    ``acc``: mean over seeds of the test accuracy; ``ci_low``/``ci_high``: percentile bootstrap CI
    over test sentences (all seeds' predictions of a resampled sentence kept together);
    ``per_seed``: accuracy of each seed; ``correct``: bool ``[seeds, n_test]`` matrix of correct
    predictions (used for paired comparisons such as the selectivity).
    """

    acc: float
    ci_low: float
    ci_high: float
    n_test: int
    per_seed: np.ndarray = field(repr=False)
    correct: np.ndarray = field(repr=False)


def _check_xy(X, y, where: str) -> tuple[np.ndarray, np.ndarray]:
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


def _subsample(y: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified random subsample (sorted indices) of ``round(frac * n_k)`` items per class (>= 1)."""
    if frac >= 1:
        return np.arange(y.size)
    keep = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        keep.append(rng.choice(idx, size=max(1, int(round(frac * idx.size))), replace=False))
    return np.sort(np.concatenate(keep))


def _probe_draws(ytr: np.ndarray, seeds: int, subsample: float, seed: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per probe seed: (train subsample indices, a label permutation of the train split, model seed)."""
    draws = []
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        draws.append((_subsample(ytr, subsample, rng), rng.permutation(ytr.size), int(rng.integers(2 ** 31 - 1))))
    return draws


def _logistic(C: float = 1.0, random_state: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=random_state))


def _mlp(hidden: int, alpha: float = 1e-4, max_iter: int = 200, random_state: int = 0, solver: str = "lbfgs"):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(hidden,), activation="tanh",
                                                         solver=solver, alpha=alpha, max_iter=max_iter,
                                                         random_state=random_state))


def _run_probe(make: Callable[[int], object], Xtr, ytr, Xte, yte, *, seeds: int, n_boot: int, control: bool,
               subsample: float, seed: int, level: float, where: str) -> ProbeResult:
    from sklearn.exceptions import ConvergenceWarning

    Xtr, ytr = _check_xy(Xtr, ytr, where)
    Xte, yte = _check_xy(Xte, yte, where)
    if Xtr.shape[1] != Xte.shape[1]:
        raise LayerwiseError(f"train and test dimensions differ ({Xtr.shape[1]} vs {Xte.shape[1]})", where=where,
                             fix="pass the same layer and pooling for both splits")
    if np.unique(ytr).size < 2:
        raise LayerwiseError("the train split holds a single class", where=where,
                             fix="select more training sentences (both classes are needed)")
    if seeds < 1:
        raise LayerwiseError(f"seeds must be >= 1, got {seeds}", where=where, fix="pass seeds=5")
    correct = np.zeros((seeds, yte.size), dtype=bool)
    for s, (idx, perm, model_seed) in enumerate(_probe_draws(ytr, seeds, subsample, seed)):
        labels = ytr[perm] if control else ytr
        if np.unique(labels[idx]).size < 2:  # a tiny subsample may hold one class: predict it
            correct[s] = yte == labels[idx][0]
            continue
        model = make(model_seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Xtr[idx], labels[idx])
        correct[s] = model.predict(Xte) == yte
    per_sentence = correct.mean(axis=0)
    acc, lo, hi = bootstrap_mean_ci(per_sentence, n_boot=n_boot, level=level, seed=seed)
    return ProbeResult(acc, lo, hi, int(yte.size), correct.mean(axis=1), correct)


def probe_accuracy(Xtr, ytr, Xte, yte, *, seeds: int = 5, n_boot: int = 1000, control: bool = False,
                   subsample: float = 0.8, C: float = 1.0, seed: int = 0, level: float = 0.95) -> ProbeResult:
    """Linear probe: ``StandardScaler`` then ``LogisticRegression(C, max_iter=1000)`` (scikit-learn),
    trained on ``(Xtr, ytr)``, accuracy on ``(Xte, yte)``.

    p(y = k | x) = softmax(W z + b)_k, z = (x - mu_train) / sigma_train, W fitted by L2-penalised
    maximum likelihood (penalty 1 / (2C) |W|^2). Each of ``seeds`` runs trains on a stratified random
    ``subsample`` of the train split; ``control=True`` trains on a random permutation of the train labels
    (a fresh one per seed) and still scores against the true test labels: the control task of Hewitt &
    Liang (2019) for sentence labels, whose accuracy should sit at chance. See the module docstring for
    the CI.
    """
    return _run_probe(lambda rs: _logistic(C, rs), Xtr, ytr, Xte, yte, seeds=seeds, n_boot=n_boot, control=control,
                      subsample=subsample, seed=seed, level=level, where="probe_accuracy")


def mlp_probe_accuracy(Xtr, ytr, Xte, yte, *, seeds: int = 5, n_boot: int = 1000, control: bool = False,
                       subsample: float = 0.8, hidden: int | None = None, alpha: float = 1e-4, max_iter: int = 200,
                       solver: str = "lbfgs", seed: int = 0, level: float = 0.95) -> ProbeResult:
    """The original study's RoBERTa-style classification head as a probe: h = tanh(W1 z + b1), p = softmax(W2 h + b2)
    with W1 of size ``hidden x d`` (default ``hidden = d``, as in ``RobertaClassificationHead``: dense d->d,
    tanh, out_proj d->K; the head's dropout is replaced by an L2 penalty ``alpha``). scikit-learn
    ``MLPClassifier(hidden_layer_sizes=(hidden,), activation="tanh", solver=solver)`` after ``StandardScaler``.
    The default solver is L-BFGS (full-batch, ``max_iter`` iterations): on a few hundred sentences it reaches
    the accuracy of Adam (the fine-tuning optimiser) about four times faster (measured in
    ``bench/RESULTS-probes.md``); pass ``solver="adam"`` for the stochastic one. Seeds vary the train
    subsample and the weight initialisation; otherwise as ``probe_accuracy``."""
    d = np.shape(Xtr)[1] if np.ndim(Xtr) == 2 else 0
    h = hidden or d
    return _run_probe(lambda rs: _mlp(h, alpha, max_iter, rs, solver), Xtr, ytr, Xte, yte, seeds=seeds, n_boot=n_boot,
                      control=control, subsample=subsample, seed=seed, level=level, where="mlp_probe_accuracy")


def selectivity(real: ProbeResult, control: ProbeResult, n_boot: int = 1000, seed: int = 0,
                level: float = 0.95) -> tuple[float, float, float]:
    """Selectivity = accuracy on the real labels - accuracy with permuted labels (Hewitt & Liang 2019),
    with a percentile bootstrap CI over test sentences, paired (both probes scored on the same
    resampled sentences). Returns ``(value, low, high)``."""
    if real.correct.shape[1] != control.correct.shape[1]:
        raise LayerwiseError("the two probes were scored on different test sets", where="selectivity",
                             fix="score the real and control probes on the same test split")
    diff = real.correct.mean(axis=0) - control.correct.mean(axis=0)
    return bootstrap_mean_ci(diff, n_boot=n_boot, level=level, seed=seed)


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
               C: float | Sequence[float] = MDL_C_GRID) -> MDLResult:
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
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = _check_xy(X, y, "mdl_online")
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
    X, y = X[order], y[order]
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
    best = bits.min()
    total = float(best - np.log2(np.mean(np.exp2(best - bits))))   # -log2 mean 2^-L_C, computed stably
    uniform = n * log2k
    return MDLResult(total, float(uniform), float(uniform / total), bounds, dict(zip(grid, bits.tolist())))


# --------------------------------------------------------------------------------------------------
# Class geometry
# --------------------------------------------------------------------------------------------------

def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)


def _angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = (_unit(u) * _unit(v)).sum(axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _mean_pairwise_angle(centroids: np.ndarray) -> np.ndarray:
    """Mean angle (degrees) over class pairs; ``centroids`` is ``[..., K, d]``."""
    K = centroids.shape[-2]
    angles = [_angle_deg(centroids[..., i, :], centroids[..., j, :]) for i in range(K) for j in range(i + 1, K)]
    return np.mean(angles, axis=0)


def class_geometry(X, y, *, n_perm: int = 20, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Reference-free class geometry of a set of sentence embeddings (rows of ``X``, labels ``y``).

    Returns a dict with

    * ``centroid_angle`` (degrees): angle between the class centroids c_k = mean of the class's rows,
      arccos(c_a . c_b / |c_a||c_b|) (mean over class pairs when K > 2), on the raw (uncentred) vectors,
      with ``centroid_angle_ci`` (percentile bootstrap over sentences). Two clusters around orthogonal
      axes give 90; around opposite directions, 180; anisotropic embeddings (a shared mean direction) give
      small angles even when the classes are separable.
    * ``cos_own_centroid`` [n]: cos(x_i, own-class centroid computed without x_i) (leave-one-out, so a
      sentence does not pull its own centroid); ``cos_other_centroid`` [n]: the largest cosine to another
      class's centroid; ``centroid_margin`` = mean(own - other) with ``centroid_margin_ci``.
    * ``silhouette``: mean silhouette (Rousseeuw 1987) s_i = (b_i - a_i) / max(a_i, b_i) with cosine
      distance 1 - cos (scikit-learn ``silhouette_samples``, precomputed distances), a_i the mean distance
      to the own class, b_i to the nearest other class; ``silhouette_ci``: bootstrap of the mean of the s_i.
    * ``silhouette_perm``: mean silhouette over ``n_perm`` random label permutations (the no-structure
      baseline, about 0 or slightly negative), ``silhouette_perm_ci``: 2.5/97.5 % quantiles of that null
      distribution, ``silhouette_p``: (1 + #{perm >= observed}) / (1 + n_perm).
    * ``n``: number of rows.
    """
    from sklearn.metrics import silhouette_samples

    X, y = _check_xy(X, y, "class_geometry")
    classes, yi = np.unique(y, return_inverse=True)
    K, n = classes.size, y.size
    counts = np.bincount(yi, minlength=K)
    if K < 2 or counts.min() < 2:
        raise LayerwiseError(f"need at least two classes of at least two sentences, got counts {counts.tolist()}",
                             where="class_geometry", fix="select more test sentences")
    q = [(1 - level) / 2, (1 + level) / 2]
    rng = np.random.default_rng(seed)
    onehot = np.eye(K)[yi]                                   # [n, K]
    sums = onehot.T @ X                                      # [K, d]
    centroids = sums / counts[:, None]
    angle = float(_mean_pairwise_angle(centroids))
    # bootstrap: multinomial weights over sentences
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # [B, n]
    wc = np.einsum("bn,nk->bk", w, onehot)                  # [B, K]
    ok = np.all(wc > 0, axis=1)
    bc = np.einsum("bn,nk,nd->bkd", w[ok], onehot, X, optimize=True) / wc[ok][:, :, None]
    angle_ci = tuple(float(v) for v in np.quantile(_mean_pairwise_angle(bc), q)) if ok.any() else (np.nan, np.nan)

    loo = (sums[yi] - X) / (counts[yi] - 1)[:, None]        # own centroid without the sentence
    Xu = _unit(X)
    cos_own = (Xu * _unit(loo)).sum(axis=1)
    cos_all = Xu @ _unit(centroids).T                       # [n, K]
    cos_all[np.arange(n), yi] = -np.inf
    cos_other = cos_all.max(axis=1)
    margin = bootstrap_mean_ci(cos_own - cos_other, n_boot=n_boot, level=level, seed=seed)

    D = np.clip(1.0 - Xu @ Xu.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    s = silhouette_samples(D, yi, metric="precomputed")
    sil = bootstrap_mean_ci(s, n_boot=n_boot, level=level, seed=seed)
    perm = np.array([silhouette_samples(D, rng.permutation(yi), metric="precomputed").mean() for _ in range(n_perm)])
    return {
        "n": n,
        "centroid_angle": angle, "centroid_angle_ci": angle_ci,
        "cos_own_centroid": cos_own, "cos_other_centroid": cos_other,
        "centroid_margin": margin[0], "centroid_margin_ci": margin[1:],
        "silhouette": sil[0], "silhouette_ci": sil[1:],
        "silhouette_perm": float(perm.mean()) if n_perm else np.nan,
        "silhouette_perm_ci": tuple(float(v) for v in np.quantile(perm, q)) if n_perm else (np.nan, np.nan),
        "silhouette_p": float((1 + np.sum(perm >= sil[0])) / (1 + n_perm)) if n_perm else np.nan,
    }


def cone_view(X, y, ref_index: int = 0) -> pd.DataFrame:
    """The original study's cone view: cos(x_i, x_ref) for every row i, with its label (columns ``sentence``
    = row position, ``label``, ``cos_ref``). It depends on the arbitrary reference sentence ``ref_index``
    (whose own cosine is 1); ``class_geometry`` gives the reference-free measures."""
    X, y = _check_xy(X, y, "cone_view")
    if not -X.shape[0] <= ref_index < X.shape[0]:
        raise LayerwiseError(f"ref_index {ref_index} out of range for {X.shape[0]} sentences", where="cone_view",
                             fix="pick a row of X")
    Xu = _unit(X)
    return pd.DataFrame({"sentence": np.arange(X.shape[0]), "label": y, "cos_ref": Xu @ Xu[ref_index]})


# --------------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeSettings:
    """What :func:`probe_study` computes (defaults: the pipeline's). Layer lists: None = every layer
    0..L, except ``mlp_layers``/``mdl_layers`` (None = ``layers``) and ``cone_layers`` (None = the
    layers of ``schema.ORIGINAL_LAYERS`` the model has, plus its last layer; cones only at probed layers)."""

    layers: tuple[int, ...] | None = None           # layers of the linear probes and class geometry
    seeds: int = 5                                   # train subsamples / inits / permutations / MDL orderings
    n_boot: int = 1000                               # bootstrap resamples of every CI
    seed: int = 0                                    # RNG seed of every draw
    level: float = 0.95                              # CI coverage
    poolings: tuple[str, ...] = POOLINGS             # poolings of the linear probes and class geometry
    mlp: bool = True                                 # the original study's dense + tanh head as a probe
    mlp_poolings: tuple[str, ...] = ("cls",)         # the token that head reads; by far the costliest part
    mlp_layers: tuple[int, ...] | None = None
    mlp_solver: str = "lbfgs"                        # see mlp_probe_accuracy
    mdl: bool = True                                 # MDL online code (mdl_online)
    mdl_poolings: tuple[str, ...] = POOLINGS
    mdl_layers: tuple[int, ...] | None = None
    subsample: float = 0.8                           # train fraction per probe seed
    n_perm: int = 20                                 # label permutations of the silhouette baseline
    cone_layers: tuple[int, ...] | None = None
    ref_index: int = 0                               # the cone view's reference test row
    blas_threads: int | None = 1                     # BLAS threads (None: as is); 1 is 15x faster, see bench/

    def __post_init__(self):
        for name in ("layers", "mlp_layers", "mdl_layers", "cone_layers", "poolings", "mlp_poolings", "mdl_poolings"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(v if "poolings" in name else (int(x) for x in v)))

    @classmethod
    def from_analysis(cls, spec, **overrides) -> "ProbeSettings":
        """The settings of ``params.analysis`` (``config.AnalysisSpec``): ``probe_seeds``, ``bootstrap``,
        ``seed`` (``config.PROBE_FIELDS``, the probes' cache key); ``overrides`` set the others."""
        return cls(**{"seeds": spec.probe_seeds, "n_boot": spec.bootstrap, "seed": spec.seed, **overrides})


def _validate_embeddings(embeddings: dict, poolings: Sequence[str]) -> tuple[int, int]:
    if not embeddings:
        raise LayerwiseError("no model state to probe", where="probe_study",
                             fix="pass embeddings for at least one state")
    shape = None
    for state, e in embeddings.items():
        where = f"probe_study: state {state}"
        missing = [k for k in (*poolings, "label", "split") if k not in e]
        if missing:
            raise LayerwiseError(f"embeddings lack {missing}", where=where,
                                 fix="pass the arrays of embeddings_<state>.npz (cls, mean, label, split)")
        n = len(e["label"])
        for p in poolings:
            a = e[p]
            if a.ndim != 3 or a.shape[0] != n:
                raise LayerwiseError(f"'{p}' has shape {a.shape}, expected [{n}, L+1, d]", where=where,
                                     fix="store pooled embeddings as [n_sentences, L+1, d]")
            shape = a.shape[1:] if shape is None else shape
            if a.shape[1:] != shape:
                raise LayerwiseError(f"'{p}' has layers x dims {a.shape[1:]}, other arrays {shape}", where=where,
                                     fix="probe states of one model together")
        split = np.asarray(e["split"])
        if split.shape != (n,) or not {"train", "test"} <= set(np.unique(split)):
            raise LayerwiseError("split must give 'train' or 'test' for every sentence, with both present", where=where,
                                 fix="store the train and test sentences")
    return shape  # (L+1, d)


_Layers = namedtuple("_Layers", "needed probe mlp mdl cones")  # poolings read; layers of each probe family


def _plan_layers(embeddings: dict, st: ProbeSettings) -> _Layers:
    bad = [p for p in (*st.poolings, *st.mlp_poolings, *st.mdl_poolings) if p not in POOLINGS]
    if bad:
        raise LayerwiseError(f"unknown pooling(s) {bad}", where="probe_study", fix=f"choose among {POOLINGS}")
    needed = tuple(dict.fromkeys((*st.poolings, *(st.mlp_poolings if st.mlp else ()),
                                  *(st.mdl_poolings if st.mdl else ()))))
    n_layers, _ = _validate_embeddings(embeddings, needed)

    def pick(ls, name):
        ls = list(range(n_layers)) if ls is None else [int(v) for v in ls]
        out_of_range = [v for v in ls if not 0 <= v < n_layers]
        if out_of_range:
            raise LayerwiseError(f"{name} {out_of_range} out of range 0..{n_layers - 1}", where="probe_study",
                                 fix=f"choose layers between 0 and {n_layers - 1}")
        return ls

    layers = pick(st.layers, "layers")
    default_cones = sorted({v for v in ORIGINAL_LAYERS if v < n_layers} | {n_layers - 1})
    return _Layers(needed, layers, pick(st.mlp_layers if st.mlp_layers is not None else layers, "mlp_layers"),
                   pick(st.mdl_layers if st.mdl_layers is not None else layers, "mdl_layers"),
                   pick(st.cone_layers if st.cone_layers is not None else default_cones, "cone_layers"))


class _Cell(namedtuple("_Cell", "model state pool layer Xtr ytr Xte yte")):
    """One (model, state, pooling, layer) of the study: the train and test rows of its embeddings."""

    def row(self, name: str, value: float, low: float = np.nan, high: float = np.nan, n: int | None = None) -> dict:
        """The tidy row of metric ``<name>_<pool>`` at this cell (``n`` defaults to the test size)."""
        return tidy_row(self.model, self.state, self.layer, f"{name}_{self.pool}", value, low, high,
                        self.yte.size if n is None else n)


def _linear_rows(c: _Cell, st: ProbeSettings, t: dict) -> list[dict]:
    """Linear probe, its permuted-label control and the selectivity."""
    kw = dict(seeds=st.seeds, n_boot=st.n_boot, subsample=st.subsample, seed=st.seed, level=st.level)
    t0 = time.perf_counter()
    real = probe_accuracy(c.Xtr, c.ytr, c.Xte, c.yte, **kw)
    t1 = time.perf_counter()
    ctrl = probe_accuracy(c.Xtr, c.ytr, c.Xte, c.yte, **kw, control=True)
    t2 = time.perf_counter()
    sel = selectivity(real, ctrl, n_boot=st.n_boot, seed=st.seed, level=st.level)
    t["probe"] += t1 - t0
    t["control"] += t2 - t1
    t["geometry"] += time.perf_counter() - t2  # the selectivity's bootstrap is timed with the geometry
    return [c.row("probe_acc", real.acc, real.ci_low, real.ci_high),
            c.row("probe_control_acc", ctrl.acc, ctrl.ci_low, ctrl.ci_high), c.row("selectivity", *sel)]


def _geometry_rows(c: _Cell, st: ProbeSettings, t: dict, sent_ids: np.ndarray | None) -> tuple[list, list]:
    """Class geometry of the test rows (silhouette, its permuted-label baseline, centroid angle and margin)
    and, given the test rows' ``sent_ids``, their cones: cosine to the reference row and the centroids."""
    t0 = time.perf_counter()
    geo = class_geometry(c.Xte, c.yte, n_perm=st.n_perm, n_boot=st.n_boot, seed=st.seed, level=st.level)
    t["geometry"] += time.perf_counter() - t0
    rows = [c.row(name, geo[name], *geo[f"{name}_ci"])
            for name in ("silhouette", "silhouette_perm", "centroid_angle", "centroid_margin")]
    if sent_ids is None:
        return rows, []
    cv = cone_view(c.Xte, c.yte, ref_index=st.ref_index)
    return rows, [pd.DataFrame({"model": c.model, "state": c.state, "layer": c.layer, "sentence": sent_ids,
                                "label": c.yte, "cos_ref": cv["cos_ref"].to_numpy(),
                                "cos_own_centroid": geo["cos_own_centroid"],
                                "cos_other_centroid": geo["cos_other_centroid"]})]


def _mlp_row(c: _Cell, st: ProbeSettings, t: dict) -> dict:
    """The original study's dense + tanh head as a probe."""
    t0 = time.perf_counter()
    m = mlp_probe_accuracy(c.Xtr, c.ytr, c.Xte, c.yte, seeds=st.seeds, n_boot=st.n_boot, subsample=st.subsample,
                           seed=st.seed, level=st.level, solver=st.mlp_solver)
    t["mlp"] += time.perf_counter() - t0
    return c.row("mlp_probe_acc", m.acc, m.ci_low, m.ci_high)


def _mdl_row(c: _Cell, st: ProbeSettings, t: dict) -> dict:
    """MDL compression: mean over ``seeds`` data orderings, Student-t CI over them, n = train size."""
    from scipy import stats as sps

    t0 = time.perf_counter()
    comp = np.array([mdl_online(c.Xtr, c.ytr, seed=st.seed * 1000 + s).compression for s in range(st.seeds)])
    lo = hi = np.nan
    if comp.size > 1:
        half = sps.t.ppf((1 + st.level) / 2, comp.size - 1) * comp.std(ddof=1) / np.sqrt(comp.size)
        lo, hi = comp.mean() - half, comp.mean() + half
    t["mdl"] += time.perf_counter() - t0
    return c.row("mdl_compression", comp.mean(), lo, hi, n=c.ytr.size)


def probe_study(embeddings: dict[str, dict[str, np.ndarray]], model_name: str, settings: ProbeSettings | None = None,
                *, timings: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probes and class geometry for every state, layer and pooling; returns ``(tidy, cones)``.

    ``embeddings[state]`` holds ``cls``, ``mean`` (``[n, L+1, d]``), ``label`` and ``split`` ``[n]`` (other
    arrays are ignored); ``settings``: :class:`ProbeSettings` (the pipeline's: ``from_analysis``). Probes
    train on the ``train`` rows, are scored on the ``test`` rows; class geometry and cones use test rows.
    Tidy metrics: the "probes" and "class geometry" families of ``schema.REGISTRY``, suffixed ``_<pooling>``
    (``probe_majority_baseline``: per state, layer -1); ``probe_acc_cls`` over states x layers is the
    original study's grid. Cones (first token, test rows, ``cone_layers``): :data:`CONE_COLUMNS`,
    ``sentence`` being the row in the stored arrays (as in the per_sentence table). ``timings``, a dict,
    receives seconds per part.
    """
    from threadpoolctl import threadpool_limits

    settings = settings if settings is not None else ProbeSettings()
    with threadpool_limits(limits=settings.blas_threads):
        return _probe_study(embeddings, model_name, settings, timings if timings is not None else {})


def _probe_study(embeddings, model_name: str, st: ProbeSettings, t: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    plan = _plan_layers(embeddings, st)
    t.update({k: t.get(k, 0.0) for k in ("probe", "control", "mlp", "mdl", "geometry")})
    rows: list[dict] = []
    cones: list[pd.DataFrame] = []
    for state in state_order(embeddings):
        e = embeddings[state]
        split, y = np.asarray(e["split"]), np.asarray(e["label"])
        tr, te = split == "train", split == "test"
        ytr, yte = y[tr], y[te]  # the majority baseline: always answer the majority train class
        k = int(np.sum(yte == np.unique(ytr)[np.bincount(np.unique(ytr, return_inverse=True)[1]).argmax()]))
        rows.append(tidy_row(model_name, state, -1, "probe_majority_baseline", *wilson_ci(k, yte.size, st.level),
                             yte.size))
        for pool in plan.needed:
            mlp, mdl = st.mlp and pool in st.mlp_poolings, st.mdl and pool in st.mdl_poolings
            for layer in sorted(set(plan.probe) | set(plan.mlp if mlp else ()) | set(plan.mdl if mdl else ())):
                X = e[pool][:, layer, :].astype(np.float64)
                c = _Cell(model_name, state, pool, layer, X[tr], ytr, X[te], yte)
                if pool in st.poolings and layer in plan.probe:
                    rows += _linear_rows(c, st, t)
                    cone = pool == "cls" and layer in plan.cones  # sentence id: the row in the stored arrays
                    geo_rows, cone_rows = _geometry_rows(c, st, t, np.flatnonzero(te) if cone else None)
                    rows += geo_rows
                    cones += cone_rows
                if mlp and layer in plan.mlp:
                    rows.append(_mlp_row(c, st, t))
                if mdl and layer in plan.mdl:
                    rows.append(_mdl_row(c, st, t))
    cone_df = (pd.concat(cones, ignore_index=True) if cones else pd.DataFrame(columns=CONE_COLUMNS))[CONE_COLUMNS]
    if len(cone_df):
        cone_df = cone_df.astype({"layer": np.int64, "sentence": np.int64, "label": np.int64})
    return tidy_frame(rows), cone_df
