"""Each batched kernel of layerwise.measure.kernels equals the layerwise.measure.metrics definition it names, on a padded
batch (right and left padding, garbage in the padding rows, a one-token sentence, special tokens)."""

import numpy as np
import pytest
import torch

from layerwise.measure import kernels, metrics

LENGTHS = [5, 1, 3, 7, 2]
D = 6


def make_batch(left: bool = False, seed: int = 0):
    """A padded batch ``h`` [B, T, d] (padding rows hold garbage), its masks, and each sentence's rows
    (float64) and special flags (first and last token special, as [CLS] ... [SEP])."""
    rng = np.random.default_rng(seed)
    B, T = len(LENGTHS), max(LENGTHS)
    h = rng.standard_normal((B, T, D)).astype(np.float32) * 3 + 1  # offset: cosines far from 0
    valid = np.zeros((B, T), bool)
    special = np.zeros((B, T), bool)
    sentences = []
    for b, n in enumerate(LENGTHS):
        positions = np.arange(T - n, T) if left else np.arange(n)
        valid[b, positions] = True
        special[b, positions[0]] = special[b, positions[-1]] = True
        sentences.append((h[b, positions].astype(np.float64), special[b, positions]))
    return torch.from_numpy(h), torch.from_numpy(valid), torch.from_numpy(special), sentences


def variant_rows(rows, spec, variant):
    return rows if variant == 0 else rows[~spec]


@pytest.fixture(params=[False, True], ids=["right-padded", "left-padded"])
def batch(request):
    h, valid, special, sentences = make_batch(left=request.param)
    masks = kernels.batch_masks(valid, special)
    return h, masks, sentences, kernels.layer_statistics(h, masks, bins=64)


def test_masks_count_tokens_and_pairs(batch):
    _, masks, sentences, _ = batch
    for b, (rows, spec) in enumerate(sentences):
        for v in (0, 1):
            n = len(variant_rows(rows, spec, v))
            assert masks.counts[b, v] == n and masks.n_pairs[b, v] == n * (n - 1) // 2
    assert int(masks.first[0]) == (0 if masks.valid[0, 0] else max(LENGTHS) - LENGTHS[0])


def test_pair_cosine_values_equal_pairwise_cosines_upper(batch):
    h, masks, sentences, _ = batch
    grams = kernels.cosine_grams(kernels.unit_token_rows(h, h.norm(dim=-1), masks.valid))
    for v in (0, 1):
        expected = np.concatenate([metrics.pairwise_cosines_upper(variant_rows(r, s, v))
                                   for r, s in sentences if len(variant_rows(r, s, v)) >= 2])
        got = kernels.pair_cosine_values(grams, masks.pair_index[v]).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)  # same values, same order


def test_unit_rows_equal_metrics_unit_rows(batch):
    h, masks, sentences, _ = batch
    units = kernels.unit_token_rows(h, h.norm(dim=-1), masks.valid)
    for b, (rows, _) in enumerate(sentences):
        np.testing.assert_allclose(units[b][masks.valid[b]].numpy(), metrics.unit_rows(rows), atol=1e-6)


def test_pair_cosine_moments_equal_pairwise_mean_and_variance(batch):
    _, masks, sentences, stats = batch
    for b, (rows, spec) in enumerate(sentences):
        for v in (0, 1):
            X = variant_rows(rows, spec, v)
            if len(X) < 2:
                assert stats.pair_cosine_sum[b, v] == 0
                continue
            c = metrics.pairwise_cosines_upper(X)
            assert float(stats.pair_cosine_sum[b, v]) == pytest.approx(c.sum(), abs=1e-5)
            assert float(stats.pair_cosine_var[b, v]) == pytest.approx(c.var(), abs=1e-6)


def test_intra_similarity_equals_definition(batch):
    _, _, sentences, stats = batch
    for b, (rows, spec) in enumerate(sentences):
        for v in (0, 1):
            X = variant_rows(rows, spec, v)
            if len(X):
                assert float(stats.intra_similarity[b, v]) == pytest.approx(metrics.intra_similarity(X), abs=1e-6)


def test_per_sentence_values_equal_definitions(batch):
    """cov_trace through sum |x - mean|^2 = sum |x|^2 - n |mean|^2, and every per-sentence value."""
    _, masks, sentences, stats = batch
    for v in (0, 1):
        sums = {name: getattr(stats, name)[None, :, v].double().numpy() for name in kernels.SENTENCE_SUMS}
        values = kernels.per_sentence_values(sums, masks.counts[:, v].numpy(), masks.n_pairs[:, v].numpy())
        for b, (rows, spec) in enumerate(sentences):
            X = variant_rows(rows, spec, v)
            if len(X) < 2:
                assert np.isnan(values["cov_trace"][0, b]) and np.isnan(values["token_cosine"][0, b])
                continue
            c = metrics.pairwise_cosines_upper(X)
            assert values["token_cosine"][0, b] == pytest.approx(c.mean(), abs=1e-6)
            assert values["token_cosine_var"][0, b] == pytest.approx(c.var(), abs=1e-6)
            assert values["intra_similarity"][0, b] == pytest.approx(metrics.intra_similarity(X), abs=1e-6)
            assert values["cov_trace"][0, b] == pytest.approx(metrics.cov_trace(X), rel=1e-5)
            assert values["cov_trace_scaled"][0, b] == pytest.approx(metrics.cov_trace_scaled(X), abs=1e-6)


def test_cov_trace_identity_on_exact_sums():
    X = np.random.default_rng(3).standard_normal((9, 4)) + 2
    n = np.array([len(X)], float)
    trace = kernels.cov_trace_from_sums(np.array([np.sum(X * X)]), n, np.array([np.linalg.norm(X.mean(0))]))
    assert trace[0] == pytest.approx(metrics.cov_trace(X), rel=1e-12)
    scaled = kernels.cov_trace_scaled_from_sums(trace, np.array([np.sum(X * X)]), n)
    assert scaled[0] == pytest.approx(metrics.cov_trace_scaled(X), rel=1e-12)


def test_token_sums_give_the_standardisation_moments(batch):
    """Per-dimension sums over a batch -> mean_sd_from_sums = the mu, sigma (ddof 0) of metrics.standardise."""
    _, _, sentences, stats = batch
    for v in (0, 1):
        tokens = np.concatenate([variant_rows(r, s, v) for r, s in sentences])
        mu, sigma = kernels.mean_sd_from_sums(stats.dim_sum[v].double().numpy(), stats.dim_sum_sq[v].double().numpy(),
                                              len(tokens))
        np.testing.assert_allclose(mu, tokens.mean(0), atol=1e-5)
        np.testing.assert_allclose(sigma, tokens.std(0), atol=1e-4)
        Z = metrics.standardise(tokens, mu, sigma)
        np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)


def test_running_sums_give_the_pooled_pair_statistics():
    """Two batches added to RunningSums: exact count, mean, sd, min, max of every pair cosine, and a
    histogram equal to numpy's on [-1, 1]."""
    running = kernels.RunningSums(1, D, 64)
    everything = []
    for seed in (1, 2):
        h, valid, special, sentences = make_batch(seed=seed)
        masks = kernels.batch_masks(valid, special)
        stats = kernels.layer_statistics(h, masks, bins=64)
        sums = {name: getattr(stats, name)[None, :, 0].double().numpy() for name in kernels.SENTENCE_SUMS}
        dims = {name: getattr(stats, name)[None, 0].double().numpy() for name in kernels.DIMENSION_SUMS}
        running.add(dims, sums, masks.counts[:, 0].numpy(), [stats.pair_values[0]], int(masks.n_pairs[:, 0].sum()))
        everything += [metrics.pairwise_cosines_upper(r) for r, _ in sentences if len(r) >= 2]
    values = np.concatenate(everything)
    assert running.pairs[0] == len(values)
    mean, sd = kernels.mean_sd_from_sums(running.sum[0], running.sum_sq[0], int(running.pairs[0]))
    assert mean == pytest.approx(values.mean(), abs=1e-6) and sd == pytest.approx(values.std(), abs=1e-5)
    assert running.min[0] == pytest.approx(values.min(), abs=1e-6)
    assert running.max[0] == pytest.approx(values.max(), abs=1e-6)
    np.testing.assert_array_equal(running.hist[0], np.histogram(values, bins=64, range=(-1, 1))[0])
    q = metrics.quantiles_from_histogram(running.hist[0], -1.0, 1.0, [0.5], running.min[0], running.max[0])
    assert abs(q[0] - np.median(values)) <= 2 / 64 + np.diff(np.sort(values)).max()


def test_within_sentence_cosine_mean_is_the_pair_weighted_mean():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((9, D))
    index = np.array([[0, 1, 2], [3, 4, -1], [5, 6, 7], [8, -1, -1]])
    present = index >= 0
    weights = np.array([3, 10, 3, 1])
    mean, n_pairs = kernels.within_sentence_cosine_mean(X, index, present, weights)
    per_sentence = [metrics.pairwise_cosines_upper(X[row[row >= 0]]).mean() for row in index[:3]]
    assert n_pairs == 3 + 1 + 3
    assert mean == pytest.approx(np.average(per_sentence, weights=weights[:3]), rel=1e-12)


def test_pooled_layers_are_first_token_and_mean(batch):
    """The engine's pooled embeddings (measure.pooling) on the kernels' batch: first token and mean, every layer."""
    from layerwise.measure import pooling

    h, masks, sentences, _ = batch
    out = pooling.pooled_layers([h, 2 * h], masks.valid, ["cls", "mean"])
    for b, (rows, _) in enumerate(sentences):
        np.testing.assert_allclose(out["cls"][b, 1], 2 * rows[0], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(out["mean"][b, 0], rows.mean(0), rtol=2e-3, atol=2e-3)


def test_layer_statistics_keeps_requested_pairs_and_tokens(batch):
    h, masks, sentences, _ = batch
    T = h.shape[1]
    first = masks.first.numpy()
    b, i, j = 3, 1, 5
    flat = torch.tensor([b * T * T + (first[b] + i) * T + first[b] + j])
    stats = kernels.layer_statistics(h, masks, 64, flat, (torch.tensor([0]), torch.tensor([int(first[0]) + 2])))
    rows = sentences[b][0]
    assert float(stats.cosine_sample[0]) == pytest.approx(metrics.cosine_matrix(rows)[i, j], abs=1e-6)
    np.testing.assert_allclose(stats.pool[0].numpy(), sentences[0][0][2], atol=1e-6)



def test_word_vectors_equal_metrics_word_vector(batch):
    h, masks, sentences, _ = batch
    first = masks.first.numpy()
    # occurrences: (sentence, positions among its tokens), -1 padded
    occ = [(0, [1, 2, 3]), (3, [4, -1, -1]), (1, [0, -1, -1]), (3, [0, 1, -1])]
    rows = torch.tensor([b for b, _ in occ])
    pos = np.array([p for _, p in occ])
    padded = torch.from_numpy(np.where(pos >= 0, first[[b for b, _ in occ]][:, None] + pos, -1))
    got = kernels.word_vectors(h, rows, padded).numpy()
    for k, (b, p) in enumerate(occ):
        want = metrics.word_vector(sentences[b][0], [x for x in p if x >= 0])
        np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-5)
