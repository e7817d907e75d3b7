"""Similarity between model states on the stored sentence embeddings, with chance levels.

Not a forward-pass statistic: it reads the first-token (``cls``) and mean-pooled (``mean``) embeddings
``[n, L+1, d]`` that :func:`layerwise.measure.extract.run_state` stores for each state, on the same sentences.
Definitions (:mod:`layerwise.measure.metrics`): linear CKA, biased and debiased (:func:`~layerwise.measure.metrics.linear_cka`,
Kornblith et al. 2019, computed for every pair of layers through Gram matrices with
:func:`~layerwise.measure.metrics.cka_from_grams`), CKA after per-dimension standardisation, orthogonal
Procrustes similarity (:func:`~layerwise.measure.metrics.procrustes_similarity`, Ding et al. 2021) and mutual
k-nearest-neighbour alignment (:func:`~layerwise.measure.metrics.mutual_knn`, Huh et al. 2024).

Chance: biased CKA is large for unrelated representations at these sizes (independent Gaussian
180 x 384: 0.68), so each same-layer similarity gets a permutation null: the sentence rows of one side
are shuffled (the same permutations for every layer, state and measure), which keeps each
representation's geometry and breaks the pairing; the rows ``<measure>_null_mean`` and
``<measure>_null_q95`` give its mean and 95th percentile. Gram matrices (and U-centred Grams,
neighbour graphs, Procrustes factors) are computed once per state and layer and reused by every
permutation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import metrics
from ..core.errors import LayerwiseError
from .kernels import single_threaded_blas
from ..core.tables import POOLINGS, tidy_frame, tidy_row

__all__ = ["cka_between_states", "CKA_COLUMNS", "SIMILARITY_COLUMNS", "FLOOR_MEASURES", "same_layer_similarities",
           "unit_debiased_grams",
           "similarity_matrices", "permutations", "gram_permutation_null", "procrustes_permutation_null"]

#: Columns of the ``cka`` table (one row per pooling, pair of states and pair of layers).
CKA_COLUMNS = ["model", "pooling", "state_a", "state_b", "layer_a", "layer_b", "value"]
#: Columns of :func:`similarity_matrices`' table: the ``cka`` table's, plus the measure.
SIMILARITY_COLUMNS = ["model", "pooling", "measure", "state_a", "state_b", "layer_a", "layer_b", "value"]
#: The same-layer measures that get a permutation null (tidy rows ``<measure>_null_mean/_q95_...``).
FLOOR_MEASURES = ("cka", "cka_debiased", "procrustes", "mutual_knn")


def present_poolings(embeddings: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """The poolings of :data:`POOLINGS` that every state of ``embeddings`` holds, in declaration order."""
    return [p for p in POOLINGS if embeddings and all(p in e for e in embeddings.values())]


def cka_between_states(embeddings: dict[str, dict[str, np.ndarray]], model_name: str,
                       reference: str = "pretrained", *, fit_embeddings: dict | None = None,
                       n_permutations: int = 200, procrustes_permutations: int = 100, k: int = 10,
                       seed: int = 0, poolings: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Linear CKA (:func:`layerwise.measure.metrics.linear_cka`) between model states on the same sentences
    (pass the test split), for each pooled embedding (``[n, L+1, d]`` per state and pooling; ``poolings``,
    default: every pooling of :data:`POOLINGS` the embeddings hold).

    Returns ``(tidy_rows, cka)``: tidy rows ``cka_<pooling>_vs_pretrained`` (layer
    l of each state against layer l of the reference, n = sentences), and the full layer x layer
    matrices for every pair of states, the within-state ones included (columns :data:`CKA_COLUMNS`). A
    representation that is the same for every sentence (the first token at layer 0 of BERT-like models)
    has no variance: its CKA is undefined (NaN).

    Also, for layer l of each state against layer l of the reference, the rows of
    :func:`same_layer_similarities` (debiased CKA, CKA of standardised embeddings, Procrustes, mutual
    k-NN, and the permutation nulls; ``n_permutations`` for the Gram-based nulls,
    ``procrustes_permutations`` for Procrustes, ``k`` neighbours, permutations drawn from ``seed``).
    ``fit_embeddings`` (same layout, other sentences, e.g. the probe pool = the train split) adds the
    held-out Procrustes rows; the pipeline passes only the test split for now.
    """
    states = sorted(embeddings, key=lambda s: s != reference)  # the reference first, then the given order
    tidy_rows: list[dict] = []
    cka_parts: list[pd.DataFrame] = []
    with single_threaded_blas():
        for pooling in poolings or present_poolings(embeddings):
            grams, n_sentences = _centred_grams(embeddings, states, pooling)
            if n_sentences < 2:
                continue
            for position, state_a in enumerate(states):
                for state_b in states[position:]:
                    matrix = metrics.cka_from_grams(grams[state_a], grams[state_b])
                    cka_parts.append(_cka_frame(matrix, model_name, pooling, state_a, state_b))
                    if state_a == reference and state_b != reference:
                        tidy_rows += [tidy_row(model_name, state_b, layer, f"cka_{pooling}_vs_{reference}",
                                               matrix[layer, layer], n=n_sentences) for layer in range(len(matrix))]
            if n_sentences >= 4 and len(states) > 1:
                tidy_rows += same_layer_similarities(
                    embeddings, model_name, pooling, reference, fit_embeddings=fit_embeddings, grams=grams,
                    n_permutations=n_permutations, procrustes_permutations=procrustes_permutations, k=k, seed=seed)
    cka = pd.concat(cka_parts, ignore_index=True) if cka_parts else pd.DataFrame(columns=CKA_COLUMNS)
    return tidy_frame(tidy_rows), cka


def _representations(embeddings, states: list[str], pooling: str, where: str) -> dict[str, np.ndarray]:
    """Per state, the ``[n, L+1, d]`` float64 embeddings of ``pooling``; a LayerwiseError when one is
    missing or when the states describe different sentences or depths."""
    representations = {}
    for state in states:
        array = embeddings[state].get(pooling)
        if array is None:
            raise LayerwiseError(f"state {state!r} has no {pooling!r} embeddings", where,
                                 "pass the arrays stored by run_state")
        representations[state] = np.asarray(array, dtype=np.float64)
    shapes = {s: r.shape[:2] for s, r in representations.items()}
    if len(set(shapes.values())) > 1:
        raise LayerwiseError(f"states describe different sentences or depths: {shapes}", where,
                             "pass the same sentences for every state")
    return representations


def _gram_stack(r: np.ndarray) -> np.ndarray:
    """Centred Grams ``Xc Xc^T`` of every layer of ``r`` ``[n, L+1, d]`` -> ``[L+1, n, n]``; a constant
    layer (every sentence the same vector) gets a zero Gram, hence a NaN CKA."""
    centred = r - r.mean(axis=0, keepdims=True)                       # [n, L+1, d], centred per layer
    centred[:, np.all(r == r[:1], axis=(0, 2))] = 0.0
    return np.stack([centred[:, layer] @ centred[:, layer].T for layer in range(r.shape[1])])


def unit_debiased_grams(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a debiased CKA and its permutation null read from one representation ``r`` ``[n, L+1, d]``: each
    layer's U-centred Gram matrix (:func:`layerwise.measure.metrics.u_centre`) divided by its Frobenius norm
    (``[L+1, n, n]``), and the mask of the layers that vary. The inner product of two such stacks, layer by layer,
    is the debiased CKA (:func:`layerwise.measure.metrics.cka_from_grams`); a constant layer is masked (NaN CKA)."""
    grams = _gram_stack(np.asarray(r, dtype=np.float64))
    _, ok = _frobenius_unit(grams)
    debiased, _ = _frobenius_unit(metrics.u_centre(grams))
    return debiased, ok


def _centred_grams(embeddings, states: list[str], pooling: str) -> tuple[dict[str, np.ndarray], int]:
    """Per state, the centred Gram matrices ``Xc Xc^T`` of every layer (``[L+1, n, n]``, float64), and
    the number of sentences."""
    representations = _representations(embeddings, states, pooling, "similarity.cka_between_states")
    if not representations:
        return {}, 0
    n_sentences = next(iter(representations.values())).shape[0]
    return {state: _gram_stack(r) for state, r in representations.items()}, n_sentences


def _cka_frame(matrix: np.ndarray, model_name: str, pooling: str, state_a: str, state_b: str) -> pd.DataFrame:
    """One ``[L+1, L+1]`` CKA matrix as rows of the ``cka`` table."""
    layer_a, layer_b = np.meshgrid(np.arange(len(matrix)), np.arange(matrix.shape[1]), indexing="ij")
    return pd.DataFrame({"model": model_name, "pooling": pooling, "state_a": state_a, "state_b": state_b,
                         "layer_a": layer_a.reshape(-1).astype(np.int64),
                         "layer_b": layer_b.reshape(-1).astype(np.int64), "value": matrix.reshape(-1)})


# --------------------------------------------------------------------------------------------------
# same-layer similarities with their permutation nulls
# --------------------------------------------------------------------------------------------------

def permutations(n: int, count: int, seed: int = 0) -> np.ndarray:
    """``[count, n]`` random permutations of the n sentence rows (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)


def gram_permutation_null(A: np.ndarray, B: np.ndarray, perms: np.ndarray, chunk: int = 16) -> np.ndarray:
    """``<A_m, P B_m P^T>_F`` for every permutation ``P`` (rows of ``perms``) and every matrix m of the
    stacks ``A``, ``B`` ``[m, n, n]``: ``[len(perms), m]`` (float32 arithmetic). With ``A``, ``B`` the
    (U-)centred Grams divided by their Frobenius norms this is CKA (debiased CKA) with the sentence rows of
    one side shuffled; with 0/1 neighbour graphs it is ``n k`` times the mutual k-NN alignment. Centring
    and U-centring commute with the permutation, so the Grams are computed once."""
    m, n, _ = A.shape
    a = A.reshape(m, -1).astype(np.float32)
    b = B.reshape(m, -1).astype(np.float32)
    out = np.empty((len(perms), m))
    for start in range(0, len(perms), chunk):
        p = perms[start:start + chunk]
        flat = (p[:, :, None] * n + p[:, None, :]).reshape(len(p), -1)   # [c, n*n] gathered indices
        out[start:start + len(p)] = np.einsum("mck,mk->cm", np.take(b, flat, axis=1), a)
    return out


def procrustes_factors(gram: np.ndarray) -> np.ndarray | None:
    """``U S`` (n x r) of ``Xc / |Xc|_F = U S V^T`` from the centred Gram ``Xc Xc^T = U S^2 U^T`` (an
    n x n eigenproblem instead of an n x d SVD): ``|X^T Y|_* = |(U_x S_x)^T (U_y S_y)|_*`` because ``V``
    has orthonormal columns, so each Procrustes value (and each permutation) is an r x r problem,
    r <= n - 1. None for a constant representation (zero Gram)."""
    total = float(np.trace(gram))
    if total <= 0:
        return None
    w, V = np.linalg.eigh(gram / total)
    keep = w > w[-1] * 1e-12
    return V[:, keep] * np.sqrt(w[keep])


def _nuclear_from_factors(Fx: np.ndarray | None, Fy: np.ndarray | None) -> float:
    """Procrustes similarity ``|Fx^T Fy|_*`` from :func:`procrustes_factors` (NaN for a constant side)."""
    if Fx is None or Fy is None:
        return float("nan")
    return float(np.linalg.svd(Fx.T @ Fy, compute_uv=False).sum())


def _procrustes_null_from_factors(Fx, Fy, perms: np.ndarray, chunk: int = 50) -> np.ndarray:
    """``|Fx^T Fy[p]|_*`` for every permutation, as the sum of the square roots of the eigenvalues of
    the smaller Gram of ``Fx^T Fy[p]`` (float32 products, batched)."""
    if Fx is None or Fy is None:
        return np.full(len(perms), np.nan)
    mx, my = Fx.T.astype(np.float32), Fy.astype(np.float32)
    out = np.empty(len(perms))
    for start in range(0, len(perms), chunk):
        M = mx @ my[perms[start:start + chunk]]                     # [c, r_x, r_y]
        small = M @ M.transpose(0, 2, 1) if M.shape[1] <= M.shape[2] else M.transpose(0, 2, 1) @ M
        out[start:start + len(M)] = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum(axis=-1)
    return out


def procrustes_permutation_null(X: np.ndarray, Y: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Procrustes similarity (:func:`layerwise.measure.metrics.procrustes_similarity`) of ``X`` and ``Y`` with the
    rows of ``Y`` permuted, for every permutation (``[len(perms)]``; NaN for a constant side)."""
    def factors(Z):
        Zc = np.asarray(Z, dtype=np.float64) - np.mean(Z, axis=0)
        return procrustes_factors(Zc @ Zc.T)

    return _procrustes_null_from_factors(factors(X), factors(Y), perms)


def _frobenius_unit(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each matrix of ``[m, n, n]`` divided by its Frobenius norm (zero matrices stay 0) and a mask of
    the nonzero ones."""
    norms = np.sqrt(np.einsum("mij,mij->m", stack, stack))
    ok = norms > 0
    return stack / np.where(ok, norms, 1.0)[:, None, None], ok


def _state_inputs(r: np.ndarray, grams: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """What every measure needs from one state's ``[n, L+1, d]`` embeddings, computed once: unit biased
    Grams, unit U-centred Grams, unit U-centred Grams of the standardised embeddings, the k-NN graphs
    (zero for a constant layer) and masks of the layers that vary."""
    n, n_layers, _ = r.shape
    cka, ok = _frobenius_unit(grams)
    debiased, _ = _frobenius_unit(metrics.u_centre(grams))
    sd = r.std(axis=0, keepdims=True)
    standardised = metrics.standardise(r, r.mean(axis=0, keepdims=True), sd)
    std_unit, _ = _frobenius_unit(metrics.u_centre(_gram_stack(standardised)))
    knn = np.zeros((n_layers, n, n))
    for layer in range(n_layers):
        graph = metrics.knn_adjacency(r[:, layer], k) if ok[layer] else None
        if graph is not None:
            knn[layer] = graph
    return {"cka": cka, "cka_debiased": debiased, "cka_std": std_unit, "mutual_knn": knn, "ok": ok}


def _observed(ref: dict, other: dict, k: int) -> dict[str, np.ndarray]:
    """Same-layer values of the Gram-based measures (``[L+1]`` each, NaN where a side is constant); the
    biased CKA rows are written by :func:`cka_between_states` itself."""
    ok = ref["ok"] & other["ok"]
    n = ref["cka"].shape[1]
    values = {name: np.einsum("lij,lij->l", ref[name], other[name]) for name in ("cka_debiased", "cka_std")}
    values["mutual_knn"] = np.einsum("lij,lij->l", ref["mutual_knn"], other["mutual_knn"]) / (n * k)
    return {name: np.where(ok, v, np.nan) for name, v in values.items()}


def _nulls(ref: dict, other: dict, perms: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Permutation nulls ``[P, L+1]`` of the Gram-based measures, in one gather per permutation."""
    names = ("cka", "cka_debiased", "mutual_knn")
    A = np.concatenate([ref[name] for name in names])
    B = np.concatenate([other[name] for name in names])
    null = gram_permutation_null(A, B, perms)
    n_layers, n = len(ref["ok"]), ref["cka"].shape[1]
    parts = dict(zip(names, np.split(null, len(names), axis=1)))
    parts["mutual_knn"] = parts["mutual_knn"] / (n * k)
    ok = ref["ok"] & other["ok"]
    return {name: np.where(ok[None, :n_layers], v, np.nan) for name, v in parts.items()}


def same_layer_similarities(embeddings: dict[str, dict[str, np.ndarray]], model_name: str, pooling: str,
                            reference: str = "pretrained", *, fit_embeddings: dict | None = None,
                            grams: dict[str, np.ndarray] | None = None, n_permutations: int = 200,
                            procrustes_permutations: int = 100, k: int = 10, seed: int = 0) -> list[dict]:
    """Tidy rows comparing layer l of every state with layer l of ``reference`` (``pooling`` embeddings,
    n = test sentences; null rows: n = permutations), metric ``<name>_<pooling>_vs_<reference>`` for the
    names ``cka_debiased``, ``cka_std`` (debiased CKA after per-dimension standardisation over the
    sentences, :func:`layerwise.measure.metrics.standardise`), ``procrustes``, ``mutual_knn`` (``k`` neighbours),
    ``<measure>_null_mean`` / ``<measure>_null_q95`` for each of :data:`FLOOR_MEASURES` (the sentence
    rows of the state shuffled ``n_permutations`` times, ``procrustes_permutations`` for Procrustes),
    and ``procrustes_heldout`` when ``fit_embeddings`` (other sentences) are given."""
    where = "similarity.same_layer_similarities"
    if n_permutations < 1 or procrustes_permutations < 0 or procrustes_permutations > n_permutations:
        raise LayerwiseError("need n_permutations >= 1 and 0 <= procrustes_permutations <= n_permutations", where,
                             "use the defaults (200 and 100)")
    states = sorted(embeddings, key=lambda s: s != reference)
    reps = _representations(embeddings, states, pooling, where)
    if grams is None:
        grams = {state: _gram_stack(r) for state, r in reps.items()}
    n = reps[reference].shape[0]
    k = min(k, n - 1)                                   # few sentences: every other sentence is a neighbour
    perms = permutations(n, n_permutations, seed)
    inputs = {state: _state_inputs(reps[state], grams[state], k) for state in states}
    factors = {state: [procrustes_factors(g) for g in grams[state]] for state in states}
    fit = _representations(fit_embeddings, states, pooling, where) if fit_embeddings is not None else None
    rows: list[dict] = []
    for state in states[1:]:
        values = _observed(inputs[reference], inputs[state], k)
        nulls = _nulls(inputs[reference], inputs[state], perms, k)
        procrustes = _procrustes_rows(reps, factors, perms[:procrustes_permutations], fit, state, reference)
        values.update(procrustes.pop("values"))
        nulls.update(procrustes.pop("nulls"))
        rows += _floor_rows(model_name, state, f"_{pooling}_vs_{reference}", values, nulls, n)
    return rows


def _procrustes_rows(reps: dict, factors: dict, perms: np.ndarray, fit: dict | None, state: str,
                     reference: str) -> dict:
    """Same-layer Procrustes values (and held out when ``fit`` is given) and their permutation null."""
    n_layers = len(factors[reference])
    pairs = list(zip(factors[reference], factors[state]))
    values = {"procrustes": np.array([_nuclear_from_factors(fx, fy) for fx, fy in pairs])}
    if fit is not None:
        values["procrustes_heldout"] = np.array([metrics.procrustes_similarity(
            reps[reference][:, l], reps[state][:, l], fit[reference][:, l], fit[state][:, l])
            for l in range(n_layers)])
    nulls = {}
    if len(perms):
        nulls["procrustes"] = np.stack([_procrustes_null_from_factors(fx, fy, perms) for fx, fy in pairs], axis=1)
    return {"values": values, "nulls": nulls}


def _floor_rows(model_name: str, state: str, suffix: str, values: dict, nulls: dict, n: int) -> list[dict]:
    """Tidy rows of the observed values and of the null means and 95th percentiles."""
    rows = []
    for name, v in values.items():
        rows += [tidy_row(model_name, state, layer, f"{name}{suffix}", x, n=n) for layer, x in enumerate(v)]
    for name, null in nulls.items():
        with np.errstate(invalid="ignore"):
            mean, q95 = null.mean(axis=0), np.quantile(null, 0.95, axis=0)
        rows += [tidy_row(model_name, state, layer, f"{name}_null_mean{suffix}", x, n=len(null))
                 for layer, x in enumerate(mean)]
        rows += [tidy_row(model_name, state, layer, f"{name}_null_q95{suffix}", x, n=len(null))
                 for layer, x in enumerate(q95)]
    return rows


# --------------------------------------------------------------------------------------------------
# layer x layer matrices of the other measures (no nulls)
# --------------------------------------------------------------------------------------------------

def similarity_matrices(embeddings: dict[str, dict[str, np.ndarray]], model_name: str, reference: str = "pretrained",
                        k: int = 10) -> pd.DataFrame:
    """Every layer of each state against every layer of each state (within-state pairs included, as in
    the ``cka`` table) for ``cka_debiased``, ``cka_std``, ``procrustes`` and ``mutual_knn`` (``k``
    neighbours): columns :data:`SIMILARITY_COLUMNS`. No permutation nulls (they are computed for the
    same-layer pairs only, :func:`same_layer_similarities`). Not written by the pipeline yet."""
    states = sorted(embeddings, key=lambda s: s != reference)
    parts = []
    with single_threaded_blas():
        for pooling in present_poolings(embeddings):
            reps = _representations(embeddings, states, pooling, "similarity.similarity_matrices")
            if not reps or next(iter(reps.values())).shape[0] < 4:
                continue
            n = next(iter(reps.values())).shape[0]
            k = min(k, n - 1)
            grams = {state: _gram_stack(r) for state, r in reps.items()}
            inputs = {state: _state_inputs(reps[state], grams[state], k) for state in states}
            factors = {state: [procrustes_factors(g) for g in grams[state]] for state in states}
            for position, a in enumerate(states):
                for b in states[position:]:
                    matrices = _pair_matrices(inputs[a], inputs[b], factors[a], factors[b], n, k)
                    for measure, matrix in matrices.items():
                        frame = _cka_frame(matrix, model_name, pooling, a, b)
                        frame.insert(2, "measure", measure)
                        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SIMILARITY_COLUMNS)


def _pair_matrices(a: dict, b: dict, fa: list, fb: list, n: int, k: int) -> dict[str, np.ndarray]:
    """The ``[L+1, L+1]`` matrices of one pair of states (NaN where a layer is constant)."""
    ok = np.outer(a["ok"], b["ok"])
    out = {}
    for name in ("cka_debiased", "cka_std", "mutual_knn"):
        A = a[name].reshape(len(a["ok"]), -1)
        B = b[name].reshape(len(b["ok"]), -1)
        out[name] = A @ B.T / (n * k if name == "mutual_knn" else 1.0)
    out["procrustes"] = np.array([[_nuclear_from_factors(x, y) for y in fb] for x in fa])
    return {name: np.where(ok, m, np.nan) for name, m in out.items()}
