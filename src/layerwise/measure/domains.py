"""The primary statistics per domain (issue 27): where a dataset has a domain column (the demo corpus: films,
books, music), the similarity of each layer to the pretrained model and the probe accuracy, computed on the
test sentences of each domain alone, with each domain's n.

Merchant et al. (2020) found that fine-tuning changes the representations of out-of-domain inputs less; a
corpus of several domains lets a reader see whether the change is the same in each. The statistics are the
study's own: debiased CKA (:func:`layerwise.measure.trajectory.start_similarity`, with its permutation null
drawn within the domain) between the pretrained and each fine-tuned seed's layer, and the accuracy of the
study's primary probe (the per-sentence correctness the probe step stored), with the paired change
fine-tuned - pretrained per seed: the mean over the domain's sentences of ``c_ft,i - c_pre,i`` with a
bootstrap interval over those sentences (:func:`layerwise.measure.stats.bootstrap_mean_ci`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..core.tables import beyond_row
from .similarity import permutations, unit_debiased_grams
from .stats import bootstrap_mean_ci
from .trajectory import start_similarity

#: a domain needs this many test sentences for a debiased CKA (its estimator divides by n - 3) and an interval
MIN_SENTENCES = 8


def accuracy_rows(model: str, analysis: str, group: str, state: str, seed: int | None, correct: np.ndarray, *,
                  metric: str = "probe_acc", layers=None, n_boot: int = 1000, level: float = 0.95,
                  boot_seed: int = 0) -> list[dict]:
    """Rows of an accuracy per layer from per-sentence correctness ``correct`` ``[L+1, n]`` (fractions of
    retrainings allowed), each with its bootstrap interval over the sentences; ``layers``: the layer number of
    each row (default 0..L)."""
    rows = []
    correct = np.asarray(correct, dtype=float)
    for layer, c in zip(range(len(correct)) if layers is None else layers, correct):
        m, lo, hi = bootstrap_mean_ci(c, n_boot=n_boot, level=level, seed=boot_seed)
        rows.append(beyond_row(model, analysis, group, state, seed, layer, metric, m, lo, hi, n=c.size))
    return rows


def change_rows(model: str, analysis: str, group: str, seed: int, reference: np.ndarray, other: np.ndarray, *,
                metric: str, state: str = "finetuned", layers=None, n_boot: int = 1000, level: float = 0.95,
                boot_seed: int = 0) -> list[dict]:
    """Rows of the paired change ``other - reference`` per layer (both ``[L+1, n]`` per-sentence values on the
    same sentences): the mean difference with its bootstrap interval over the sentences. Identical inputs give
    0 with a zero-width interval (the answer model reads it as no change, not as an error). ``layers``: the
    layer number of each row (default 0..L)."""
    diff = np.asarray(other, dtype=float) - np.asarray(reference, dtype=float)
    layers = range(diff.shape[0]) if layers is None else layers
    rows = []
    for layer, d in zip(layers, diff):
        m, lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, level=level, seed=boot_seed)
        rows.append(beyond_row(model, analysis, group, state, seed, layer, metric, m, lo, hi, n=d.size))
    return rows


def _correct_matrix(correct: pd.DataFrame, state: str, seed: int | None, sentences: np.ndarray
                    ) -> tuple[list[int], np.ndarray]:
    """The probed layers and their ``[layers, len(sentences)]`` correctness for one state (and seed) at the stored
    rows ``sentences``."""
    rows = correct[correct["state"] == state]
    rows = rows[rows["seed"].isna()] if seed is None else rows[rows["seed"] == seed]
    table = rows.pivot_table(index="layer", columns="sentence", values="correct", aggfunc="mean")
    return [int(v) for v in table.index], table.reindex(columns=sentences).to_numpy(float)


def domain_rows(model: str, domains: np.ndarray, pooled: Mapping[str, np.ndarray], seeds: Mapping[int, str],
                correct: pd.DataFrame | None, test_rows: np.ndarray, *, reference: str = "pretrained",
                n_permutations: int = 200, seed: int = 0, n_boot: int = 1000) -> list[dict]:
    """The ``beyond`` rows of analysis ``domain``, group = the domain, for every domain of ``domains`` (one
    label per test sentence) with at least :data:`MIN_SENTENCES` sentences: ``cka_debiased`` and
    ``cka_debiased_null_q95`` of each fine-tuned seed against ``reference`` (``pooled``: ``{state label: [n_test,
    L+1, d]}``, ``seeds``: ``{seed: its state label}``); and, when ``correct`` (the primary probe's per-sentence
    correctness, columns ``state``, ``seed``, ``layer``, ``sentence``, ``correct``; ``test_rows``: the stored row of
    each test sentence) is given, ``probe_acc`` of the reference and of each seed and ``probe_acc_change`` per
    seed. Every row's ``n`` is the domain's number of test sentences."""
    domains = np.asarray(domains, dtype=str)
    rows: list[dict] = []
    for d in sorted(set(domains)):
        mask = domains == d
        n = int(mask.sum())
        if n < MIN_SENTENCES:
            continue
        perms = permutations(n, n_permutations, seed)
        ref = np.asarray(pooled[reference], dtype=np.float32)[mask]
        ref_grams = unit_debiased_grams(ref)
        for s, label in seeds.items():
            values, q95 = start_similarity(ref, np.asarray(pooled[label], dtype=np.float32)[mask], perms,
                                           start_grams=ref_grams)
            for layer, (v, q) in enumerate(zip(values, q95)):
                rows += [beyond_row(model, "domain", d, "finetuned", s, layer, "cka_debiased", v, n=n),
                         beyond_row(model, "domain", d, "finetuned", s, layer, "cka_debiased_null_q95", q, n=n)]
        if correct is None or correct.empty:
            continue
        sentences = np.asarray(test_rows)[mask]
        layers, before = _correct_matrix(correct, reference, None, sentences)
        rows += accuracy_rows(model, "domain", d, reference, None, before, layers=layers, n_boot=n_boot,
                              boot_seed=seed)
        for s in seeds:
            after_layers, after = _correct_matrix(correct, "finetuned", s, sentences)
            if after_layers != layers:
                continue  # (a seed probed at other layers is not paired)
            rows += accuracy_rows(model, "domain", d, "finetuned", s, after, layers=layers, n_boot=n_boot,
                                  boot_seed=seed)
            rows += change_rows(model, "domain", d, s, before, after, metric="probe_acc_change", layers=layers,
                                n_boot=n_boot, boot_seed=seed)
    return rows
