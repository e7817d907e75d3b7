"""State comparisons as tidy rows: per-sentence paired tests of every state against the reference
(effect with its bootstrap CI, rank-biserial effect size, raw p-value, the reference state's
between-sentence SD that sets the negligibility threshold of :mod:`layerwise.words.claims`) and the
convergence-vs-performance correlation across layers. The tests and intervals themselves are
:mod:`layerwise.measure.stats`; the p-values are adjusted as one family by :func:`layerwise.measure.stats.adjust_family`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..core.errors import LayerwiseError
from ..core.tables import FIRST_TOKEN, PER_SENTENCE_METRICS, VARIANTS, tidy_frame, tidy_row
from .stats import bootstrap_mean_ci, permutation_test, rank_test, spearman_ci



def _compared_metrics(per_sentence: pd.DataFrame, metrics: Sequence[str] | None, test: str) -> list[str]:
    """The per-sentence metrics to compare (checked against the table), after checking its columns."""
    where = "compare_states_per_sentence"
    missing = {"model", "state", "layer", "sentence", "metric", "value"} - set(per_sentence.columns)
    if missing:
        raise LayerwiseError(f"per-sentence table lacks columns {sorted(missing)}", where=where,
                             fix="pass the per_sentence table of the geometry engine")
    if test not in ("wilcoxon", "permutation"):
        raise LayerwiseError(f"unknown test {test!r}", where=where, fix="use 'wilcoxon' or 'permutation'")
    present = set(per_sentence["metric"].unique())
    if metrics is None:
        return [m for base in PER_SENTENCE_METRICS for m in (f"{base}{v}" for v in VARIANTS) if m in present]
    unknown = [m for m in metrics if m not in present]
    if unknown:
        raise LayerwiseError(f"metrics {unknown} are not in the per-sentence table", where=where,
                             fix=f"choose among {sorted(present)}")
    return list(metrics)


def _paired_layer_tests(pairs: pd.DataFrame, state: str, reference: str, *, n_boot: int, seed: int, test: str,
                        n_perm: int, level: float) -> list[tuple]:
    """Per layer of ``pairs`` (index layer, sentence; columns the two states): ``(layer, p, mean
    difference, low, high, rank-biserial, n, reference SD)``; layers with fewer than two complete pairs
    are skipped. The reference SD is the between-sentence SD (ddof 1) of the reference state's values."""
    out = []
    for layer, w in pairs.groupby(level="layer", sort=True):
        a, b = w[state].to_numpy(np.float64), w[reference].to_numpy(np.float64)
        ok = ~(np.isnan(a) | np.isnan(b))
        a, b = a[ok], b[ok]
        if a.size < 2:
            continue
        rk = rank_test(a, b, paired=True)
        p = rk.p if test == "wilcoxon" else permutation_test(a, b, n_perm=n_perm, seed=seed, paired=True).p
        est, lo, hi = bootstrap_mean_ci(a - b, n_boot=n_boot, level=level, seed=seed + int(layer))
        out.append((int(layer), p, est, lo, hi, rk.effect, a.size, float(b.std(ddof=1))))
    return out


def compare_states_per_sentence(per_sentence: pd.DataFrame, reference: str = "pretrained",
                                metrics: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
                                test: str = "wilcoxon", n_perm: int = 9999, level: float = 0.95) -> pd.DataFrame:
    """Each state against ``reference``, per model, layer and per-sentence metric, as tidy rows.

    ``per_sentence`` has columns model, state, layer, sentence, metric, value (one value per test
    sentence, e.g. ``token_cosine`` = the sentence's mean pairwise token cosine). The same sentences are
    measured in every state, so the comparison is paired by ``sentence``: for d_i = value(state) -
    value(reference),

    * ``test_p_<metric>``: two-sided p-value of the Wilcoxon signed-rank test on d (``test="wilcoxon"``,
      default) or of the sign-flip permutation test of mean(d) (``test="permutation"``, ``n_perm``);
    * ``test_p_holm_<metric>`` is NOT written here: :func:`adjust_family` adjusts every p-value of the
      study in one family (the pipeline calls it once on the whole tidy table);
    * ``reference_sd_<metric>``: the between-sentence SD of the reference state at that layer (the scale of
      the negligible-effect threshold of :mod:`layerwise.words.claims`);
    * ``effect_<metric>``: mean(d), with a percentile bootstrap CI over sentences (``n_boot``);
    * ``rank_biserial_<metric>``: matched-pairs rank-biserial correlation of d (scale-free, in [-1, 1]).

    Token cosines are compared through their per-sentence means: the pairwise cosines of one sentence are
    not independent, so a test on the pooled pairs would be anti-conservative. ``n`` is the number of
    paired sentences. ``metrics=None`` takes ``schema.PER_SENTENCE_METRICS`` in their ``schema.VARIANTS``
    (all tokens, ``_content``) that are present.

    (Not to be confused with the linear CKA between states of the geometry engine: this one tests
    per-sentence statistics.)
    """
    metrics = _compared_metrics(per_sentence, metrics, test)
    rows: list[dict] = []
    df = per_sentence[per_sentence["metric"].isin(list(metrics))]
    for (model, metric), g in df.groupby(["model", "metric"], sort=True):
        wide = g.pivot_table(index=["layer", "sentence"], columns="state", values="value", aggfunc="first")
        if reference not in wide.columns:
            continue
        for state in [s for s in wide.columns if s != reference]:
            layer_rows = _paired_layer_tests(wide[[reference, state]], state, reference, n_boot=n_boot, seed=seed,
                                             test=test, n_perm=n_perm, level=level)
            if not layer_rows:
                continue
            for layer, p, est, lo, hi, rb, n, sd in layer_rows:
                rows += [tidy_row(model, state, layer, f"test_p_{metric}", p, n=n),
                         tidy_row(model, state, layer, f"effect_{metric}", est, lo, hi, n),
                         tidy_row(model, state, layer, f"rank_biserial_{metric}", rb, n=n),
                         tidy_row(model, state, layer, f"reference_sd_{metric}", sd, n=n)]
    return tidy_frame(rows)


def convergence_correlation(tidy: pd.DataFrame, x_metric: str = "token_cosine_mean", y_metric: str = f"probe_acc_{FIRST_TOKEN}",
                            method: str = "fisher", n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                            name: str = "spearman_convergence_probe") -> pd.DataFrame:
    """The original study's question, "is the convergence of the cosines through the layers linked to
    classification performance?", as a Spearman correlation across layers, per model and state.

    For each (model, state) holding both ``x_metric`` and ``y_metric`` on at least 4 common layers:
    rho = Spearman(x over layers, y over layers), with its CI (``spearman_ci``; Fisher/Bonett-Wright by
    default since there are only L+1 points) -> metric ``name`` (layer -1, n = number of layers), and its
    two-sided p-value -> metric ``<name>_p``. A monotone trend shared by both curves is enough for a
    high rho: it is a description of co-variation across layers, not evidence of a causal link.
    """
    rows: list[dict] = []
    if not {"model", "state", "layer", "metric", "value"} <= set(tidy.columns):
        raise LayerwiseError("tidy table lacks the schema's columns", where="convergence_correlation",
                             fix="pass the concatenated tidy tables of the geometry engine and the probes")
    sub = tidy[tidy["metric"].isin([x_metric, y_metric]) & (tidy["layer"] >= 0)]
    for (model, state), g in sub.groupby(["model", "state"], sort=True):
        wide = g.pivot_table(index="layer", columns="metric", values="value", aggfunc="first")
        if x_metric not in wide.columns or y_metric not in wide.columns:
            continue
        wide = wide[[x_metric, y_metric]].dropna()
        if len(wide) < 4:
            continue
        rho, p, lo, hi = spearman_ci(wide[x_metric].to_numpy(), wide[y_metric].to_numpy(), n_boot=n_boot,
                                     seed=seed, level=level, method=method)
        rows.append(tidy_row(model, state, -1, name, rho, lo, hi, len(wide)))
        rows.append(tidy_row(model, state, -1, f"{name}_p", p, n=len(wide)))
    return tidy_frame(rows)
