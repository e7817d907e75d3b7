"""The geometry engine: ONE forward pass per batch feeds every layer-wise statistic of one model state.

For every hidden state (layer 0 = embedding output, then each layer) :func:`run_state` computes, from
the same forward pass, with padding excluded everywhere and special tokens flagged (``_content``
variants exclude them):

* pairwise token cosines within each sentence (the seed's cosine study): exact count / mean / variance
  / min / max per layer, quantiles from a fine fixed-bin histogram (at most one bin width, 6.1e-5, off),
  a uniform random sample of pair values, and each sentence's mean and variance;
* intra-sentence similarity (token to sentence-mean cosine, Ethayarajh 2019), the anisotropy baseline
  (random token pairs from different sentences) and the anisotropy-adjusted scores;
* the covariance trace of each sentence's tokens, the same divided by the mean squared token norm, and
  the mean token norm;
* effective rank (centred and not) and IsoScore on a token sample of fixed size;
* rogue dimensions (per-dimension contribution to the mean random-pair cosine, top-3 share) and the
  cosine statistics after per-dimension standardisation (mean and sd from exact streaming sums);
* the first-token and mean-pooled embedding of every sentence (float16).

Every random choice (cosine-sample pairs, sampled sentences and tokens, baseline pairs) is made up front
from the token counts and the seed, so results do not depend on the batch size. Sentences are sorted by
length for batching and padded dynamically; memory is bounded: running sums, a histogram and fixed-size
samples, whatever the number of sentences. :func:`compare_states` computes linear CKA between states
on the stored pooled embeddings. Metric definitions: :mod:`layerwise.metrics`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .errors import LayerwiseError

log = logging.getLogger(__name__)

__all__ = ["EngineSettings", "StateResult", "run_state", "analyze_state", "compare_states", "plan_samples",
           "forward_batches", "TIDY_COLUMNS", "PER_SENTENCE_METRICS"]

TIDY_COLUMNS = ["model", "state", "layer", "metric", "value", "ci_low", "ci_high", "n"]
PER_SENTENCE_METRICS = ("token_cosine", "token_cosine_var", "intra_similarity", "cov_trace", "cov_trace_scaled")
QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.50, "q75": 0.75, "q95": 0.95}
VARIANTS = ("", "_content")  # all valid tokens, special tokens excluded


# ==================================================================================================
# Settings and results
# ==================================================================================================

@dataclass(frozen=True)
class EngineSettings:
    """What the engine computes and how (the analysis fields of a params file, plus engine details).

    ``token_sample``: tokens per layer for effective rank and IsoScore (same n everywhere);
    ``sample_sentences``: sentences whose (capped) token matrices are kept for the token sample, the
    anisotropy baseline, rogue dimensions and standardised statistics; ``baseline_pairs``: random
    cross-sentence token pairs; ``cosine_sample``: within-sentence pair values kept per layer;
    ``hist_bins``: histogram bins on [-1, 1] for quantiles; ``pool_tokens``: tokens kept per sampled
    sentence (None: ``max(8, 2 ceil(token_sample / sample_sentences))``); ``top_dims``: rogue
    dimensions listed per layer.
    """

    token_sample: int = 1000
    sample_sentences: int = 256
    baseline_pairs: int = 5000
    cosine_sample: int = 5000
    seed: int = 0
    batch_size: int = 32
    max_length: int = 512
    hist_bins: int = 32768
    pool_tokens: int | None = None
    top_dims: int = 10

    @classmethod
    def from_spec(cls, spec: Any, **overrides: Any) -> "EngineSettings":
        """Settings from an ``AnalysisSpec`` (``params.analysis``), with optional overrides."""
        names = ("token_sample", "sample_sentences", "baseline_pairs", "cosine_sample", "seed", "batch_size",
                 "max_length")
        values = {k: getattr(spec, k) for k in names}
        values.update(overrides)
        return cls(**values)

    def tokens_per_sentence(self, n_sentences: int) -> int:
        if self.pool_tokens is not None:
            return int(self.pool_tokens)
        return max(8, 2 * math.ceil(self.token_sample / max(1, n_sentences)))


@dataclass
class StateResult:
    """Everything :func:`run_state` computes for one model state.

    ``tidy``: one row per (layer, metric) in the architecture's schema; ``per_sentence``: model, state,
    layer, sentence (position in the input texts), metric, value; ``cosine_sample``: model, state, layer,
    value, pair, sentence, i, j (token positions among the sentence's tokens), content (both tokens
    non-special): a uniform sample of within-sentence pairs, the same pairs at every layer; ``rogue``:
    model, state, layer, rank, dim, contribution, share (top dimensions by contribution to the mean
    random-pair cosine); ``cls`` / ``mean``: float16 ``[n_sentences, L+1, d]`` in input order;
    ``info``: sizes.
    """

    tidy: pd.DataFrame
    per_sentence: pd.DataFrame
    cosine_sample: pd.DataFrame
    rogue: pd.DataFrame
    cls: np.ndarray
    mean: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


# ==================================================================================================
# Tokenization and the sampling plan (everything random is decided here, before any forward pass)
# ==================================================================================================

@dataclass
class _Encoded:
    ids: list[np.ndarray]
    special: list[np.ndarray]
    type_ids: list[np.ndarray] | None
    lengths: np.ndarray


def _effective_max_length(tokenizer, max_length: int, config=None) -> int:
    """``max_length`` capped by the tokenizer's ``model_max_length`` or, when the tokenizer does not know
    it, by the model's position embeddings (RoBERTa-like models reserve ``pad_token_id + 1`` of them)."""
    cap = getattr(tokenizer, "model_max_length", None)
    if isinstance(cap, int) and 0 < cap < 100_000:
        return min(int(max_length), cap)
    pos = getattr(config, "max_position_embeddings", None) if config is not None else None
    if isinstance(pos, int) and pos > 0:
        if getattr(config, "model_type", "") in ("roberta", "camembert", "xlm-roberta"):
            pos -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        return min(int(max_length), pos)
    return int(max_length)


def _encode(tokenizer, texts: list[str], max_length: int) -> _Encoded:
    """Tokenize every text once (truncated, unpadded) and keep compact arrays."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    special = [np.asarray(x, dtype=bool) for x in enc["special_tokens_mask"]]
    type_ids = None
    if "token_type_ids" in enc:
        type_ids = [np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"]]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    return _Encoded(ids, special, type_ids, lengths)


@dataclass
class Plan:
    """The sampling plan of one run, fixed by token counts and the seed (not by the batch size)."""

    geo: np.ndarray              # text indices of the geometry sentences
    geo_row: np.ndarray          # text index -> row in geometry arrays (-1 if not geometry)
    # cosine sample (uniform over all within-sentence pairs of valid tokens)
    cs_sent: np.ndarray
    cs_i: np.ndarray
    cs_j: np.ndarray
    cs_content: np.ndarray
    # token pool (sampled sentences, capped tokens per sentence), grouped by sentence
    pool_sent: np.ndarray
    pool_tok: np.ndarray
    pool_special: np.ndarray
    pool_index: np.ndarray       # [S, cap] pool row per (sampled sentence, slot), -1 when empty
    pool_pairs: np.ndarray       # [S, 2] true number of pairs (all tokens, content tokens) of each sentence
    tokens: dict[str, np.ndarray]     # variant -> pool rows of the erank/IsoScore token sample
    baseline: dict[str, tuple[np.ndarray, np.ndarray]]  # variant -> pool rows (a, b), different sentences


def _draw_cross_pairs(cands: np.ndarray, sent: np.ndarray, m: int, rng: np.random.Generator):
    """``m`` random pairs of candidate rows whose sentences differ (uniform, with replacement)."""
    if m <= 0 or len(cands) < 2 or len(np.unique(sent[cands])) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = rng.choice(cands, m)
    b = rng.choice(cands, m)
    bad = sent[a] == sent[b]
    while bad.any():
        b[bad] = rng.choice(cands, int(bad.sum()))
        bad = sent[a] == sent[b]
    return a, b


def plan_samples(lengths: np.ndarray, special: list[np.ndarray], geometry_mask: np.ndarray,
                 settings: EngineSettings) -> Plan:
    """Decide every random sample up front (numpy ``SeedSequence(seed)``, one child stream per sample)."""
    geo = np.flatnonzero(geometry_mask)
    geo_row = np.full(len(lengths), -1, dtype=np.int64)
    geo_row[geo] = np.arange(len(geo))
    r_cos, r_pool, r_tok, r_base = (np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(4))

    # uniform sample of within-sentence pairs, without replacement
    n = lengths[geo]
    pairs = n * (n - 1) // 2
    total = int(pairs.sum())
    k = min(settings.cosine_sample, total)
    g = np.sort(r_cos.choice(total, size=k, replace=False)) if k > 0 else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(pairs)])
    pos = np.searchsorted(starts, g, side="right") - 1
    cs_sent = geo[pos]
    if k:
        cs_i, cs_j = metrics.triu_pair_index(g - starts[pos], lengths[cs_sent])
    else:
        cs_i = cs_j = np.zeros(0, np.int64)
    cs_content = np.array([not (special[s][i] or special[s][j]) for s, i, j in zip(cs_sent, cs_i, cs_j)], dtype=bool)

    # token pool: sampled sentences, capped random tokens of each
    S = min(settings.sample_sentences, len(geo))
    chosen = np.sort(r_pool.choice(geo, size=S, replace=False)) if S > 0 else np.zeros(0, np.int64)
    cap = min(settings.tokens_per_sentence(S), int(lengths[chosen].max()) if S else 1)
    pool_sent, pool_tok, pool_index, pool_pairs = [], [], np.full((S, cap), -1, np.int64), np.zeros((S, 2), np.int64)
    row = 0
    for si, s in enumerate(chosen):
        ns = int(lengths[s])
        toks = np.sort(r_pool.choice(ns, size=min(cap, ns), replace=False))
        pool_sent.append(np.full(len(toks), s))
        pool_tok.append(toks)
        pool_index[si, : len(toks)] = np.arange(row, row + len(toks))
        row += len(toks)
        nc = int((~special[s]).sum())
        pool_pairs[si] = (ns * (ns - 1) // 2, nc * (nc - 1) // 2)
    pool_sent = np.concatenate(pool_sent) if pool_sent else np.zeros(0, np.int64)
    pool_tok = np.concatenate(pool_tok) if pool_tok else np.zeros(0, np.int64)
    pool_special = np.array([special[s][t] for s, t in zip(pool_sent, pool_tok)], dtype=bool)

    rows_all = np.arange(len(pool_sent))
    cands = {"": rows_all, "_content": rows_all[~pool_special]}
    tokens, baseline = {}, {}
    for v, c in cands.items():
        kk = min(settings.token_sample, len(c))
        tokens[v] = np.sort(r_tok.choice(c, size=kk, replace=False)) if kk else np.zeros(0, np.int64)
        baseline[v] = _draw_cross_pairs(c, pool_sent, settings.baseline_pairs, r_base)
    if len(tokens[""]) < settings.token_sample:
        log.warning("token sample has %d tokens, fewer than token_sample=%d (more sentences or pool_tokens "
                    "would fix it); n is recorded", len(tokens[""]), settings.token_sample)
    return Plan(geo, geo_row, cs_sent, cs_i.astype(np.int64), cs_j.astype(np.int64), cs_content, pool_sent,
                pool_tok, pool_special, pool_index, pool_pairs, tokens, baseline)


def _batches(enc: _Encoded, geometry_mask: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Text indices per batch: geometry sentences then the others, each sorted by decreasing length."""
    out = []
    for group in (np.flatnonzero(geometry_mask), np.flatnonzero(~geometry_mask)):
        order = group[np.argsort(-enc.lengths[group], kind="stable")]
        out.extend(order[i: i + batch_size] for i in range(0, len(order), batch_size))
    return out


def _collate(tokenizer, enc: _Encoded, idx: np.ndarray):
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


def _model_device(model, device):
    import torch

    if device is not None:
        model.to(device)
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def forward_batches(model, tokenizer, texts: list[str], *, batch_size: int = 32, max_length: int = 512,
                    device=None, geometry_mask: np.ndarray | None = None, progress: bool = False):
    """Yield ``(text indices, inputs, special mask, hidden_states)`` for the engine's batches: the same
    tokenization, ordering and padding as :func:`run_state`, one forward pass each, nothing else (the
    reference of the engine's overhead benchmark)."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    dev = _model_device(model, device)
    enc = _encode(tokenizer, texts, _effective_max_length(tokenizer, max_length, getattr(model, "config", None)))
    gm = np.ones(len(texts), bool) if geometry_mask is None else np.asarray(geometry_mask, bool)
    with torch.inference_mode():
        for idx in tqdm(_batches(enc, gm, batch_size), disable=not progress, leave=False):
            inputs, spec = _collate(tokenizer, enc, idx)
            inputs = {k: v.to(dev) for k, v in inputs.items()}
            out = model(**inputs, output_hidden_states=True)
            yield idx, inputs, spec, out.hidden_states


# ==================================================================================================
# Streaming accumulators
# ==================================================================================================

class _LayerAcc:
    """Exact running sums for one token variant, per layer (float64 on the host)."""

    def __init__(self, n_layers: int, d: int, bins: int):
        self.pairs = np.zeros(n_layers, np.int64)
        self.sum = np.zeros(n_layers)
        self.sumsq = np.zeros(n_layers)
        self.min = np.full(n_layers, np.inf)
        self.max = np.full(n_layers, -np.inf)
        self.hist = np.zeros((n_layers, bins), np.int64)
        self.tokens = 0
        self.norm_sum = np.zeros(n_layers)
        self.dim_sum = np.zeros((n_layers, d))
        self.dim_sumsq = np.zeros((n_layers, d))

    def mu_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation (ddof = 0) of every token seen, per layer."""
        n = max(self.tokens, 1)
        mu = self.dim_sum / n
        var = np.clip(self.dim_sumsq / n - mu * mu, 0.0, None)
        return mu, np.sqrt(var)


# ==================================================================================================
# The engine
# ==================================================================================================

def _check_inputs(texts, geometry_mask, settings: EngineSettings) -> tuple[list[str], np.ndarray]:
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        raise LayerwiseError("texts must be a list of strings", "extract.run_state", "pass list(dataset['text'])")
    texts = list(texts)
    if not texts:
        raise LayerwiseError("no sentences to analyse", "extract.run_state", "select at least one sentence")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise LayerwiseError(f"text {bad} is {type(texts[bad]).__name__}, not a string", "extract.run_state",
                             "check the dataset's text column")
    gm = np.ones(len(texts), bool) if geometry_mask is None else np.asarray(geometry_mask, dtype=bool)
    if gm.shape != (len(texts),):
        raise LayerwiseError(f"geometry_mask has shape {gm.shape}, expected ({len(texts)},)", "extract.run_state",
                             "give one boolean per text")
    if settings.batch_size < 1 or settings.hist_bins < 2:
        raise LayerwiseError("batch_size must be >= 1 and hist_bins >= 2", "extract.EngineSettings")
    return texts, gm


def run_state(model, tokenizer, texts: list[str], *, state: str, model_name: str,
              geometry_mask: np.ndarray | None = None, settings: EngineSettings | None = None, device=None,
              progress: bool = True) -> StateResult:
    """Run the geometry engine for one model state: one forward pass per batch, every statistic.

    ``texts``: every sentence whose pooled embeddings are stored (train and test); ``geometry_mask``:
    which of them feed the token statistics (default: all). Returns a :class:`StateResult` whose tables
    follow docs/architecture.md ("Result tables"); ``per_sentence.sentence`` is the position in ``texts``.
    """
    import torch
    from tqdm.auto import tqdm

    settings = settings or EngineSettings()
    texts, gm = _check_inputs(texts, geometry_mask, settings)
    model.eval()
    dev = _model_device(model, device)
    max_len = _effective_max_length(tokenizer, settings.max_length, getattr(model, "config", None))
    enc = _encode(tokenizer, texts, max_len)
    if (enc.lengths == 0).any():
        i = int(np.flatnonzero(enc.lengths == 0)[0])
        raise LayerwiseError(f"text {i} has no token after tokenization", "extract.run_state",
                             "drop empty texts from the data")
    plan = plan_samples(enc.lengths, enc.special, gm, settings)
    batches = _batches(enc, gm, settings.batch_size)
    n_geo = len(plan.geo)
    bins = settings.hist_bins

    # per-batch lookups of the samples
    cs_order = np.argsort(plan.cs_sent, kind="stable")
    cs_sorted = plan.cs_sent[cs_order]
    pool_order = np.argsort(plan.pool_sent, kind="stable")
    pool_sorted = plan.pool_sent[pool_order]

    state_arrays: dict[str, Any] = {}
    accs: dict[str, _LayerAcc] = {}
    per_sent = {v: {m: None for m in PER_SENTENCE_METRICS} for v in VARIANTS}

    def allocate(n_layers: int, d: int):
        state_arrays["cls"] = np.zeros((len(texts), n_layers, d), np.float16)
        state_arrays["mean"] = np.zeros((len(texts), n_layers, d), np.float16)
        state_arrays["cs"] = np.full((n_layers, len(plan.cs_sent)), np.nan, np.float32)
        state_arrays["pool"] = np.zeros((n_layers, len(plan.pool_sent), d), np.float32)
        for v in VARIANTS:
            accs[v] = _LayerAcc(n_layers, d, bins)
            for m in PER_SENTENCE_METRICS:
                per_sent[v][m] = np.full((n_geo, n_layers), np.nan)

    n_layers = None
    with torch.inference_mode():
        for idx in tqdm(batches, desc=f"{model_name} {state}", disable=not progress, leave=False, unit="batch"):
            inputs, spec = _collate(tokenizer, enc, idx)
            inputs = {k: v.to(dev) for k, v in inputs.items()}
            out = model(**inputs, output_hidden_states=True)
            hs = getattr(out, "hidden_states", None)
            if hs is None:
                raise LayerwiseError("the model returned no hidden states", f"state {state}",
                                     "use a transformers encoder that supports output_hidden_states")
            if n_layers is None:
                n_layers, d = len(hs), int(hs[0].shape[-1])
                allocate(n_layers, d)
            _process_batch(hs, inputs["attention_mask"].bool(), spec.to(dev), idx, gm, plan, settings,
                           state_arrays, accs, per_sent, cs_order, cs_sorted, pool_order, pool_sorted)
            del out, hs

    with _single_threaded_blas():  # small matrices: threads only fight the model's threads
        tidy, rogue = _finalise(plan, accs, per_sent, state_arrays, settings, state, model_name)
    per_sentence = _per_sentence_frame(per_sent, plan, state, model_name)
    cs = state_arrays["cs"]
    L1 = cs.shape[0]
    k = cs.shape[1]
    order_pairs = np.arange(k)
    cosine_sample = pd.DataFrame({
        "model": model_name, "state": state,
        "layer": np.repeat(np.arange(L1), k).astype(np.int64),
        "value": cs.reshape(-1).astype(np.float64),
        "pair": np.tile(order_pairs, L1).astype(np.int64),
        "sentence": np.tile(plan.cs_sent, L1).astype(np.int64),
        "i": np.tile(plan.cs_i, L1).astype(np.int64),
        "j": np.tile(plan.cs_j, L1).astype(np.int64),
        "content": np.tile(plan.cs_content, L1),
    })
    info = {"n_sentences": len(texts), "n_geometry": n_geo, "n_layers": L1, "n_batches": len(batches),
            "tokens": int(enc.lengths[gm].sum()), "pool_tokens": len(plan.pool_sent),
            "pool_sentences": int(plan.pool_index.shape[0]), "max_length": max_len}
    return StateResult(tidy, per_sentence, cosine_sample, rogue, state_arrays["cls"], state_arrays["mean"], info)


analyze_state = run_state


def _process_batch(hs, m, special, idx, gm, plan: Plan, settings: EngineSettings, arrays, accs, per_sent,
                   cs_order, cs_sorted, pool_order, pool_sorted) -> None:
    """Every statistic of one batch, all layers, batched in torch on the model's device.

    Per layer: token sums by one masked matrix product (pooled embeddings, sentence means, per-dimension
    sums), squared norms, unit rows, one batched Gram matrix of cosines ``U U^T`` per sentence; pair
    statistics read the Gram matrices through pair masks (valid tokens, ``i < j``), so no padding
    position enters any statistic. Reductions are float32 on the device (pairwise summation), moved to
    the host once per batch and accumulated in float64.
    """
    import torch

    B, T = m.shape
    L1 = len(hs)
    dev = m.device
    first = torch.argmax(m.to(torch.int8), dim=1)        # first valid position (left or right padding)
    rows = torch.arange(B, device=dev)
    geometry = bool(gm[idx[0]])                          # batches are all-geometry or none
    masks = torch.stack([m, m & ~special], 1)            # [B, 2, T]: all valid tokens, content tokens
    maskf = masks.to(torch.float32)
    counts = maskf.sum(-1)                               # [B, 2]
    cls_l, mean_l = [], []
    if not geometry:
        for h in hs:
            h = h.float()
            cls_l.append(h[rows, first])
            mean_l.append(torch.bmm(maskf[:, :1], h)[:, 0] / counts[:, :1].clamp_min(1))
        arrays["cls"][idx] = torch.stack(cls_l, 1).cpu().numpy().astype(np.float16)
        arrays["mean"][idx] = torch.stack(mean_l, 1).cpu().numpy().astype(np.float16)
        return

    grow = plan.geo_row[idx]
    upper = torch.ones(T, T, dtype=torch.bool, device=dev).triu(1)
    pair_m = [(masks[:, a, :, None] & masks[:, a, None, :]) & upper for a in (0, 1)]   # [B, T, T]
    pair_f = [pm.to(torch.float32) for pm in pair_m]
    pair_flat = [pm.reshape(-1).nonzero().squeeze(1) for pm in pair_m]
    npairs = torch.stack([pf.sum((1, 2)) for pf in pair_f], 1)                        # [B, 2]
    cs_rows, cs_b = _lookup(cs_sorted, cs_order, idx)
    pool_rows, pool_b = _lookup(pool_sorted, pool_order, idx)
    first_np = first.cpu().numpy()
    cs_flat = torch.as_tensor(cs_b * T * T + (first_np[cs_b] + plan.cs_i[cs_rows]) * T
                              + first_np[cs_b] + plan.cs_j[cs_rows], device=dev)
    pool_b_t = torch.as_tensor(pool_b, device=dev)
    pool_t_t = torch.as_tensor(first_np[pool_b] + plan.pool_tok[pool_rows], device=dev)
    nb = settings.hist_bins
    out: dict[str, list] = {k: [] for k in ("s1", "var", "intra", "ssq", "nsum", "msum", "dimsq", "mnorm", "vsum",
                                            "vsq", "vmin", "vmax", "cs", "pool")}
    hist = [[], []]
    zero_norm = torch.zeros((), dtype=torch.bool, device=dev)
    for h in hs:
        h = h.float()
        h2 = h * h
        sq = h2.sum(-1)                                  # [B, T] squared norms
        norms = sq.sqrt()
        zero_norm |= ((norms == 0) & m).any()
        msum = torch.bmm(maskf, h)                       # [B, 2, d] token sums (all, content)
        mvec = msum / counts.clamp_min(1).unsqueeze(-1)  # sentence means
        mnorm = mvec.norm(dim=-1)                        # [B, 2]
        cls_l.append(h[rows, first])
        mean_l.append(mvec[:, 0])
        out["msum"].append(msum.sum(0))                  # [2, d]
        out["dimsq"].append(torch.bmm(maskf, h2).sum(0))  # [2, d]
        out["mnorm"].append(mnorm)
        out["ssq"].append((maskf * sq.unsqueeze(1)).sum(-1))     # [B, 2]
        out["nsum"].append((maskf * norms.unsqueeze(1)).sum(-1))  # [B, 2]
        # unit rows (padding rows divided by 1, never read: every pair below is masked)
        U = h / torch.where(m, norms, torch.ones_like(norms)).unsqueeze(-1)
        G = torch.bmm(U, U.transpose(1, 2))              # [B, T, T] cosines
        tmc = torch.bmm(U, (mvec / mnorm.clamp_min(1e-30).unsqueeze(-1)).transpose(1, 2))  # [B, T, 2]
        out["intra"].append((tmc.transpose(1, 2) * maskf).sum(-1) / counts.clamp_min(1))  # [B, 2]
        s1s, vs = [], []
        for a in (0, 1):
            s1 = (G * pair_f[a]).sum((1, 2))             # [B]
            cm = s1 / npairs[:, a].clamp_min(1)
            dv = (G - cm[:, None, None]) * pair_f[a]
            vs.append((dv * dv).sum((1, 2)) / npairs[:, a].clamp_min(1))
            s1s.append(s1)
            vals = G.reshape(-1).index_select(0, pair_flat[a]).clamp_(-1.0, 1.0)
            if vals.numel():
                out["vmin"].append(vals.amin())
                out["vmax"].append(vals.amax())
                out["vsum"].append(vals.sum())
                out["vsq"].append((vals * vals).sum())
                hist[a].append(((vals + 1.0) * (nb / 2.0)).long().clamp_(0, nb - 1))
        out["s1"].append(torch.stack(s1s, 1))
        out["var"].append(torch.stack(vs, 1))
        if len(cs_rows):
            out["cs"].append(G.reshape(-1).index_select(0, cs_flat).clamp(-1.0, 1.0))
        if len(pool_rows):
            out["pool"].append(h[pool_b_t, pool_t_t])
    if bool(zero_norm):
        raise LayerwiseError("a valid (non-padding) token has a zero hidden vector", "extract.run_state",
                             "this signals a masking bug or a broken model; check the attention mask")

    arrays["cls"][idx] = torch.stack(cls_l, 1).cpu().numpy().astype(np.float16)
    arrays["mean"][idx] = torch.stack(mean_l, 1).cpu().numpy().astype(np.float16)
    host = {k: torch.stack(v).cpu().numpy().astype(np.float64) for k, v in out.items()
            if v and k not in ("vmin", "vmax", "vsum", "vsq", "pool", "cs")}
    if out["cs"]:
        arrays["cs"][:, cs_rows] = torch.stack(out["cs"]).cpu().numpy()
    if out["pool"]:
        arrays["pool"][:, pool_rows] = torch.stack(out["pool"]).cpu().numpy()
    npairs_h = npairs.cpu().numpy()
    counts_h = counts.cpu().numpy()
    # per-variant scalars were appended in order (layer, variant) where the variant had pairs
    has = [bool(npairs_h[:, a].sum() > 0) for a in (0, 1)]
    scal = {k: torch.stack(out[k]).cpu().numpy().astype(np.float64) if out[k] else np.zeros(0)
            for k in ("vmin", "vmax", "vsum", "vsq")}
    k_per_layer = sum(has)
    for a, v in enumerate(VARIANTS):
        acc = accs[v]
        n = counts_h[:, a]
        np_ = npairs_h[:, a]
        acc.tokens += int(n.sum())
        acc.norm_sum += host["nsum"][:, :, a].sum(1)
        acc.dim_sum += host["msum"][:, a]
        acc.dim_sumsq += host["dimsq"][:, a]
        if has[a]:
            pos = sum(has[:a])
            sel = slice(pos, None, k_per_layer)
            acc.pairs += int(np_.sum())
            acc.sum += scal["vsum"][sel]
            acc.sumsq += scal["vsq"][sel]
            acc.min = np.minimum(acc.min, scal["vmin"][sel])
            acc.max = np.maximum(acc.max, scal["vmax"][sel])
            bi = torch.stack(hist[a]) + (torch.arange(L1, device=dev) * nb).unsqueeze(1)
            acc.hist += torch.bincount(bi.reshape(-1), minlength=L1 * nb).reshape(L1, nb).cpu().numpy()
        ps = per_sent[v]
        ok_pairs = np_ > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            cmean = host["s1"][:, :, a] / np.where(ok_pairs, np_, 1)
            ssq = host["ssq"][:, :, a]
            ctr = np.clip(ssq - n * host["mnorm"][:, :, a] ** 2, 0.0, None) / np.where(n >= 2, n - 1, 1)
            cscaled = ctr / np.where(ssq > 0, ssq / np.where(n > 0, n, 1), np.nan)
        intra = np.where((n >= 1) & (host["mnorm"][:, :, a] > 0), host["intra"][:, :, a], np.nan)
        for name, val, ok in (("token_cosine", cmean, ok_pairs), ("token_cosine_var", host["var"][:, :, a], ok_pairs),
                              ("intra_similarity", intra, n >= 1), ("cov_trace", ctr, n >= 2),
                              ("cov_trace_scaled", cscaled, n >= 2)):
            ps[name][grow] = np.where(ok[None, :], val, np.nan).T


def _lookup(sorted_sent: np.ndarray, order: np.ndarray, idx: np.ndarray):
    """Rows of a sample (sorted by sentence) that belong to the batch ``idx``, and their batch rows."""
    if len(sorted_sent) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.searchsorted(sorted_sent, idx, side="left")
    hi = np.searchsorted(sorted_sent, idx, side="right")
    sample_rows = np.concatenate([order[a:b] for a, b in zip(lo, hi)]) if len(idx) else np.zeros(0, np.int64)
    batch_rows = np.concatenate([np.full(b - a, r) for r, (a, b) in enumerate(zip(lo, hi))]).astype(np.int64)
    return sample_rows.astype(np.int64), batch_rows


# ==================================================================================================
# Final statistics
# ==================================================================================================

def _single_threaded_blas():
    """Limit BLAS to one thread for the final small linear algebra (an idle spinning BLAS pool next to
    torch's OpenMP threads made eigendecompositions 50x slower on a busy 2-core machine)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _t_ci(x: np.ndarray) -> tuple[float, float, float, int]:
    """Mean and 95 % Student-t interval of the finite values of ``x``."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mu = float(x.mean())
    if n < 2:
        return mu, float("nan"), float("nan"), n
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mu, mu - half, mu + half, n


def _unit(X: np.ndarray) -> np.ndarray:
    """Rows divided by their norm; a zero row becomes NaN (excluded downstream, never a cosine of 0)."""
    nrm = np.sqrt(np.einsum("...d,...d->...", X, X))[..., None]
    return np.divide(X, nrm, out=np.full_like(X, np.nan), where=nrm > 0)


def _pool_pair_mean(Uz: np.ndarray, plan: Plan, variant: str) -> tuple[float, int]:
    """Mean within-sentence pairwise cosine over the sampled sentences (``Uz``: unit rows of the pool),
    each sentence's mean (on its sampled tokens) weighted by its true number of pairs: an estimate of
    the pooled pair mean."""
    idx = plan.pool_index
    S, cap = idx.shape
    if S == 0:
        return float("nan"), 0
    present = idx >= 0
    if variant == "_content":
        present &= ~plan.pool_special[np.where(present, idx, 0)]
    Up = Uz[np.where(present, idx, 0)]                   # [S, cap, d]
    Up = np.where(present[..., None], Up, 0.0)
    Gp = np.matmul(Up, Up.transpose(0, 2, 1))
    pm = present[:, :, None] & present[:, None, :] & np.triu(np.ones((cap, cap), bool), 1)
    cnt = pm.sum((1, 2))
    sums = np.where(pm, Gp, 0.0).sum((1, 2), dtype=np.float64)
    w = plan.pool_pairs[:, 1 if variant == "_content" else 0].astype(np.float64)
    ok = (cnt > 0) & np.isfinite(sums)
    if not ok.any():
        return float("nan"), 0
    means = sums[ok] / cnt[ok]
    return float(np.sum(w[ok] * means) / np.sum(w[ok])), int(cnt[ok].sum())


def _finalise(plan: Plan, accs, per_sent, arrays, settings: EngineSettings, state: str, model_name: str):
    """The tidy rows of one state (``v`` = "" for every valid token, "_content" without special tokens):

    * ``token_cosine_mean/sd/min/max{v}``: exact, over every within-sentence pair (n = pairs);
      ``token_cosine_q05..q95{v}``: from the 2/hist_bins-wide histogram (n = pairs);
    * ``token_cosine_sentence_mean{v}``, ``token_cosine_var_mean{v}``, ``intra_similarity{v}``,
      ``cov_trace{v}``, ``cov_trace_scaled{v}``: means over sentences of the per-sentence values, with a
      95 % Student-t interval (n = sentences);
    * ``norm_mean{v}``: mean token norm (n = tokens);
    * ``erank{v}``, ``erank_uncentred{v}``, ``isoscore{v}``: on the token sample (n = token_sample, or
      fewer when the pool is smaller);
    * ``anisotropy_baseline{v}``: mean cosine of random token pairs from different sentences, with a
      t interval (n = pairs); ``token_cosine_adjusted{v}`` and ``intra_similarity_adjusted{v}``: the raw
      score minus that baseline; ``rogue_top3_share{v}``: share of the 3 largest per-dimension
      contributions in the baseline cosine (Timkey & van Schijndel 2021);
    * ``anisotropy_baseline_std{v}`` (same pairs) and ``token_cosine_mean_std{v}`` (within-sentence
      pairs of the sampled sentences' kept tokens, each sentence weighted by its true pair count) after
      per-dimension standardisation with the mean and sd of every token of the variant;
      ``token_cosine_adjusted_std{v}`` is their difference.
    """
    rows: list[tuple] = []
    rogue_rows: list[dict] = []
    pool = arrays["pool"]
    L1 = pool.shape[0]
    nan = float("nan")

    def add(layer, metric, value, n, lo=nan, hi=nan):
        rows.append((model_name, state, int(layer), metric, float(value), float(lo), float(hi), int(n)))

    units: dict[int, np.ndarray] = {}
    for v in VARIANTS:
        acc = accs[v]
        mu_all, sigma_all = acc.mu_sigma()
        ps = per_sent[v]
        tok_rows = plan.tokens[v]
        ba, bb = plan.baseline[v]
        for layer in range(L1):
            npairs = int(acc.pairs[layer])
            if npairs:
                mean = acc.sum[layer] / npairs
                var = max(acc.sumsq[layer] / npairs - mean * mean, 0.0)
                qs = metrics.quantiles_from_histogram(acc.hist[layer], -1.0, 1.0, list(QUANTILES.values()),
                                                      acc.min[layer], acc.max[layer])
                add(layer, f"token_cosine_mean{v}", mean, npairs)
                add(layer, f"token_cosine_sd{v}", math.sqrt(var), npairs)
                for (name, _), q in zip(QUANTILES.items(), qs):
                    add(layer, f"token_cosine_{name}{v}", q, npairs)
                add(layer, f"token_cosine_min{v}", acc.min[layer], npairs)
                add(layer, f"token_cosine_max{v}", acc.max[layer], npairs)
            else:
                mean = nan
            sentence_means = {}
            for metric, name in (("token_cosine_var", "token_cosine_var_mean"), ("intra_similarity", "intra_similarity"),
                                 ("cov_trace", "cov_trace"), ("cov_trace_scaled", "cov_trace_scaled"),
                                 ("token_cosine", "token_cosine_sentence_mean")):
                mu, lo, hi, n = _t_ci(ps[metric][:, layer])
                sentence_means[name] = (mu, n)
                if n:
                    add(layer, f"{name}{v}", mu, n, lo, hi)
            if acc.tokens:
                add(layer, f"norm_mean{v}", acc.norm_sum[layer] / acc.tokens, acc.tokens)
            # token sample: effective rank and IsoScore at fixed n
            if len(tok_rows) >= 2:
                X = pool[layer, tok_rows]
                s, su = metrics.singular_values_centred_and_not(X)
                add(layer, f"erank{v}", metrics.effective_rank_from_singular_values(s), len(tok_rows))
                add(layer, f"erank_uncentred{v}", metrics.effective_rank_from_singular_values(su), len(tok_rows))
                add(layer, f"isoscore{v}", metrics.isoscore_from_singular_values(s, *X.shape), len(tok_rows))
            # anisotropy baseline and rogue dimensions on random cross-sentence pairs
            if len(ba):
                if layer not in units:
                    units[layer] = _unit(pool[layer])    # float32 unit rows of the pool, shared by variants
                U = units[layer]
                prods = U[ba] * U[bb]                    # [m, d]
                cos = prods.sum(1, dtype=np.float64)
                bmu, blo, bhi, bn = _t_ci(cos)
                add(layer, f"anisotropy_baseline{v}", bmu, bn, blo, bhi)
                if npairs:
                    add(layer, f"token_cosine_adjusted{v}", mean - bmu, npairs)
                im, inn = sentence_means["intra_similarity"]
                if inn:
                    add(layer, f"intra_similarity_adjusted{v}", im - bmu, inn)
                cc = np.nanmean(prods, axis=0, dtype=np.float64)
                top = np.argsort(-cc, kind="stable")
                total = cc.sum()
                add(layer, f"rogue_top3_share{v}", cc[top[:3]].sum() / total if total != 0 else nan, bn)
                if v == "":
                    for rank, dim in enumerate(top[: settings.top_dims]):
                        rogue_rows.append({"model": model_name, "state": state, "layer": layer, "rank": rank + 1,
                                           "dim": int(dim), "contribution": float(cc[dim]),
                                           "share": float(cc[dim] / total) if total != 0 else nan})
                # after per-dimension standardisation (mean, sd over every geometry token of the variant)
                Uz = _unit(metrics.standardise(pool[layer], mu_all[layer], sigma_all[layer]).astype(np.float32))
                zc = np.sum(Uz[ba] * Uz[bb], axis=1, dtype=np.float64)
                zmu, zlo, zhi, zn = _t_ci(zc)
                add(layer, f"anisotropy_baseline_std{v}", zmu, zn, zlo, zhi)
                cm, cn = _pool_pair_mean(Uz, plan, v)
                if cn:
                    add(layer, f"token_cosine_mean_std{v}", cm, cn)
                    add(layer, f"token_cosine_adjusted_std{v}", cm - zmu, cn)
    tidy = pd.DataFrame.from_records(rows, columns=TIDY_COLUMNS)
    tidy["n"] = tidy["n"].astype(np.int64)
    rogue = pd.DataFrame(rogue_rows, columns=["model", "state", "layer", "rank", "dim", "contribution", "share"])
    return tidy, rogue


def _per_sentence_frame(per_sent, plan: Plan, state: str, model_name: str) -> pd.DataFrame:
    parts = []
    for v in VARIANTS:
        for m in PER_SENTENCE_METRICS:
            arr = per_sent[v][m]
            if arr is None:
                continue
            n_geo, L1 = arr.shape
            parts.append(pd.DataFrame({
                "model": model_name, "state": state,
                "layer": np.tile(np.arange(L1), n_geo).astype(np.int64),
                "sentence": np.repeat(plan.geo, L1).astype(np.int64),
                "metric": f"{m}{v}", "value": arr.reshape(-1)}))
    if not parts:
        return pd.DataFrame(columns=["model", "state", "layer", "sentence", "metric", "value"])
    return pd.concat(parts, ignore_index=True)


# ==================================================================================================
# Comparing states: linear CKA on the pooled embeddings
# ==================================================================================================

def compare_states(embeddings: dict[str, dict[str, np.ndarray]], model_name: str,
                   reference: str = "pretrained") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Linear CKA (Kornblith et al. 2019, :func:`layerwise.metrics.linear_cka`) between model states on
    the same sentences (pass the test split), for the first-token (``cls``) and mean-pooled (``mean``)
    embeddings (``[n, L+1, d]`` per state).

    Returns ``(tidy_rows, cka)``: tidy rows ``cka_cls_vs_pretrained`` / ``cka_mean_vs_pretrained`` (layer
    l of each state against layer l of the reference, n = sentences), and the full layer x layer
    matrices for every pair of states, the within-state ones included (columns model, pooling, state_a,
    state_b, layer_a, layer_b, value). A representation that is the same for every sentence (the
    first token at layer 0 of BERT-like models) has no variance: its CKA is undefined (NaN).
    """
    with _single_threaded_blas():
        return _compare_states(embeddings, model_name, reference)


def _compare_states(embeddings, model_name: str, reference: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    states = sorted(embeddings, key=lambda s: s != reference)  # the reference first, then the given order
    tidy_rows: list[tuple] = []
    cka_rows: list[pd.DataFrame] = []
    nan = float("nan")
    for pooling in ("cls", "mean"):
        reps = {}
        for s in states:
            arr = embeddings[s].get(pooling)
            if arr is None:
                raise LayerwiseError(f"state {s!r} has no {pooling!r} embeddings", "extract.compare_states",
                                     "pass the arrays stored by run_state")
            reps[s] = np.asarray(arr, dtype=np.float64)
        if not reps:
            continue
        shapes = {s: r.shape[:2] for s, r in reps.items()}
        if len(set(shapes.values())) != 1:
            raise LayerwiseError(f"states describe different sentences or depths: {shapes}",
                                 "extract.compare_states", "pass the same sentences for every state")
        n, L1 = next(iter(shapes.values()))
        if n < 2:
            continue
        grams = {}
        for s, r in reps.items():
            Rc = r - r.mean(axis=0, keepdims=True)     # [n, L1, d], centred per layer
            Rc[:, np.all(r == r[:1], axis=(0, 2))] = 0.0  # constant layer (e.g. [CLS] at layer 0): CKA is NaN
            grams[s] = np.stack([Rc[:, layer] @ Rc[:, layer].T for layer in range(L1)])
        for ia, sa in enumerate(states):
            for sb in states[ia:]:
                M = metrics.cka_from_grams(grams[sa], grams[sb])
                la, lb = np.meshgrid(np.arange(L1), np.arange(L1), indexing="ij")
                cka_rows.append(pd.DataFrame({"model": model_name, "pooling": pooling, "state_a": sa, "state_b": sb,
                                              "layer_a": la.reshape(-1).astype(np.int64),
                                              "layer_b": lb.reshape(-1).astype(np.int64),
                                              "value": M.reshape(-1)}))
                if sa == reference and sb != reference:
                    for layer in range(L1):
                        tidy_rows.append((model_name, sb, layer, f"cka_{pooling}_vs_{reference}", float(M[layer, layer]),
                                          nan, nan, n))
    tidy = pd.DataFrame.from_records(tidy_rows, columns=TIDY_COLUMNS)
    tidy["n"] = tidy["n"].astype(np.int64)
    cka = (pd.concat(cka_rows, ignore_index=True) if cka_rows else
           pd.DataFrame(columns=["model", "pooling", "state_a", "state_b", "layer_a", "layer_b", "value"]))
    return tidy, cka
