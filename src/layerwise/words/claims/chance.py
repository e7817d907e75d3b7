"""Chance, judged apart from change: a statistic against its permutation null; a correlation over layers."""

from __future__ import annotations


import numpy as np
import pandas as pd

from ...core.schema import FIRST_TOKEN
from .verdict import Verdict


def chance_verdict(observed: pd.DataFrame, null_q95: pd.DataFrame, subject: str = "") -> Verdict:
    """Above-chance structure of a similarity: "above chance" iff the observed value exceeds the 95th
    percentile of its permutation null (a one-sided test at 5 %), "at chance" otherwise, "not
    measured" when either is missing or NaN. One row each (same model, state, layer); ``n`` = the
    observed row's sentences."""
    return _beyond_null(observed, null_q95, "value", subject,
                        lambda null: {"null_q95": float(null["value"].iloc[0]),
                                      "permutations": int(null["n"].iloc[0])},
                        nan_reason="undefined value (constant representation)")


def _beyond_null(observed: pd.DataFrame, null: pd.DataFrame, bound: str, subject: str, detail, *,
                 nan_reason: str = "undefined value") -> Verdict:
    """The one chance rule: "above chance" iff the observed row's value exceeds the null row's ``bound``
    column (its 95th-percentile value, or its upper interval end); "at chance" otherwise; "not measured"
    without exactly one row each or with a NaN. ``detail(null)``: what the verdict adds about the null."""
    rows = pd.concat([observed, null], ignore_index=True)
    if len(observed) != 1 or len(null) != 1:
        return Verdict("not measured", subject, rows, 0, {"reason": "need one observed and one null row"})
    value, limit = float(observed["value"].iloc[0]), float(null[bound].iloc[0])
    n = int(observed["n"].iloc[0])
    if not (np.isfinite(value) and np.isfinite(limit)):
        return Verdict("not measured", subject, rows, n, {"reason": nan_reason})
    return Verdict("above chance" if value > limit else "at chance", subject, rows, n,
                   {"value": value, **detail(null)})


def chance_verdicts(tidy: pd.DataFrame, measure: str, pooling: str = FIRST_TOKEN, state: str = "finetuned",
                    reference: str = "pretrained") -> list[Verdict]:
    """:func:`chance_verdict` at every layer for ``<measure>_<pooling>_vs_<reference>`` of ``state``
    (measure in ``similarity.FLOOR_MEASURES``), against ``<measure>_null_q95_<pooling>_vs_<reference>``."""
    suffix = f"_{pooling}_vs_{reference}"
    rows = tidy[tidy["state"] == state]
    obs = rows[rows["metric"] == f"{measure}{suffix}"]
    null = rows[rows["metric"] == f"{measure}_null_q95{suffix}"]
    out = []
    for (model, layer), o in obs.groupby(["model", "layer"], sort=True):
        q = null[(null["model"] == model) & (null["layer"] == layer)]
        out.append(chance_verdict(o, q, f"{measure} {pooling} {state} vs {reference}, {model} layer {layer}"))
    return out


def probe_chance_verdict(tidy: pd.DataFrame, metric: str, layer: int, state: str = "finetuned") -> Verdict:
    """Above-chance accuracy of a probe: :func:`null_verdict` of the probe's accuracy (``metric``, e.g.
    ``probe_acc_cls``) against its permuted-label probe (``probe_chance_acc_<pooling>``, whose interval is
    the spread of probes trained on permuted labels over the same resamples): "above chance" iff the
    accuracy exceeds the null's upper interval end (97.5th percentile, one-sided at 2.5 %). ``n`` = test
    sentences."""
    chance = metric.replace("probe_acc", "probe_chance_acc")
    at = tidy[(tidy["state"] == state) & (tidy["layer"] == layer)]
    return null_verdict(at[at["metric"] == metric], at[at["metric"] == chance],
                        f"{metric} {state} layer {layer} vs permuted labels")


def null_verdict(observed: pd.DataFrame, null: pd.DataFrame, subject: str = "") -> Verdict:
    """Above-chance structure of a statistic with a permuted-label null stored as its own row (e.g.
    ``silhouette_cls`` against ``silhouette_perm_cls``, whose interval is the 2.5/97.5 % quantiles of the
    statistic over label permutations): "above chance" iff the observed value exceeds the null's upper
    interval end (a one-sided permutation test at 2.5 %, the rule of :func:`probe_chance_verdict`); "at
    chance" otherwise; "not measured" when either row is missing or NaN. One row each (same model, state,
    layer); ``n`` = the observed row's ``n``."""
    return _beyond_null(observed, null, "ci_high", subject,
                        lambda nr: {"null_value": float(nr["value"].iloc[0]), "null_upper": float(nr["ci_high"].iloc[0]),
                                    "layer": int(observed["layer"].iloc[0])})


def null_verdicts(tidy: pd.DataFrame, metric: str, null_metric: str, state: str,
                  model: str | None = None) -> list[Verdict]:
    """:func:`null_verdict` at every layer (``layer >= 0``) of ``metric`` for ``state`` (aggregate rows:
    pass ``Study.tidy``)."""
    rows = tidy[(tidy["state"] == state) & (tidy["layer"] >= 0)]
    if model is not None:
        rows = rows[rows["model"] == model]
    obs, null = rows[rows["metric"] == metric], rows[rows["metric"] == null_metric]
    return [null_verdict(o, null[(null["model"] == m) & (null["layer"] == layer)], f"{metric} {state}, {m} layer {layer}")
            for (m, layer), o in obs.groupby(["model", "layer"], sort=True)]


def correlation_verdict(row: pd.DataFrame, subject: str = "") -> Verdict:
    """A correlation (one tidy row with a 95 % interval, e.g. ``spearman_convergence_probe``):
    "significant" iff its interval excludes 0, "not significant" otherwise, "not measured" when the value
    or an interval end is NaN. The interval decides, not the p-value, so the printed interval and the
    verdict always agree. ``n``: the row's ``n`` (points correlated)."""
    if len(row) != 1:
        return Verdict("not measured", subject, row, 0, {"reason": "need one row"})
    r = row.iloc[0]
    value, low, high = float(r["value"]), float(r["ci_low"]), float(r["ci_high"])
    if not all(np.isfinite([value, low, high])):
        return Verdict("not measured", subject, row, int(r["n"]), {"reason": "undefined value or interval"})
    word = "significant" if low > 0 or high < 0 else "not significant"
    return Verdict(word, subject, row, int(r["n"]), {"value": value, "low": low, "high": high})
