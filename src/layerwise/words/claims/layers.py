"""Best layers by paired comparison (held-out probing issue); the shape of a series through the layers (#15)."""

from __future__ import annotations


import numpy as np
import pandas as pd

from .verdict import Verdict


def _paired_diff_ci(diff, n_boot: int, level: float, rng) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired per-sentence differences ``diff [layers, n]``,
    every layer resampled on the same sentences."""
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


def state_versus(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, layer: int, state: str,
                 reference: str = "pretrained", model: str | None = None, *, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> Verdict:
    """A probe of ``state`` against the same probe of ``reference`` (same metric and layer) on the same
    test sentences: the paired percentile bootstrap CI of acc(state) - acc(reference). ``higher`` /
    ``lower`` when it excludes 0, ``tied`` otherwise, ``not measured`` without both. ``detail``:
    ``diff``, ``diff_ci``, ``layer``."""
    def per_sentence(s):
        sel = (correct["metric"] == metric) & (correct["layer"] == layer) & (correct["state"] == s)
        if model is not None:
            sel &= correct["model"] == model
        return correct[sel].set_index("sentence")["correct"]

    both = pd.concat([per_sentence(state), per_sentence(reference)], axis=1, join="inner").dropna()
    rows = tidy[(tidy["metric"] == metric) & (tidy["layer"] == layer) & tidy["state"].isin([state, reference])]
    if model is not None:
        rows = rows[rows["model"] == model]
    subject = f"{metric} at layer {layer}: {state} vs {reference}"
    if len(both) < 2:
        return Verdict("not measured", subject, rows, 0, {"layer": int(layer)})
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)[None, :]
    lo, hi = _paired_diff_ci(d, n_boot, level, np.random.default_rng(seed))
    word = "higher" if lo[0] > 0 else "lower" if hi[0] < 0 else "tied"
    return Verdict(word, subject, rows, int(d.shape[1]), {"diff": float(d.mean()), "level": level, "layer": int(layer),
                                                          "diff_ci": (float(lo[0]), float(hi[0]))})



def layer_trend(rows: pd.DataFrame, tolerance: float, subject: str = "") -> Verdict:
    """The shape of one state's per-layer series (``rows``: one tidy row per layer, ``layer >= 0``),
    with ``tolerance`` the smallest difference that counts (the prose passes half a unit of the last
    printed digit, so values that print the same never make a trend):

    "flat" when max - min <= tolerance; else "rises" / "falls" when the last layer is more than
    ``tolerance`` above / below the first; else (both ends within ``tolerance``) "peaks" when an inner
    layer exceeds both ends by more than ``tolerance``, "dips" otherwise. A description of one series,
    not a comparison between states: it says nothing about what fine-tuning changed. ``n``: layers;
    ``detail``: first, last, max/min and their layers. Empty rows: "not measured"."""
    s = rows[rows["layer"] >= 0].sort_values("layer")
    if s.empty or s["value"].isna().all():
        return Verdict("not measured", subject, s, 0)
    s = s[s["value"].notna()]
    v, layers = s["value"].to_numpy(dtype=float), s["layer"].to_numpy(dtype=int)
    first, last, hi, lo = v[0], v[-1], int(np.argmax(v)), int(np.argmin(v))
    detail = {"first": float(first), "last": float(last), "first_layer": int(layers[0]),
              "last_layer": int(layers[-1]), "max": float(v[hi]), "max_layer": int(layers[hi]),
              "min": float(v[lo]), "min_layer": int(layers[lo]), "tolerance": float(tolerance)}
    if v.max() - v.min() <= tolerance:
        word = "flat"
    elif abs(last - first) > tolerance:
        word = "rises" if last > first else "falls"
    else:
        word = "peaks" if v.max() - max(first, last) > tolerance else "dips"
    return Verdict(word, subject, s, len(v), detail)

