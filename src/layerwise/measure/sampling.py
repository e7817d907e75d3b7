"""The sampling plan of the geometry engine: every random choice of a run, made up front from the token
counts and the seed (numpy ``SeedSequence(seed)``, one child stream per sample), never from the batch
size, so results are batch-size invariant.

The samples: a uniform sample of within-sentence token pairs (cosine histogram plots); the token pool
(``sample_sentences`` random sentences, up to ``tokens_per_sentence`` tokens each: the standardised
within-sentence cosines and the token sample of effective rank and IsoScore); the **baseline tokens**,
``baseline_tokens`` tokens drawn uniformly over every token of the analysed sentences (token-weighted,
as Ethayarajh 2019 samples words, not sentence-weighted), split into ``BASELINE_DRAWS`` disjoint random
groups (independent replicates), and the random pairs from different sentences made within each group
that give the anisotropy baseline; the **word occurrences** of the self-similarity: the words
(tokenizer word groups, :mod:`layerwise.inputs.tokens`) that occur in at least ``self_similarity_min_count``
analysed sentences, at most ``self_similarity_words`` of them, at most ``self_similarity_occurrences``
occurrences of each (one per sentence).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from ..inputs.config import AnalysisSpec

log = logging.getLogger(__name__)

#: independent draws (disjoint random groups of baseline tokens, each with its own pairs) behind the
#: anisotropy baseline's interval (:func:`layerwise.measure.stats.replicate_mean_ci`); fewer (at least 2) when
#: there are fewer than ``MIN_DRAW_TOKENS`` baseline tokens per draw
BASELINE_DRAWS = 20
MIN_DRAW_TOKENS = 20

__all__ = ["SamplePlan", "WordPlan", "plan_samples", "plan_words"]


@dataclass
class WordPlan:
    """The word occurrences of the self-similarity, one row per occurrence: its sentence (text index),
    its word (index into ``keys``), its token positions counted from the sentence's first valid token
    (``positions``, ``[N, S]``, -1 padded) and the selected words' token ids (``keys``)."""

    sentence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    word: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.int64))
    keys: list = field(default_factory=list)


@dataclass
class SamplePlan:
    """The sampling plan of one run, fixed by token counts and the seed (not by the batch size). Token
    positions count from a sentence's first valid token. The token pool holds capped random tokens of
    the sampled sentences, grouped by sentence (the rows of ``pool_index``), then the baseline tokens
    (uniform over all tokens); the token sample is grouped rows, the baseline pairs baseline rows."""

    geometry_texts: np.ndarray        # text indices of the sentences feeding the token statistics
    geometry_row: np.ndarray          # text index -> row in the per-sentence arrays (-1 if not geometry)
    # cosine sample: uniform over all within-sentence pairs of valid tokens, without replacement
    cosine_sentence: np.ndarray
    cosine_i: np.ndarray
    cosine_j: np.ndarray
    cosine_content: np.ndarray        # both tokens non-special
    # token pool
    pool_sentence: np.ndarray
    pool_token: np.ndarray
    pool_special: np.ndarray
    pool_index: np.ndarray            # [S, cap] pool row per (sampled sentence, slot), -1 when empty
    pool_pairs: np.ndarray            # [S, 2] true number of pairs (all tokens, content tokens) of each sentence
    token_sample: dict[str, np.ndarray]                       # variant -> pool rows for erank / IsoScore
    baseline_pairs: dict[str, tuple[np.ndarray, np.ndarray]]  # variant -> pool rows (a, b), different sentences
    baseline_draw: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> independent draw of each pair
    words: WordPlan = field(default_factory=WordPlan)         # word occurrences of the self-similarity


def _draw_cross_pairs(candidates: np.ndarray, sentence: np.ndarray, m: int, rng: np.random.Generator):
    """``m`` random pairs of candidate rows whose sentences differ (uniform, with replacement)."""
    if m <= 0 or len(candidates) < 2 or len(np.unique(sentence[candidates])) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = rng.choice(candidates, m)
    b = rng.choice(candidates, m)
    same = sentence[a] == sentence[b]
    while same.any():
        b[same] = rng.choice(candidates, int(same.sum()))
        same = sentence[a] == sentence[b]
    return a, b


def _plan_cosine_sample(lengths, special, geometry_texts, size: int, rng: np.random.Generator):
    """``(sentence, i, j, content)`` of a uniform sample of within-sentence pairs, without replacement:
    linear pair indices over the concatenated upper triangles, mapped back with
    :func:`layerwise.measure.metrics.triu_pair_index`."""
    n = lengths[geometry_texts]
    pairs = n * (n - 1) // 2
    k = min(size, int(pairs.sum()))
    linear = np.sort(rng.choice(int(pairs.sum()), size=k, replace=False)) if k > 0 else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(pairs)])
    position = np.searchsorted(starts, linear, side="right") - 1
    sentence = geometry_texts[position]
    if k:
        i, j = metrics.triu_pair_index(linear - starts[position], lengths[sentence])
    else:
        i = j = np.zeros(0, np.int64)
    content = np.array([not (special[s][a] or special[s][b]) for s, a, b in zip(sentence, i, j)], dtype=bool)
    return sentence, i.astype(np.int64), j.astype(np.int64), content


def _plan_pool(lengths, special, geometry_texts, settings: AnalysisSpec, rng: np.random.Generator):
    """The token pool: ``sample_sentences`` random geometry sentences, up to
    ``settings.tokens_per_sentence`` random tokens of each. Returns ``(sentence, token, special, index,
    pairs)`` (see :class:`SamplePlan`)."""
    n_sampled = min(settings.sample_sentences, len(geometry_texts))
    chosen = (np.sort(rng.choice(geometry_texts, size=n_sampled, replace=False)) if n_sampled > 0
              else np.zeros(0, np.int64))
    cap = min(settings.tokens_per_sentence(n_sampled), int(lengths[chosen].max()) if n_sampled else 1)
    sentences, tokens = [], []
    index, pairs = np.full((n_sampled, cap), -1, np.int64), np.zeros((n_sampled, 2), np.int64)
    row = 0
    for slot, s in enumerate(chosen):
        n = int(lengths[s])
        kept = np.sort(rng.choice(n, size=min(cap, n), replace=False))
        sentences.append(np.full(len(kept), s))
        tokens.append(kept)
        index[slot, : len(kept)] = np.arange(row, row + len(kept))
        row += len(kept)
        n_content = int((~special[s]).sum())
        pairs[slot] = (n * (n - 1) // 2, n_content * (n_content - 1) // 2)
    sentence = np.concatenate(sentences) if sentences else np.zeros(0, np.int64)
    token = np.concatenate(tokens) if tokens else np.zeros(0, np.int64)
    is_special = np.array([special[s][t] for s, t in zip(sentence, token)], dtype=bool)
    return sentence, token, is_special, index, pairs


def _plan_baseline_tokens(lengths, special, geometry_texts, k: int, rng: np.random.Generator):
    """``(sentence, token, special)`` of ``k`` tokens drawn uniformly, without replacement, over every
    valid token of the geometry sentences (linear indices over the concatenated sentences)."""
    n = lengths[geometry_texts]
    total = int(n.sum())
    k = min(int(k), total)
    linear = np.sort(rng.choice(total, size=k, replace=False)) if k > 0 else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(n)])
    position = np.searchsorted(starts, linear, side="right") - 1
    sentence = geometry_texts[position].astype(np.int64)
    token = (linear - starts[position]).astype(np.int64)
    return sentence, token, np.array([special[s][t] for s, t in zip(sentence, token)], dtype=bool)


def _baseline_draws(candidates: np.ndarray, draw: np.ndarray, sentence: np.ndarray, m: int,
                    rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """``m`` cross-sentence pairs split over the independent draws: draw g pairs only its own tokens
    (``candidates`` whose ``draw`` is g), ``m / G`` pairs each. Returns ``((a, b), draw of each pair)``."""
    a, b, g = [], [], []
    n_draws = int(draw.max()) + 1 if len(draw) else 0
    for k in range(n_draws):
        mine = candidates[draw[candidates] == k]
        pa, pb = _draw_cross_pairs(mine, sentence, m // n_draws + (k < m % n_draws), rng)
        a.append(pa)
        b.append(pb)
        g.append(np.full(len(pa), k, np.int64))
    return (np.concatenate(a), np.concatenate(b)), np.concatenate(g)


def _word_occurrences(words: list[np.ndarray], ids: list[np.ndarray], geometry_texts) -> dict:
    """Word key (its token ids) -> list of ``(sentence, [positions of each occurrence in it])``."""
    occurrences: dict[tuple, list] = defaultdict(list)
    for s in geometry_texts:
        w = words[s]
        in_sentence: dict[tuple, list] = defaultdict(list)
        for g in np.unique(w[w >= 0]):
            pos = np.flatnonzero(w == g)
            in_sentence[tuple(ids[s][pos].tolist())].append(pos)
        for key, options in in_sentence.items():
            occurrences[key].append((int(s), options))
    return occurrences


def plan_words(words: list[np.ndarray] | None, ids: list[np.ndarray] | None, geometry_texts: np.ndarray,
               settings: AnalysisSpec, rng: np.random.Generator) -> WordPlan:
    """The word occurrences of the self-similarity (Ethayarajh 2019): words (same token ids) occurring
    in at least ``self_similarity_min_count`` geometry sentences; at most ``self_similarity_words`` of
    them (a uniform random subset when more qualify), at most ``self_similarity_occurrences``
    sentences of each (random), one random occurrence per sentence. Memory: words x occurrences
    vectors per layer."""
    if words is None or ids is None:
        return WordPlan()
    occurrences = _word_occurrences(words, ids, geometry_texts)
    eligible = [k for k, v in occurrences.items() if len(v) >= settings.self_similarity_min_count]
    if len(eligible) > settings.self_similarity_words:
        eligible = [eligible[i] for i in np.sort(rng.choice(len(eligible), settings.self_similarity_words,
                                                            replace=False))]
    sentence, word, positions = [], [], []
    for w, key in enumerate(eligible):
        occ = occurrences[key]
        if len(occ) > settings.self_similarity_occurrences:
            occ = [occ[i] for i in np.sort(rng.choice(len(occ), settings.self_similarity_occurrences, replace=False))]
        for s, options in occ:
            sentence.append(s)
            word.append(w)
            positions.append(options[int(rng.integers(len(options)))])
    width = max((len(p) for p in positions), default=1)
    table = np.full((len(positions), width), -1, np.int64)
    for r, pos in enumerate(positions):
        table[r, : len(pos)] = pos
    return WordPlan(np.asarray(sentence, np.int64), np.asarray(word, np.int64), table, eligible)


def plan_samples(lengths: np.ndarray, special: list[np.ndarray], geometry_mask: np.ndarray,
                 settings: AnalysisSpec, words: list[np.ndarray] | None = None,
                 ids: list[np.ndarray] | None = None) -> SamplePlan:
    """Decide every random sample up front (numpy ``SeedSequence(seed)``, one child stream per sample).
    ``words``/``ids`` (word index and token ids of every token, :class:`layerwise.inputs.tokens.Encoded`) feed
    the self-similarity's word occurrences; without them there are none."""
    geometry_texts = np.flatnonzero(geometry_mask)
    geometry_row = np.full(len(lengths), -1, dtype=np.int64)
    geometry_row[geometry_texts] = np.arange(len(geometry_texts))
    cosine_rng, pool_rng, token_rng, baseline_rng, uniform_rng, word_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(6))
    cosine = _plan_cosine_sample(lengths, special, geometry_texts, settings.cosine_sample, cosine_rng)
    pool_sentence, pool_token, pool_special, pool_index, pool_pairs = _plan_pool(
        lengths, special, geometry_texts, settings, pool_rng)
    rows = np.arange(len(pool_sentence))
    uniform = _plan_baseline_tokens(lengths, special, geometry_texts, settings.baseline_tokens, uniform_rng)
    uniform_rows = len(pool_sentence) + np.arange(len(uniform[0]))
    pool_sentence, pool_token, pool_special = (np.concatenate([a, b]) for a, b in
                                               zip((pool_sentence, pool_token, pool_special), uniform))
    draw = np.full(len(pool_sentence), -1, np.int64)
    n_draws = min(BASELINE_DRAWS, max(2, len(uniform_rows) // MIN_DRAW_TOKENS))
    draw[uniform_rows] = uniform_rng.permutation(len(uniform_rows)) % n_draws
    token_sample, baseline, baseline_draw = {}, {}, {}
    content_rows, content_uniform = rows[~pool_special[rows]], uniform_rows[~pool_special[uniform_rows]]
    for variant, candidates, uniform_candidates in (("", rows, uniform_rows),
                                                    ("_content", content_rows, content_uniform)):
        k = min(settings.token_sample, len(candidates))
        token_sample[variant] = (np.sort(token_rng.choice(candidates, size=k, replace=False)) if k
                                 else np.zeros(0, np.int64))
        baseline[variant], baseline_draw[variant] = _baseline_draws(uniform_candidates, draw, pool_sentence,
                                                                    settings.baseline_pairs, baseline_rng)
    if len(token_sample[""]) < settings.token_sample:
        log.warning("token sample has %d tokens, fewer than token_sample=%d (more sentences or pool_tokens "
                    "would fix it); n is recorded", len(token_sample[""]), settings.token_sample)
    return SamplePlan(geometry_texts, geometry_row, *cosine, pool_sentence, pool_token, pool_special, pool_index,
                      pool_pairs, token_sample, baseline, baseline_draw,
                      plan_words(words, ids, geometry_texts, settings, word_rng))
