"""Pure metric functions (numpy) for the geometry of a layer's token representations: the reference
definitions of the project.

Every function takes plain arrays, rows = points (tokens or sentences), columns = dimensions, and
returns numbers or arrays; nothing here knows about models, batches or padding. Each docstring gives
the definition, the formula, the reference and known answers, which ``tests/test_metrics.py`` checks.

These functions are the reference definitions of every published geometry number. The engine
(:mod:`layerwise.measure.extract`) calls them directly where it works on host arrays (effective rank, IsoScore,
the anisotropy baseline, rogue dimensions, standardisation, histogram quantiles, CKA through
:mod:`layerwise.measure.similarity`); where it works on padded batches it runs their batched forms in
:mod:`layerwise.measure.kernels`, each naming the definition it mirrors. That the engine equals these
definitions is tested: ``tests/test_kernels.py`` (each kernel against its definition) and
``tests/test_extract.py`` (the whole engine against a naive per-sentence run of these functions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from ..core.errors import LayerwiseError

__all__ = [
    "unit_rows", "cosine_matrix", "pairwise_cosines_upper", "triu_pair_index", "intra_similarity", "cov_trace",
    "cov_trace_scaled", "effective_rank", "effective_rank_from_singular_values", "singular_values",
    "singular_values_centred_and_not", "isoscore", "isoscore_from_variances", "isoscore_from_singular_values",
    "linear_cka", "cka_from_grams", "cka_matrix", "u_centre", "procrustes_similarity", "knn_adjacency",
    "mutual_knn", "cosine_contributions", "paired_cosines", "pair_cosine_terms",
    "standardise", "quantiles_from_histogram", "word_vector", "self_similarity",
]

_EPS = 1e-12


def _as_2d(X, name: str = "X", min_rows: int = 1) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise LayerwiseError(f"{name} must be a 2-D array (rows = points, columns = dimensions), got shape {A.shape}",
                             "layerwise.measure.metrics", "pass one matrix per layer")
    if A.shape[0] < min_rows:
        raise LayerwiseError(f"{name} needs at least {min_rows} rows, got {A.shape[0]}", "layerwise.measure.metrics",
                             "use more tokens or sentences")
    return A


def unit_rows(X, zero_rows: str = "raise") -> np.ndarray:
    """Rows of ``X`` divided by their Euclidean norm, ``u_i = x_i / |x_i|`` (the dtype of a float
    array is kept): the package's one row normaliser. A zero row has no direction, and each caller says
    what it means: ``zero_rows="raise"`` (default) raises :class:`LayerwiseError` (a zero vector in a
    cosine signals leaked padding), ``"nan"`` makes it a NaN row, so that every cosine it enters is NaN
    and is left out downstream (never a cosine of 0), ``"zero"`` keeps it a zero row, so that every
    cosine it enters is 0 (the class geometry of :mod:`layerwise.measure.probes`, where a sentence or a
    centroid at the origin is equally far from every direction).

    Known answers: every nonzero row gets norm 1; ``[3, 4]`` gives ``[0.6, 0.8]``.
    """
    X = np.asarray(X)
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    norms = np.sqrt(np.einsum("...d,...d->...", X, X))[..., None]  # |x_i| (einsum: one pass, no temporaries)
    if np.any(norms == 0):
        if zero_rows == "raise":
            raise LayerwiseError("a zero vector entered a cosine (padding or an empty representation?)",
                                 "layerwise.measure.metrics", "exclude padding positions before computing cosines")
        if zero_rows not in ("nan", "zero"):
            raise LayerwiseError(f"zero_rows={zero_rows!r}", "metrics.unit_rows", "pass 'raise', 'nan' or 'zero'")
        fill = np.full_like(X, np.nan) if zero_rows == "nan" else np.zeros_like(X)
        return np.divide(X, norms, out=fill, where=norms > 0)
    return X / norms


# --------------------------------------------------------------------------------------------------
# Cosine similarity
# --------------------------------------------------------------------------------------------------

def cosine_matrix(X) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``X`` (n x d): ``C[i, j] = x_i . x_j / (|x_i| |x_j|)``.

    Computed as ``U U^T`` with ``U`` the row-normalised ``X`` (one matrix product instead of a double
    loop). Known answers: ``C[i, i] = 1``; orthogonal rows give 0; ``x`` and ``-x`` give -1. A zero
    row raises :class:`LayerwiseError` (a zero vector in a cosine signals leaked padding).
    """
    U = unit_rows(_as_2d(X))
    return np.clip(U @ U.T, -1.0, 1.0)


def triu_pair_index(p, n) -> tuple[np.ndarray, np.ndarray]:
    """Map linear indices ``p`` of the strict upper triangle of an ``n x n`` matrix, in row-major
    order (the order of ``np.triu_indices(n, 1)``), to ``(i, j)`` with ``i < j``; ``n`` may be one size
    or one size per index.

    Closed form: row ``i`` starts at ``S(i) = i (2n - i - 1) / 2``; ``i`` is the largest row with
    ``S(i) <= p`` (solved with the quadratic formula, then corrected for rounding), ``j = p - S(i) + i + 1``.
    Known answer: equals ``np.triu_indices(n, 1)`` element by element.
    """
    p = np.atleast_1d(np.asarray(p, dtype=np.int64))
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), p.shape)
    if np.any(p < 0) or np.any(p >= n * (n - 1) // 2):
        raise LayerwiseError("pair index out of range", "layerwise.measure.metrics.triu_pair_index")

    def start(i):
        return i * (2 * n - i - 1) // 2

    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * p, 0.0))) / 2).astype(np.int64)
    for _ in range(4):  # floating-point guard: move i to the row that really contains p
        i = np.where(start(i) > p, i - 1, i)
        i = np.where(start(i + 1) <= p, i + 1, i)
    j = p - start(i) + i + 1
    return i, j


def pairwise_cosines_upper(X) -> np.ndarray:
    """The cosine of every unordered pair of distinct rows, ``cos(x_i, x_j)`` for ``i < j`` in row-major
    order (length ``n (n - 1) / 2``): the original study's per-sentence "cosine study" values.

    Known answer: equal, in the same order, to the naive double loop
    ``[cos(X[i], X[j]) for i in range(n) for j in range(i + 1, n)]``.
    """
    C = cosine_matrix(X)
    i, j = np.triu_indices(C.shape[0], 1)
    return C[i, j]


def pair_cosine_terms(U, V) -> np.ndarray:
    """The per-dimension terms of the row-wise cosines of two matrices of the same shape (m x d),
    ``t_ki = u_ki v_ki / (|u_k| |v_k|)``: a pair's cosine is its row sum, a dimension's contribution
    (Timkey & van Schijndel 2021) its column mean. Computing them once serves both
    (:func:`paired_cosines`, :func:`cosine_contributions`)."""
    U = unit_rows(_as_2d(U, "U"))
    V = unit_rows(_as_2d(V, "V"))
    if U.shape != V.shape:
        raise LayerwiseError(f"U and V must have the same shape, got {U.shape} and {V.shape}", "layerwise.measure.metrics")
    return U * V


def paired_cosines(U=None, V=None, *, terms: np.ndarray | None = None) -> np.ndarray:
    """Row-wise cosines ``cos(u_k, v_k)`` of two matrices of the same shape (m x d): the values of
    random token pairs (anisotropy baseline, Ethayarajh 2019). ``terms``: their
    :func:`pair_cosine_terms`, when already computed."""
    terms = pair_cosine_terms(U, V) if terms is None else terms
    return np.clip(terms.sum(axis=1), -1.0, 1.0)


def intra_similarity(X) -> float:
    """Intra-sentence similarity (Ethayarajh 2019, "How contextual are contextualized word
    representations?"): the mean cosine between each token of a sentence and the sentence's mean vector,
    ``IntraSim = (1/n) sum_i cos(x_i, mean_k x_k)``.

    Known answers: identical tokens give 1; two opposite tokens ``x, -x`` have a zero mean (undefined,
    NaN is returned); tokens ``e_1 ... e_n`` (orthonormal) give ``1 / sqrt(n)``.
    """
    X = _as_2d(X)
    m = X.mean(axis=0)
    mn = np.linalg.norm(m)
    if mn == 0:
        return float("nan")
    U = unit_rows(X)
    return float(np.mean(U @ (m / mn)))


def word_vector(X, positions) -> np.ndarray:
    """The vector of one word occurrence split into subwords at ``positions`` P: the mean of its
    subword rows, ``w = (1/|P|) sum_{p in P} x_p`` (mean pooling of subwords, as in Bommasani, Davis &
    Cardie 2020, "Interpreting pretrained contextualized representations via reductions to static
    embeddings"). Known answers: one subword gives its row unchanged; rows ``a, b`` give ``(a + b) / 2``."""
    X = _as_2d(X)
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    if positions.size == 0:
        raise LayerwiseError("a word needs at least one subword position", "layerwise.measure.metrics.word_vector")
    return X[positions].mean(axis=0)


def self_similarity(X, contexts) -> float:
    """Self-similarity of one word (Ethayarajh 2019, "How contextual are contextualized word
    representations?"): the mean cosine between its occurrences ``x_1 ... x_n`` (rows, one per
    occurrence) taken in *different* contexts,
    ``SelfSim = (1 / |P|) sum_{(i, j) in P} cos(x_i, x_j)``, ``P = {(i, j) : i < j, c_i != c_j}``
    (``contexts``: one context id, e.g. the sentence, per row; pairs within one context are skipped).

    Known answers: identical vectors give 1; orthonormal occurrences give 0; ``x`` and ``-x`` give -1; a
    word seen in a single context has no pair (NaN).
    """
    X = _as_2d(X)
    c = np.asarray(contexts).reshape(-1)
    if c.size != X.shape[0]:
        raise LayerwiseError(f"{X.shape[0]} rows but {c.size} contexts", "layerwise.measure.metrics.self_similarity",
                             "give one context id per occurrence")
    i, j = np.triu_indices(X.shape[0], 1)
    keep = c[i] != c[j]
    if not keep.any():
        return float("nan")
    C = cosine_matrix(X)
    return float(C[i[keep], j[keep]].mean())


# --------------------------------------------------------------------------------------------------
# Covariance, effective rank, IsoScore
# --------------------------------------------------------------------------------------------------

def cov_trace(X) -> float:
    """Trace of the sample covariance of the rows (the original study's "covariance study"):
    ``tr(Cov) = sum_i |x_i - mean|^2 / (n - 1)`` (ddof = 1, equal to ``np.trace(np.cov(X.T))``), the
    total variance of a sentence's token embeddings. Scale-dependent: see :func:`cov_trace_scaled`.

    Known answers: identical rows give 0; the rows of the identity ``I_n`` give 1 (each centred row has
    squared norm ``(n - 1) / n``).
    """
    X = _as_2d(X, min_rows=2)
    Xc = X - X.mean(axis=0)
    return float(np.sum(Xc * Xc) / (X.shape[0] - 1))


def cov_trace_scaled(X) -> float:
    """Scale-free covariance trace: :func:`cov_trace` divided by the mean squared token norm,
    ``tr(Cov) / ((1/n) sum_i |x_i|^2)``. Invariant to a rescaling ``X -> aX`` (token norms differ a lot
    between layers, Ethayarajh 2019), in ``[0, n / (n - 1)]``: 0 when all tokens are equal,
    ``n / (n - 1)`` when they average to the origin.

    Known answers: identical rows give 0; ``[x, -x]`` gives 2.
    """
    X = _as_2d(X, min_rows=2)
    msn = float(np.mean(np.sum(X * X, axis=1)))
    if msn == 0:
        return float("nan")
    return cov_trace(X) / msn


def singular_values(X, centre: bool = True, dtype=np.float64) -> np.ndarray:
    """Singular values of ``X`` (column-centred first when ``centre``), in decreasing order, from the
    eigenvalues of the smaller Gram matrix (``X^T X`` or ``X X^T``): the same values as
    ``np.linalg.svd`` at a fraction of the cost for the tall matrices the engine uses. ``dtype``:
    float64 (default) or float32 (faster; relative error ~1e-6 of the largest)."""
    X = np.asarray(_as_2d(X), dtype=dtype)
    if centre:
        X = X - X.mean(axis=0)
    n, d = X.shape
    G = X.T @ X if n >= d else X @ X.T
    return _spectrum(G)  # scipy's evr driver: numpy's eigvalsh is much slower here


def singular_values_centred_and_not(X) -> tuple[np.ndarray, np.ndarray]:
    """``(singular_values(X, centre=True), singular_values(X, centre=False))`` from one Gram matrix:
    with ``G = X^T X`` (n >= d) the centred Gram is ``G - n mu mu^T`` (``mu`` the column means); with
    ``K = X X^T`` (n < d) it is ``H K H``, ``H = I - 11^T / n``. Computed in float64."""
    X = _as_2d(X)
    n, d = X.shape
    mu = X.mean(axis=0)
    if n >= d:
        Gu = X.T @ X
        Gc = Gu - n * np.outer(mu, mu)
    else:
        Gu = X @ X.T
        r = Gu.mean(axis=0)
        Gc = Gu - r[:, None] - r[None, :] + r.mean()
    return _spectrum(Gc), _spectrum(Gu)


def _spectrum(G: np.ndarray) -> np.ndarray:
    """Square roots of the eigenvalues of a Gram matrix, decreasing. Eigenvalues below its rounding
    level (``10 * size * eps * max``, i.e. singular values under ~sqrt(10 size eps) of the largest, 1e-6
    for size 768) are set to 0: the Gram route cannot resolve them, and they would add rounding noise
    to the effective rank."""
    G = (G + G.T) / 2
    ev = scipy.linalg.eigh(G, eigvals_only=True, driver="evr")[::-1].astype(np.float64)
    ev[ev <= 10 * max(G.shape) * np.finfo(G.dtype).eps * max(ev[0], 0.0)] = 0.0
    return np.sqrt(ev)


def effective_rank_from_singular_values(s) -> float:
    """Effective rank from singular values ``s`` (see :func:`effective_rank`)."""
    s = np.asarray(s, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        return float("nan")
    p = s / total
    p = p[p > _EPS * p.max()]
    return float(np.exp(-np.sum(p * np.log(p))))


def effective_rank(X, centre: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality").

    With ``s`` the singular values of ``X`` (n x d, column-centred when ``centre``; the seed did not
    centre), ``p_k = s_k / sum(s)`` and ``erank = exp(-sum_k p_k log p_k)``; ``1 <= erank <= min(n, d)``.
    Centre to avoid one constant offset dominating; compare layers and models at the same ``n``.

    Known answers: identity ``I_n`` (not centred) -> ``n``; any rank-1 matrix -> 1; i.i.d. N(0, 1)
    1000 x 768 -> about 670; the centred identity ``I_n`` -> ``n - 1``.
    """
    return effective_rank_from_singular_values(singular_values(X, centre))


def isoscore_from_variances(v) -> float:
    """IsoScore from the per-principal-component variance vector ``v`` (length d), see :func:`isoscore`."""
    v = np.asarray(v, dtype=np.float64)
    d = v.size
    if d < 2:
        raise LayerwiseError("IsoScore needs at least 2 dimensions", "layerwise.measure.metrics.isoscore")
    norm = np.linalg.norm(v)
    if norm == 0:
        return float("nan")
    vhat = np.sqrt(d) * v / norm
    sd = np.sqrt(d)
    delta2 = np.sum((vhat - 1.0) ** 2) / (2.0 * (d - sd))
    score = ((d - delta2 * (d - sd)) ** 2 - d) / (d * (d - 1.0))
    return float(np.clip(score, 0.0, 1.0))


def isoscore(X) -> float:
    """IsoScore (Rudman, Gillman, Rayne & Eickhoff 2022, "IsoScore: measuring the uniformity of
    embedding space utilization"), rows = points.

    PCA-rotate the points (centre, project on the principal axes), take the variance of each of the
    d components ``v`` (zeros where n <= d leaves none), normalise ``v_hat = sqrt(d) v / |v|``, isotropy
    defect ``delta = |v_hat - 1| / sqrt(2 (d - sqrt(d)))``, and
    ``IsoScore = ((d - delta^2 (d - sqrt(d)))^2 - d) / (d (d - 1))`` in [0, 1].

    Known answers: points on a line -> 0; an isotropic sample -> 1 as n grows; strongly biased by n in
    high dimension (isotropic Gaussian in R^768: about 0.56 at n = 1000, 0.87 at n = 5000), so compare
    at equal n.
    """
    X = _as_2d(X, min_rows=2)
    n, d = X.shape
    return isoscore_from_singular_values(singular_values(X, centre=True), n, d)


def isoscore_from_singular_values(s, n: int, d: int) -> float:
    """IsoScore from the singular values ``s`` of the centred n x d point matrix (see :func:`isoscore`):
    the principal-component variances are ``s^2 / (n - 1)``, padded with zeros to length d."""
    s = np.asarray(s, dtype=np.float64)
    v = np.zeros(d)
    k = min(len(s), d)
    v[:k] = s[:k] ** 2 / (n - 1)
    return isoscore_from_variances(v)


# --------------------------------------------------------------------------------------------------
# Representation similarity
# --------------------------------------------------------------------------------------------------

def _hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012) on Gram matrices with zeroed diagonals:
    ``[tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n-3))``."""
    n = K.shape[0]
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    kl = float(np.sum(K * L))
    ks, ls = K.sum(axis=0), L.sum(axis=0)
    return (kl + ks.sum() * ls.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(ks @ ls)) / (n * (n - 3))


def linear_cka(X, Y, debiased: bool = False) -> float:
    """Linear centred kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of neural
    network representations revisited"), rows = the same n examples in two representations.

    With X, Y column-centred (n x d1, n x d2): ``CKA = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)``. With
    ``debiased=True`` the three HSIC terms use the unbiased estimator of Song et al. 2012 on the
    linear Gram matrices (less inflated at small n). Invariant to orthogonal transforms and isotropic
    scaling, not to arbitrary invertible maps.

    Known answers: CKA(X, X) = 1; CKA(X, XQ) = 1 for orthogonal Q; CKA(X, aX) = 1; the authors' demo
    (``np.random.seed(1337); X = np.random.randn(100, 10); Y = X + np.random.randn(100, 10)``, legacy
    numpy RNG) gives 0.5576, debiased 0.5135.
    """
    X = _as_2d(X, "X", 2)
    Y = _as_2d(Y, "Y", 2)
    if X.shape[0] != Y.shape[0]:
        raise LayerwiseError(f"X and Y must have the same rows (examples), got {X.shape[0]} and {Y.shape[0]}",
                             "layerwise.measure.metrics.linear_cka", "pass the same sentences in the same order")
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    if debiased:
        if X.shape[0] < 4:
            raise LayerwiseError("debiased CKA needs at least 4 examples", "layerwise.measure.metrics.linear_cka")
        K, L = X @ X.T, Y @ Y.T
        xy, xx, yy = _hsic_unbiased(K, L), _hsic_unbiased(K, K), _hsic_unbiased(L, L)
        den = np.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
        return float(xy / den) if den > 0 else float("nan")
    xy = np.linalg.norm(Y.T @ X) ** 2
    den = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(xy / den) if den > 0 else float("nan")


def u_centre(grams: np.ndarray) -> np.ndarray:
    """U-centring of Gram matrices (Szekely & Rizzo 2014, "Partial distance correlation with methods
    for dissimilarities", eq. 2.3), stacked as ``[..., n, n]``: for ``i != j``
    ``U_ij = K_ij - r_i/(n-2) - r_j/(n-2) + t/((n-1)(n-2))`` with ``r_i`` the row sums and ``t`` the total
    of ``K`` with its diagonal zeroed, and ``U_ii = 0``. ``<U(K), U(L)>_F / (n (n-3))`` is the unbiased HSIC
    estimator of Song et al. 2012 (``_hsic_unbiased``). U-centring commutes with a permutation of the
    examples and removes any additive row or column effect, so centred and uncentred features give the
    same result.

    Known answers: ``<U(K), U(L)> / (n (n-3)) == _hsic_unbiased(K, L)``; rows and columns of ``U`` sum to 0.
    """
    K = np.array(grams, dtype=np.float64)
    n = K.shape[-1]
    if n < 4:
        raise LayerwiseError("U-centring needs at least 4 examples", "layerwise.measure.metrics.u_centre")
    idx = np.arange(n)
    K[..., idx, idx] = 0.0
    rows = K.sum(axis=-1)
    total = rows.sum(axis=-1)[..., None, None]
    U = K - rows[..., :, None] / (n - 2) - rows[..., None, :] / (n - 2) + total / ((n - 1) * (n - 2))
    U[..., idx, idx] = 0.0
    return U


def cka_from_grams(grams_a: np.ndarray, grams_b: np.ndarray | None = None, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every pair of representations given their centred Gram matrices
    ``K = Xc Xc^T`` (stacked as [m, n, n]): ``CKA(a, b) = <K_a, K_b>_F / (|K_a|_F |K_b|_F)``, which equals
    :func:`linear_cka` because ``<K_a, K_b>_F = |Y^T X|_F^2`` (Kornblith et al. 2019, eq. 3).
    ``debiased=True``: the same cosine between the U-centred Grams (:func:`u_centre`; Szekely & Rizzo
    2014, Song et al. 2012), i.e. ``linear_cka(..., debiased=True)``, about 0 for independent
    representations where the biased value is large (0.68 at n = 180, d = 384).
    Returns an ``[m_a, m_b]`` matrix (``grams_b`` defaults to ``grams_a``).

    Known answers: equals :func:`linear_cka` (biased and debiased) pair by pair; the diagonal of
    ``cka_from_grams(K)`` is 1."""
    if debiased:
        grams_a = u_centre(grams_a)
        grams_b = None if grams_b is None else u_centre(grams_b)
    A = grams_a.reshape(grams_a.shape[0], -1)
    B = A if grams_b is None else grams_b.reshape(grams_b.shape[0], -1)
    dots = (A @ B.T).astype(np.float64)
    na = np.sqrt(np.einsum("ij,ij->i", A, A, dtype=np.float64))
    nb = na if grams_b is None else np.sqrt(np.einsum("ij,ij->i", B, B, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return dots / np.outer(na, nb)


def _unit_centred(X, name: str) -> np.ndarray | None:
    """Column-centred ``X`` divided by its Frobenius norm; None for a constant representation."""
    X = _as_2d(X, name, 2)
    X = X - X.mean(axis=0)
    norm = np.linalg.norm(X)
    return X / norm if norm > 0 else None


def procrustes_similarity(X, Y, X_fit=None, Y_fit=None) -> float:
    """Orthogonal Procrustes similarity (Ding, Denain & Steinhardt 2021, "Grounding representation
    similarity with statistical testing"; Schonemann 1966): with X, Y column-centred and scaled to unit
    Frobenius norm, ``d_Proc^2 = min_R |XR - Y|_F^2 = 2 - 2 |X^T Y|_*`` over orthogonal ``R``, and the
    similarity ``1 - d_Proc^2 / 2 = |X^T Y|_*`` (nuclear norm) lies in [0, 1].

    Held out: with ``X_fit, Y_fit`` (other examples, e.g. the probe pool) the rotation is fitted there,
    ``R = U V^T`` from the SVD ``X_fit^T Y_fit = U S V^T``, and scored on X, Y (each centred and
    normalised on its own examples): ``<X R, Y>_F`` in [-1, 1]; with the fit set equal to X, Y it is the
    in-sample value. Dimensions may differ (``R`` is then a partial isometry).

    Known answers: X and XQ (Q orthogonal) give 1, also held out; X and aX + b give 1; independent
    Gaussian matrices give a value inside their permutation null. A constant representation gives NaN.
    """
    if len(X) != len(Y):
        raise LayerwiseError(f"X and Y must have the same rows (examples), got {len(X)} and {len(Y)}",
                             "layerwise.measure.metrics.procrustes_similarity", "pass the same sentences in the same order")
    A, B = _unit_centred(X, "X"), _unit_centred(Y, "Y")
    if X_fit is None and Y_fit is None:
        return float("nan") if A is None or B is None else float(np.linalg.svd(A.T @ B, compute_uv=False).sum())
    Af, Bf = _unit_centred(X_fit, "X_fit"), _unit_centred(Y_fit, "Y_fit")
    if A is None or B is None or Af is None or Bf is None:
        return float("nan")
    U, _, Vt = np.linalg.svd(Af.T @ Bf, full_matrices=False)
    return float(np.sum((A @ U) * (B @ Vt.T)))


def knn_adjacency(X, k: int = 10) -> np.ndarray | None:
    """``[n, n]`` 0/1 matrix: ``A_ij = 1`` iff example j is one of the ``k`` nearest neighbours of example
    i (cosine similarity of the column-centred rows, i itself excluded, ties broken by index); None for
    a constant representation."""
    X = _as_2d(X, "X", 2)
    n = X.shape[0]
    if not 1 <= k <= n - 1:
        raise LayerwiseError(f"k must lie in 1..n-1 = {n - 1}, got {k}", "layerwise.measure.metrics.mutual_knn",
                             "use fewer neighbours or more sentences")
    Xc = X - X.mean(axis=0)
    if not np.any(Xc):
        return None
    S = unit_rows(Xc, zero_rows="nan") @ unit_rows(Xc, zero_rows="nan").T
    S = np.nan_to_num(S, nan=-np.inf)
    np.fill_diagonal(S, -np.inf)
    nearest = np.argsort(-S, axis=1, kind="stable")[:, :k]
    A = np.zeros((n, n))
    A[np.arange(n)[:, None], nearest] = 1.0
    return A


def mutual_knn(X, Y, k: int = 10) -> float:
    """Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang & Isola 2024, "The platonic representation
    hypothesis"): the mean over examples i of ``|N_X(i) & N_Y(i)| / k``, with ``N(i)`` the ``k`` nearest
    neighbours of i (:func:`knn_adjacency`: cosine of the rows; unlike the paper the rows are centred
    first, as for CKA, so that a shared offset (anisotropy) does not decide the neighbours).
    Equivalently ``sum(A_X * A_Y) / (n k)``.

    Known answers: a set with itself gives 1; chance (Y independent of X, or its rows permuted) is
    ``k / (n - 1)`` (each of the k neighbours in Y is one of the n - 1 others at random); a constant
    representation gives NaN.
    """
    A, B = knn_adjacency(X, k), knn_adjacency(Y, k)
    if A is None or B is None:
        return float("nan")
    if A.shape != B.shape:
        raise LayerwiseError("X and Y must describe the same examples", "layerwise.measure.metrics.mutual_knn",
                             "pass the same sentences in the same order")
    return float(np.sum(A * B) / (A.shape[0] * k))


def cka_matrix(reps_a: Sequence[np.ndarray], reps_b: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Linear CKA between every representation of ``reps_a`` and every one of ``reps_b`` (e.g. every
    layer of one model state against every layer of another): a ``[len(a), len(b)]`` matrix of
    :func:`linear_cka` values, computed through centred Gram matrices (n x n, one per representation)
    so that the (L+1) x (L+1) grid costs (L+1) Gram products instead of (L+1)^2 feature products."""
    def grams(reps):
        out = []
        for R in reps:
            R = _as_2d(R, "representation", 2)
            R = R - R.mean(axis=0)
            out.append(R @ R.T)
        return np.stack(out)

    ga = grams(reps_a)
    if reps_b is None:
        return cka_from_grams(ga)
    gb = grams(reps_b)
    if ga.shape[1] != gb.shape[1]:
        raise LayerwiseError("both sets of representations must describe the same examples",
                             "layerwise.measure.metrics.cka_matrix", "pass the same sentences in the same order")
    return cka_from_grams(ga, gb)


# --------------------------------------------------------------------------------------------------
# Rogue dimensions, standardisation
# --------------------------------------------------------------------------------------------------

def cosine_contributions(U=None, V=None, *, terms: np.ndarray | None = None) -> np.ndarray:
    """Contribution of each dimension to the expected cosine of random pairs (Timkey & van Schijndel
    2021, "All bark and no bite: rogue dimensions in transformer language models obscure
    representational quality"): ``CC_i = (1/m) sum_k u_ki v_ki / (|u_k| |v_k|)`` over the m pairs
    ``(u_k, v_k)`` (rows of U and V). ``sum_i CC_i`` is the mean cosine of the pairs. ``terms``: the
    pairs' :func:`pair_cosine_terms`, when already computed.

    Known answers: the sum equals ``mean(paired_cosines(U, V))``; if every vector is ``c e_1`` plus
    orthogonal noise of norm 0, ``CC = e_1``.
    """
    terms = pair_cosine_terms(U, V) if terms is None else terms
    return np.mean(terms, axis=0)


def standardise(X, mu, sigma) -> np.ndarray:
    """Per-dimension standardisation ``z = (x - mu) / sigma`` (Timkey & van Schijndel 2021), with
    ``mu``, ``sigma`` the per-dimension mean and standard deviation of a layer over a corpus. A
    dimension with ``sigma = 0`` (constant) is only centred (divided by 1) so it becomes 0.

    Known answer: the standardised corpus has per-dimension mean 0 and standard deviation 1.
    """
    X = np.asarray(X, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    safe = np.where(sigma > 0, sigma, 1.0)
    return (X - mu) / safe


# --------------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------------

def quantiles_from_histogram(counts, lo: float, hi: float, qs, vmin: float | None = None,
                             vmax: float | None = None) -> np.ndarray:
    """Quantiles of a distribution known through a fixed-bin histogram (``counts`` over equal bins on
    ``[lo, hi]``), by linear interpolation of the empirical CDF inside the bin that contains the target
    rank ``q N`` (values assumed uniform within a bin). The error is at most one bin width; the exact
    minimum and maximum (``vmin``, ``vmax``), when given, bound the result.

    Known answer: for data ``x``, ``|quantiles_from_histogram(hist(x), ...) - np.quantile(x, q)|`` is at
    most the bin width plus the gap between neighbouring order statistics.
    """
    c = np.asarray(counts, dtype=np.float64)
    qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    total = c.sum()
    if total <= 0:
        return np.full(qs.shape, np.nan)
    width = (hi - lo) / c.size
    cum = np.cumsum(c)
    target = qs * total
    k = np.searchsorted(cum, target, side="left")
    k = np.clip(k, 0, c.size - 1)
    # skip empty bins at the boundary (target exactly at a cumulative count)
    before = np.where(k > 0, cum[k - 1], 0.0)
    frac = np.where(c[k] > 0, (target - before) / np.where(c[k] > 0, c[k], 1.0), 0.0)
    out = lo + (k + np.clip(frac, 0.0, 1.0)) * width
    if vmin is not None:
        out = np.maximum(out, vmin)
    if vmax is not None:
        out = np.minimum(out, vmax)
    return out
