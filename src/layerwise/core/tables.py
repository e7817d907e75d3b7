"""The table contract of every computation: the tidy columns and their types, the model states and their
order, the variants and poolings, the original study's probe layers, the tables of a study, the p-values and
their adjusted metrics, and the declared range of each bounded statistic.

The computations (:mod:`layerwise.measure`, :mod:`layerwise.inputs`, :mod:`layerwise.model`,
:mod:`layerwise.study`) import their names from here, never from :mod:`layerwise.core.schema`: the registry's
reader text (labels, units, descriptions, margins' wording) lives there, outside every cache key, so editing
a label changes no step's key (issue 21). :mod:`layerwise.core.schema` re-exports everything of this module,
and a test keeps :data:`_SUFFIXES` equal to the registry's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns of the tidy results table, in order (one row per model, state, layer, metric).
TIDY_COLUMNS = ["model", "state", "layer", "metric", "value", "ci_low", "ci_high", "n"]
_TIDY_DTYPES = {"model": str, "state": str, "layer": np.int64, "metric": str, "value": np.float64,
                "ci_low": np.float64, "ci_high": np.float64, "n": np.int64}
#: Model states in their canonical order (charts, tables and prose all use it).
STATES = ("pretrained", "finetuned", "random")


@dataclass(frozen=True)
class Pooling:
    """One sentence pooling of the stored embeddings, declared once (its reader words are
    :data:`layerwise.core.schema.POOLING_WORDS`, outside every cache key).

    ``name``: the stored key (the npz array, the metric suffix ``_<name>``, e.g. ``probe_acc_mean``);
    ``how``: what it takes from a padded batch, under left or right padding alike (:mod:`layerwise.measure.pooling`):
    ``"first"`` the first non-padding token, ``"mean"`` the mean over the non-padding tokens (special tokens
    included), ``"last"`` the last non-padding token."""

    name: str
    how: str


#: The stored names of the poolings (the keys of every cache entry, chapter and table written so far: unchanged).
FIRST_TOKEN, MEAN_TOKENS, LAST_TOKEN = "cls", "mean", "last"
#: Every pooling the study knows, by stored name.
POOLING_SPECS: dict[str, Pooling] = {p.name: p for p in (Pooling(FIRST_TOKEN, "first"), Pooling(MEAN_TOKENS, "mean"),
                                                          Pooling(LAST_TOKEN, "last"))}
#: Sentence poolings of the stored embeddings (their names, declaration order); a study stores the subset
#: ``analysis.poolings`` resolves to (``model.models.study_poolings``), its primary pooling first.
POOLINGS = tuple(POOLING_SPECS)
#: The poolings a model that declares none gets, by kind: an encoder's first token (its [CLS]) and mean, a
#: decoder's last token (the only one that has seen the whole sentence under causal attention) and mean.
DEFAULT_POOLINGS = {"encoder": (FIRST_TOKEN, MEAN_TOKENS), "decoder": (LAST_TOKEN, MEAN_TOKENS)}
#: Metric suffixes of the pooled measures: ``_<pooling>`` and ``_<pooling>_vs_pretrained``.
POOL_SUFFIXES = tuple(f"_{p}" for p in POOLINGS)
VS_SUFFIXES = tuple(f"_{p}_vs_pretrained" for p in POOLINGS)


def pooling_of(metric: str) -> str | None:
    """The pooling a tidy metric name is about (``probe_acc_mean`` -> ``mean``,
    ``cka_cls_vs_pretrained`` -> ``cls``, ``cka_debiased_last_between_seeds`` -> ``last``); None for others."""
    for p in POOLINGS:
        if metric.endswith(f"_{p}") or f"_{p}_vs_pretrained" in metric or metric.endswith(f"_{p}_between_seeds"):
            return p
    return None
#: Token variants of the geometry metrics: every valid token, special tokens excluded.
VARIANTS = ("", "_content")
#: Per-sentence metrics of the geometry engine (``per_sentence`` table, state comparisons).
PER_SENTENCE_METRICS = ("token_cosine", "token_cosine_var", "intra_similarity", "cov_trace", "cov_trace_scaled")
#: Quantiles of the within-sentence cosine distribution (name -> probability).
QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.50, "q75": 0.75, "q95": 0.95}
#: The layers of the original (student) study's probe grid (BERT-base depth: 12 layers).
ORIGINAL_LAYERS = (5, 7, 9, 11, 12)
#: The tables of a study (``study.write_study``), each a Parquet file.
TABLES = ("tidy", "per_sentence", "cosine_sample", "rogue", "cka", "cones", "probe_correct", "tidy_seeds", "beyond")

#: The analyses beyond the two end points (issue 27), rows of the ``beyond`` table: how each layer moved during
#: fine-tuning (``trajectory``), task accuracy with layers set back to their pretrained weights (``swap``),
#: probes for properties of the sentence itself (``auxiliary``) and the primary statistics per domain (``domain``).
BEYOND_ANALYSES = ("trajectory", "swap", "auxiliary", "domain")
#: Columns of the ``beyond`` table: ``group`` is the swap kind, the auxiliary task or the domain ("" for the
#: trajectory); ``seed`` the fine-tuning seed (NA: a pretrained row, or a value over seeds); ``checkpoint`` the
#: fraction of training (NaN outside the trajectory).
BEYOND_COLUMNS = ["model", "analysis", "group", "state", "seed", "checkpoint", "layer", "metric", "value",
                  "ci_low", "ci_high", "n"]
_BEYOND_DTYPES = {"model": str, "analysis": str, "group": str, "state": str, "seed": "Int64",
                  "checkpoint": np.float64, "layer": np.int64, "metric": str, "value": np.float64,
                  "ci_low": np.float64, "ci_high": np.float64, "n": np.int64}


def beyond_row(model: str, analysis: str, group: str, state: str, seed: int | None, layer: int, metric: str,
               value: float, ci_low: float = np.nan, ci_high: float = np.nan, n: int = 0,
               checkpoint: float = np.nan) -> dict:
    """One row of the ``beyond`` table (:data:`BEYOND_COLUMNS`)."""
    if analysis not in BEYOND_ANALYSES:
        raise ValueError(f"unknown analysis {analysis!r} (one of {BEYOND_ANALYSES})")
    return {"model": model, "analysis": analysis, "group": group, "state": state,
            "seed": pd.NA if seed is None else int(seed), "checkpoint": float(checkpoint), "layer": int(layer),
            "metric": metric, "value": float(value), "ci_low": float(ci_low), "ci_high": float(ci_high), "n": int(n)}


def beyond_frame(rows: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows -> the ``beyond`` table with its columns and dtypes (an empty frame keeps them)."""
    df = rows[BEYOND_COLUMNS] if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=BEYOND_COLUMNS)
    return df.astype(_BEYOND_DTYPES)


def state_order(values: Iterable) -> list[str]:
    """Known states in the canonical order, then any other value sorted."""
    present = list(dict.fromkeys(str(v) for v in values))
    return [s for s in STATES if s in present] + sorted(s for s in present if s not in STATES)


def grid_layers(wanted: Sequence[int], n_layers: int) -> list[int]:
    """The original study's grid layers (``wanted``, e.g. ``params.analysis.original_layers``) that a
    model with ``n_layers`` hidden states (embedding output included) has, plus its last layer; at
    least three layers (evenly spaced ones are added to shallow models)."""
    last = n_layers - 1
    layers = {int(v) for v in wanted if 0 <= int(v) <= last} | {last}
    if len(layers) < 3:
        layers |= {round(last / 3), round(2 * last / 3)}
    return sorted(layers)


def n_layers(tidy: pd.DataFrame) -> int:
    """Hidden states per model in a tidy table (embedding output included): max layer + 1."""
    return int(tidy.loc[tidy["layer"] >= 0, "layer"].max()) + 1


def tidy_row(model: str, state: str, layer: int, metric: str, value: float, ci_low: float = np.nan,
             ci_high: float = np.nan, n: int = 0) -> dict:
    """One row of the tidy results table."""
    return {"model": model, "state": state, "layer": int(layer), "metric": metric, "value": float(value),
            "ci_low": float(ci_low), "ci_high": float(ci_high), "n": int(n)}


def tidy_frame(rows: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows -> tidy DataFrame with the contract's columns and dtypes (an empty frame keeps them)."""
    df = rows[TIDY_COLUMNS] if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=TIDY_COLUMNS)
    return df.astype(_TIDY_DTYPES)


#: The p-values of the tidy tables and the metric holding each one's adjusted value: ONE correction
#: family covers every row of these metrics in a study (:func:`layerwise.measure.stats.adjust_family`); a new
#: test's p-value metric is declared here (base names; the suffix of a row carries over).
P_VALUES = {"test_p": "test_p_holm", "spearman_convergence_probe_p": "spearman_convergence_probe_p_holm"}


def adjusted_name(metric: str) -> str | None:
    """The metric holding the adjusted value of a raw p-value metric (:data:`P_VALUES`, the base name plus one
    of its declared suffixes), else None."""
    for raw in sorted(P_VALUES, key=len, reverse=True):
        if metric.startswith(raw) and metric[len(raw):] in ("", *_SUFFIXES[raw]):
            return P_VALUES[raw] + metric[len(raw):]
    return None


#: The range of each bounded statistic (registry base name -> (low, high)); its intervals are kept inside
#: it and around their estimate (:func:`layerwise.measure.stats.respect_range`; Methods, "Intervals").
RANGES: dict[str, tuple[float, float]] = {
    **{name: (-1.0, 1.0) for name in ("token_cosine_mean", "token_cosine_sentence_mean", "anisotropy_baseline",
                                      "intra_similarity", "self_similarity", "token_cosine_mean_std", "silhouette",
                                      "silhouette_perm", "centroid_margin", "cka_debiased", "cka_std")},
    **{name: (0.0, 1.0) for name in ("isoscore", "rogue_top3_share", *(f"cka{v}" for v in VS_SUFFIXES),
                                     "procrustes", "procrustes_heldout", "mutual_knn", "probe_acc", "mlp_probe_acc",
                                     "probe_chance_acc", "control_acc", "probe_acc_seen", "lexical_probe_acc")},
    "centroid_angle": (0.0, 180.0),
}

#: The declared suffixes of the registry names of :data:`RANGES` and :data:`P_VALUES` (the structure the
#: computations need; equal to :data:`layerwise.core.schema.REGISTRY`'s, a test checks).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    'token_cosine_mean': ('_content',),
    'token_cosine_sentence_mean': ('_content',),
    'anisotropy_baseline': ('_content', '_std', '_std_content'),
    'intra_similarity': ('_content',),
    'self_similarity': (),
    'token_cosine_mean_std': ('_content',),
    'silhouette': POOL_SUFFIXES,
    'silhouette_perm': POOL_SUFFIXES,
    'centroid_margin': POOL_SUFFIXES,
    'cka_debiased': VS_SUFFIXES,
    'cka_std': VS_SUFFIXES,
    'isoscore': ('_content',),
    'rogue_top3_share': ('_content',),
    **{f"cka{v}": () for v in VS_SUFFIXES},
    'procrustes': VS_SUFFIXES,
    'procrustes_heldout': VS_SUFFIXES,
    'mutual_knn': VS_SUFFIXES,
    'probe_acc': POOL_SUFFIXES,
    'mlp_probe_acc': POOL_SUFFIXES,
    'probe_chance_acc': POOL_SUFFIXES,
    'control_acc': POOL_SUFFIXES,
    'probe_acc_seen': POOL_SUFFIXES,
    'lexical_probe_acc': (),
    'centroid_angle': POOL_SUFFIXES,
    'test_p': ('_token_cosine', '_token_cosine_content', '_token_cosine_var', '_token_cosine_var_content', '_intra_similarity', '_intra_similarity_content', '_cov_trace', '_cov_trace_content', '_cov_trace_scaled', '_cov_trace_scaled_content'),
    'spearman_convergence_probe_p': (),
}


def _base(metric: str) -> str | None:
    """The registry name of :data:`_SUFFIXES` that ``metric`` is (the name plus one of its suffixes), longest
    first; None for any other metric."""
    for name in sorted(_SUFFIXES, key=len, reverse=True):
        if metric.startswith(name) and metric[len(name):] in ("", *_SUFFIXES[name]):
            return name
    return None


def value_range(metric: str) -> tuple[float, float] | None:
    """The declared range of a tidy metric (:data:`RANGES`), or None when it is unbounded or undeclared.
    Between-seed rows share their measure's range."""
    name = metric
    for m in ("cka_debiased", "cka_std", "procrustes", "mutual_knn"):
        if metric.startswith(m + "_") and metric.endswith("_between_seeds"):
            return RANGES.get(m)
    if metric.startswith("cka_") and metric.endswith("_between_seeds"):
        return (0.0, 1.0)
    name = _base(metric)
    return RANGES.get(name) if name else None
