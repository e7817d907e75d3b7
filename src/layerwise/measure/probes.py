"""Probes and class geometry on the stored sentence embeddings (no second forward pass).

Inputs are the pooled embeddings the geometry engine stores per state (``embeddings_<state>.npz``):
``cls`` and ``mean`` (float16 ``[n_sentences, L+1, d]``), ``label`` (int ``[n]``), ``split``
(``"train"``: fine-tuning sentences, ``"probe"``: the probe pool, never seen by the fine-tuning,
``"test"``), ``text`` and optionally ``index`` (row in the split). Everything is computed in float64.

Which sentences (``probe_study.probe_study``): every probe and MDL code of every state trains on the
probe pool and is scored on the test sentences, the same sentences for every state; class geometry uses
the test sentences; the memorisation check trains the same probe (and codes MDL) on as many fine-tuning
sentences. Measured per state, layer and pooling (``_cls``: first token, ``_mean``: mean pooling):

* linear probe (standardise + logistic regression) and the chance baseline (the same probe trained on
  permuted labels, scored on the true ones: it sits at chance whatever the probe's capacity);
* the control task of Hewitt & Liang (2019), adapted to sentences (:mod:`layerwise.measure.controls`): labels
  that are a fixed random function of a lexical key type; selectivity = task accuracy - control accuracy
  on the same test sentences;
* the original study's RoBERTa-style head (dense + tanh + linear) as a one-hidden-layer tanh MLP;
* MDL online code length (:mod:`layerwise.measure.mdl`); class geometry (silhouette against a 1000-permutation
  null, centroid angle and margin) and the original study's cone view.

What varies across retrainings (``seeds``): the linear probes train on ``seeds`` stratified bootstrap
resamples of the probe pool (a new training set of the same size each time); the CI crosses that with
test resampling (each bootstrap replicate: one retraining picked at random, scored on a resampled test
set), so it covers both the probe's training set and the test set. The MLP keeps its 80 % subsamples
and test resampling only (the CI then omits training-set variability). Draws depend only on
``(seed, s)``: every layer and state sees the same ones (common random numbers).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..core.errors import LayerwiseError
from .mdl import MDL_C_GRID, MDL_FRACTIONS, MDLResult, stratified_draw, check_xy as _check_xy, mdl_online  # noqa: F401
from .metrics import unit_rows
from .stats import bootstrap_mean_ci

__all__ = ["ProbeResult", "probe_accuracy", "mlp_probe_accuracy", "selectivity", "correct_matrix", "class_geometry",
           "cone_view", "mdl_online", "MDLResult", "MDL_FRACTIONS", "MDL_C_GRID"]


# --------------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    """Test accuracy of a probe trained ``seeds`` times.

    ``acc``: mean over retrainings and test sentences; ``ci_low``/``ci_high``: percentile bootstrap CI
    (crossed: retraining x test sentences, or test sentences only, see the module docstring);
    ``per_seed``: accuracy of each retraining; ``correct``: bool ``[seeds, n_test]`` matrix of correct
    predictions (paired comparisons: selectivity, best layers).
    """

    acc: float
    ci_low: float
    ci_high: float
    n_test: int
    per_seed: np.ndarray = field(repr=False)
    correct: np.ndarray = field(repr=False)


def _subsample(y: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified random subsample (sorted indices) of ``round(frac * n_k)`` items per class (>= 1)."""
    if frac >= 1:
        return np.arange(y.size)
    keep = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        keep.append(rng.choice(idx, size=max(1, int(round(frac * idx.size))), replace=False))
    return np.sort(np.concatenate(keep))


def probe_draws(ytr: np.ndarray, seeds: int, seed: int, *, resample: str = "bootstrap", subsample: float = 0.8,
                size: int | None = None) -> list[tuple[np.ndarray, int]]:
    """Per retraining ``s``: (training indices, model seed). ``resample="bootstrap"``: a stratified
    bootstrap resample of ``size`` (default: all) items; ``"subsample"``: a stratified ``subsample``
    fraction without replacement. Depends only on ``(seed, s)`` and ``ytr``."""
    draws = []
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        idx = (stratified_draw(ytr, size or ytr.size, rng, replace=True) if resample == "bootstrap"
               else _subsample(ytr, subsample, rng))
        draws.append((idx, int(rng.integers(2 ** 31 - 1))))
    return draws


def logistic(C: float = 1.0, random_state: int = 0):
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


def correct_matrix(make: Callable[[int], object], Xtr, Xte, draws, train_labels: Callable[[int], np.ndarray],
                   test_labels: Callable[[int], np.ndarray]) -> np.ndarray:
    """bool ``[len(draws), n_test]``: for draw ``b`` = (indices, model seed), a model ``make(model seed)`` fitted
    on ``Xtr[indices]`` with labels ``train_labels(b)[indices]``, its predictions on ``Xte`` compared with
    ``test_labels(b)``. A resample holding one class predicts that class."""
    from sklearn.exceptions import ConvergenceWarning

    correct = np.zeros((len(draws), len(Xte)), dtype=bool)
    for b, (idx, model_seed) in enumerate(draws):
        labels, target = train_labels(b)[idx], test_labels(b)
        if np.unique(labels).size < 2:
            correct[b] = target == labels[0]
            continue
        model = make(model_seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", FutureWarning)   # scikit-learn's notices about changing defaults
            model.fit(Xtr[idx], labels)
        correct[b] = model.predict(Xte) == target
    return correct


def probe_result(correct: np.ndarray, *, crossed: bool, n_boot: int, seed: int, level: float) -> ProbeResult:
    """Accuracy and CI of a correctness matrix ``[retrainings, n_test]``. ``crossed``: each bootstrap
    replicate scores one retraining drawn at random on a resampled test set (training-set x test-set
    variability); otherwise a bootstrap over test sentences of their mean correctness over retrainings."""
    per_sentence = correct.mean(axis=0)
    if not crossed or correct.shape[0] < 2 or correct.shape[1] < 2:
        acc, lo, hi = bootstrap_mean_ci(per_sentence, n_boot=n_boot, level=level, seed=seed)
    else:
        rng = np.random.default_rng([seed, 99])
        pick = rng.integers(0, correct.shape[0], size=n_boot)
        idx = rng.integers(0, correct.shape[1], size=(n_boot, correct.shape[1]))
        boots = correct[pick[:, None], idx].mean(axis=1)
        acc = float(correct.mean())
        lo, hi = (float(v) for v in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    return ProbeResult(acc, lo, hi, int(correct.shape[1]), correct.mean(axis=1), correct)


def permutations(n: int, seeds: int, seed: int) -> list[np.ndarray]:
    """The chance baseline's label permutations, one per retraining ``s`` (seeded by ``(seed, s, 1)``)."""
    return [np.random.default_rng([seed, s, 1]).permutation(n) for s in range(seeds)]


def checked_splits(Xtr, ytr, Xte, yte, seeds: int, where: str):
    Xtr, ytr = _check_xy(Xtr, ytr, where)
    Xte, yte = _check_xy(Xte, yte, where)
    if Xtr.shape[1] != Xte.shape[1]:
        raise LayerwiseError(f"train and test dimensions differ ({Xtr.shape[1]} vs {Xte.shape[1]})", where=where,
                             fix="pass the same layer and pooling for both splits")
    if np.unique(ytr).size < 2:
        raise LayerwiseError("the train split holds a single class", where=where,
                             fix="select more training sentences (both classes are needed)")
    if seeds < 1:
        raise LayerwiseError(f"seeds must be >= 1, got {seeds}", where=where, fix="pass seeds=20")
    return Xtr, ytr, Xte, yte


#: How the retrainings are fitted: "batched" (every retraining in one batched Newton solve,
#: :mod:`layerwise.measure.probes_batch`) or "sequential" (one scikit-learn fit after another).
METHODS = ("batched", "sequential")


def check_method(method: str, where: str) -> str:
    if method not in METHODS:
        raise LayerwiseError(f"unknown method {method!r}", where=where, fix=f"choose among {METHODS}")
    return method


def fitted_correct(make, batched, Xtr, Xte, draws, train_labels, test_labels, method: str) -> np.ndarray:
    """:func:`correct_matrix` (``method="sequential"``, models ``make(model seed)``) or ``batched(Xtr, Xte,
    draws, train_labels, test_labels, fallback=...)`` (``"batched"``: many-class draws fall back to
    ``make``)."""
    if method == "sequential":
        return correct_matrix(make, Xtr, Xte, draws, train_labels, test_labels)

    def fallback(b):
        return correct_matrix(make, Xtr, Xte, [draws[b]], lambda _: train_labels(b), lambda _: test_labels(b))[0]

    return batched(Xtr, Xte, draws, train_labels, test_labels, fallback=fallback)


def _run_probe(make, Xtr, ytr, Xte, yte, *, seeds: int, n_boot: int, permuted: bool, resample: str,
               subsample: float, seed: int, level: float, where: str, size: int | None = None,
               batched=None, method: str = "sequential") -> ProbeResult:
    Xtr, ytr, Xte, yte = checked_splits(Xtr, ytr, Xte, yte, seeds, where)
    draws = probe_draws(ytr, seeds, seed, resample=resample, subsample=subsample, size=size)
    perms = permutations(ytr.size, seeds, seed) if permuted else None
    correct = fitted_correct(make, batched, Xtr, Xte, draws,
                             (lambda b: ytr[perms[b]]) if permuted else (lambda b: ytr), lambda b: yte,
                             check_method(method, where))
    return probe_result(correct, crossed=resample == "bootstrap", n_boot=n_boot, seed=seed, level=level)


def probe_accuracy(Xtr, ytr, Xte, yte, *, seeds: int = 20, n_boot: int = 1000, permuted: bool = False,
                   resample: str = "bootstrap", subsample: float = 0.8, size: int | None = None, C: float = 1.0,
                   seed: int = 0, level: float = 0.95, method: str = "batched") -> ProbeResult:
    """Linear probe: ``StandardScaler`` then ``LogisticRegression(C, max_iter=1000)`` (scikit-learn),
    trained on ``(Xtr, ytr)``, accuracy on ``(Xte, yte)``.

    p(y = k | x) = softmax(W z + b)_k, z = (x - mu_train) / sigma_train, W fitted by L2-penalised
    maximum likelihood (penalty 1 / (2C) |W|^2) (Alain & Bengio 2017, linear classifier probes). Each of
    ``seeds`` retrainings trains on a stratified bootstrap resample of ``size`` (default: all) training
    items (``resample="subsample"``: a ``subsample`` fraction without replacement); the CI crosses
    retrainings with test resampling (:func:`probe_result`). ``permuted=True`` is the chance baseline:
    the probe trains on a random permutation of the training labels (a fresh one per retraining) and is
    scored against the true test labels; its accuracy sits at chance whatever the probe's capacity, so it
    is not a control task (that is :func:`layerwise.measure.controls.control_task_accuracy`).
    ``method="batched"`` (default) fits every retraining of a two-class task in one batched Newton solve of
    the same objective (:mod:`layerwise.measure.logistic_batch`, converged to J - J_min < 1e-6 where
    scikit-learn's L-BFGS stops at tol 1e-4); ``"sequential"``: scikit-learn, one fit after another.
    """
    from .probes_batch import logistic_correct

    return _run_probe(lambda rs: logistic(C, rs), Xtr, ytr, Xte, yte, seeds=seeds, n_boot=n_boot, permuted=permuted,
                      resample=resample, subsample=subsample, seed=seed, level=level, where="probe_accuracy", size=size,
                      batched=lambda *a, **k: logistic_correct(*a, C=C, **k), method=method)


def mlp_probe_accuracy(Xtr, ytr, Xte, yte, *, seeds: int = 5, n_boot: int = 1000, permuted: bool = False,
                       subsample: float = 0.8, hidden: int | None = None, alpha: float = 1e-4, max_iter: int = 200,
                       solver: str = "lbfgs", seed: int = 0, level: float = 0.95,
                       method: str = "batched") -> ProbeResult:
    """The original study's RoBERTa-style classification head as a probe: h = tanh(W1 z + b1), p = softmax(W2 h + b2)
    with W1 of size ``hidden x d`` (default ``hidden = d``, as in ``RobertaClassificationHead``: dense d->d,
    tanh, out_proj d->K; the head's dropout is replaced by an L2 penalty ``alpha``). scikit-learn
    ``MLPClassifier(hidden_layer_sizes=(hidden,), activation="tanh", solver=solver)`` after ``StandardScaler``.
    The default solver is L-BFGS (full-batch, ``max_iter`` iterations): on a few hundred sentences it reaches
    the accuracy of Adam (the fine-tuning optimiser) about four times faster (measured in
    ``bench/RESULTS-probes.md``); pass ``solver="adam"`` for the stochastic one. Each seed trains on a
    stratified 80 % subsample (``subsample``) with its own weight initialisation; the CI resamples test
    sentences only (it omits the training-set variability, unlike ``probe_accuracy``).

    ``method="batched"`` (default) keeps the head's architecture and penalty but freezes the dense layer at
    its random initialisation (random features, Rahimi & Recht 2008; ``probes_batch.head_correct``) and fits
    the readout W2 exactly (convex), every seed in one batched solve: about 40 times cheaper than training
    W1 too, with the same role (a non-linear probe of the head's width; it solves XOR where the linear
    probe cannot). ``"sequential"``: the trained head above (``solver``, ``max_iter`` apply to it only).
    The comparison of the two on the demo is in ``bench/RESULTS-probes.md``."""
    from .probes_batch import head_correct

    d = np.shape(Xtr)[1] if np.ndim(Xtr) == 2 else 0
    h = hidden or d
    return _run_probe(lambda rs: _mlp(h, alpha, max_iter, rs, solver), Xtr, ytr, Xte, yte, seeds=seeds, n_boot=n_boot,
                      permuted=permuted, resample="subsample", subsample=subsample, seed=seed, level=level,
                      where="mlp_probe_accuracy", method=method,
                      batched=lambda *a, **k: head_correct(*a, hidden=h, alpha=alpha, **k))


def selectivity(real: ProbeResult, control: ProbeResult, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                covered: np.ndarray | None = None) -> tuple[float, float, float]:
    """Selectivity = task accuracy - control-task accuracy on the same test sentences (Hewitt & Liang 2019),
    with a paired percentile bootstrap CI over those sentences. ``covered`` (bool over ``real``'s test
    sentences) selects the sentences the control was scored on. Returns ``(value, low, high)``."""
    task = real.correct if covered is None else real.correct[:, np.asarray(covered, dtype=bool)]
    if task.shape[1] != control.correct.shape[1]:
        raise LayerwiseError("the two probes were scored on different test sentences", where="selectivity",
                             fix="pass covered= (the control's test sentences) or score both on the same ones")
    diff = task.mean(axis=0) - control.correct.mean(axis=0)
    return bootstrap_mean_ci(diff, n_boot=n_boot, level=level, seed=seed)


# --------------------------------------------------------------------------------------------------
# Class geometry
# --------------------------------------------------------------------------------------------------

def _angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = (unit_rows(u, zero_rows="zero") * unit_rows(v, zero_rows="zero")).sum(axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _mean_pairwise_angle(centroids: np.ndarray) -> np.ndarray:
    """Mean angle (degrees) over class pairs; ``centroids`` is ``[..., K, d]``."""
    K = centroids.shape[-2]
    angles = [_angle_deg(centroids[..., i, :], centroids[..., j, :]) for i in range(K) for j in range(i + 1, K)]
    return np.mean(angles, axis=0)


def _angle_interval(angle: float, boots: np.ndarray, X: np.ndarray, yi: np.ndarray, sums: np.ndarray,
                    counts: np.ndarray, level: float) -> tuple[float, float]:
    """The centroid angle's interval: BCa (:func:`layerwise.measure.stats.bca_interval`) from the bootstrap angles
    and the jackknife angles (each sentence left out of its class's centroid, vectorised), then kept in
    [0, 180] and around the estimate (:func:`layerwise.measure.stats.respect_range`). The angle between noisy
    centroids is biased upwards, so a percentile interval can miss its estimate (the demo's pretrained
    layer 6: 5.8° with a percentile interval of 6.6° to 8.3°)."""
    from .stats import bca_interval, respect_range

    loo = np.repeat((sums / counts[:, None])[None], len(yi), axis=0)          # [n, K, d]
    loo[np.arange(len(yi)), yi] = (sums[yi] - X) / (counts[yi] - 1)[:, None]
    low, high = bca_interval(angle, boots, _mean_pairwise_angle(loo), level)
    return respect_range(angle, low, high, (0.0, 180.0))


def class_geometry(X, y, *, n_perm: int = 1000, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Reference-free class geometry of a set of sentence embeddings (rows of ``X``, labels ``y``).

    Returns a dict with

    * ``centroid_angle`` (degrees): angle between the class centroids c_k = mean of the class's rows,
      arccos(c_a . c_b / |c_a||c_b|) (mean over class pairs when K > 2), on the raw (uncentred) vectors,
      with ``centroid_angle_ci`` (BCa bootstrap over sentences, :func:`_angle_interval`). Two clusters around orthogonal
      axes give 90; around opposite directions, 180; anisotropic embeddings (a shared mean direction) give
      small angles even when the classes are separable.
    * ``cos_own_centroid`` [n]: cos(x_i, own-class centroid computed without x_i) (leave-one-out, so a
      sentence does not pull its own centroid); ``cos_other_centroid`` [n]: the largest cosine to another
      class's centroid; ``centroid_margin`` = mean(own - other) with ``centroid_margin_ci``.
    * ``silhouette``: mean silhouette (Rousseeuw 1987) s_i = (b_i - a_i) / max(a_i, b_i) with cosine
      distance 1 - cos (scikit-learn ``silhouette_samples``, precomputed distances), a_i the mean distance
      to the own class, b_i to the nearest other class; ``silhouette_ci``: bootstrap of the mean of the s_i.
    * ``silhouette_perm``: mean silhouette over ``n_perm`` random label permutations (the no-structure
      baseline, about 0 or slightly negative; :func:`silhouette_null`, vectorised), ``silhouette_perm_ci``: 2.5/97.5 % quantiles of that null
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
    angle_ci = _angle_interval(angle, _mean_pairwise_angle(bc), X, yi, sums, counts, level) if ok.any() \
        else (np.nan, np.nan)

    loo = (sums[yi] - X) / (counts[yi] - 1)[:, None]        # own centroid without the sentence
    Xu = unit_rows(X, zero_rows="zero")
    cos_own = (Xu * unit_rows(loo, zero_rows="zero")).sum(axis=1)
    cos_all = Xu @ unit_rows(centroids, zero_rows="zero").T                       # [n, K]
    cos_all[np.arange(n), yi] = -np.inf
    cos_other = cos_all.max(axis=1)
    margin = bootstrap_mean_ci(cos_own - cos_other, n_boot=n_boot, level=level, seed=seed)

    D = np.clip(1.0 - Xu @ Xu.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    s = silhouette_samples(D, yi, metric="precomputed")
    sil = bootstrap_mean_ci(s, n_boot=n_boot, level=level, seed=seed)
    perm = silhouette_null(D, yi, n_perm, rng)
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


def silhouette_null(D: np.ndarray, yi: np.ndarray, n_perm: int, rng: np.random.Generator,
                    chunk: int = 100) -> np.ndarray:
    """Mean silhouette (Rousseeuw 1987) of each of ``n_perm`` random permutations of the labels ``yi``
    (0..K-1) under the precomputed distances ``D`` [n, n], vectorised: per permutation, the class sums
    S = D @ onehot give a_i = S[i, own] / (n_own - 1) and b_i = min over other classes k of S[i, k] / n_k;
    s_i = (b_i - a_i) / max(a_i, b_i), 0 for a singleton class (as scikit-learn's ``silhouette_samples``)."""
    K = int(yi.max()) + 1
    counts = np.bincount(yi, minlength=K).astype(np.float64)
    out = np.empty(n_perm)
    for start in range(0, n_perm, chunk):
        labels = np.stack([rng.permutation(yi) for _ in range(min(chunk, n_perm - start))])   # [c, n]
        c, n = labels.shape
        onehot = np.eye(K)[labels].transpose(1, 0, 2).reshape(n, c * K)                     # [n, c K]
        S = (D @ onehot).reshape(n, c, K).transpose(1, 0, 2)                                  # [c, n, K]
        own = np.take_along_axis(S, labels[:, :, None], axis=2)[:, :, 0]
        n_own = counts[labels]
        a = own / np.maximum(n_own - 1, 1)
        mean_to = S / counts
        np.put_along_axis(mean_to, labels[:, :, None], np.inf, axis=2)
        b = mean_to.min(axis=2)
        denom = np.maximum(a, b)
        s = np.where((n_own > 1) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1), 0.0)
        out[start:start + labels.shape[0]] = s.mean(axis=1)
    return out


def cone_view(X, y, ref_index: int = 0) -> pd.DataFrame:
    """The original study's cone view: cos(x_i, x_ref) for every row i, with its label (columns ``sentence``
    = row position, ``label``, ``cos_ref``). It depends on the arbitrary reference sentence ``ref_index``
    (whose own cosine is 1); ``class_geometry`` gives the reference-free measures."""
    X, y = _check_xy(X, y, "cone_view")
    if not -X.shape[0] <= ref_index < X.shape[0]:
        raise LayerwiseError(f"ref_index {ref_index} out of range for {X.shape[0]} sentences", where="cone_view",
                             fix="pick a row of X")
    Xu = unit_rows(X, zero_rows="zero")
    return pd.DataFrame({"sentence": np.arange(X.shape[0]), "label": y, "cos_ref": Xu @ Xu[ref_index]})
