"""The geometry engine: ONE forward pass per batch feeds every layer-wise statistic of one model state.

For every hidden state (layer 0 = embedding output, then each layer) :func:`run_state` computes, with
padding excluded everywhere (``_content`` variants also exclude special tokens): within-sentence token
cosines (exact count / mean / sd / min / max, histogram quantiles at most one bin width, 6.1e-5, off, a
uniform sample of pair values, each sentence's mean and variance); intra-sentence similarity, the
anisotropy baseline (token-uniform) and the adjusted scores; the self-similarity of frequent words
(their occurrence vectors, gathered in the same pass); covariance traces and the mean token norm; effective rank
and IsoScore on a fixed-size token sample; rogue dimensions and the cosines after per-dimension
standardisation; the first-token and mean-pooled embedding of every sentence (float16).

The steps: encode every text once (:mod:`layerwise.inputs.tokens`); decide every random choice up front
(:func:`layerwise.measure.sampling.plan_samples`), from the
token counts and the seed, so results do not depend on the batch size; iterate :func:`forward_batches`
(sorted by length, padded dynamically); per batch, run the batched kernels of :mod:`layerwise.measure.kernels` on
the device and add their results to running sums; finally turn the sums and the kept token pool into
tidy rows, one finaliser per metric family, calling :mod:`layerwise.measure.metrics` (the reference
definitions). Memory is bounded: running sums, a histogram and fixed-size samples. CKA between states,
on the stored embeddings: :mod:`layerwise.measure.similarity`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import kernels, metrics, pooling, stats
from ..inputs.config import AnalysisSpec
from ..core.errors import LayerwiseError
from ..core.precision import autocast, model_device as _model_device, resolve as resolve_precision
from .sampling import SamplePlan, plan_samples
from ..core.tables import PER_SENTENCE_METRICS, POOLINGS, QUANTILES, VARIANTS, tidy_frame, tidy_row
from ..inputs.tokens import Encoded, effective_max_length, encode

log = logging.getLogger(__name__)
#: Threads of the final statistics of a state (:func:`_finalise`), one (variant, layer) cell each.
FINALISE_WORKERS = 2

__all__ = ["StateResult", "SamplePlan", "run_state", "plan_samples", "forward_batches", "padded_batches"]

NAN = float("nan")


@dataclass
class StateResult:
    """Everything :func:`run_state` computes for one model state.

    ``tidy``: one row per (layer, metric) in the architecture's schema; ``per_sentence``: model, state,
    layer, sentence (position in the input texts), metric, value; ``cosine_sample``: model, state, layer,
    value, pair, sentence, i, j (token positions among the sentence's tokens), content (both tokens
    non-special): a uniform sample of within-sentence pairs, the same pairs at every layer; ``rogue``:
    model, state, layer, rank, dim, contribution, share (top dimensions by contribution to the mean
    random-pair cosine); ``pooled``: per pooling name (:mod:`layerwise.measure.pooling`), float16
    ``[n_sentences, L+1, d]`` in input order; ``info``: sizes.
    """

    tidy: pd.DataFrame
    per_sentence: pd.DataFrame
    cosine_sample: pd.DataFrame
    rogue: pd.DataFrame
    pooled: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


# -- Tokenization (layerwise.inputs.tokens) and the sampling plan (layerwise.measure.sampling) --------------------

def _batches(enc: Encoded, geometry_mask: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Text indices per batch: geometry sentences then the others, each sorted by decreasing length."""
    out = []
    for group in (np.flatnonzero(geometry_mask), np.flatnonzero(~geometry_mask)):
        order = group[np.argsort(-enc.lengths[group], kind="stable")]
        out.extend(order[i: i + batch_size] for i in range(0, len(order), batch_size))
    return out


def _collate(tokenizer, enc: Encoded, idx: np.ndarray):
    """Pad one batch dynamically (to its longest sentence) exactly as ``tokenizer(..., padding=True)``
    would: pad id, pad token-type id and the tokenizer's padding side."""
    import torch

    T = int(enc.lengths[idx].max())
    B = len(idx)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    ids = np.full((B, T), pad_id, dtype=np.int64)
    att = np.zeros((B, T), dtype=np.int64)
    spec = np.ones((B, T), dtype=bool)
    types = np.full((B, T), getattr(tokenizer, "pad_token_type_id", 0), dtype=np.int64) if enc.type_ids else None
    for r, i in enumerate(idx):
        n = int(enc.lengths[i])
        sl = slice(T - n, T) if left else slice(0, n)
        ids[r, sl] = enc.ids[i]
        att[r, sl] = 1
        spec[r, sl] = enc.special[i]
        if types is not None:
            types[r, sl] = enc.type_ids[i]
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(att)}
    if types is not None:
        inputs["token_type_ids"] = torch.from_numpy(types)
    return inputs, torch.from_numpy(spec)


def forward_batches(model, tokenizer, texts: list[str], *, batch_size: int = 32, max_length: int = 512,
                    device=None, geometry_mask: np.ndarray | None = None, progress: bool = False,
                    encoded: Encoded | None = None, desc: str | None = None, precision: str = "fp32"):
    """Yield ``(text indices, inputs, special mask, hidden_states)`` per batch: tokenization (or the
    given ``encoded`` texts), geometry sentences then the others, each sorted by decreasing length,
    dynamic padding, one forward pass in inference mode. The one batch loop: :func:`run_state` consumes
    it, and the overhead benchmark uses it alone as the forward-only reference."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    dev = _model_device(model, device)
    precision = resolve_precision(precision, dev, purpose="analysis")
    if encoded is None:
        encoded = encode(tokenizer, texts, effective_max_length(tokenizer, max_length, getattr(model, "config", None)))
    geometry = np.ones(len(texts), bool) if geometry_mask is None else np.asarray(geometry_mask, bool)
    with torch.inference_mode():
        for idx in tqdm(_batches(encoded, geometry, batch_size), desc=desc, disable=not progress, leave=False,
                        unit="batch"):
            inputs, special = _collate(tokenizer, encoded, idx)
            inputs = {k: v.to(dev) for k, v in inputs.items()}
            with autocast(precision, dev):  # the model call only: its outputs are upcast before any sum
                hidden = getattr(model(**inputs, output_hidden_states=True), "hidden_states", None)
            if hidden is None:
                raise LayerwiseError("the model returned no hidden states", "extract.forward_batches",
                                     "use a transformers encoder that supports output_hidden_states")
            yield idx, inputs, special, hidden
            del hidden  # the next forward pass must not hold this batch's activations


def pooled_embeddings(model, tokenizer, texts: Sequence[str], poolings: Sequence[str], *, batch_size: int = 32,
                      max_length: int = 512, device=None, precision: str = "fp32", progress: bool = False,
                      desc: str | None = None) -> dict[str, np.ndarray]:
    """Every layer of ``texts`` under each of ``poolings`` (:func:`layerwise.measure.pooling.pooled_layers`), float16
    ``[n, L+1, d]`` per pooling in the order of ``texts``: the engine's forward pass (:func:`forward_batches`:
    dynamic padding, padding masked out) without its statistics. The checkpoints of a training run and the
    auxiliary probes' perturbed sentences embed with it."""
    texts = list(texts)
    out: dict[str, np.ndarray] = {}
    for idx, inputs, _, hidden in forward_batches(model, tokenizer, texts, batch_size=batch_size,
                                                  max_length=max_length, device=device, progress=progress,
                                                  desc=desc, precision=precision):
        for name, values in pooling.pooled_layers(hidden, inputs["attention_mask"].bool(), poolings).items():
            if name not in out:
                out[name] = np.zeros((len(texts), *values.shape[1:]), dtype=np.float16)
            out[name][idx] = values
    return out


def padded_batches(tokenizer, encoded: Encoded, batch_size: int = 32) -> list[tuple[np.ndarray, dict]]:
    """``(text indices, inputs)`` of every batch of ``encoded`` (every text once, sorted by decreasing length,
    padded dynamically as ``tokenizer(..., padding=True)`` pads), on the CPU: built once and reused by the
    callers that run several forward passes over the same texts (``model.swaps``)."""
    idx_all = _batches(encoded, np.ones(len(encoded.lengths), bool), batch_size)
    return [(idx, _collate(tokenizer, encoded, idx)[0]) for idx in idx_all]


# -- The engine ------------------------------------------------------------------------------------

class _Store:
    """Everything a run keeps: the embeddings, the cosine sample values, the token pool, the running
    sums and the per-sentence values (``[geometry sentences, layers]`` per variant and metric)."""

    def __init__(self, n_texts: int, plan: SamplePlan, n_layers: int, d: int, bins: int, poolings: list[str]):
        self.pooled = {p: np.zeros((n_texts, n_layers, d), np.float16) for p in poolings}
        self.cosine_sample = np.full((n_layers, len(plan.cosine_sentence)), np.nan, np.float32)
        self.pool = np.zeros((n_layers, len(plan.pool_sentence), d), np.float32)
        self.words = np.zeros((n_layers, len(plan.words.sentence), d), np.float32)
        self.sums = {v: kernels.RunningSums(n_layers, d, bins) for v in VARIANTS}
        self.per_sentence = {v: {m: np.full((len(plan.geometry_texts), n_layers), np.nan)
                                 for m in PER_SENTENCE_METRICS} for v in VARIANTS}


def _check_inputs(texts, geometry_mask) -> tuple[list[str], np.ndarray]:
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        raise LayerwiseError("texts must be a list of strings", "extract.run_state", "pass list(dataset['text'])")
    texts = list(texts)
    if not texts:
        raise LayerwiseError("no sentences to analyse", "extract.run_state", "select at least one sentence")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise LayerwiseError(f"text {bad} is {type(texts[bad]).__name__}, not a string", "extract.run_state",
                             "check the dataset's text column")
    geometry = np.ones(len(texts), bool) if geometry_mask is None else np.asarray(geometry_mask, dtype=bool)
    if geometry.shape != (len(texts),):
        raise LayerwiseError(f"geometry_mask has shape {geometry.shape}, expected ({len(texts)},)",
                             "extract.run_state", "give one boolean per text")
    return texts, geometry


def run_state(model, tokenizer, texts: list[str], *, state: str, model_name: str,
              geometry_mask: np.ndarray | None = None, settings: AnalysisSpec | None = None, device=None,
              progress: bool = True, precision: str | None = None,
              poolings: Sequence[str] | None = None) -> StateResult:
    """Run the geometry engine for one model state: one forward pass per batch, every statistic.

    ``texts``: every sentence whose pooled embeddings are stored (train and test); ``geometry_mask``:
    which of them feed the token statistics (default: all); ``settings``: ``params.analysis`` (the
    defaults of :class:`~layerwise.inputs.config.AnalysisSpec` when not given); ``precision``: the run's
    resolved precision (``study.pipeline.resolve_inputs`` decides it once per run; default
    ``settings.precision``, resolved on ``device``); ``poolings``: the pooled embeddings to store (the study's
    resolved ``analysis.poolings``; default ``settings.poolings``, else every declared pooling). Returns a
    :class:`StateResult` whose tables follow docs/architecture.md ("Result tables");
    ``per_sentence.sentence`` is the position in ``texts``.
    """
    import torch

    settings = settings or AnalysisSpec()
    poolings = pooling.check_poolings(poolings or settings.poolings or POOLINGS)
    texts, geometry = _check_inputs(texts, geometry_mask)
    max_length = effective_max_length(tokenizer, settings.max_length, getattr(model, "config", None))
    encoded = encode(tokenizer, texts, max_length)
    if (encoded.lengths == 0).any():
        i = int(np.flatnonzero(encoded.lengths == 0)[0])
        raise LayerwiseError(f"text {i} has no token after tokenization", "extract.run_state",
                             "drop empty texts from the data")
    plan = plan_samples(encoded.lengths, encoded.special, geometry, settings, encoded.words, encoded.ids)
    store, n_batches = None, 0
    batches = forward_batches(model, tokenizer, texts, batch_size=settings.batch_size, max_length=max_length,
                              device=device, geometry_mask=geometry, progress=progress, encoded=encoded,
                              desc=f"{model_name} {state}", precision=precision or settings.precision)
    # closing: on an error, the generator leaves its inference mode now (not at garbage collection)
    with torch.inference_mode(), contextlib.closing(batches):
        for idx, inputs, special, hidden in batches:
            if store is None:
                store = _Store(len(texts), plan, len(hidden), int(hidden[0].shape[-1]), settings.hist_bins, poolings)
            valid = inputs["attention_mask"].bool()
            if geometry[idx[0]]:  # batches are all-geometry or none
                _geometry_batch(hidden, valid, special.to(valid.device), idx, plan, store, settings.hist_bins)
            else:
                for name, values in pooling.pooled_layers(hidden, valid, poolings).items():
                    store.pooled[name][idx] = values
            n_batches += 1
            del hidden
    with kernels.single_threaded_blas():  # small matrices: threads only fight the model's threads
        tidy, rogue = _finalise(plan, store, settings, state, model_name)
    n_layers = store.pool.shape[0]
    info = {"n_sentences": len(texts), "n_geometry": len(plan.geometry_texts), "n_layers": n_layers,
            "n_batches": n_batches, "tokens": int(encoded.lengths[geometry].sum()),
            "pool_tokens": len(plan.pool_sentence), "pool_sentences": int(plan.pool_index.shape[0]),
            "max_length": max_length}
    return StateResult(tidy, _per_sentence_frame(store.per_sentence, plan, state, model_name),
                       _cosine_sample_frame(store.cosine_sample, plan, state, model_name), rogue,
                       store.pooled, info)


# -- One batch: the kernels of layerwise.measure.kernels, layer by layer, on the device --------------------

def _rows_in_batch(sentences: np.ndarray, idx: np.ndarray, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a sample (one sentence index per row) whose sentence is in the batch ``idx``, and the
    batch row of each."""
    batch_row = np.full(n_texts, -1, np.int64)
    batch_row[idx] = np.arange(len(idx))
    rows = np.flatnonzero(batch_row[sentences] >= 0)
    return rows, batch_row[sentences[rows]]


def _geometry_batch(hidden, valid, special, idx: np.ndarray, plan: SamplePlan, store: _Store, bins: int) -> None:
    """Every statistic of one geometry batch, all layers: the kernels on the device (float32), moved
    to the host once per batch and added to the float64 running sums and per-sentence arrays."""
    import torch

    masks = kernels.batch_masks(valid, special)
    T, dev, first = valid.shape[1], valid.device, masks.first.cpu().numpy()
    cosine_rows, cosine_batch = _rows_in_batch(plan.cosine_sentence, idx, len(plan.geometry_row))
    pool_rows, pool_batch = _rows_in_batch(plan.pool_sentence, idx, len(plan.geometry_row))
    row_i = first[cosine_batch] + plan.cosine_i[cosine_rows]     # padded positions of the sampled pairs
    row_j = first[cosine_batch] + plan.cosine_j[cosine_rows]
    sample_pairs = torch.as_tensor(cosine_batch * T * T + row_i * T + row_j, device=dev) if len(cosine_rows) else None
    pool_tokens = ((torch.as_tensor(pool_batch, device=dev),
                    torch.as_tensor(first[pool_batch] + plan.pool_token[pool_rows], device=dev))
                   if len(pool_rows) else None)
    hidden = [h.float() for h in hidden]  # upcast once: the statistics, the poolings and the word vectors read it
    layers = [kernels.layer_statistics(h, masks, bins, sample_pairs, pool_tokens) for h in hidden]
    if bool(torch.stack([layer.zero_norm for layer in layers]).any()):
        raise LayerwiseError("a valid (non-padding) token has a zero hidden vector", "extract.run_state",
                             "this signals a masking bug or a broken model; check the attention mask")

    def host(name: str) -> np.ndarray:
        return torch.stack([getattr(layer, name) for layer in layers]).cpu().numpy()

    for name, values in pooling.pooled_layers(hidden, valid, list(store.pooled)).items():
        store.pooled[name][idx] = values
    if len(cosine_rows):
        store.cosine_sample[:, cosine_rows] = host("cosine_sample")
    if len(pool_rows):
        store.pool[:, pool_rows] = host("pool")
    _word_batch(hidden, first, idx, plan, store)
    dimension_sums = {name: host(name).astype(np.float64) for name in kernels.DIMENSION_SUMS}   # [L, 2, d]
    sentence_sums = {name: host(name).astype(np.float64) for name in kernels.SENTENCE_SUMS}     # [L, B, 2]
    counts, n_pairs = masks.counts.cpu().numpy(), masks.n_pairs.cpu().numpy()
    for a, variant in enumerate(VARIANTS):
        of_sentences = {name: values[:, :, a] for name, values in sentence_sums.items()}
        store.sums[variant].add({name: values[:, a] for name, values in dimension_sums.items()}, of_sentences,
                                counts[:, a], [layer.pair_values.get(a) for layer in layers], int(n_pairs[:, a].sum()))
        per_sentence = kernels.per_sentence_values(of_sentences, counts[:, a], n_pairs[:, a])
        for name, values in per_sentence.items():
            store.per_sentence[variant][name][plan.geometry_row[idx]] = values.T


def _word_batch(hidden, first: np.ndarray, idx: np.ndarray, plan: SamplePlan, store: _Store) -> None:
    """The vectors of the planned word occurrences of this batch (mean of their subword vectors,
    :func:`layerwise.measure.kernels.word_vectors`), every layer (``hidden``: float32, as
    :func:`_geometry_batch` upcast it), into ``store.words``."""
    import torch

    rows, batch = _rows_in_batch(plan.words.sentence, idx, len(plan.geometry_row))
    if not len(rows):
        return
    positions = plan.words.positions[rows]
    padded = np.where(positions >= 0, first[batch][:, None] + positions, -1)
    dev = hidden[0].device
    batch_t, positions_t = torch.as_tensor(batch, device=dev), torch.as_tensor(padded, device=dev)
    vectors = [kernels.word_vectors(h, batch_t, positions_t) for h in hidden]
    store.words[:, rows] = torch.stack(vectors).cpu().numpy()


# -- Final statistics: one finaliser per metric family, on host arrays, calling layerwise.measure.metrics --

class _TidyRows:
    """The tidy rows of one model state, in the order they are added."""

    def __init__(self, model_name: str, state: str):
        self.model_name, self.state, self.rows = model_name, state, []

    def add(self, layer: int, metric: str, value: float, n: int, ci_low: float = NAN, ci_high: float = NAN) -> None:
        self.rows.append(tidy_row(self.model_name, self.state, layer, metric, value, ci_low, ci_high, n))


def _finalise(plan: SamplePlan, store: _Store, settings: AnalysisSpec, state: str,
              model_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy rows and the rogue table of one state, variant by variant (``v`` = "" for every valid
    token, "_content" without special tokens) and layer by layer, one finaliser per family: pair
    cosines, means over sentences, ``norm_mean{v}`` (mean token norm, n = tokens), the token sample,
    the anisotropy baseline with rogue dimensions, the standardised cosines. The (variant, layer) cells
    are independent: they run on ``FINALISE_WORKERS`` threads (numpy releases the GIL in its array
    work) and their rows are joined in cell order, so the tables do not depend on the threads."""
    from concurrent.futures import ThreadPoolExecutor

    moments = {}
    for variant in VARIANTS:
        sums = store.sums[variant]
        moments[variant] = kernels.mean_sd_from_sums(sums.dim_sum, sums.dim_sum_sq, sums.tokens)
    cells = [(variant, layer) for variant in VARIANTS for layer in range(store.pool.shape[0])]

    def cell(variant_layer: tuple[str, int]) -> tuple[list[dict], list[dict]]:
        variant, layer = variant_layer
        return _finalise_cell(plan, store, settings, state, model_name, variant, layer, *moments[variant])

    with ThreadPoolExecutor(max_workers=FINALISE_WORKERS) as pool:
        done = list(pool.map(cell, cells))
    rows = [r for cell_rows, _ in done for r in cell_rows]
    rogue = [r for _, cell_rogue in done for r in cell_rogue]
    rogue_frame = pd.DataFrame(rogue, columns=["model", "state", "layer", "rank", "dim", "contribution", "share"])
    return tidy_frame(rows), rogue_frame


def _finalise_cell(plan: SamplePlan, store: _Store, settings: AnalysisSpec, state: str, model_name: str,
                   variant: str, layer: int, mu: np.ndarray, sigma: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The tidy rows and rogue rows of one variant at one layer (see :func:`_finalise`)."""
    rows = _TidyRows(model_name, state)
    rogue: list[dict] = []
    sums = store.sums[variant]
    pair_mean = _pair_cosine_rows(rows, sums, layer, variant)
    intra = _sentence_mean_rows(rows, store.per_sentence[variant], layer, variant)
    if sums.tokens:
        rows.add(layer, f"norm_mean{variant}", sums.norm_sum[layer] / sums.tokens, sums.tokens)
    _token_sample_rows(rows, store.pool[layer, plan.token_sample[variant]], layer, variant)
    baseline = (NAN, NAN, NAN)
    if len(plan.baseline_pairs[variant][0]):
        pool = store.pool[layer]
        baseline = _baseline_rows(rows, rogue if variant == "" else None, pool, plan, layer, variant,
                                  pair_mean, intra, settings.top_dims)
        standardised = metrics.standardise(pool, mu[layer], sigma[layer])
        _standardised_rows(rows, standardised, plan, layer, variant)
    if variant == "_content":
        _self_similarity_rows(rows, store.words[layer], plan, layer, baseline)
    return rows.rows, rogue


def _pair_cosine_rows(rows: _TidyRows, sums: kernels.RunningSums, layer: int, variant: str) -> tuple[float, int]:
    """``token_cosine_mean/sd/min/max{v}``: exact, over every within-sentence pair (the values of
    :func:`layerwise.measure.metrics.pairwise_cosines_upper` of every sentence; n = pairs), from the streaming
    sums; ``token_cosine_q05..q95{v}``: :func:`layerwise.measure.metrics.quantiles_from_histogram` on the
    2/hist_bins-wide histogram. Returns ``(mean, pairs)`` (NaN and 0 without pairs)."""
    n_pairs = int(sums.pairs[layer])
    if not n_pairs:
        return NAN, 0
    mean, sd = kernels.mean_sd_from_sums(sums.sum[layer], sums.sum_sq[layer], n_pairs)
    quantiles = metrics.quantiles_from_histogram(sums.hist[layer], -1.0, 1.0, list(QUANTILES.values()),
                                                 sums.min[layer], sums.max[layer])
    rows.add(layer, f"token_cosine_mean{variant}", mean, n_pairs)
    rows.add(layer, f"token_cosine_sd{variant}", sd, n_pairs)
    for name, value in zip(QUANTILES, quantiles):
        rows.add(layer, f"token_cosine_{name}{variant}", value, n_pairs)
    rows.add(layer, f"token_cosine_min{variant}", sums.min[layer], n_pairs)
    rows.add(layer, f"token_cosine_max{variant}", sums.max[layer], n_pairs)
    return mean, n_pairs


#: per-sentence metric -> the tidy metric of its mean over sentences, in the order of the tidy rows
_SENTENCE_MEANS = (("token_cosine_var", "token_cosine_var_mean"), ("intra_similarity", "intra_similarity"),
                   ("cov_trace", "cov_trace"), ("cov_trace_scaled", "cov_trace_scaled"),
                   ("token_cosine", "token_cosine_sentence_mean"))


def _sentence_mean_rows(rows: _TidyRows, per_sentence: dict[str, np.ndarray], layer: int,
                        variant: str) -> tuple[float, int]:
    """``token_cosine_sentence_mean{v}``, ``token_cosine_var_mean{v}``, ``intra_similarity{v}``,
    ``cov_trace{v}``, ``cov_trace_scaled{v}``: means over sentences of the per-sentence values, with a
    95 % Student-t interval (n = sentences). Returns the intra-sentence similarity's ``(mean, n)``."""
    intra = (NAN, 0)
    for metric, name in _SENTENCE_MEANS:
        mean, low, high, n = stats.t_interval(per_sentence[metric][:, layer])
        if metric == "intra_similarity":
            intra = (mean, n)
        if n:
            rows.add(layer, f"{name}{variant}", mean, n, low, high)
    return intra


def _token_sample_rows(rows: _TidyRows, sample: np.ndarray, layer: int, variant: str) -> None:
    """``erank{v}``, ``erank_uncentred{v}`` (:func:`layerwise.measure.metrics.effective_rank`) and
    ``isoscore{v}`` (:func:`layerwise.measure.metrics.isoscore`) on the token sample (n = token_sample, or fewer
    when the pool is smaller), from one Gram matrix."""
    if len(sample) < 2:
        return
    centred, uncentred = metrics.singular_values_centred_and_not(sample)
    rows.add(layer, f"erank{variant}", metrics.effective_rank_from_singular_values(centred), len(sample))
    rows.add(layer, f"erank_uncentred{variant}", metrics.effective_rank_from_singular_values(uncentred), len(sample))
    rows.add(layer, f"isoscore{variant}", metrics.isoscore_from_singular_values(centred, *sample.shape), len(sample))


def _baseline_ci(values: np.ndarray, plan: SamplePlan, variant: str) -> tuple[float, float, float, int]:
    """Mean of the baseline pair cosines with a 95 % interval over the independent draws of tokens and
    pairs (:func:`layerwise.measure.stats.replicate_mean_ci`): it covers the sampling of the tokens, not only of
    the pairs."""
    est, low, high = stats.replicate_mean_ci(values, plan.baseline_draw[variant])
    return est, low, high, len(values)


def _baseline_rows(rows: _TidyRows, rogue: list[dict] | None, pool: np.ndarray, plan: SamplePlan, layer: int,
                   variant: str, pair_mean: tuple[float, int], intra: tuple[float, int],
                   top_dims: int) -> tuple[float, float, float]:
    """``anisotropy_baseline{v}``: mean of :func:`layerwise.measure.metrics.paired_cosines` over random pairs of
    the baseline tokens (drawn uniformly over all analysed tokens) from different sentences, with an
    interval over independent draws of tokens and pairs (n = pairs); ``token_cosine_adjusted{v}`` and ``intra_similarity_adjusted{v}``:
    the raw score minus that baseline; ``rogue_top3_share{v}``: share of the 3 largest
    :func:`layerwise.measure.metrics.cosine_contributions` (Timkey & van Schijndel 2021); with ``rogue`` given,
    the ``top_dims`` largest contributions as rows of the rogue table. Returns ``(baseline, low, high)``."""
    a, b = (pool[rows_] for rows_ in plan.baseline_pairs[variant])
    terms = metrics.pair_cosine_terms(a, b)   # one normalisation feeds the cosines and the contributions
    baseline, low, high, n = _baseline_ci(metrics.paired_cosines(terms=terms), plan, variant)
    rows.add(layer, f"anisotropy_baseline{variant}", baseline, n, low, high)
    pair_mean_value, n_pairs = pair_mean
    if n_pairs:
        rows.add(layer, f"token_cosine_adjusted{variant}", pair_mean_value - baseline, n_pairs)
    intra_mean, intra_n = intra
    if intra_n:
        rows.add(layer, f"intra_similarity_adjusted{variant}", intra_mean - baseline, intra_n)
    contributions = metrics.cosine_contributions(terms=terms)
    top = np.argsort(-contributions, kind="stable")
    total = contributions.sum()
    rows.add(layer, f"rogue_top3_share{variant}", contributions[top[:3]].sum() / total if total != 0 else NAN, n)
    for rank, dim in enumerate(top[:top_dims] if rogue is not None else []):
        rogue.append({"model": rows.model_name, "state": rows.state, "layer": layer, "rank": rank + 1,
                      "dim": int(dim), "contribution": float(contributions[dim]),
                      "share": float(contributions[dim] / total) if total != 0 else NAN})
    return baseline, low, high


def _self_similarity_rows(rows: _TidyRows, vectors: np.ndarray, plan: SamplePlan, layer: int,
                          baseline: tuple[float, float, float]) -> None:
    """``self_similarity``: mean over the planned words of :func:`layerwise.measure.metrics.self_similarity` of
    their occurrence vectors (different sentences only), with a 95 % t interval over words (n = words);
    ``self_similarity_adjusted``: minus the content-token anisotropy baseline, its interval's half-width
    combining both half-widths in quadrature (independent samples)."""
    words = plan.words
    if not len(words.keys):
        return
    values = np.array([metrics.self_similarity(vectors[words.word == w], words.sentence[words.word == w])
                       for w in range(len(words.keys))])
    mean, low, high, n = stats.t_interval(values)
    if not n:
        return
    rows.add(layer, "self_similarity", mean, n, low, high)
    b, b_low, b_high = baseline
    if np.isfinite(b):
        half = math.hypot(*(np.nan_to_num((hi - lo) / 2) for lo, hi in ((low, high), (b_low, b_high))))
        rows.add(layer, "self_similarity_adjusted", mean - b, n, mean - b - half, mean - b + half)


def _standardised_rows(rows: _TidyRows, standardised: np.ndarray, plan: SamplePlan, layer: int, variant: str) -> None:
    """After per-dimension standardisation (:func:`layerwise.measure.metrics.standardise`, mean and sd of every
    geometry token of the variant): ``anisotropy_baseline_std{v}`` (the same random pairs) and
    ``token_cosine_mean_std{v}`` (within-sentence pairs of the sampled sentences' kept tokens, each
    sentence weighted by its true pair count: :func:`layerwise.measure.kernels.within_sentence_cosine_mean`);
    ``token_cosine_adjusted_std{v}`` is their difference."""
    a, b = plan.baseline_pairs[variant]
    baseline, low, high, n = _baseline_ci(metrics.paired_cosines(standardised[a], standardised[b]), plan, variant)
    rows.add(layer, f"anisotropy_baseline_std{variant}", baseline, n, low, high)
    present = plan.pool_index >= 0
    if variant == "_content":
        present &= ~plan.pool_special[np.where(present, plan.pool_index, 0)]
    weights = plan.pool_pairs[:, 1 if variant == "_content" else 0]
    mean, n_pairs = kernels.within_sentence_cosine_mean(standardised, plan.pool_index, present, weights)
    if n_pairs:
        rows.add(layer, f"token_cosine_mean_std{variant}", mean, n_pairs)
        rows.add(layer, f"token_cosine_adjusted_std{variant}", mean - baseline, n_pairs)


# -- Per-sentence and cosine-sample tables ---------------------------------------------------------

def _per_sentence_frame(per_sentence, plan: SamplePlan, state: str, model_name: str) -> pd.DataFrame:
    parts = []
    for variant in VARIANTS:
        for metric in PER_SENTENCE_METRICS:
            values = per_sentence[variant][metric]
            n_geometry, n_layers = values.shape
            parts.append(pd.DataFrame({
                "model": model_name, "state": state,
                "layer": np.tile(np.arange(n_layers), n_geometry).astype(np.int64),
                "sentence": np.repeat(plan.geometry_texts, n_layers).astype(np.int64),
                "metric": f"{metric}{variant}", "value": values.reshape(-1)}))
    return pd.concat(parts, ignore_index=True)


def _cosine_sample_frame(values: np.ndarray, plan: SamplePlan, state: str, model_name: str) -> pd.DataFrame:
    """The cosine sample, ``[layers, pairs]`` values, as one row per (layer, pair)."""
    n_layers, k = values.shape
    return pd.DataFrame({
        "model": model_name, "state": state,
        "layer": np.repeat(np.arange(n_layers), k).astype(np.int64),
        "value": values.reshape(-1).astype(np.float64),
        "pair": np.tile(np.arange(k), n_layers).astype(np.int64),
        "sentence": np.tile(plan.cosine_sentence, n_layers).astype(np.int64),
        "i": np.tile(plan.cosine_i, n_layers).astype(np.int64),
        "j": np.tile(plan.cosine_j, n_layers).astype(np.int64),
        "content": np.tile(plan.cosine_content, n_layers),
    })
