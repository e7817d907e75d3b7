"""The probes' retrainings fitted together (:mod:`layerwise.measure.logistic_batch`): the batched
counterparts of ``probes.correct_matrix`` for the linear probe and for the non-linear head.

Problems with two classes are solved in one batch; a resample holding one class predicts that class (as
``probes.correct_matrix``); more than two classes go to ``fallback`` (the sequential scikit-learn fit).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import logistic_batch as lb


def _binary_problems(draws, train_labels: Callable, test_labels: Callable, fallback: Callable | None, n_test: int):
    """The correctness matrix filled for one-class and (via ``fallback(b)``) many-class draws, and the
    two-class problems left: ``[(b, rows, classes, targets 0/1 aligned with rows)]``."""
    correct = np.zeros((len(draws), n_test), dtype=bool)
    todo = []
    for b, (idx, _) in enumerate(draws):
        labels = np.asarray(train_labels(b))
        classes = np.unique(labels[idx])
        if classes.size < 2:
            correct[b] = np.asarray(test_labels(b)) == classes[0]
        elif classes.size > 2:
            if fallback is None:
                raise ValueError("more than two classes need a fallback fit")
            correct[b] = fallback(b)
        else:
            todo.append((b, idx, classes, (labels[idx] == classes[1]).astype(np.float64)))
    return correct, todo


def logistic_correct(Xtr, Xte, draws, train_labels: Callable, test_labels: Callable, C: float = 1.0,
                     fallback: Callable | None = None) -> np.ndarray:
    """bool ``[len(draws), n_test]``, as ``probes.correct_matrix`` with ``probes.logistic(C)`` (standardise +
    L2 logistic regression), every two-class draw fitted in one batched Newton solve
    (:func:`layerwise.measure.logistic_batch.fit_scores`)."""
    Xtr, Xte = np.asarray(Xtr, dtype=np.float64), np.asarray(Xte, dtype=np.float64)
    correct, todo = _binary_problems(draws, train_labels, test_labels, fallback, len(Xte))
    if todo:
        Xb, c, t = lb.pack([p[1] for p in todo], Xtr, [p[3] for p in todo])
        f = lb.fit_scores(Xb, c, t, Xte[None], float(C))[:, 0]
        for (b, _, classes, _), fb in zip(todo, f):
            correct[b] = np.where(fb > 0, classes[1], classes[0]) == np.asarray(test_labels(b))
    return correct


def random_tanh_features(Z: np.ndarray, hidden: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense layer frozen at its initialisation: ``(W1 [d, hidden], b1 [hidden])`` drawn uniformly in
    +/- sqrt(6 / (d + hidden)) (Glorot & Bengio 2010, scikit-learn's ``MLPClassifier`` initialisation
    for tanh), from ``seed``."""
    rng = np.random.default_rng(seed)
    bound = np.sqrt(6.0 / (Z.shape[1] + hidden))
    return rng.uniform(-bound, bound, (Z.shape[1], hidden)), rng.uniform(-bound, bound, hidden)


def head_correct(Xtr, Xte, draws, train_labels: Callable, test_labels: Callable, hidden: int, alpha: float,
                 fallback: Callable | None = None) -> np.ndarray:
    """bool ``[len(draws), n_test]`` of the random-feature head h = tanh(W1 z + b1) (z standardised on the
    draw's rows, W1, b1 of :func:`random_tanh_features` seeded by the draw's model seed) read out by an L2
    logistic regression on h with C = 1 / ``alpha`` (the head's penalty alpha |W2|^2 / 2 on the summed loss,
    as ``MLPClassifier``'s), all draws in one batched solve."""
    Xtr, Xte = np.asarray(Xtr, dtype=np.float64), np.asarray(Xte, dtype=np.float64)
    correct, todo = _binary_problems(draws, train_labels, test_labels, fallback, len(Xte))
    if not todo:
        return correct
    Htr, Hte = [], []
    for b, idx, _, _ in todo:
        mu, sd = Xtr[idx].mean(axis=0), Xtr[idx].std(axis=0)
        sd = np.where(sd <= 1e-5 * np.abs(mu) + 1e-150, 1.0, sd)
        W1, b1 = random_tanh_features(Xtr, hidden, draws[b][1])
        Htr.append(np.tanh((Xtr[idx] - mu) / sd @ W1 + b1))
        Hte.append(np.tanh((Xte - mu) / sd @ W1 + b1))
    n = max(h.shape[0] for h in Htr)
    Xb, c, t = np.zeros((len(todo), n, hidden)), np.zeros((len(todo), n)), np.zeros((len(todo), n))
    for p, ((_, idx, _, tp), h) in enumerate(zip(todo, Htr)):
        Xb[p, :len(idx)], c[p, :len(idx)], t[p, :len(idx)] = h, 1.0, tp
    f = lb.fit_scores(Xb, c, t, np.stack(Hte), 1.0 / alpha, standardise=False)[:, 0]
    for (b, _, classes, _), fb in zip(todo, f):
        correct[b] = np.where(fb > 0, classes[1], classes[0]) == np.asarray(test_labels(b))
    return correct


def logistic_correct_sets(Xtr, Xte, draws, tasks, C: float = 1.0, fallback: Callable | None = None) -> list:
    """:func:`logistic_correct` of several label sets on the same draws, the scaler and Gram matrix of each
    draw shared by every set: ``tasks`` is a list of ``(train_labels, test_labels)`` (callables of the draw
    index, test labels for every ``Xte`` row); ``fallback(k, b)`` fits a many-class problem. Returns one
    bool ``[len(draws), n_test]`` matrix per task."""
    Xtr, Xte = np.asarray(Xtr, dtype=np.float64), np.asarray(Xte, dtype=np.float64)
    out = [np.zeros((len(draws), len(Xte)), dtype=bool) for _ in tasks]
    todo = []                                   # (b, k, classes)
    targets = np.zeros((len(draws), len(tasks), Xtr.shape[0]))
    for b, (idx, _) in enumerate(draws):
        for k, (train_labels, test_labels) in enumerate(tasks):
            labels = np.asarray(train_labels(b))
            classes = np.unique(labels[idx])
            if classes.size < 2:
                out[k][b] = np.asarray(test_labels(b)) == classes[0]
            elif classes.size > 2:
                out[k][b] = fallback(k, b)
            else:
                todo.append((b, k, classes))
                targets[b, k] = labels == classes[1]
    if todo:
        uniq = [np.unique(idx, return_counts=True) for idx, _ in draws]
        n = max(u.size for u, _ in uniq)
        Xb, c = np.zeros((len(draws), n, Xtr.shape[1])), np.zeros((len(draws), n))
        t = np.zeros((len(draws), len(tasks), n))
        for b, (u, counts) in enumerate(uniq):
            Xb[b, :u.size], c[b, :u.size], t[b, :, :u.size] = Xtr[u], counts, targets[b][:, u]
        f = lb.fit_scores(Xb, c, t, Xte[None], float(C))[:, :, 0]          # [draws, tasks, n_test]
        for b, k, classes in todo:
            out[k][b] = np.where(f[b, k] > 0, classes[1], classes[0]) == np.asarray(tasks[k][1](b))
    return out
