"""The study steps for one params file, each cached by content hash: fine-tuning, the geometry
engine (one pass per state), probes and statistics; and ``load_study`` that returns every table
the chapters read.

A run of a study loads the data selection and resolves the model once (:func:`resolve_inputs`) and
hands them to every step; each step computes its cache key first and skips its work on a hit. The
code in a key is the import closure of the modules the step runs (``repro.code_hash``)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..inputs.config import StudyParams, load_params
from ..inputs.data import Splits, load_splits
from ..model.finetune import FinetunePlan, FinetuneResult, finetune, plan_finetune
from ..core import phases
from ..core.precision import machine
from ..core.precision import resolve as resolve_precision
from ..measure import seeds
from ..model.models import ModelSource, model_source, pick_device, resolve_poolings
from ..core.tables import FIRST_TOKEN, MEAN_TOKENS, TABLES
from .study import Study
from ..core.locks import cached_entry, entry_key
from ..core.repro import atomic_dir, cache_root, code_hash, content_hash, damage_outcomes, provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyInputs:
    """What every step of a study reads, resolved once per run: the data selection (whose hash keys
    the caches), the pretrained model's source (path, revision, weights key) and, made on first use,
    the fine-tuning plan of each seed (:meth:`plan`)."""

    splits: Splits
    source: ModelSource
    plans: dict[int, FinetunePlan] = field(default_factory=dict, compare=False, repr=False)
    #: the run's device and the engine's precision (``analysis.precision`` with ``auto`` resolved on that
    #: device), picked once per run and passed down (the fine-tuning plans and the engine read them from
    #: here); the geometry key holds the precision, the entry's manifest records both
    device: Any = None
    precision: str | None = None
    #: the study's poolings, its primary pooling first (``analysis.poolings`` or the model's default,
    #: ``models.resolve_poolings``): the engine stores these, the geometry key and manifest hold them
    poolings: tuple[str, ...] = ()

    def plan(self, params: StudyParams, seed: int) -> FinetunePlan:
        """The fine-tuning plan of ``seed`` (its cache key and entry), made once per run."""
        if seed not in self.plans:
            self.plans[seed] = plan_finetune(params.for_seed(seed), splits=self.splits, source=self.source,
                                             device=self.device, poolings=self.poolings)
        return self.plans[seed]


def resolve_inputs(params: StudyParams) -> StudyInputs:
    """Load the params' data selection and resolve their model, once for a whole run; warnings (the log and
    the terminal) when the selection removed repeated texts or found near-duplicates
    (:func:`data.duplicates_note`) and when ``analysis.num_sentences`` is more than the test sentences
    (:func:`checks.sentences_note`)."""
    from ..inputs.checks import sentences_note
    from ..inputs.data import duplicates_note

    splits = load_splits(params)
    for note in (duplicates_note(params, splits), sentences_note(params, len(splits.test))):
        if note:
            log.warning(note)
    device = pick_device()
    source = model_source(params)
    return StudyInputs(splits, source, device=device,
                       precision=resolve_precision(params.analysis.precision, device, purpose="analysis"),
                       poolings=tuple(resolve_poolings(params, source)))


def finetuned(params: StudyParams, progress: bool = True, *, inputs: StudyInputs | None = None,
              seed: int | None = None) -> FinetuneResult:
    """The fine-tuned checkpoint of one fine-tuning seed (default: the first) of these params (trained
    once, then read from the cache; every seed is its own entry)."""
    inputs = inputs or resolve_inputs(params)
    seed = params.finetune.seed if seed is None else seed
    return finetune(params.for_seed(seed), progress=progress, plan=inputs.plan(params, seed))


def engine_states(params: StudyParams) -> list[str]:
    """The engine's states: ``analysis.states`` with ``finetuned`` as one state per fine-tuning seed and
    ``random`` as one state per random draw (``analysis.draws``; ``seeds.state_label``); pretrained once."""
    per_seed = {"finetuned": params.finetune.seeds, "random": params.analysis.draws}
    out = []
    for state in params.analysis.states:
        out += [seeds.state_label(s, state) for s in per_seed[state]] if state in per_seed else [state]
    return out


#: layout of a geometry entry (2: seeds became per-seed engine states; 3: random draws too; the poolings
#: stored are the study's, ``manifest.json`` ``poolings``: a study with the former two has the same layout)
GEOMETRY_LAYOUT = 3


def _analysis_key(params: StudyParams, inputs: StudyInputs) -> str:
    """The geometry engine's cache key: weights, selection, the engine's settings, the fine-tuned
    entries (named by their own keys: nothing is trained to compute them) and the engine's code."""
    ft = [entry_key(inputs.plan(params, s).entry)
          for s in params.finetune.seeds] if "finetuned" in params.analysis.states else None
    # the stored poolings (their order is the probes' business): none named for the first token and mean,
    # the two every entry held before the setting existed
    stored = sorted(inputs.poolings)
    poolings = {} if stored == sorted((FIRST_TOKEN, MEAN_TOKENS)) else {"poolings": stored}
    return content_hash({"model": inputs.source.key, "selection": inputs.splits.selection["hash"],
                         "analysis": {**params.analysis.geometry_payload(), "precision": inputs.precision,
                                      **poolings},
                         "finetuned": ft, "layout": GEOMETRY_LAYOUT,
                         "code": code_hash("measure.extract", "measure.similarity", "model.models", "measure.seeds")})


def _selection_texts(splits) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every sentence the engine embeds, with its label, part ("train": fine-tuning, "probe": the probe
    pool, "test") and row in its source split."""
    parts = [("train", splits.train), ("probe", splits.probe if splits.probe is not None else []),
             ("test", splits.test)]
    texts = [t for _, d in parts for t in (d["text"] if len(d) else [])]
    labels = np.asarray([v for _, d in parts for v in (d["label"] if len(d) else [])], dtype=np.int64)
    split = np.array([name for name, d in parts for _ in range(len(d))])
    index = np.asarray([v for _, d in parts for v in (d["index"] if len(d) else [])], dtype=np.int64)
    return texts, labels, split, index


def analyze(params: StudyParams, progress: bool = True, *, inputs: StudyInputs | None = None) -> Path:
    """Run the geometry engine for every state of ``params.analysis.states``; one forward pass per
    batch per state. Results (Parquet tables, float16 embeddings, manifest) go to a cache entry keyed
    by model, data selection, analysis settings, the fine-tuned checkpoint and the engine's code, and
    found by that key alone (the study name only labels the folder). ``inputs``: the run's selection
    and model (resolved here when not given). The cache is checked before anything is trained or
    loaded; two runs that need the same entry at once compute it once (:func:`locks.cached_entry`)."""
    inputs = inputs or resolve_inputs(params)
    key = _analysis_key(params, inputs)
    return cached_entry(cache_root() / "results", params.name, key,
                        lambda entry: _write_geometry(params, inputs, key, entry, progress),
                        what="the geometry results", progress=progress)


def _write_geometry(params: StudyParams, inputs: StudyInputs, key: str, entry: Path, progress: bool) -> None:
    """Compute the geometry entry ``entry`` (key ``key``): every state's forward passes (pretrained once,
    the fine-tuned state once per seed, the random state once per draw), then the similarities between
    states and seeds."""
    splits = inputs.splits
    ft = {s: _timed_finetune(params, progress, inputs, s)
          for s in params.finetune.seeds} if "finetuned" in params.analysis.states else {}
    texts, labels, split, index = _selection_texts(splits)
    geometry = np.zeros(len(texts), dtype=bool)
    geometry[np.flatnonzero(split == "test")[: params.analysis.num_sentences]] = True
    device = inputs.device
    tables: dict[str, list[pd.DataFrame]] = {t: [] for t in ("tidy", "per_sentence", "cosine_sample", "rogue")}
    test_only: dict[str, dict[str, np.ndarray]] = {}
    timings: dict[str, float] = {}
    with atomic_dir(entry) as tmp:
        for state in engine_states(params):
            t0 = time.perf_counter()
            res = _run_engine(params, inputs, state, ft, texts, geometry, device, progress)
            timings[state] = time.perf_counter() - t0
            phases.record(f"engine {state}", timings[state])
            for t in tables:
                tables[t].append(getattr(res, t))
            emb = {**res.pooled, "label": labels, "split": split, "index": index,
                   "text": np.asarray(texts, dtype=str)}
            np.savez(tmp / f"embeddings_{state}.npz", **emb)
            test_only[state] = {k: (v[split == "test"] if isinstance(v, np.ndarray) and len(v) == len(split) else v)
                                for k, v in emb.items()}
        with phases.timed("similarities"):
            cka = _similarities(params, test_only, tables["tidy"])
        for t, parts in tables.items():
            seeds.tag(pd.concat(parts, ignore_index=True)).to_parquet(tmp / f"{t}.parquet", index=False)
        cka.to_parquet(tmp / "cka.parquet", index=False)
        first = str(ft[params.finetune.seed]) if ft else None
        manifest = {"params": params.model_dump(mode="json"), "params_file": str(params.path),
                    "selection": splits.selection, "cache_key": key, "finetuned": first,
                    "finetuned_seeds": {str(s): str(p) for s, p in ft.items()},
                    "random_draws": params.analysis.draws if "random" in params.analysis.states else [],
                    "poolings": list(inputs.poolings),
                    "timings_s": timings, "device": str(device), **provenance(),
                    "machine": machine(device, inputs.precision)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def _timed_finetune(params: StudyParams, progress: bool, inputs: StudyInputs, seed: int) -> Path:
    """The fine-tuned checkpoint of ``seed`` (trained or read from the cache), its wall time recorded
    as the phase ``fine-tuning seed <seed>``."""
    with phases.timed(f"fine-tuning seed {seed}"):
        return finetuned(params, progress, inputs=inputs, seed=seed).path


def _run_engine(params: StudyParams, inputs: StudyInputs, state: str, ft: dict[int, Path], texts, geometry,
                device, progress: bool):
    """One engine pass (:func:`extract.run_state`) of one engine state (a seed label for fine-tuned, the
    random draw's init seed for random)."""
    from ..measure import extract
    from ..model.models import load_model

    base, seed = seeds.split_label(state)
    where = f"{params.path or params.name}: state {base}" + (f" (seed {seed})" if seed is not None else "")
    init = params.analysis.seed if seed is None or base != "random" else seed
    path = str(ft[seed]) if base == "finetuned" else inputs.source.path
    revision = None if base == "finetuned" else params.model.revision
    model, tokenizer = load_model(path, inputs.splits.num_labels, revision=revision, state=base,
                                  seed=init, where=where, device=device)
    res = extract.run_state(model, tokenizer, texts, state=state, model_name=params.name,
                            geometry_mask=geometry, settings=params.analysis, device=device, progress=progress,
                            precision=inputs.precision, poolings=list(inputs.poolings))
    del model
    return res


def _similarities(params: StudyParams, test_only: dict, tidy_parts: list[pd.DataFrame]) -> pd.DataFrame:
    """CKA and the floor similarities of every state (each seed) with the pretrained state, and between
    the fine-tuned seeds (none between random draws); appends the tidy rows to ``tidy_parts`` and returns
    the tagged CKA matrices."""
    from ..measure import similarity

    cka_rows, cka = similarity.cka_between_states(test_only, params.name)
    tidy_parts.append(cka_rows)
    cka = seeds.tag(seeds.tag(cka, "state_a", "seed_a"), "state_b", "seed_b")
    ft_seeds = [s for s in params.finetune.seeds if seeds.state_label(s) in test_only]
    if len(ft_seeds) > 1:
        n = int(next(iter(test_only.values()))["label"].shape[0])
        tidy_parts += [seeds.between_seed_rows(test_only, params.name, ft_seeds),
                       seeds.cka_between_seed_rows(cka, n)]
    return cka


def load_embeddings(entry: Path, states: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The stored arrays of each state of geometry entry ``entry`` (``embeddings_<state>.npz``)."""
    out = {}
    for s in states:
        with np.load(entry / f"embeddings_{s}.npz") as z:
            out[s] = {k: z[k] for k in z.files}
    return out


def probe(params: StudyParams, analysis_entry: Path | None = None, progress: bool = True, *,
          inputs: StudyInputs | None = None) -> Path:
    """Probes, class geometry and statistical tests on the stored embeddings (no forward pass); cached
    by key like :func:`analyze` (found whatever the study's name, computed once by concurrent runs). The
    study's pooling order (``inputs.poolings``, the primary first) is in the key: the primary pooling's MDL,
    memorisation and cones are computed."""
    inputs = inputs or resolve_inputs(params)
    analysis_entry = analysis_entry or analyze(params, progress, inputs=inputs)
    a = params.analysis
    key = content_hash({"analysis": entry_key(analysis_entry), "code": code_hash("measure.probe_study", "measure.comparisons", "measure.stats"),
                        "settings": a.probe_payload(), "poolings": list(inputs.poolings)})
    return cached_entry(cache_root() / "probes", params.name, key,
                        lambda entry: _timed_probes(params, analysis_entry, key, entry, inputs.poolings),
                        what="the probe results", progress=progress)


def _timed_probes(params: StudyParams, analysis_entry: Path, key: str, entry: Path, poolings: tuple[str, ...]) -> None:
    """:func:`_write_probes`, its wall time recorded as the phase ``probes``."""
    with phases.timed("probes"):
        _write_probes(params, analysis_entry, key, entry, poolings)


def _write_probes(params: StudyParams, analysis_entry: Path, key: str, entry: Path, poolings: tuple[str, ...]) -> None:
    """Compute the probe entry ``entry`` (key ``key``) from the stored embeddings of ``analysis_entry``:
    the probes of every state and fine-tuned seed; the state comparisons on the seed means of the
    per-sentence values, and each seed's paired effect (the rows of the seed floor, ``claims.seed_change``)."""
    from ..measure import comparisons, probe_study, stats

    a = params.analysis
    emb = load_embeddings(analysis_entry, engine_states(params))
    geometry_tidy = seeds.aggregate_tidy(pd.read_parquet(analysis_entry / "tidy.parquet"))
    per_sentence = pd.read_parquet(analysis_entry / "per_sentence.parquet")
    with atomic_dir(entry) as tmp:
        probe_tidy, cones, correct = probe_study.probe_study(emb, params.name,
                                                             probe_study.ProbeSettings.from_analysis(a, poolings))
        seeds.tag(correct).to_parquet(tmp / "probe_correct.parquet", index=False)
        probe_tidy = seeds.tag(probe_tidy)
        parts = [seeds.aggregate_tidy(probe_tidy)]
        per_seed = [probe_tidy[probe_tidy["seed"].notna()]]
        if "pretrained" in a.states and len(a.states) > 1:
            parts.append(comparisons.compare_states_per_sentence(
                seeds.mean_over_seeds(per_sentence, ["value"]), reference="pretrained", n_boot=a.bootstrap, seed=a.seed))
            per_seed.append(_seed_effects(per_sentence, a))
        parts.append(comparisons.convergence_correlation(pd.concat([geometry_tidy, parts[0]], ignore_index=True),
                                                         y_metric=f"probe_acc_{poolings[0]}"))
        # one multiple-testing family: every p-value of the study (stats.adjust_family, Holm), on the
        # aggregate rows only (the per-seed rows carry no p-value)
        aggregate = stats.adjust_family(pd.concat(parts, ignore_index=True))
        pd.concat([aggregate.assign(seed=pd.array([pd.NA] * len(aggregate), dtype="Int64")), *per_seed],
                  ignore_index=True).to_parquet(tmp / "tidy.parquet", index=False)
        seeds.tag(cones).to_parquet(tmp / "cones.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps({"analysis_entry": analysis_entry.name, "cache_key": key,
                                                       **provenance()}, indent=2, default=str))


def _seed_effects(per_sentence: pd.DataFrame, a) -> pd.DataFrame:
    """Each fine-tuned seed's and random draw's paired effect rows (``effect_<metric>`` with its bootstrap
    CI, and ``reference_sd_<metric>``) against the pretrained state; no p-value (the tests run on seed means)."""
    from ..measure import comparisons

    if "seed" not in per_sentence.columns or per_sentence["seed"].dropna().nunique() < 1:
        return seeds.per_seed_rows(pd.DataFrame())
    ref = per_sentence[per_sentence["state"] == "pretrained"]
    out = []
    for (_, seed), g in per_sentence[per_sentence["seed"].notna()].groupby(["state", "seed"]):
        rows = comparisons.compare_states_per_sentence(pd.concat([ref, g]).drop(columns="seed"), reference="pretrained",
                                                       n_boot=a.bootstrap, seed=a.seed)
        rows = rows[rows["metric"].str.startswith(("effect_", "reference_sd_"))]
        out.append(rows.assign(seed=pd.array([int(seed)] * len(rows), dtype="Int64")))
    return pd.concat(out, ignore_index=True) if out else seeds.per_seed_rows(pd.DataFrame())


#: layout of a ``beyond`` entry (one table, ``beyond.parquet``)
BEYOND_LAYOUT = 1


def beyond(params: StudyParams, analysis_entry: Path, probe_entry: Path, progress: bool = True, *,
           inputs: StudyInputs | None = None) -> Path | None:
    """The analyses beyond the two end points (:mod:`layerwise.study.beyond`: checkpoints during training, layer
    swaps, auxiliary probes, domains), cached by key like the other steps: the geometry and probe entries, the
    fine-tuned entries (their kept checkpoints), the settings and the code. None when the study has no
    fine-tuned and pretrained states, or neither ``finetune.checkpoints`` nor ``analysis.beyond``."""
    inputs = inputs or resolve_inputs(params)
    a = params.analysis
    if not {"pretrained", "finetuned"} <= set(a.states) or not (a.beyond or params.finetune.checkpoints):
        return None
    key = content_hash({"analysis": entry_key(analysis_entry), "probes": entry_key(probe_entry),
                        "finetuned": [entry_key(inputs.plan(params, s).entry) for s in params.finetune.seeds],
                        "settings": {"beyond": a.beyond, "checkpoints": params.finetune.checkpoints, "seed": a.seed,
                                     "bootstrap": a.bootstrap, "poolings": list(inputs.poolings)},
                        "layout": BEYOND_LAYOUT, "code": code_hash("study.beyond", "model.trajectory")})
    return cached_entry(cache_root() / "beyond", params.name, key,
                        lambda entry: _write_beyond(params, inputs, analysis_entry, probe_entry, key, entry, progress),
                        what="the analyses beyond the end points", progress=progress)


def _write_beyond(params: StudyParams, inputs: StudyInputs, analysis_entry: Path, probe_entry: Path, key: str,
                  entry: Path, progress: bool) -> None:
    """Compute the ``beyond`` entry ``entry`` (:func:`layerwise.study.beyond.compute`) from the stored embeddings,
    the probes' per-sentence correctness and the fine-tuned models."""
    from ..model.trajectory import load_trajectory
    from . import beyond as beyond_step

    ft = {s: finetuned(params, progress, inputs=inputs, seed=s) for s in params.finetune.seeds}
    trajectories = {}
    for s, res in ft.items():
        traj = load_trajectory(res.path)
        trajectories[s] = None if traj is None else {**traj, "max_steps": int(res.metrics.get("global_step", 0))}
    test = inputs.splits.test
    domains = list(test["domain"]) if "domain" in test.column_names else None
    with atomic_dir(entry) as tmp:
        table = beyond_step.compute(
            params, source=inputs.source, device=inputs.device, poolings=inputs.poolings,
            # the pretrained state and the fine-tuned seeds only (the random draws are not read here)
            emb=load_embeddings(analysis_entry, ["pretrained", *(seeds.state_label(s) for s in params.finetune.seeds)]),
            correct=pd.read_parquet(probe_entry / "probe_correct.parquet"),
            finetuned={s: r.path for s, r in ft.items()},
            test_domains=domains, trajectories=trajectories, num_labels=inputs.splits.num_labels, progress=progress)
        table.to_parquet(tmp / "beyond.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps({"analysis_entry": analysis_entry.name,
                                                       "probe_entry": probe_entry.name, "cache_key": key,
                                                       **provenance()}, indent=2, default=str))


def _named(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """``df`` with its ``model`` column set to the study's current name: entries are found by key, so
    one computed under another ``name:`` is reused and relabelled here."""
    if "model" in df.columns and len(df) and not (df["model"] == name).all():
        df = df.assign(model=name)
    return df


def load_study(params_path: str | Path | StudyParams, progress: bool = True) -> Study:
    """Everything one chapter needs for one params file, computed through the caches (the data
    selection and the model are resolved once, for every step). ``Study.tidy`` is the aggregate view
    (fine-tuned = mean over seeds), ``Study.tidy_seeds`` the per-seed rows (:mod:`layerwise.measure.seeds`)."""
    params = params_path if isinstance(params_path, StudyParams) else load_params(params_path)
    inputs = resolve_inputs(params)
    a_entry = analyze(params, progress, inputs=inputs)
    p_entry = probe(params, a_entry, progress, inputs=inputs)
    b_entry = beyond(params, a_entry, p_entry, progress, inputs=inputs)
    manifest = json.loads((a_entry / "manifest.json").read_text())
    full = pd.concat([pd.read_parquet(a_entry / "tidy.parquet"), pd.read_parquet(p_entry / "tidy.parquet")],
                     ignore_index=True)
    ft_metrics = _finetune_metrics(params, manifest, inputs, progress)
    damage_outcomes()  # whether each damaged entry moved aside was recomputed (warnings)
    manifest["cache_entries"] = {"analysis": str(a_entry), "probes": str(p_entry),
                                 "beyond": str(b_entry) if b_entry else None, "finetune": manifest.get("finetuned")}
    manifest["caveats"] = _caveats(params, inputs, a_entry)
    manifest["run"] = {"device": str(inputs.device), "analysis_precision": inputs.precision}  # this run's decisions
    manifest["poolings"] = list(inputs.poolings)  # this study's order, its primary pooling first (Study.poolings)
    read = {t: pd.read_parquet(a_entry / f"{t}.parquet") for t in ("per_sentence", "cosine_sample", "rogue", "cka")}
    read.update({t: pd.read_parquet(p_entry / f"{t}.parquet") for t in ("cones", "probe_correct")})
    views = {"tidy": seeds.aggregate_tidy(full), "tidy_seeds": seeds.per_seed_rows(full),
             "per_sentence": seeds.mean_over_seeds(read["per_sentence"], ["value"]),
             "cosine_sample": seeds.first_seed(read["cosine_sample"]), "rogue": seeds.first_seed(read["rogue"]),
             "cka": seeds.aggregate_cka(read["cka"]),
             "cones": seeds.mean_over_seeds(read["cones"], ["cos_ref", "cos_own_centroid", "cos_other_centroid"]),
             "probe_correct": seeds.mean_over_seeds(read["probe_correct"], ["correct"])}
    if b_entry is not None:
        views["beyond"] = pd.read_parquet(b_entry / "beyond.parquet")
    tables = {t: _named(df, params.name) for t, df in views.items()}
    return Study(params=params, finetune=ft_metrics, manifest=manifest, **tables)


def _caveats(params: StudyParams, inputs: StudyInputs, a_entry: Path) -> dict[str, Any]:
    """The study's caveats (:func:`layerwise.study.caveat_step.study_caveats`: the tokenizer's fit, the first
    token's constancy per state, the declared pooling, the corpus's provenance, the overlap of the parts),
    from the geometry entry ``a_entry``; not part of any cache key of the study (nor of ``Study.key``)."""
    from .caveat_step import study_caveats

    return study_caveats(params, inputs.source, a_entry)


def _finetune_metrics(params: StudyParams, manifest: dict[str, Any], inputs: StudyInputs,
                      progress: bool) -> dict[str, Any]:
    """The fine-tuning metrics of the first seed (as before seeds), with ``seeds``: every seed's metrics
    (``{seed: metrics}``, each with its training history, small, so the report draws every seed's curves)
    when the study has fine-tuned seeds. Each seed's entry is
    found by its key (:func:`finetuned`): one found damaged is retrained, since the report needs its
    metrics (the geometry results that were computed from it keep their key)."""
    if not manifest.get("finetuned"):
        return {}
    per_seed = {str(s): finetuned(params, progress, inputs=inputs, seed=s) for s in params.finetune.seeds}
    first = per_seed[str(params.finetune.seed)]
    manifest["finetuned"] = str(first.path)
    manifest["finetuned_seeds"] = {s: str(r.path) for s, r in per_seed.items()}
    ft_metrics = dict(first.metrics)
    manifest["finetune_precision"] = ft_metrics.get("precision")
    ft_metrics["seeds"] = {s: dict(r.metrics) for s, r in per_seed.items()}
    return ft_metrics


def export_tables(study: Study, out_dir: str | Path) -> dict[str, Path]:
    """Write the tidy tables of a study as Parquet and CSV (for reuse outside the report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for t in TABLES:
        df: pd.DataFrame = getattr(study, t)
        p = out / f"{study.name}_{t}.parquet"
        df.to_parquet(p, index=False)
        written[t] = p
    study.tidy.to_csv(out / f"{study.name}_tidy.csv", index=False)
    return written

