"""The verdict rules of the report, in one place.

Every sentence or table of the report that says "higher", "lower", "changed", "best", "significant",
"negligible" (or that a floor was not measured) takes its verdict from a function of this module.
A verdict is a :class:`Verdict`: the word, the tidy rows it rests on and their ``n``, so a reader (and
a test) can trace each claim to its data. The prose module turns verdicts into sentences; it never
decides a verdict itself.

Sections (each added by the issue that defines its rules):

* effect size before significance, best layers by paired comparison (held-out probing issue);
* floors: chance (permutation nulls), seed-to-seed variation, random weights (seeds issue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: The verdict words the report may print; every verdict's ``word`` is one of them.
WORDS = ("higher", "lower", "changed", "unchanged", "negligible", "significant", "not significant", "best",
         "tied", "above chance", "at chance", "not measured")


@dataclass(frozen=True)
class Verdict:
    """One claim: ``word`` (from :data:`WORDS`), what it is about (``subject``), the tidy rows it
    rests on (``rows``), their sample size ``n`` and the numbers that decided it (``detail``)."""

    word: str
    subject: str
    rows: pd.DataFrame
    n: int
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of claims.WORDS")


# --------------------------------------------------------------------------------------------------
# Best layers by paired comparison (held-out probing issue)
# --------------------------------------------------------------------------------------------------

def _paired_diff_ci(diff, n_boot: int, level: float, rng) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired per-sentence differences ``diff [layers, n]``,
    every layer resampled on the same sentences."""
    import numpy as np

    idx = rng.integers(0, diff.shape[1], size=(n_boot, diff.shape[1]))
    boots = diff[:, idx].mean(axis=2)                                  # [layers, n_boot]
    q = [(1 - level) / 2, (1 + level) / 2]
    return np.quantile(boots, q[0], axis=1), np.quantile(boots, q[1], axis=1)


def best_layers(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, state: str, model: str | None = None, *,
                n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Verdict:
    """The best-layer set of a probe, by paired comparison on the same test sentences.

    ``correct``: per-sentence correctness (``probe_study.CORRECT_COLUMNS``: the fraction of retrainings
    that got sentence i right, c_l(i)). Top layer t = argmax_l mean_i c_l(i); for every layer l, the
    paired percentile bootstrap CI (``n_boot`` resamples of the sentences, the same resample for every
    layer) of acc(t) - acc(l) = mean_i (c_t(i) - c_l(i)) (Efron & Tibshirani 1993, ch. 13). The best-layer
    set is t and every layer whose CI contains 0. Verdict ``best`` when the set has one member, ``tied``
    otherwise (the prose then names the set, never one layer); ``not measured`` without correctness rows.
    ``rows``: the tidy rows of ``metric`` at the layers of the set; ``n``: test sentences; ``detail``:
    ``layers`` (the set), ``top``, ``diff`` / ``diff_ci`` per layer.
    """
    import numpy as np

    sel = (correct["metric"] == metric) & (correct["state"] == state) & (correct["layer"] >= 0)
    if model is not None:
        sel &= correct["model"] == model
    wide = correct[sel].pivot_table(index="layer", columns="sentence", values="correct", aggfunc="first")
    wide = wide.dropna(axis=1)
    subject = f"{metric} ({state}{', ' + model if model else ''})"
    if wide.empty or wide.shape[1] < 2:
        return Verdict("not measured", subject, tidy.iloc[0:0], 0)
    c = wide.to_numpy(dtype=float)
    layers = wide.index.to_numpy(dtype=int)
    top = int(np.argmax(c.mean(axis=1)))
    diff = c[top][None, :] - c
    lo, hi = _paired_diff_ci(diff, n_boot, level, np.random.default_rng(seed))
    tied = (lo <= 0) & (hi >= 0)
    tied[top] = True
    members = [int(v) for v in layers[tied]]
    t = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & tidy["layer"].isin(members)]
    if model is not None:
        t = t[t["model"] == model]
    detail = {"layers": members, "top": int(layers[top]), "level": level,
              "diff": dict(zip(layers.tolist(), diff.mean(axis=1).tolist())),
              "diff_ci": {int(v): (float(a), float(b)) for v, a, b in zip(layers, lo, hi)}}
    return Verdict("best" if len(members) == 1 else "tied", subject, t.sort_values("layer"), int(c.shape[1]), detail)


def versus(correct: pd.DataFrame, tidy: pd.DataFrame, a: tuple[str, int], b: tuple[str, int], state: str,
           model: str | None = None, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Verdict:
    """Probe ``a`` = (metric, layer) against probe ``b`` on the same test sentences (e.g. the top layer
    against the lexical baseline, layer -1): the paired percentile bootstrap CI of acc(a) - acc(b) =
    mean_i (c_a(i) - c_b(i)). ``higher`` / ``lower`` when the CI excludes 0, ``tied`` otherwise,
    ``not measured`` without both probes' correctness. ``detail``: ``diff``, ``diff_ci``."""
    import numpy as np

    def per_sentence(metric, layer):
        sel = (correct["metric"] == metric) & (correct["layer"] == layer) & (correct["state"] == state)
        if model is not None:
            sel &= correct["model"] == model
        return correct[sel].set_index("sentence")["correct"]

    both = pd.concat([per_sentence(*a), per_sentence(*b)], axis=1, join="inner").dropna()
    subject = f"{a[0]} at layer {a[1]} vs {b[0]}" + (f" at layer {b[1]}" if b[1] >= 0 else "") + f" ({state})"
    rows = tidy[(tidy["state"] == state) & (((tidy["metric"] == a[0]) & (tidy["layer"] == a[1]))
                                             | ((tidy["metric"] == b[0]) & (tidy["layer"] == b[1])))]
    if model is not None:
        rows = rows[rows["model"] == model]
    if len(both) < 2:
        return Verdict("not measured", subject, rows, 0)
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)[None, :]
    lo, hi = _paired_diff_ci(d, n_boot, level, np.random.default_rng(seed))
    word = "higher" if lo[0] > 0 else "lower" if hi[0] < 0 else "tied"
    return Verdict(word, subject, rows, int(d.shape[1]), {"diff": float(d.mean()), "diff_ci": (float(lo[0]), float(hi[0])),
                                                          "level": level})
