"""The metric registry (what each metric of the tidy tables is, for readers: its family, reference definition,
description, short name, unit and range) and the margins; the table contract is re-exported from
:mod:`layerwise.core.tables`, where the computations read it.

Every module that writes or reads a result table takes its names from here; tests import them
instead of retyping them. The registry follows lm-evaluation-harness's metric specs: a metric is
declared once, with its family, whether it is per layer, what ``n`` counts, the reference definition
(in :mod:`layerwise.measure.metrics`, :mod:`layerwise.measure.stats` or :mod:`layerwise.measure.probes`) it implements and a
one-line description. ``docs/architecture.md`` and ``chapters/methods.qmd`` are checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


# The table contract lives in :mod:`layerwise.core.tables` (the computations import it from there, so that the
# registry's reader text below is outside every cache key); re-exported here for the words, the book and tests.
from .tables import (DEFAULT_POOLINGS, FIRST_TOKEN, LAST_TOKEN, MEAN_TOKENS, ORIGINAL_LAYERS,  # noqa: F401
                     P_VALUES, PER_SENTENCE_METRICS, POOL_SUFFIXES, POOLING_SPECS, POOLINGS, QUANTILES, RANGES,
                     STATES, VS_SUFFIXES, Pooling, pooling_of, TABLES, TIDY_COLUMNS, VARIANTS, adjusted_name, grid_layers, n_layers, state_order,
                     tidy_frame, tidy_row, value_range)


# ==================================================================================================
# The poolings: each declared once (name and how: core.tables.POOLING_SPECS; its words here)
# ==================================================================================================

@dataclass(frozen=True)
class PoolingWords:
    """How the report names a pooling: ``noun`` (chart titles, legends: "first token"), ``adjective``
    (prose: "the first-token probe"), ``description`` (Methods: what it takes from a sentence)."""

    noun: str
    adjective: str
    description: str


#: The words of each pooling of :data:`POOLINGS` (a test keeps the two equal).
POOLING_WORDS: dict[str, PoolingWords] = {
    FIRST_TOKEN: PoolingWords("first token", "first-token",
                              "the hidden state of the first non-padding token ([CLS] or <s> in an encoder)"),
    MEAN_TOKENS: PoolingWords("mean pooling", "mean-pooled",
                              "the mean of the hidden states of the non-padding tokens, special tokens included"),
    LAST_TOKEN: PoolingWords("last token", "last-token",
                             "the hidden state of the last non-padding token (a decoder's sentence summary: under "
                             "causal attention it is the only token that has seen the whole sentence)"),
}


def pooling_noun(pooling: str) -> str:
    """The chart words of a pooling ("first token", "mean pooling", "last token"); the name itself when undeclared."""
    return POOLING_WORDS[pooling].noun if pooling in POOLING_WORDS else pooling


def pooling_adjective(pooling: str) -> str:
    """The prose words of a pooling ("first-token", "mean-pooled", "last-token"); the name itself when undeclared."""
    return POOLING_WORDS[pooling].adjective if pooling in POOLING_WORDS else pooling


# ==================================================================================================
# The metric registry
# ==================================================================================================

@dataclass(frozen=True)
class MetricSpec:
    """One metric of the tidy table.

    ``name``: the base name (variants and poolings are suffixes, see :func:`lookup`); ``family``:
    the chapter section it belongs to; ``per_layer``: one row per layer (else ``layer == -1``);
    ``n``: what the row's ``n`` counts; ``definition``: ``module.function`` of the reference
    definition; ``suffixes``: the suffixes the name takes (``_content``, ``_std``, ``_<pooling>``);
    ``description``: one line for readers (Methods); ``label``: THE short name of the measure, the one chart
    titles, axes, legends and table rows use (:func:`label` adds the suffix's words); ``unit``: what its
    values count (:data:`UNITS`, an axis title when one chart draws several measures of one unit);
    ``range``: its declared bounds (:data:`RANGES`), None when unbounded.
    """

    name: str
    family: str
    per_layer: bool
    n: str
    definition: str
    description: str
    suffixes: tuple[str, ...] = ()
    label: str = ""
    unit: str = ""
    range: tuple[float, float] | None = None


_TOKEN = ("_content",)
_POOL = POOL_SUFFIXES
_VS = VS_SUFFIXES
_TEST = tuple(f"_{m}{v}" for m in PER_SENTENCE_METRICS for v in VARIANTS)

REGISTRY: tuple[MetricSpec, ...] = (
    # within-sentence token cosines (the original study's cosine analysis)
    MetricSpec("token_cosine_mean", "token cosines", True, "within-sentence token pairs",
               "metrics.pairwise_cosines_upper", "mean cosine over every within-sentence token pair", _TOKEN, label="mean token cosine"),
    MetricSpec("token_cosine_sd", "token cosines", True, "within-sentence token pairs",
               "metrics.pairwise_cosines_upper", "standard deviation of the within-sentence pair cosines", _TOKEN, label="SD of token cosines"),
    *(MetricSpec(f"token_cosine_{q}", "token cosines", True, "within-sentence token pairs",
                 "metrics.quantiles_from_histogram", f"{int(p * 100)}th percentile of the pair cosines", _TOKEN,
                 label=f"token cosine, {int(p * 100)}th percentile")
      for q, p in QUANTILES.items()),
    MetricSpec("token_cosine_min", "token cosines", True, "within-sentence token pairs",
               "metrics.pairwise_cosines_upper", "smallest within-sentence pair cosine", _TOKEN, label="min token cosine"),
    MetricSpec("token_cosine_max", "token cosines", True, "within-sentence token pairs",
               "metrics.pairwise_cosines_upper", "largest within-sentence pair cosine", _TOKEN, label="max token cosine"),
    MetricSpec("token_cosine_sentence_mean", "token cosines", True, "sentences",
               "metrics.pairwise_cosines_upper", "mean over sentences of each sentence's mean pair cosine", _TOKEN, label="token cosine"),
    MetricSpec("token_cosine_var_mean", "token cosines", True, "sentences",
               "metrics.pairwise_cosines_upper", "mean over sentences of each sentence's pair-cosine variance", _TOKEN, label="variance of token cosines"),
    # anisotropy
    MetricSpec("anisotropy_baseline", "anisotropy", True, "random cross-sentence token pairs",
               "metrics.paired_cosines", "mean cosine of random token pairs from different sentences",
               ("_content", "_std", "_std_content"), label="anisotropy baseline"),
    MetricSpec("intra_similarity", "anisotropy", True, "sentences", "metrics.intra_similarity",
               "mean cosine between a sentence's tokens and their mean (Ethayarajh 2019)", _TOKEN, label="intra-sentence similarity"),
    MetricSpec("token_cosine_adjusted", "anisotropy", True, "within-sentence token pairs",
               "metrics.pairwise_cosines_upper", "mean pair cosine minus the anisotropy baseline",
               ("_content", "_std", "_std_content"), label="adjusted token cosine"),
    MetricSpec("intra_similarity_adjusted", "anisotropy", True, "sentences", "metrics.intra_similarity",
               "intra-sentence similarity minus the anisotropy baseline", _TOKEN, label="adjusted intra-sentence sim."),
    MetricSpec("self_similarity", "anisotropy", True, "words (occurring in >= 5 sentences)", "metrics.self_similarity",
               "mean cosine between occurrences of the same word in different sentences (Ethayarajh 2019)", label="self-similarity"),
    MetricSpec("self_similarity_adjusted", "anisotropy", True, "words (occurring in >= 5 sentences)",
               "metrics.self_similarity", "self-similarity minus the content-token anisotropy baseline", label="adjusted self-similarity"),
    MetricSpec("token_cosine_mean_std", "anisotropy", True, "within-sentence token pairs (sampled sentences)",
               "metrics.standardise", "mean pair cosine after per-dimension standardisation", _TOKEN, label="standardised token cosine"),
    # spread
    MetricSpec("cov_trace", "spread", True, "sentences", "metrics.cov_trace",
               "mean over sentences of the trace of the token covariance", _TOKEN, label="covariance trace"),
    MetricSpec("cov_trace_scaled", "spread", True, "sentences", "metrics.cov_trace_scaled",
               "covariance trace divided by the mean squared token norm", _TOKEN, label="scale-free cov. trace"),
    MetricSpec("norm_mean", "spread", True, "tokens", "numpy.linalg.norm", "mean token vector norm", _TOKEN, label="mean token norm"),
    # dimensionality
    MetricSpec("erank", "dimensionality", True, "sampled tokens", "metrics.effective_rank",
               "effective rank of the centred token sample (Roy & Vetterli 2007)", _TOKEN, label="effective rank"),
    MetricSpec("erank_uncentred", "dimensionality", True, "sampled tokens", "metrics.effective_rank",
               "effective rank of the token sample, not centred", _TOKEN, label="uncentred effective rank"),
    MetricSpec("isoscore", "dimensionality", True, "sampled tokens", "metrics.isoscore",
               "IsoScore of the token sample (Rudman et al. 2022)", _TOKEN, label="IsoScore"),
    MetricSpec("rogue_top3_share", "rogue dimensions", True, "random cross-sentence token pairs",
               "metrics.cosine_contributions", "share of the mean random-pair cosine from the top 3 dimensions", _TOKEN, label="top-3 dimension share"),
    # similarity between states
    *(MetricSpec(f"cka_{p}_vs_pretrained", "similarity", True, "test sentences", "metrics.linear_cka",
                 f"linear CKA of {POOLING_WORDS[p].adjective} embeddings with the pretrained state at the same layer",
                 label="linear CKA")
      for p in POOLINGS),
    MetricSpec("cka_debiased", "similarity", True, "test sentences", "metrics.cka_from_grams",
               "debiased linear CKA (U-centred Grams) with the pretrained state at the same layer", _VS, label="debiased CKA"),
    MetricSpec("cka_std", "similarity", True, "test sentences", "metrics.standardise",
               "debiased linear CKA after per-dimension standardisation over the sentences", _VS, label="standardised CKA"),
    MetricSpec("procrustes", "similarity", True, "test sentences", "metrics.procrustes_similarity",
               "orthogonal Procrustes similarity, nuclear norm of X^T Y (Ding et al. 2021)", _VS, label="Procrustes similarity"),
    MetricSpec("procrustes_heldout", "similarity", True, "test sentences", "metrics.procrustes_similarity",
               "Procrustes rotation fitted on other sentences (probe pool), scored on the test sentences", _VS, label="held-out Procrustes"),
    MetricSpec("mutual_knn", "similarity", True, "test sentences", "metrics.mutual_knn",
               "mutual 10-nearest-neighbour alignment (Huh et al. 2024); chance k/(n-1)", _VS, label="mutual k-NN"),
    *(MetricSpec(f"{m}_null_{stat}", "similarity", True, "permutations of the test sentences",
                 "similarity.same_layer_similarities", f"{label} of {m} with the sentence rows of one side shuffled",
                 _VS, label=f"{m} null, {stat}")
      for m in ("cka", "cka_debiased", "procrustes", "mutual_knn")
      for stat, label in (("mean", "mean"), ("q95", "95th percentile"))),
    # between fine-tuning seeds (seeds.between_seed_rows): one row per pair of seeds, seed = the pair's first
    *(MetricSpec(f"{m}_{pool}_between_seeds", "similarity", True, "test sentences", definition,
                 f"{label} between two fine-tuning seeds at the same layer ({pool} pooling), one row per pair of seeds",
                 label=f"{m}, seed vs seed ({pool})")
      for m, definition, label in (("cka", "metrics.linear_cka", "linear CKA"),
                                   ("cka_debiased", "metrics.cka_from_grams", "debiased linear CKA"),
                                   ("cka_std", "metrics.standardise", "debiased CKA of standardised embeddings"),
                                   ("procrustes", "metrics.procrustes_similarity", "Procrustes similarity"),
                                   ("mutual_knn", "metrics.mutual_knn", "mutual k-NN alignment"))
      for pool in POOLINGS),
    # probes
    MetricSpec("probe_acc", "probes", True, "test sentences", "probes.probe_accuracy",
               "logistic-regression probe accuracy", _POOL, label="linear probe"),
    MetricSpec("mlp_probe_acc", "probes", True, "test sentences", "probes.mlp_probe_accuracy",
               "the original study's dense+tanh probe accuracy", _POOL, label="MLP probe"),
    MetricSpec("probe_chance_acc", "probes", True, "test sentences", "probes.probe_accuracy",
               "chance baseline: the probe trained on permuted labels, scored on the true labels", _POOL, label="chance (permuted labels)"),
    MetricSpec("control_acc", "probes", True, "covered test sentences", "controls.control_task_accuracy",
               "control task (Hewitt & Liang 2019): labels a random function of the first content word", _POOL, label="control task"),
    MetricSpec("selectivity", "probes", True, "covered test sentences", "probes.selectivity",
               "probe accuracy minus control-task accuracy on the same test sentences (Hewitt & Liang 2019)", _POOL, label="selectivity"),
    MetricSpec("control_coverage", "probes", False, "test sentences", "controls.covered",
               "share of test sentences whose key type occurs at least twice in the probe pool", label="control coverage"),
    MetricSpec("probe_majority_baseline", "probes", False, "test sentences", "stats.majority_baseline",
               "accuracy of always answering the most frequent probe-pool class", label="majority class"),
    MetricSpec("lexical_probe_acc", "probes", False, "test sentences", "controls.lexical_probe_accuracy",
               "lexical baseline: TF-IDF word 1-2-gram logistic regression on the same sentences", label="lexical baseline"),
    MetricSpec("mdl_compression", "probes", True, "probe-pool sentences per code", "mdl.mdl_subsampled",
               "online-code MDL compression on the probe pool (Voita & Titov 2020)", _POOL, label="MDL compression"),
    # memorisation: the same probe and code on fine-tuning sentences, at equal n
    MetricSpec("probe_acc_seen", "memorisation", True, "test sentences", "probes.probe_accuracy",
               "probe accuracy when trained on fine-tuning sentences (as many as the probe pool)", _POOL, label="probe, fine-tuning sentences"),
    MetricSpec("mdl_compression_seen", "memorisation", True, "fine-tuning sentences per code", "mdl.mdl_subsampled",
               "MDL compression coded on fine-tuning sentences (as many as the probe pool's code)", _POOL, label="MDL, fine-tuning sentences"),
    # class geometry
    MetricSpec("silhouette", "class geometry", True, "test sentences", "probes.class_geometry",
               "silhouette of the two classes, cosine distance (Rousseeuw 1987)", _POOL, label="silhouette"),
    MetricSpec("silhouette_perm", "class geometry", True, "test sentences", "probes.class_geometry",
               "silhouette with permuted labels (null)", _POOL, label="silhouette, permuted labels"),
    MetricSpec("centroid_angle", "class geometry", True, "test sentences", "probes.class_geometry",
               "angle in degrees between the class centroids", _POOL, label="centroid angle"),
    MetricSpec("centroid_margin", "class geometry", True, "test sentences", "probes.class_geometry",
               "mean cosine to the own-class minus the other-class centroid", _POOL, label="centroid margin"),
    # state comparisons and correlations
    MetricSpec("effect", "tests", True, "test sentences (paired)", "stats.permutation_test",
               "mean paired difference, state minus pretrained", _TEST, label="mean paired difference"),
    MetricSpec("rank_biserial", "tests", True, "test sentences (paired)", "stats.rank_test",
               "rank-biserial effect size of the Wilcoxon signed-rank test (Kerby 2014)", _TEST, label="rank-biserial"),
    MetricSpec("test_p", "tests", True, "test sentences (paired)", "stats.rank_test",
               "p-value of the Wilcoxon signed-rank test", _TEST, label="p-value"),
    MetricSpec("test_p_holm", "tests", True, "test sentences (paired)", "stats.holm",
               "Holm-adjusted p-value, one family: every test of the study (stats.adjust_family)", _TEST, label="Holm p-value"),
    MetricSpec("reference_sd", "tests", True, "test sentences", "numpy.std",
               "between-sentence SD of the per-sentence metric in the reference (pretrained) state", _TEST, label="reference SD"),
    MetricSpec("spearman_convergence_probe", "tests", False, "layers", "stats.spearman_ci",
               "Spearman correlation between mean token cosine and probe accuracy across layers", label="cosine-probe correlation"),
    MetricSpec("spearman_convergence_probe_p", "tests", False, "layers", "stats.spearman_ci",
               "exact permutation p-value of that correlation", label="correlation p-value"),
    MetricSpec("spearman_convergence_probe_p_holm", "tests", False, "layers", "stats.holm",
               "that p-value, Holm-adjusted with every other test of the study (stats.adjust_family)", label="correlation Holm p"),
)

_BY_NAME = {m.name: m for m in REGISTRY}


def lookup(metric: str) -> MetricSpec:
    """The registry entry of a tidy metric name (base name plus one of its declared suffixes);
    ``KeyError`` for an undeclared name."""
    if metric in _BY_NAME:
        return _BY_NAME[metric]
    for spec in sorted(REGISTRY, key=lambda m: -len(m.name)):
        if metric.startswith(spec.name) and metric[len(spec.name):] in spec.suffixes:
            return spec
    raise KeyError(f"metric {metric!r} is not declared in layerwise.core.schema.REGISTRY")


#: The registry entry of each per-sentence metric (``per_sentence`` table; the state tests' suffixes).
PER_SENTENCE_SPECS = {"token_cosine": "token_cosine_sentence_mean", "token_cosine_var": "token_cosine_var_mean",
                      "intra_similarity": "intra_similarity", "cov_trace": "cov_trace",
                      "cov_trace_scaled": "cov_trace_scaled"}
#: Words of the name suffixes, for :func:`label`.
SUFFIX_WORDS = {"_content": "content tokens", "_std": "standardised", "_std_content": "standardised, content tokens",
                **{f"_{p}": w.noun for p, w in POOLING_WORDS.items()},
                **{f"_{p}_vs_pretrained": w.noun for p, w in POOLING_WORDS.items()}}


def label(metric: str, suffix_words: bool = True) -> str:
    """THE short name of a tidy metric or a per-sentence metric (``token_cosine_var_content``): the
    registry's ``label``, with the suffix's words in parentheses (a pooling's not with ``suffix_words=False``:
    a chart whose title names the pooling); the name itself when undeclared."""
    base, suffix = metric, ""
    if metric not in _BY_NAME and metric not in PER_SENTENCE_SPECS:
        for s in sorted(SUFFIX_WORDS, key=len, reverse=True):
            stem = metric[:-len(s)]
            if metric.endswith(s) and (s in VARIANTS and stem in PER_SENTENCE_SPECS
                                       or stem in _BY_NAME and s in _BY_NAME[stem].suffixes):
                base, suffix = stem, s
                break
    name = PER_SENTENCE_SPECS.get(base, base)
    if name not in _BY_NAME:
        return metric
    text = _BY_NAME[name].label
    pooling_only = suffix in (*_POOL, *_VS)
    return f"{text} ({SUFFIX_WORDS[suffix]})" if suffix and (suffix_words or not pooling_only) else text


def registry_markdown() -> str:
    """The registry as a Markdown table (docs/architecture.md holds this text between the markers
    ``<!-- registry:start -->`` and ``<!-- registry:end -->``; a test keeps them equal)."""
    lines = ["| metric | label | unit | range | suffixes | family | per layer | n counts | definition | description |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in REGISTRY:
        suffixes = ", ".join(f"`{s}`" for s in m.suffixes) or "-"
        bounds = f"[{m.range[0]:g}, {m.range[1]:g}]" if m.range else "-"
        lines.append(f"| `{m.name}` | {m.label} | {m.unit} | {bounds} | {suffixes} | {m.family} | "
                     f"{'yes' if m.per_layer else 'no'} | {m.n} | `{m.definition}` | {m.description} |")
    return "\n".join(lines)


# ==================================================================================================
# Margins: the delta of each judged statistic (issue 22), declared before looking at the data
# ==================================================================================================

@dataclass(frozen=True)
class Margin:
    """The margin delta of a statistic in the answer model of :func:`layerwise.words.claims.difference_outcome`:
    a difference within +-delta is too small to matter. ``value``: in the statistic's natural units, or,
    when ``relative``, a fraction of the pretrained value at that layer (statistics whose scale depends on
    the model); ``why``: the one-line justification that chapters/methods.qmd prints."""

    value: float
    why: str
    relative: bool = False

    def text(self) -> str:
        """How Methods prints it: ``0.05`` or ``10% of the pretrained value``."""
        return f"{self.value:.0%} of the pretrained value" if self.relative else f"{self.value:g}"

    def delta(self, reference: float) -> float:
        """delta at a layer: ``value``, or ``value x |reference|`` when relative (NaN reference: NaN)."""
        return self.value * abs(float(reference)) if self.relative else self.value


_COSINE = "a cosine lies in [-1, 1]; 0.05 is 2.5% of that range, below what the cosine charts let a reader separate"
_SCALE = "its scale depends on the model (width, norms), so the margin is 10% of the pretrained value"
#: delta per registry name (base name; suffixes share it). Every statistic the Findings judge has one.
MARGINS: dict[str, Margin] = {
    "token_cosine_sentence_mean": Margin(0.05, _COSINE),
    "token_cosine_var_mean": Margin(0.10, "a spread of cosines; " + _SCALE, relative=True),
    "intra_similarity": Margin(0.05, _COSINE),
    "cov_trace": Margin(0.10, "a spread in squared-norm units; " + _SCALE, relative=True),
    "cov_trace_scaled": Margin(0.10, "a ratio whose level depends on the model; " + _SCALE, relative=True),
    "token_cosine_adjusted": Margin(0.05, _COSINE),
    "anisotropy_baseline": Margin(0.05, _COSINE),
    "self_similarity": Margin(0.05, _COSINE),
    "self_similarity_adjusted": Margin(0.05, _COSINE),
    "rogue_top3_share": Margin(0.05, "a share in [0, 1]: five percentage points of the cosine"),
    "norm_mean": Margin(0.10, "a norm; " + _SCALE, relative=True),
    "erank": Margin(0.10, "a dimension count bounded by the model's width; " + _SCALE, relative=True),
    "isoscore": Margin(0.05, "a score in [0, 1]: 5% of its range"),
    "silhouette": Margin(0.05, "in [-1, 1]; a fifth of 0.25, below which Kaufman and Rousseeuw (1990) see no "
                               "substantial class structure"),
    "centroid_angle": Margin(5.0, "degrees in [0, 180]: a 5° turn of the class centroids"),
    "mdl_compression": Margin(0.05, "a ratio to the uniform code's length: 5% of that length"),
    "probe_acc": Margin(0.03, "three accuracy points, the declared accuracy margin, below the seed-to-seed spread "
                              "of BERT fine-tuning on small tasks (Dodge et al. 2020)"),
    "cka_debiased": Margin(0.05, "a similarity to pretrained within 0.05 of the similarity between fine-tuning "
                                 "seeds is no change (the seeds set what 'the same' means)"),
}


def margin(metric: str) -> Margin | None:
    """The declared margin of a tidy metric, a per-sentence metric (``token_cosine_var_content``) or its
    paired effect (``effect_token_cosine``); None when none is declared."""
    name = metric[len("effect_"):] if metric.startswith("effect_") else metric
    stem = name[:-len("_content")] if name.endswith("_content") else name
    if stem in PER_SENTENCE_SPECS:
        return MARGINS.get(PER_SENTENCE_SPECS[stem])
    try:
        return MARGINS.get(lookup(name).name)
    except KeyError:
        return None


def margins_markdown() -> str:
    """The margins as the Methods table (chapters/methods.qmd holds this text between
    ``<!-- margins:start -->`` and ``<!-- margins:end -->``; a test keeps them equal)."""
    lines = ["| statistic | δ | why |", "|---|---|---|"]
    lines += [f"| {_BY_NAME[name].label} | {m.text()} | {m.why} |" for name, m in MARGINS.items()]
    return "\n".join(lines)


#: The unit of each measure: its family's (:data:`_FAMILY_UNITS`) unless :data:`_UNITS` names another. A chart
#: that draws several measures of one unit titles its y axis with that unit, and its legend names the measures.
_FAMILY_UNITS = {"token cosines": "cosine", "anisotropy": "cosine", "rogue dimensions": "share",
                 "similarity": "similarity", "probes": "accuracy", "memorisation": "accuracy"}
_UNITS = {"token_cosine_sd": "cosine", "token_cosine_var_mean": "variance of cosines",
          "cov_trace": "squared norm", "cov_trace_scaled": "ratio", "norm_mean": "L2 norm",
          "erank": "dimensions", "erank_uncentred": "dimensions", "isoscore": "score",
          "control_coverage": "share", "mdl_compression": "compression ratio", "mdl_compression_seen": "compression ratio",
          "selectivity": "accuracy difference", "silhouette": "silhouette", "silhouette_perm": "silhouette",
          "centroid_angle": "degrees", "centroid_margin": "cosine", "effect": "the measure's unit",
          "rank_biserial": "effect size", "test_p": "p-value", "test_p_holm": "p-value", "reference_sd": "the measure's unit",
          "spearman_convergence_probe": "correlation", "spearman_convergence_probe_p": "p-value",
          "spearman_convergence_probe_p_holm": "p-value"}
REGISTRY = tuple(replace(m, unit=_UNITS.get(m.name) or _FAMILY_UNITS[m.family], range=RANGES.get(m.name))
                 for m in REGISTRY)
_BY_NAME = {m.name: m for m in REGISTRY}


def unit(metric: str) -> str:
    """The unit of a tidy or per-sentence metric (:data:`REGISTRY`); "" when undeclared."""
    name = PER_SENTENCE_SPECS.get(metric.removesuffix("_content"), metric)
    try:
        return lookup(name).unit
    except KeyError:
        return ""
