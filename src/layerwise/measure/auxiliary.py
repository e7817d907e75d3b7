"""Auxiliary probe tasks built from the corpus itself: what a layer still encodes besides the task label.

SentEval-style probing tasks (Conneau, Kruszewski, Lample, Barrault & Baroni 2018, "What you can cram
into a single vector: probing sentence embeddings for linguistic properties", ACL): labels computed from
the texts alone, so they exist for any corpus, then a linear probe per layer. Comparing them before and
after fine-tuning shows what the fine-tuning kept and what it lost:

* ``length`` (surface): the sentence's word count in 3 bins, the bins' edges the tertiles of the training
  sentences (:func:`length_labels`; SentEval's SentLen uses 6 bins of fixed width);
* ``word`` (surface): whether one chosen word occurs in the sentence, the word the one of the training
  sentences whose presence rate is closest to one half (:func:`word_task`; SentEval's WC predicts which
  of 1000 mid-frequency words a sentence holds);
* ``bigram_shift`` (syntax/order): whether two adjacent words were swapped (:func:`bigram_shift`, as
  SentEval's BShift); the shifted texts need their own forward pass.

:func:`aux_probe_correct` fits the probes (:func:`layerwise.measure.probes_batch.logistic_correct`, the
linear probe of :func:`layerwise.measure.probes.probe_accuracy`) on every layer, with a control trained on
permuted labels: accuracy above the control is information the layer holds, not probe capacity.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..core.errors import LayerwiseError
from . import probes
from .probes_batch import logistic_correct

#: the auxiliary tasks, in display order
TASKS = ("length", "word", "bigram_shift")
#: display name of each task
TASK_LABELS = {"length": "sentence length (3 bins)", "word": "word present", "bigram_shift": "adjacent words swapped"}
#: what each task's label is, in one line
TASK_DESCRIPTIONS = {
    "length": "number of words (whitespace split) in 3 bins whose edges are the tertiles of the training sentences",
    "word": "whether the sentence holds the word (letters only, 3+ characters) present in closest to half of the "
            "training sentences",
    "bigram_shift": "whether two adjacent words of the sentence were swapped (a seeded coin per sentence, rate 0.5)",
}
_WORD = re.compile(r"\w+")
_WHERE = "measure.auxiliary"


def word_counts(texts: Sequence[str]) -> np.ndarray:
    """Words per text (whitespace split), int ``[n]``."""
    return np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))


def length_labels(texts: Sequence[str], edges=None) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, edges)``: the word count n of each text in 3 bins, label 0 if n <= e1, 1 if e1 < n <= e2,
    2 if n > e2. ``edges`` ``(e1, e2)``: when None, the tertiles (``np.quantile`` at 1/3 and 2/3, linear
    interpolation) of the word counts of ``texts`` (pass the training texts); else applied as given (the
    test texts get the training edges)."""
    counts = word_counts(texts)
    if edges is None:
        if counts.size == 0:
            raise LayerwiseError("no texts to compute the length tertiles on", f"{_WHERE}.length_labels",
                                 "pass the training texts")
        edges = np.quantile(counts, [1 / 3, 2 / 3])
    edges = np.asarray(edges, dtype=np.float64)
    if edges.shape != (2,) or edges[0] > edges[1]:
        raise LayerwiseError(f"length edges must be two increasing numbers, got {edges.tolist()}",
                             f"{_WHERE}.length_labels", "pass the edges length_labels returned for the training texts")
    return np.digitize(counts, edges, right=True).astype(np.int64), edges


def _words(text: str) -> set[str]:
    """The lower-cased maximal runs of word characters of ``text`` made of letters only, 3+ characters."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w.isalpha()}


def word_task(train_texts: Sequence[str]) -> str:
    """The word whose presence rate in ``train_texts`` is closest to 0.5 (|2 * count - n| smallest, ties
    broken alphabetically); candidates: lower-cased tokens of letters only, at least 3 characters long,
    counted once per text."""
    counts: dict[str, int] = {}
    for text in train_texts:
        for w in _words(text):
            counts[w] = counts.get(w, 0) + 1
    if not counts:
        raise LayerwiseError("the training texts hold no word of 3+ letters", f"{_WHERE}.word_task",
                             "check the text column of the data")
    n = len(train_texts)
    return min(counts, key=lambda w: (abs(2 * counts[w] - n), w))


def word_labels(texts: Sequence[str], word: str) -> np.ndarray:
    """int ``[n]``: 1 when ``word`` occurs in the text as a whole word (``\\b`` boundaries, case-insensitive:
    both lower-cased), else 0."""
    pattern = re.compile(rf"\b{re.escape(word.lower())}\b")
    return np.fromiter((pattern.search(t.lower()) is not None for t in texts), dtype=np.int64, count=len(texts))


def bigram_shift(texts: Sequence[str], seed: int) -> tuple[list[str], np.ndarray]:
    """``(new_texts, labels)``: a coin per text (``np.random.default_rng(seed)``, probability 0.5, all coins
    drawn first); when it is 1, two adjacent words (whitespace split) at a random position are swapped and the
    text is rejoined with single spaces. Only positions whose two words differ are drawn from, so a label 1
    always changes the text; a text with fewer than 2 words (or no such position) keeps label 0 and is
    unchanged. Deterministic for a seed; the words of a text are the same multiset after the swap."""
    rng = np.random.default_rng(seed)
    coins = rng.random(len(texts)) < 0.5
    out, labels = list(texts), np.zeros(len(texts), dtype=np.int64)
    for i in np.flatnonzero(coins):
        words = texts[i].split()
        spots = [j for j in range(len(words) - 1) if words[j] != words[j + 1]]
        if not spots:
            continue
        j = spots[int(rng.integers(len(spots)))]
        words[j], words[j + 1] = words[j + 1], words[j]
        out[i], labels[i] = " ".join(words), 1
    return out, labels


def task_data(task: str, train_texts: Sequence[str], test_texts: Sequence[str], *,
              seed: int = 0) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """``(train texts, train labels, test texts, test labels)`` of an auxiliary ``task``: the length bins
    and the word from the training texts only; the bigram shift with ``seed`` (train) and ``seed + 1``
    (test), whose texts then differ from the given ones (embed them again)."""
    if task == "length":
        ytr, edges = length_labels(train_texts)
        return list(train_texts), ytr, list(test_texts), length_labels(test_texts, edges)[0]
    if task == "word":
        word = word_task(train_texts)
        return list(train_texts), word_labels(train_texts, word), list(test_texts), word_labels(test_texts, word)
    if task == "bigram_shift":
        return (*bigram_shift(train_texts, seed), *bigram_shift(test_texts, seed + 1))
    raise LayerwiseError(f"unknown auxiliary task {task!r}", f"{_WHERE}.task_data", f"choose among {TASKS}")


def _checked(X_train, y_train, X_test, y_test, seeds: int):
    """float64 ``[n, L+1, d]`` arrays and int labels, or an error naming the bad shape."""
    where = f"{_WHERE}.aux_probe_correct"
    Xtr, Xte = np.asarray(X_train, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if Xtr.ndim != 3 or Xte.ndim != 3 or Xtr.shape[1:] != Xte.shape[1:]:
        raise LayerwiseError(f"features of shapes {Xtr.shape} and {Xte.shape}", where,
                             "pass [sentences, layers, dims] arrays with the same layers and dims for both splits")
    if ytr.shape != (Xtr.shape[0],) or yte.shape != (Xte.shape[0],):
        raise LayerwiseError(f"labels of shapes {ytr.shape} and {yte.shape} for {Xtr.shape[0]} and "
                             f"{Xte.shape[0]} sentences", where, "give one label per sentence")
    if np.unique(ytr).size < 2:
        raise LayerwiseError("the training labels hold a single class", where,
                             "use more training sentences (or another task: this one is constant here)")
    if seeds < 1:
        raise LayerwiseError(f"seeds must be >= 1, got {seeds}", where, "pass seeds=5")
    return Xtr, ytr, Xte, yte


def aux_probe_correct(X_train, y_train, X_test, y_test, *, seeds: int = 5, seed: int = 0,
                      C: float = 1.0, control: bool = True) -> dict:
    """Per layer, the per-sentence correctness of a linear probe of an auxiliary task, and of its control.

    ``X_*``: float ``[n, L+1, d]`` (pooled hidden states per layer); the probe is the project's linear probe
    (:func:`layerwise.measure.probes.probe_accuracy`): features standardised on each retraining's training
    rows (z = (x - mu_train) / sigma_train, per layer), L2 logistic regression with ``C``, ``seeds``
    retrainings on stratified bootstrap resamples of the training sentences
    (:func:`~layerwise.measure.probes.probe_draws`), two classes in one batched Newton solve
    (:func:`~layerwise.measure.probes_batch.logistic_correct`), more classes (the length bins) fitted by
    scikit-learn. The control is the same probe on the same resamples trained on the training labels
    permuted (:func:`~layerwise.measure.probes.permutations`, one permutation per retraining) and scored
    against the true test labels: it sits at chance whatever the probe's capacity, so accuracy above it is
    information the layer holds.

    ``control=False``: the probe alone (half the fits; ``control_correct`` is then NaN), for a caller that reads
    only the probe (the checkpoints' accuracy).

    Returns ``{"correct": float [L+1, n_test], "control_correct": float [L+1, n_test], "majority": float}``:
    the mean correctness over the retrainings of each test sentence, and the accuracy of always predicting the
    most frequent training class (ties: the smallest label). Depends only on ``(seed, seeds)`` and the data.
    """
    Xtr, ytr, Xte, yte = _checked(X_train, y_train, X_test, y_test, seeds)
    draws = probes.probe_draws(ytr, seeds, seed)
    perms = probes.permutations(ytr.size, seeds, seed)
    both = draws + draws if control else draws                # retrainings 0..seeds-1: task; then control

    def train_labels(b: int) -> np.ndarray:
        return ytr if b < seeds else ytr[perms[b - seeds]]

    def batched(*args, **kwargs):
        return logistic_correct(*args, C=C, **kwargs)

    n_layers = Xtr.shape[1]
    correct, controls = np.zeros((n_layers, len(yte))), np.full((n_layers, len(yte)), np.nan)
    for layer in range(n_layers):
        c = probes.fitted_correct(lambda rs: probes.logistic(C, rs), batched, Xtr[:, layer], Xte[:, layer], both,
                                  train_labels, lambda b: yte, "batched")
        correct[layer] = c[:seeds].mean(axis=0)
        if control:
            controls[layer] = c[seeds:].mean(axis=0)
    classes, counts = np.unique(ytr, return_counts=True)
    majority = float(np.mean(yte == classes[int(np.argmax(counts))]))
    return {"correct": correct, "control_correct": controls, "majority": majority}
