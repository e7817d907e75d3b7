"""Known answers for every metric of layerwise.measure.metrics (definitions: docs/metrics-references.md)."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from layerwise.measure import metrics as M
from layerwise.core.errors import LayerwiseError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """On a shared 2-core machine a spinning BLAS pool makes the 1000 x 768 cases 20x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------------------- erank
def test_effective_rank_identity_is_n():
    for n in (1, 5, 64):
        assert M.effective_rank(np.eye(n), centre=False) == pytest.approx(n, rel=1e-9)


def test_effective_rank_centred_identity_is_n_minus_1():
    assert M.effective_rank(np.eye(20), centre=True) == pytest.approx(19, rel=1e-9)


def test_effective_rank_rank_one_is_1():
    rng = np.random.default_rng(0)
    X = np.outer(rng.standard_normal(50), rng.standard_normal(30))
    assert M.effective_rank(X, centre=False) == pytest.approx(1.0, abs=1e-6)
    assert M.effective_rank(X, centre=True) == pytest.approx(1.0, abs=1e-6)


def test_effective_rank_iid_gaussian_about_670():
    X = np.random.default_rng(0).standard_normal((1000, 768))
    assert M.effective_rank(X) == pytest.approx(670, abs=5)


def test_effective_rank_constant_offset_collapses_only_uncentred():
    X = np.random.default_rng(1).standard_normal((200, 10)) + 100.0
    assert M.effective_rank(X, centre=False) < 1.5
    assert M.effective_rank(X, centre=True) > 9


def test_singular_values_match_svd():
    rng = np.random.default_rng(2)
    for shape in ((40, 7), (7, 40)):
        X = rng.standard_normal(shape)
        for centre in (False, True):
            ref = np.linalg.svd(X - X.mean(0) if centre else X, compute_uv=False)
            got = M.singular_values(X, centre)[: len(ref)]
            np.testing.assert_allclose(got, ref, atol=1e-8)
            np.testing.assert_allclose(M.singular_values(X, centre, dtype=np.float32)[: len(ref)], ref, rtol=1e-4,
                                       atol=1e-4)
            np.testing.assert_allclose(M.singular_values_centred_and_not(X + 3.0)[0 if centre else 1][: len(ref)],
                                       np.linalg.svd(X + 3.0 - (X + 3.0).mean(0) if centre else X + 3.0,
                                                     compute_uv=False), atol=1e-8)


# ------------------------------------------------------------------------------------------- IsoScore
def test_isoscore_points_on_a_line_is_0():
    rng = np.random.default_rng(3)
    t = rng.standard_normal(500)
    X = np.outer(t, [1.0, 2.0, -1.0, 0.5, 3.0]) + np.array([4.0, 0, 1, 2, 3])
    assert M.isoscore(X) == pytest.approx(0.0, abs=1e-9)


def test_isoscore_isotropic_ball_is_about_1():
    X = np.random.default_rng(4).standard_normal((20000, 3))
    assert M.isoscore(X) > 0.99


def test_isoscore_exactly_isotropic_variances_is_1():
    assert M.isoscore_from_variances(np.ones(768)) == pytest.approx(1.0)
    assert M.isoscore_from_variances(np.eye(768)[0]) == pytest.approx(0.0, abs=1e-12)


def test_isoscore_sample_size_bias_in_768_dimensions():
    """metrics-references.md: isotropic Gaussian in R^768 gives ~0.56 at n=1000 and ~0.87 at n=5000."""
    rng = np.random.default_rng(5)
    assert M.isoscore(rng.standard_normal((1000, 768))) == pytest.approx(0.56, abs=0.02)
    assert M.isoscore(rng.standard_normal((5000, 768))) == pytest.approx(0.87, abs=0.02)


def test_isoscore_rotation_and_scale_invariant_but_sees_anisotropy():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3000, 6)) * np.array([5, 1, 1, 1, 1, 1.0])
    Q = ortho_group.rvs(6, random_state=1)
    assert M.isoscore(X @ Q * 7.0) == pytest.approx(M.isoscore(X), abs=1e-9)
    assert M.isoscore(X) < 0.6


# ------------------------------------------------------------------------------------------------ CKA
def test_cka_identities():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 12))
    Q = ortho_group.rvs(12, random_state=0)
    assert M.linear_cka(X, X) == pytest.approx(1.0)
    assert M.linear_cka(X, X @ Q) == pytest.approx(1.0)
    assert M.linear_cka(X, 3.5 * X) == pytest.approx(1.0)
    assert M.linear_cka(X, X + 10.0) == pytest.approx(1.0)  # centred
    assert M.linear_cka(X, X, debiased=True) == pytest.approx(1.0)


def test_cka_published_demo_value():
    """Kornblith et al.'s demo: legacy numpy RNG (np.random.seed + np.random.randn) reproduces it."""
    state = np.random.get_state()
    try:
        np.random.seed(1337)
        X = np.random.randn(100, 10)
        Y = X + np.random.randn(100, 10)
    finally:
        np.random.set_state(state)
    assert M.linear_cka(X, Y) == pytest.approx(0.5576, abs=1e-4)
    assert M.linear_cka(X, Y, debiased=True) == pytest.approx(0.5135, abs=1e-4)


def test_cka_not_invariant_to_non_orthogonal_maps_and_low_for_independent():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 5))
    A = np.diag([10.0, 1, 1, 1, 0.1])
    assert M.linear_cka(X, X @ A) < 0.99
    assert M.linear_cka(X, rng.standard_normal((200, 5))) < 0.2


def test_cka_matrix_equals_pairwise_linear_cka():
    rng = np.random.default_rng(9)
    A = [rng.standard_normal((30, 8)) for _ in range(3)]
    B = [a @ rng.standard_normal((8, 6)) + 0.5 * rng.standard_normal((30, 6)) for a in A]
    got = M.cka_matrix(A, B)
    ref = np.array([[M.linear_cka(a, b) for b in B] for a in A])
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_allclose(np.diag(M.cka_matrix(A)), 1.0)


def test_cka_errors():
    with pytest.raises(LayerwiseError):
        M.linear_cka(np.ones((5, 2)), np.ones((6, 2)))


# -------------------------------------------------------------------------------------------- cosines
def _naive_cos(u, v):
    return float(np.dot(u, v) / (np.sqrt(np.dot(u, u)) * np.sqrt(np.dot(v, v))))


def test_vectorised_cosines_equal_naive_double_loop():
    X = np.random.default_rng(10).standard_normal((17, 9))
    naive = [_naive_cos(X[i], X[j]) for i in range(len(X)) for j in range(i + 1, len(X))]
    np.testing.assert_allclose(M.pairwise_cosines_upper(X), naive, atol=1e-12)
    C = M.cosine_matrix(X)
    np.testing.assert_allclose(np.diag(C), 1.0)
    assert C[0, 1] == pytest.approx(_naive_cos(X[0], X[1]))


def test_cosine_known_values_and_zero_vector_is_an_error():
    X = np.array([[1.0, 0], [0, 2.0], [-3.0, 0]])
    np.testing.assert_allclose(M.pairwise_cosines_upper(X), [0.0, -1.0, 0.0], atol=1e-12)
    with pytest.raises(LayerwiseError, match="zero vector"):
        M.cosine_matrix(np.array([[1.0, 2.0], [0.0, 0.0]]))


def test_triu_pair_index_matches_numpy_order():
    for n in (2, 3, 7, 64, 513):
        i, j = np.triu_indices(n, 1)
        gi, gj = M.triu_pair_index(np.arange(len(i)), n)
        np.testing.assert_array_equal(gi, i)
        np.testing.assert_array_equal(gj, j)
    # one size per index
    gi, gj = M.triu_pair_index([0, 2, 5], [2, 3, 4])
    np.testing.assert_array_equal(gi, [0, 1, 2])
    np.testing.assert_array_equal(gj, [1, 2, 3])


def test_paired_cosines_and_contributions():
    rng = np.random.default_rng(11)
    U, V = rng.standard_normal((100, 6)), rng.standard_normal((100, 6))
    cc = M.cosine_contributions(U, V)
    assert cc.sum() == pytest.approx(M.paired_cosines(U, V).mean())
    # a rogue dimension: a large shared offset in dimension 2 dominates the expected cosine
    U2, V2 = U.copy(), V.copy()
    U2[:, 2] += 20
    V2[:, 2] += 20
    cc2 = M.cosine_contributions(U2, V2)
    assert np.argmax(cc2) == 2 and cc2[2] / cc2.sum() > 0.95


def test_pair_cosine_terms_known_answers():
    """Row sums are the cosines (the naive loop), column means the contributions; an orthogonal map
    of both sides leaves the cosines unchanged; identical rows give 1, opposite rows -1."""
    rng = np.random.default_rng(13)
    U, V = rng.standard_normal((50, 5)), rng.standard_normal((50, 5))
    terms = M.pair_cosine_terms(U, V)
    naive = [u @ v / np.linalg.norm(u) / np.linalg.norm(v) for u, v in zip(U, V)]
    np.testing.assert_allclose(M.paired_cosines(terms=terms), naive, atol=1e-12)
    np.testing.assert_allclose(M.paired_cosines(U, V), naive, atol=1e-12)
    np.testing.assert_allclose(M.cosine_contributions(terms=terms), terms.mean(0))
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    np.testing.assert_allclose(M.paired_cosines(U @ Q, V @ Q), naive, atol=1e-12)
    np.testing.assert_allclose(M.paired_cosines(U, U), 1.0)
    np.testing.assert_allclose(M.paired_cosines(U, -2 * U), -1.0)


def test_intra_similarity_known_answers():
    x = np.array([1.0, 2.0, 3.0])
    assert M.intra_similarity(np.stack([x, x, x])) == pytest.approx(1.0)
    assert M.intra_similarity(np.eye(4)) == pytest.approx(1 / np.sqrt(4))
    assert np.isnan(M.intra_similarity(np.stack([x, -x])))
    X = np.random.default_rng(12).standard_normal((9, 5))
    m = X.mean(0)
    assert M.intra_similarity(X) == pytest.approx(np.mean([_naive_cos(r, m) for r in X]))


# ----------------------------------------------------------------------------------------- covariance
def test_cov_trace_known_answers():
    X = np.random.default_rng(13).standard_normal((11, 4))
    assert M.cov_trace(X) == pytest.approx(np.trace(np.cov(X, rowvar=False)))
    assert M.cov_trace(np.eye(6)) == pytest.approx(1.0)
    assert M.cov_trace(np.ones((5, 3))) == pytest.approx(0.0)


def test_cov_trace_scaled_is_scale_free():
    X = np.random.default_rng(14).standard_normal((11, 4)) + 1.0
    assert M.cov_trace_scaled(5.0 * X) == pytest.approx(M.cov_trace_scaled(X))
    assert M.cov_trace(5.0 * X) == pytest.approx(25 * M.cov_trace(X))
    x = np.array([1.0, -2.0, 0.5])
    assert M.cov_trace_scaled(np.stack([x, -x])) == pytest.approx(2.0)
    assert M.cov_trace_scaled(np.stack([x, x, x])) == pytest.approx(0.0)


# ----------------------------------------------------------------------------------- standardisation
def test_standardise_gives_zero_mean_unit_sd_and_handles_constant_dims():
    X = np.random.default_rng(15).standard_normal((500, 4)) * [1, 10, 0.1, 1] + [0, 5, -3, 0]
    X[:, 3] = 2.0
    mu, sigma = X.mean(0), X.std(0)
    Z = M.standardise(X, mu, sigma)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0)[:3], 1, atol=1e-12)
    assert np.all(Z[:, 3] == 0)


# -------------------------------------------------------------------------------------------- quantiles
def test_quantiles_from_histogram_within_one_bin():
    rng = np.random.default_rng(16)
    x = np.clip(rng.normal(0.3, 0.2, 50_000), -1, 1)
    bins = 32768
    counts, _ = np.histogram(x, bins=bins, range=(-1, 1))
    qs = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]
    got = M.quantiles_from_histogram(counts, -1, 1, qs, x.min(), x.max())
    np.testing.assert_allclose(got, np.quantile(x, qs), atol=2 / bins + 1e-4)
    assert got[0] == x.min() and got[-1] == x.max()
    assert np.all(np.isnan(M.quantiles_from_histogram(np.zeros(10), -1, 1, [0.5])))


def test_metrics_unit_rows_zero_rows():
    np.testing.assert_allclose(M.unit_rows(np.array([[3.0, 4.0]])), [[0.6, 0.8]])
    assert M.unit_rows(np.ones((2, 3), np.float32)).dtype == np.float32
    with pytest.raises(LayerwiseError, match="zero vector"):
        M.unit_rows(np.zeros((1, 2)))
    assert np.isnan(M.unit_rows(np.zeros((1, 2)), zero_rows="nan")).all()
    np.testing.assert_array_equal(M.unit_rows(np.array([[0.0, 0.0], [0.0, 2.0]]), zero_rows="zero"), [[0, 0], [0, 1]])
    with pytest.raises(LayerwiseError):
        M.unit_rows(np.zeros((1, 2)), zero_rows="clamp")


def test_isoscore_equals_the_authors_package():
    ref = pytest.importorskip("IsoScore.IsoScore").IsoScore
    rng = np.random.default_rng(0)
    for n, d, scale in ((500, 20, 1.0), (300, 10, 3.0), (1000, 32, 0.5)):
        X = rng.standard_normal((n, d)) * np.linspace(0.2, scale + 1, d) + rng.standard_normal(d)
        assert M.isoscore(X) == pytest.approx(float(ref(X)), abs=1e-6)


def test_self_similarity_and_word_vector_known_answers():
    x = np.array([1.0, 2.0, 0.5])
    assert M.self_similarity(np.stack([x, 2 * x, x]), [0, 1, 2]) == pytest.approx(1.0)
    assert M.self_similarity(np.eye(4), [0, 1, 2, 3]) == pytest.approx(0.0)
    assert M.self_similarity(np.stack([x, -x]), [0, 1]) == pytest.approx(-1.0)
    assert np.isnan(M.self_similarity(np.stack([x, -x]), [3, 3]))  # one context: no pair
    # pairs inside one context are skipped: rows 0 and 1 share a context
    X = np.array([[1.0, 0], [0, 1.0], [1.0, 0]])
    assert M.self_similarity(X, [0, 0, 1]) == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(LayerwiseError):
        M.self_similarity(X, [0, 1])
    np.testing.assert_allclose(M.word_vector(X, [0, 1]), [0.5, 0.5])
    np.testing.assert_allclose(M.word_vector(X, [2]), X[2])
