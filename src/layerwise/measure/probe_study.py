"""The probe study: every probe, control, MDL code and class-geometry measure of every model state,
layer and pooling, on the stored embeddings (see :mod:`layerwise.measure.probes` for the definitions).

Which sentences. The stored ``split`` says ``"train"`` (the fine-tuning sentences), ``"probe"`` (the probe
pool, never seen by the fine-tuning) or ``"test"``. Every probe and MDL code of every state trains on the
probe pool and is scored on the test sentences; class geometry and cones use the test sentences. The
memorisation check trains the same probe, and codes MDL, on as many fine-tuning sentences (equal n), so a
state that memorised its fine-tuning sentences shows a gap. Embeddings without a probe pool (older
caches, ``finetune.num_probe: 0``) fall back to the fine-tuning sentences, with no memorisation check.
"""

from __future__ import annotations

import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from . import controls
from ..core.errors import LayerwiseError
from .mdl import mdl_subsampled
from .probes import (ProbeResult, checked_splits, class_geometry, cone_view, correct_matrix, logistic,
                     mlp_probe_accuracy, permutations, probe_accuracy, probe_draws, probe_result, selectivity)
from .probes_batch import logistic_correct_sets
from ..core.tables import DEFAULT_POOLINGS, POOLINGS, state_order, tidy_frame, tidy_row
from .stats import wilson_ci

CONE_COLUMNS = ["model", "state", "layer", "sentence", "label", "cos_ref", "cos_own_centroid", "cos_other_centroid"]
#: Per-sentence correctness of the probes (table ``probe_correct``): ``metric`` is the probe's tidy metric,
#: ``sentence`` the row in the stored arrays, ``correct`` the fraction of retrainings that got it right.
CORRECT_COLUMNS = ["model", "state", "metric", "layer", "sentence", "correct"]


class ProbeTables(NamedTuple):
    """What :func:`probe_study` returns: the tidy rows, the cones and the per-sentence correctness."""

    tidy: pd.DataFrame
    cones: pd.DataFrame
    correct: pd.DataFrame


@dataclass(frozen=True)
class ProbeSettings:
    """What :func:`probe_study` computes (defaults: the pipeline's). Layer lists: None = every layer
    0..L, except ``mlp_layers``/``mdl_layers`` (None = ``layers``) and ``cone_layers`` (None = the
    first, middle and last transformer layers: 1, (L + 1) // 2 and L; cones only at probed layers)."""

    layers: tuple[int, ...] | None = None           # layers of the linear probes and class geometry
    seeds: int = 5                                   # MLP seeds (80 % subsamples + inits)
    retrainings: int = 20                            # bootstrap retrainings of the linear probes, controls, lexical
    n_boot: int = 1000                               # bootstrap resamples of every CI
    seed: int = 0                                    # RNG seed of every draw
    level: float = 0.95                              # CI coverage
    poolings: tuple[str, ...] = DEFAULT_POOLINGS["encoder"]  # poolings of the linear probes and class geometry;
    # the first is the primary pooling: the MLP head, MDL, memorisation and the cones read it unless set
    mlp: bool = True                                 # the original study's dense + tanh head as a probe
    mlp_poolings: tuple[str, ...] | None = None      # the token that head reads (None: the primary); costliest
    mlp_layers: tuple[int, ...] | None = None
    mlp_solver: str = "lbfgs"                        # see mlp_probe_accuracy
    mdl: bool = True                                 # MDL online code (mdl.mdl_subsampled)
    mdl_poolings: tuple[str, ...] | None = None      # the report shows the primary pooling's code (None)
    mdl_layers: tuple[int, ...] | None = None
    mdl_subsamples: int = 10                         # subsamples (without replacement) of the MDL code
    mdl_fraction: float = 0.8                        # each subsample: this fraction of the probe pool
    memorisation: bool = True                        # probe + MDL on fine-tuning sentences at equal n
    memorisation_poolings: tuple[str, ...] | None = None  # None: the primary pooling
    control_min_count: int = 2                       # a test key type must occur this often in the probe pool
    lexical: bool = True                             # TF-IDF word 1-2-gram baseline (needs the texts)
    subsample: float = 0.8                           # train fraction per MLP seed
    n_perm: int = 1000                               # label permutations of the silhouette baseline
    cone_layers: tuple[int, ...] | None = None
    ref_index: int = 0                               # the cone view's reference test row
    blas_threads: int | None = 1                     # BLAS threads (None: as is); 1 is 15x faster, see bench/
    method: str = "batched"                          # probes.METHODS: retrainings fitted together or one by one
    torch_threads: int | None = 1                    # threads of the batched solves (None: as is); see bench/
    workers: int = 2                                 # cells computed at once (threads); the result is the same

    def __post_init__(self):
        for name in ("mlp_poolings", "mdl_poolings", "memorisation_poolings"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, tuple(self.poolings[:1]))
        for name in ("layers", "mlp_layers", "mdl_layers", "cone_layers", "poolings", "mlp_poolings", "mdl_poolings",
                     "memorisation_poolings"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(v if "poolings" in name else (int(x) for x in v)))

    @classmethod
    def from_analysis(cls, spec, poolings: Sequence[str] | None = None, **overrides) -> "ProbeSettings":
        """The settings of ``params.analysis`` (``config.AnalysisSpec``): ``probe_seeds``,
        ``probe_retrainings``, ``bootstrap``, ``seed`` (``config.PROBE_FIELDS``, the probes' cache key);
        ``poolings``: the study's resolved poolings, primary first (default ``spec.poolings``, else the
        encoder default); ``overrides`` set the others."""
        poolings = tuple(poolings or getattr(spec, "poolings", None) or DEFAULT_POOLINGS["encoder"])
        return cls(**{"seeds": spec.probe_seeds, "retrainings": getattr(spec, "probe_retrainings", 20),
                      "n_boot": spec.bootstrap, "seed": spec.seed, "poolings": poolings, **overrides})


def _validate_embeddings(embeddings: dict, poolings: Sequence[str]) -> tuple[int, int]:
    if not embeddings:
        raise LayerwiseError("no model state to probe", where="probe_study",
                             fix="pass embeddings for at least one state")
    shape = None
    for state, e in embeddings.items():
        where = f"probe_study: state {state}"
        missing = [k for k in (*poolings, "label", "split") if k not in e]
        if missing:
            raise LayerwiseError(f"embeddings lack {missing}", where=where,
                                 fix="pass the arrays of embeddings_<state>.npz (the poolings, label, split)")
        n = len(e["label"])
        for p in poolings:
            a = e[p]
            if a.ndim != 3 or a.shape[0] != n:
                raise LayerwiseError(f"'{p}' has shape {a.shape}, expected [{n}, L+1, d]", where=where,
                                     fix="store pooled embeddings as [n_sentences, L+1, d]")
            shape = a.shape[1:] if shape is None else shape
            if a.shape[1:] != shape:
                raise LayerwiseError(f"'{p}' has layers x dims {a.shape[1:]}, other arrays {shape}", where=where,
                                     fix="probe states of one model together")
        split = set(np.unique(np.asarray(e["split"])))
        if np.shape(e["split"]) != (n,) or "test" not in split or not split & {"train", "probe"}:
            raise LayerwiseError("split must give 'train', 'probe' or 'test' for every sentence, with test "
                                 "sentences and probe-pool (or train) sentences present", where=where,
                                 fix="store the probe-pool and test sentences")
    return shape  # (L+1, d)


_Layers = namedtuple("_Layers", "needed probe mlp mdl cones")  # poolings read; layers of each probe family


def default_cone_layers(last: int) -> list[int]:
    """The default layers of the class cones: the first, middle and last transformer layers of a model
    whose last layer is ``last`` (where the class cone forms; not layer 0, where the first token's embedding
    output is the same vector for every sentence, so its cosine to any reference is 1)."""
    first = 1 if last >= 1 else 0
    return sorted({first, max(first, (last + 1) // 2), last})


def _plan_layers(embeddings: dict, st: ProbeSettings) -> _Layers:
    bad = [p for p in (*st.poolings, *st.mlp_poolings, *st.mdl_poolings) if p not in POOLINGS]
    if bad:
        raise LayerwiseError(f"unknown pooling(s) {bad}", where="probe_study", fix=f"choose among {POOLINGS}")
    needed = tuple(dict.fromkeys((*st.poolings, *(st.mlp_poolings if st.mlp else ()),
                                  *(st.mdl_poolings if st.mdl else ()))))
    n_layers, _ = _validate_embeddings(embeddings, needed)

    def pick(ls, name):
        ls = list(range(n_layers)) if ls is None else [int(v) for v in ls]
        out_of_range = [v for v in ls if not 0 <= v < n_layers]
        if out_of_range:
            raise LayerwiseError(f"{name} {out_of_range} out of range 0..{n_layers - 1}", where="probe_study",
                                 fix=f"choose layers between 0 and {n_layers - 1}")
        return ls

    layers = pick(st.layers, "layers")
    last = n_layers - 1
    default_cones = default_cone_layers(last)
    return _Layers(needed, layers, pick(st.mlp_layers if st.mlp_layers is not None else layers, "mlp_layers"),
                   pick(st.mdl_layers if st.mdl_layers is not None else layers, "mdl_layers"),
                   pick(st.cone_layers if st.cone_layers is not None else default_cones, "cone_layers"))


class _Rows(namedtuple("_Rows", "pool test seen keys_pool keys_test")):
    """Which stored rows a state's probes read: the probe pool, the test sentences, the fine-tuning
    sentences of the memorisation check (None without a probe pool) and the key types (None without texts)."""

    @classmethod
    def of(cls, e: dict, min_count: int) -> "_Rows":
        split = np.asarray(e["split"])
        has_pool = bool(np.any(split == "probe"))
        pool = np.flatnonzero(split == ("probe" if has_pool else "train"))
        test = np.flatnonzero(split == "test")
        seen = np.flatnonzero(split == "train") if has_pool and np.any(split == "train") else None
        keys = controls.lexical_keys(e["text"]) if "text" in e else None
        return cls(pool, test, seen, None if keys is None else keys[pool], None if keys is None else keys[test])


class _Cell(namedtuple("_Cell", "model state pool layer X y rows")):
    """One (model, state, pooling, layer) of the study: its embeddings ``X`` [n, d], labels and rows."""

    Xtr = property(lambda self: self.X[self.rows.pool])
    ytr = property(lambda self: self.y[self.rows.pool])
    Xte = property(lambda self: self.X[self.rows.test])
    yte = property(lambda self: self.y[self.rows.test])

    def row(self, name: str, value: float, low: float = np.nan, high: float = np.nan, n: int | None = None) -> dict:
        """The tidy row of metric ``<name>_<pool>`` at this cell (``n`` defaults to the test size)."""
        return tidy_row(self.model, self.state, self.layer, f"{name}_{self.pool}", value, low, high,
                        self.rows.test.size if n is None else n)

    def correct(self, metric: str, correct: np.ndarray) -> pd.DataFrame:
        """The per-sentence correctness rows (fraction of retrainings) of one probe at this cell."""
        return pd.DataFrame({"model": self.model, "state": self.state, "metric": f"{metric}_{self.pool}",
                             "layer": self.layer, "sentence": self.rows.test, "correct": correct.mean(axis=0)})


def _timed(t: dict, part: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    t[part] = t.get(part, 0.0) + time.perf_counter() - t0
    return out


def _linear_rows(c: _Cell, st: ProbeSettings, t: dict, out: list) -> list[dict]:
    """Linear probe, its chance baseline (permuted labels), the control task and the selectivity;
    the probe's per-sentence correctness goes to ``out``."""
    kw = dict(seeds=st.retrainings, n_boot=st.n_boot, seed=st.seed, level=st.level, method=st.method)
    if st.method == "batched":
        real, chance, control = _timed(t, "probe", _linear_batched, c, st)
    else:
        real = _timed(t, "probe", probe_accuracy, c.Xtr, c.ytr, c.Xte, c.yte, **kw)
        chance = _timed(t, "control", probe_accuracy, c.Xtr, c.ytr, c.Xte, c.yte, **kw, permuted=True)
    out.append(c.correct("probe_acc", real.correct))
    rows = [c.row("probe_acc", real.acc, real.ci_low, real.ci_high),
            c.row("probe_chance_acc", chance.acc, chance.ci_low, chance.ci_high)]
    if c.rows.keys_pool is not None:
        ctrl, cov = control if st.method == "batched" else _timed(
            t, "control", controls.control_task_accuracy, c.Xtr, c.ytr, c.rows.keys_pool, c.Xte, c.rows.keys_test,
            min_count=st.control_min_count, **kw)
        sel = (selectivity(real, ctrl, n_boot=st.n_boot, seed=st.seed, level=st.level, covered=cov)
               if cov.any() else (np.nan,) * 3)
        rows += [c.row("control_acc", ctrl.acc, ctrl.ci_low, ctrl.ci_high, n=int(cov.sum())),
                 c.row("selectivity", *sel, n=int(cov.sum()))]
    return rows


def _linear_batched(c: _Cell, st: ProbeSettings):
    """The linear probe, its chance baseline and its control task (``probe_accuracy``, ``permuted=True`` and
    ``controls.control_task_accuracy``: the same draws, permutations and control labels) fitted in one
    batched solve (``probes_batch.logistic_correct_sets``). Returns ``(real, chance, (control, covered))``,
    the control None without texts."""
    Xtr, ytr, Xte, yte = checked_splits(c.Xtr, c.ytr, c.Xte, c.yte, st.retrainings, "probe_study")
    seeds, seed = st.retrainings, st.seed
    draws = probe_draws(ytr, seeds, seed)
    perms = permutations(ytr.size, seeds, seed)
    tasks = [(lambda b: ytr, lambda b: yte), (lambda b: ytr[perms[b]], lambda b: yte)]
    cov = None
    if c.rows.keys_pool is not None:
        cov = controls.covered(c.rows.keys_pool, c.rows.keys_test, st.control_min_count)
        labels = controls.control_label_sets(c.rows.keys_pool, c.rows.keys_test, cov, ytr, seeds, seed)
        if cov.any():
            tasks.append((lambda b: labels[b][0], lambda b: labels[b][1]))

    def fallback(k, b):
        return correct_matrix(lambda rs: logistic(1.0, rs), Xtr, Xte, [draws[b]], lambda _: tasks[k][0](b),
                              lambda _: tasks[k][1](b))[0]

    correct = logistic_correct_sets(Xtr, Xte, draws, tasks, fallback=fallback)
    res = [probe_result(m, crossed=True, n_boot=st.n_boot, seed=seed, level=st.level) for m in correct[:2]]
    if cov is None:
        return res[0], res[1], None
    if not cov.any():
        nan = np.full((seeds, 0), False)
        return res[0], res[1], (ProbeResult(np.nan, np.nan, np.nan, 0, np.full(seeds, np.nan), nan), cov)
    ctrl = probe_result(correct[2][:, cov], crossed=True, n_boot=st.n_boot, seed=seed, level=st.level)
    return res[0], res[1], (ctrl, cov)


def _memorisation_rows(c: _Cell, st: ProbeSettings, t: dict) -> list[dict]:
    """The probe trained on fine-tuning sentences (as many as the probe pool, bootstrap resamples) and MDL
    coded on fine-tuning sentences (the same subsample size as the probe pool's code)."""
    seen = c.rows.seen
    rows = []
    if st.retrainings:
        r = _timed(t, "memorisation", probe_accuracy, c.X[seen], c.y[seen], c.Xte, c.yte, seeds=st.retrainings,
                   n_boot=st.n_boot, seed=st.seed, level=st.level, size=c.rows.pool.size, method=st.method)
        rows.append(c.row("probe_acc_seen", r.acc, r.ci_low, r.ci_high))
    size = _mdl_size(c, st)
    if st.mdl and c.pool in st.mdl_poolings and seen.size >= size:
        m = _timed(t, "memorisation", mdl_subsampled, c.X[seen], c.y[seen], size, st.mdl_subsamples, st.seed, st.level,
                   method=st.method)
        rows.append(c.row("mdl_compression_seen", *m[:3], n=size))
    return rows


def _mdl_size(c: _Cell, st: ProbeSettings) -> int:
    return max(2, int(round(st.mdl_fraction * c.rows.pool.size)))


def _geometry_rows(c: _Cell, st: ProbeSettings, t: dict, cone: bool) -> tuple[list, list]:
    """Class geometry of the test rows (silhouette, its permuted-label baseline, centroid angle and margin)
    and, when ``cone``, their cones: cosine to the reference row and the centroids."""
    geo = _timed(t, "geometry", class_geometry, c.Xte, c.yte, n_perm=st.n_perm, n_boot=st.n_boot, seed=st.seed,
                 level=st.level)
    rows = [c.row(name, geo[name], *geo[f"{name}_ci"])
            for name in ("silhouette", "silhouette_perm", "centroid_angle", "centroid_margin")]
    if not cone:
        return rows, []
    cv = cone_view(c.Xte, c.yte, ref_index=st.ref_index)
    return rows, [pd.DataFrame({"model": c.model, "state": c.state, "layer": c.layer, "sentence": c.rows.test,
                                "label": c.yte, "cos_ref": cv["cos_ref"].to_numpy(),
                                "cos_own_centroid": geo["cos_own_centroid"],
                                "cos_other_centroid": geo["cos_other_centroid"]})]


def _mlp_row(c: _Cell, st: ProbeSettings, t: dict) -> dict:
    """The original study's dense + tanh head as a probe."""
    m = _timed(t, "mlp", mlp_probe_accuracy, c.Xtr, c.ytr, c.Xte, c.yte, seeds=st.seeds, n_boot=st.n_boot,
               subsample=st.subsample, seed=st.seed, level=st.level, solver=st.mlp_solver, method=st.method)
    return c.row("mlp_probe_acc", m.acc, m.ci_low, m.ci_high)


def _mdl_row(c: _Cell, st: ProbeSettings, t: dict) -> dict:
    """MDL compression on the probe pool: mean over ``mdl_subsamples`` subsamples (``mdl_fraction`` of the
    pool, without replacement), percentile interval over them; n = the coded sentences per subsample."""
    size = _mdl_size(c, st)
    m = _timed(t, "mdl", mdl_subsampled, c.Xtr, c.ytr, size, st.mdl_subsamples, st.seed, st.level, method=st.method)
    return c.row("mdl_compression", *m[:3], n=size)


def probe_study(embeddings: dict[str, dict[str, np.ndarray]], model_name: str, settings: ProbeSettings | None = None,
                *, timings: dict | None = None) -> ProbeTables:
    """Probes, controls, MDL and class geometry for every state, layer and pooling; returns
    :class:`ProbeTables` ``(tidy, cones, correct)``.

    ``embeddings[state]`` holds each pooling of ``settings.poolings`` (``[n, L+1, d]``), ``label``, ``split`` and ``text`` ``[n]``
    (other arrays are ignored; without ``text`` there is no control task or lexical baseline);
    ``settings``: :class:`ProbeSettings` (the pipeline's: ``from_analysis``). Which sentences: see the module
    docstring. Tidy metrics: the "probes" and "class geometry" families of ``schema.REGISTRY``, suffixed
    ``_<pooling>`` (per-state rows at layer -1: ``probe_majority_baseline``, ``control_coverage``,
    ``lexical_probe_acc``). Cones (the primary pooling, test rows, ``cone_layers``): :data:`CONE_COLUMNS`, ``sentence``
    being the row in the stored arrays. ``correct``: :data:`CORRECT_COLUMNS`. ``timings``, a dict, receives
    seconds per part.
    """
    from threadpoolctl import threadpool_limits

    settings = settings if settings is not None else ProbeSettings()
    with threadpool_limits(limits=settings.blas_threads), _torch_threads(settings.torch_threads):
        return _probe_study(embeddings, model_name, settings, timings if timings is not None else {})


@contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads for the batched solves (``None``: left as they are), restored afterwards.
    One thread by default: on a shared 2-core machine two OpenMP threads made a cell's solve 4 times
    slower in wall time (bench/RESULTS-probes.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _state_rows(model: str, state: str, e: dict, r: _Rows, st: ProbeSettings, t: dict, lexical: dict) -> list[dict]:
    """The per-state rows (layer -1): majority baseline, control coverage, lexical baseline (computed once:
    it reads the texts only, the same for every state)."""
    y = np.asarray(e["label"])
    ytr, yte = y[r.pool], y[r.test]
    classes, counts = np.unique(ytr, return_counts=True)
    k = int(np.sum(yte == classes[counts.argmax()]))  # always answer the majority class of the probe pool
    rows = [tidy_row(model, state, -1, "probe_majority_baseline", *wilson_ci(k, yte.size, st.level), yte.size)]
    if r.keys_pool is not None:
        cov = controls.covered(r.keys_pool, r.keys_test, st.control_min_count)
        rows.append(tidy_row(model, state, -1, "control_coverage", cov.mean(), n=yte.size))
    if st.lexical and "text" in e:
        if "result" not in lexical:
            texts = np.asarray(e["text"], dtype=object)
            lexical["result"] = _timed(t, "lexical", controls.lexical_probe_accuracy, texts[r.pool], ytr,
                                       texts[r.test], yte, seeds=st.retrainings, n_boot=st.n_boot, seed=st.seed,
                                       level=st.level)
        lx = lexical["result"]
        rows.append(tidy_row(model, state, -1, "lexical_probe_acc", lx.acc, lx.ci_low, lx.ci_high, yte.size))
        lexical.setdefault("rows", []).append(pd.DataFrame({
            "model": model, "state": state, "metric": "lexical_probe_acc", "layer": -1, "sentence": r.test,
            "correct": lx.correct.mean(axis=0)}))
    return rows


def _cell_rows(c: _Cell, st: ProbeSettings, plan: _Layers, t: dict, out: dict) -> None:
    """Every row of one (state, pooling, layer) cell into ``out`` (tidy rows, cones, correctness)."""
    mlp, mdl = st.mlp and c.pool in st.mlp_poolings, st.mdl and c.pool in st.mdl_poolings
    if c.pool in st.poolings and c.layer in plan.probe:
        out["rows"] += _linear_rows(c, st, t, out["correct"])
        geo_rows, cone_rows = _geometry_rows(c, st, t, c.pool == st.poolings[0] and c.layer in plan.cones)
        out["rows"] += geo_rows
        out["cones"] += cone_rows
        if st.memorisation and c.rows.seen is not None and c.pool in st.memorisation_poolings:
            out["rows"] += _memorisation_rows(c, st, t)
    if mlp and c.layer in plan.mlp:
        out["rows"].append(_mlp_row(c, st, t))
    if mdl and c.layer in plan.mdl:
        out["rows"].append(_mdl_row(c, st, t))


def _run_cells(cells: list, st: ProbeSettings, plan: _Layers, t: dict) -> list[dict]:
    """Every cell's rows (:func:`_cell_rows`), in the order of ``cells``, computed by ``st.workers`` threads
    with the batched method (the batched solves and BLAS release the GIL; every draw depends on the cell
    only, so the result does not depend on the number of threads; the sequential method runs one cell at a
    time). ``t`` receives the summed seconds of every thread."""
    def one(c):
        out, tc = {"rows": [], "cones": [], "correct": []}, {}
        _cell_rows(c, st, plan, tc, out)
        return out, tc

    if st.workers > 1 and len(cells) > 1 and st.method == "batched":   # scikit-learn's warning filters are global
        with ThreadPoolExecutor(st.workers) as pool:
            done = list(pool.map(one, cells))
    else:
        done = [one(c) for c in cells]
    for _, tc in done:
        for k, v in tc.items():
            t[k] = t.get(k, 0.0) + v
    return [o for o, _ in done]


def _probe_study(embeddings, model_name: str, st: ProbeSettings, t: dict) -> ProbeTables:
    plan = _plan_layers(embeddings, st)
    t.update({k: t.get(k, 0.0) for k in ("probe", "control", "mlp", "mdl", "geometry", "memorisation", "lexical")})
    lexical: dict = {}
    state_rows, cells = {}, []
    for state in state_order(embeddings):
        e = embeddings[state]
        r = _Rows.of(e, st.control_min_count)
        y = np.asarray(e["label"])
        state_rows[state] = _state_rows(model_name, state, e, r, st, t, lexical)
        for pool in plan.needed:
            mlp, mdl = st.mlp and pool in st.mlp_poolings, st.mdl and pool in st.mdl_poolings
            for layer in sorted(set(plan.probe) | set(plan.mlp if mlp else ()) | set(plan.mdl if mdl else ())):
                cells.append(_Cell(model_name, state, pool, layer, e[pool][:, layer, :].astype(np.float64), y, r))
    outs = _run_cells(cells, st, plan, t)
    out: dict[str, list] = {"rows": [], "cones": [], "correct": []}
    for state in state_rows:
        out["rows"] += state_rows[state]
        for c, o in zip(cells, outs):
            if c.state == state:
                for k in out:
                    out[k] += o[k]
    cones = out["cones"]
    cone_df = (pd.concat(cones, ignore_index=True) if cones else pd.DataFrame(columns=CONE_COLUMNS))[CONE_COLUMNS]
    if len(cone_df):
        cone_df = cone_df.astype({"layer": np.int64, "sentence": np.int64, "label": np.int64})
    parts = out["correct"] + lexical.get("rows", [])
    correct = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CORRECT_COLUMNS))[CORRECT_COLUMNS]
    correct = correct.astype({"layer": np.int64, "sentence": np.int64, "correct": np.float64})
    return ProbeTables(tidy_frame(out["rows"]), cone_df, correct)
