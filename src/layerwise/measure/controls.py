"""Controls for the probes: the control task (Hewitt & Liang 2019, adapted to sentence labels) and the
lexical baseline (a bag-of-words probe on the same sentences).

Control task. Hewitt & Liang give each word TYPE a random but consistent label; a probe that scores well
on those labels does so by memorising types, so the gap between the task and the control (the
selectivity) is what the probe's capacity alone does not explain. For sentences the type is a lexical
key, :func:`lexical_key` (the first content word, lower-cased); the control label of a type is drawn at
random from the task's label distribution in the probe pool (:func:`control_labels`, one function per
retraining, the same for every layer and state). The control probe trains on the probe pool's control
labels and is scored only on the test sentences whose key type occurs at least ``min_count`` times in
the probe pool (:func:`covered`; a type never seen cannot be memorised), against their control labels.

Lexical baseline. TF-IDF of word 1-2-grams + logistic regression, trained and scored exactly as the
layer probes (same retrainings, same sentences): how far plain word counts go on the task.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..core.errors import LayerwiseError
from .probes import (ProbeResult, check_method, checked_splits, correct_matrix, fitted_correct, logistic, probe_draws,
                     probe_result)
from .probes_batch import logistic_correct

#: Function words skipped by :func:`lexical_key` (French and English articles, pronouns, prepositions,
#: auxiliaries, negation); words of fewer than 3 letters are skipped as well.
STOPWORDS = frozenset("""
le la les un une des du de et ou mais donc car ni ce cet cette ces ça ca je tu il elle on nous vous ils elles
me te se lui leur en au aux pour par sur dans avec sans sous chez qui que quoi dont où ne pas plus très trop
bien mon ma mes ton ta tes son sa ses notre nos votre vos est sont été être ai as avons avez ont avait était
fait faire tout tous toute toutes comme si aussi même encore déjà alors quand the and of to is it this that
was are for with not but
""".split())
_WORD = re.compile(r"[^\W\d_]+")


def lexical_key(text: str) -> str:
    """The control task's key type of a sentence: its first content word, lower-cased (the first run of
    letters of 3 or more that is not in :data:`STOPWORDS`); ``""`` when there is none."""
    for w in _WORD.findall(str(text).lower()):
        if len(w) >= 3 and w not in STOPWORDS:
            return w
    return ""


def lexical_keys(texts: Sequence[str]) -> np.ndarray:
    """:func:`lexical_key` of every text (an object array)."""
    return np.array([lexical_key(t) for t in texts], dtype=object)


def covered(keys_train: Sequence[str], keys_test: Sequence[str], min_count: int = 2) -> np.ndarray:
    """bool per test key: its type occurs at least ``min_count`` times among the training keys (and is
    not empty)."""
    types, counts = np.unique(np.asarray(keys_train, dtype=str), return_counts=True)
    frequent = set(types[counts >= min_count]) - {""}
    return np.array([k in frequent for k in keys_test], dtype=bool)


def control_labels(keys_train, keys_test, y_train, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random function f: key type -> label, each type's label drawn independently from the empirical label
    distribution of ``y_train``; returns ``(f(keys_train), f(keys_test))``."""
    keys_train, keys_test = np.asarray(keys_train, dtype=str), np.asarray(keys_test, dtype=str)
    classes, counts = np.unique(np.asarray(y_train), return_counts=True)
    types, inverse = np.unique(np.r_[keys_train, keys_test], return_inverse=True)
    f = rng.choice(classes, size=types.size, p=counts / counts.sum())
    lab = f[inverse]
    return lab[:keys_train.size], lab[keys_train.size:]


def control_label_sets(keys_tr, keys_te, cov: np.ndarray, ytr, seeds: int, seed: int) -> list[tuple]:
    """Per retraining ``s``: the control labels of the training rows and of EVERY test row (those not
    ``cov``ered get -1), the draws of :func:`control_task_accuracy` (seeded by ``(seed, s, 2)``)."""
    out = []
    for s in range(seeds):
        tr, te = control_labels(keys_tr, np.asarray(keys_te)[cov], ytr, np.random.default_rng([seed, s, 2]))
        full = np.full(len(keys_te), -1, dtype=np.asarray(te).dtype)
        full[cov] = te
        out.append((tr, full))
    return out


def control_task_accuracy(Xtr, ytr, keys_tr, Xte, keys_te, *, seeds: int = 20, min_count: int = 2,
                          n_boot: int = 1000, C: float = 1.0, seed: int = 0, level: float = 0.95,
                          method: str = "batched"):
    """Control task (Hewitt & Liang 2019) of the linear probe. For retraining s: control labels
    c = f_s(key) (:func:`control_labels`, seeded by ``(seed, s)``), a logistic probe (as
    ``probes.probe_accuracy``, same bootstrap resamples of the training rows) trained on (Xtr, c_tr) and
    scored on the covered test rows (:func:`covered`) against c_te. Returns ``(ProbeResult, covered mask)``;
    the result is NaN when no test row is covered. ``method``: as ``probes.probe_accuracy``'s."""
    Xtr, ytr, Xte, _ = checked_splits(Xtr, ytr, Xte, np.zeros(len(Xte), dtype=int), seeds, "control_task_accuracy")
    if len(keys_tr) != len(ytr) or len(keys_te) != len(Xte):
        raise LayerwiseError("one key per sentence is needed", where="control_task_accuracy",
                             fix="pass lexical_keys(texts) of the training and test sentences")
    cov = covered(keys_tr, keys_te, min_count)
    if not cov.any():
        nan = np.full((seeds, 0), False)
        return ProbeResult(np.nan, np.nan, np.nan, 0, np.full(seeds, np.nan), nan), cov
    labels = control_label_sets(keys_tr, keys_te, cov, ytr, seeds, seed)
    correct = fitted_correct(lambda rs: logistic(C, rs), lambda *a, **k: logistic_correct(*a, C=C, **k), Xtr,
                             Xte[cov], probe_draws(ytr, seeds, seed), lambda b: labels[b][0],
                             lambda b: labels[b][1][cov], check_method(method, "control_task_accuracy"))
    return probe_result(correct, crossed=True, n_boot=n_boot, seed=seed, level=level), cov


#: Inverse L2 strengths the lexical baseline chooses from, by 5-fold cross-validation on each training resample.
LEXICAL_C_GRID = (0.1, 1.0, 10.0, 100.0)


def _lexical_model(Cs, random_state: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state)
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), lowercase=True, sublinear_tf=True),
                         LogisticRegressionCV(Cs=list(Cs), cv=folds, scoring="accuracy", max_iter=1000,
                                              random_state=random_state))


def lexical_probe_accuracy(texts_tr, ytr, texts_te, yte, *, seeds: int = 20, n_boot: int = 1000,
                           Cs: tuple[float, ...] = LEXICAL_C_GRID, seed: int = 0, level: float = 0.95):
    """Lexical baseline: TF-IDF of word 1- and 2-grams (scikit-learn ``TfidfVectorizer(ngram_range=(1, 2),
    sublinear_tf=True)``, tf-idf(t, d) = (1 + log tf) (1 + log((1 + n) / (1 + df))), rows L2-normalised)
    followed by a logistic regression whose C is chosen among ``Cs`` by 5-fold cross-validation on the
    training resample only (Wang & Manning 2012, "Baselines and bigrams"); the vocabulary too is fitted on
    each training resample only. Choosing C (the layer probes keep C = 1) makes the reference harder to
    beat, not easier. Trained on the same bootstrap resamples as ``probes.probe_accuracy``, scored on the
    same test sentences, same crossed CI. Returns a ``probes.ProbeResult``."""
    ytr, yte = np.asarray(ytr), np.asarray(yte)
    Xtr, Xte = np.asarray(texts_tr, dtype=object), np.asarray(texts_te, dtype=object)
    if Xtr.shape != ytr.shape or Xte.shape != yte.shape or ytr.size == 0 or yte.size == 0:
        raise LayerwiseError("one text per label is needed, in both splits", where="lexical_probe_accuracy",
                             fix="pass the texts and labels of the probe pool and of the test sentences")
    correct = correct_matrix(lambda rs: _lexical_model(Cs, rs), Xtr, Xte, probe_draws(ytr, seeds, seed),
                             lambda b: ytr, lambda b: yte)
    return probe_result(correct, crossed=True, n_boot=n_boot, seed=seed, level=level)
