"""The analyses beyond the two end points (issue 27), computed for one study from what the other steps stored:
the ``beyond`` table (:data:`layerwise.core.tables.BEYOND_COLUMNS`).

* **trajectory** (when each layer moves): the pooled embeddings each fine-tuning run kept at fractions of its
  steps (``finetune.checkpoints``, :mod:`layerwise.model.trajectory`), the end points taken from the engine's
  pretrained and fine-tuned states (the same weights), read by :func:`layerwise.measure.trajectory.trajectory_rows`;
* **swap** (which changes the task needs): each seed's fine-tuned classifier scored on the test sentences with
  one layer, or layers 0..l, set back to their pretrained weights (:func:`layerwise.model.swaps.swap_correct`),
  and the paired change from the unswapped model;
* **auxiliary** (what fine-tuning erased): probes for properties of the sentence itself
  (:mod:`layerwise.measure.auxiliary`: length, a word's presence, two adjacent words swapped), pretrained and per
  seed, each with a permuted-label control, and the paired change per seed;
* **domain**: the primary statistics per domain of the test sentences (:mod:`layerwise.measure.domains`).

Every change row carries an interval over sentences; the verdicts (:mod:`layerwise.words.beyond`) combine them
over seeds with the answer model. All of it reads the study's primary pooling (its first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import phases
from ..core.precision import paired as paired_precision
from ..core.tables import beyond_frame
from ..measure import seeds as seed_labels
from ..measure.domains import accuracy_rows, change_rows, domain_rows

log = logging.getLogger(__name__)


def _rows_of(split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored rows the probes train on (the probe pool, else the fine-tuning sentences) and the test rows."""
    pool = np.flatnonzero(split == "probe")
    return (pool if pool.size else np.flatnonzero(split == "train")), np.flatnonzero(split == "test")


def trajectory_table(model: str, primary: str, emb: Mapping[str, Mapping[str, np.ndarray]],
                     trajectories: Mapping[int, dict | None], fractions, probe_seed: int) -> list[dict]:
    """The trajectory rows of every seed whose fine-tuning kept checkpoints (``trajectories``: the
    :func:`layerwise.model.trajectory.load_trajectory` of each seed with its ``max_steps``, None when it kept
    none) at ``fractions`` (``finetune.checkpoints``): 0 and 1 are the engine's pretrained and fine-tuned
    embeddings (the same weights), the fractions between them the run's kept embeddings; all of the same
    sentences, the probe pool then the test sentences."""
    from ..measure.trajectory import trajectory_rows

    pre = emb["pretrained"]
    split = np.asarray(pre["split"])
    probe, test = np.flatnonzero(split == "probe"), np.flatnonzero(split == "test")
    order = np.concatenate([probe, test])
    labels = np.asarray(pre["label"])
    rows: list[dict] = []
    for seed, traj in trajectories.items():
        if not traj:
            continue
        kept = {float(f): np.asarray(e[primary]) for f, e in traj["embeddings"].items() if primary in e}
        ends = {0.0: pre[primary][order], 1.0: emb[seed_labels.state_label(seed)][primary][order]}
        wanted = sorted({0.0, *(float(f) for f in fractions)})
        embeddings = {f: kept[f] if f in kept else ends[f] for f in wanted if f in kept or f in ends}
        kept_steps = {float(f): int(v) for f, v in zip(traj["fractions"], traj["steps"])}
        steps = {0.0: 0, 1.0: int(traj["max_steps"]), **kept_steps}
        rows += trajectory_rows(model, seed, embeddings, steps, probe.size, labels[probe], labels[test],
                                probe_seed=probe_seed)
    return rows


def auxiliary_rows(model: str, task: str, X: Mapping[Any, np.ndarray], ytr: np.ndarray, yte: np.ndarray,
                   train: np.ndarray, test: np.ndarray, seed: int, n_boot: int) -> list[dict]:
    """The rows of one auxiliary task: ``probe_acc`` and ``control_acc`` of the pretrained state (key
    ``"pretrained"`` of ``X``) and of each seed (int keys), and each seed's ``probe_acc_change`` (paired, on the
    same test sentences). ``X``: ``[n, L+1, d]`` per state over the rows that ``train`` and ``test`` index."""
    from ..measure.auxiliary import aux_probe_correct

    rows: list[dict] = []
    correct = {}
    for state, Z in X.items():
        Z = np.asarray(Z, dtype=np.float32)
        res = aux_probe_correct(Z[train], ytr, Z[test], yte, seed=seed)
        correct[state] = np.asarray(res["correct"], dtype=float)
        name, s = ("pretrained", None) if state == "pretrained" else ("finetuned", int(state))
        rows += accuracy_rows(model, "auxiliary", task, name, s, correct[state], n_boot=n_boot, boot_seed=seed)
        rows += accuracy_rows(model, "auxiliary", task, name, s, res["control_correct"], metric="control_acc",
                              n_boot=n_boot, boot_seed=seed)
    for state in (k for k in X if k != "pretrained"):
        rows += change_rows(model, "auxiliary", task, int(state), correct["pretrained"], correct[state],
                            metric="probe_acc_change", n_boot=n_boot, boot_seed=seed)
    return rows


def swap_rows(model: str, seed: int, table: pd.DataFrame, n_boot: int, boot_seed: int) -> list[dict]:
    """The rows of one seed's swaps (``swap_correct``'s table): ``accuracy`` of the unswapped model (group
    ``none``, layer -1) and of each swap, and ``accuracy_change`` (swapped - unswapped, paired)."""
    base = table[table["kind"] == "none"].sort_values("sentence")["correct"].to_numpy(float)
    rows = accuracy_rows(model, "swap", "none", "finetuned", seed, base[None], metric="accuracy", layers=[-1],
                         n_boot=n_boot, boot_seed=boot_seed)
    for kind in ("single", "cumulative"):
        part = table[table["kind"] == kind]
        if part.empty:
            continue
        m = part.pivot_table(index="layer", columns="sentence", values="correct", aggfunc="mean")
        layers = [int(v) for v in m.index]
        values = m.to_numpy(float)
        rows += accuracy_rows(model, "swap", kind, "finetuned", seed, values, metric="accuracy", layers=layers,
                              n_boot=n_boot, boot_seed=boot_seed)
        rows += change_rows(model, "swap", kind, seed, np.broadcast_to(base, values.shape), values,
                            metric="accuracy_change", layers=layers, n_boot=n_boot, boot_seed=boot_seed)
    return rows


def compute(params, *, source, device, poolings, emb: Mapping[str, Mapping[str, np.ndarray]],
            correct: pd.DataFrame, finetuned: Mapping[int, Path], test_domains: list[str] | None,
            trajectories: Mapping[int, dict | None], num_labels: int, progress: bool = True) -> pd.DataFrame:
    """The ``beyond`` table of one study. ``emb``: the geometry entry's stored arrays per engine state;
    ``correct``: the probe entry's per-sentence correctness (seed-tagged); ``finetuned``: each seed's model
    folder; ``test_domains``: the domain of each test sentence (None: the dataset has none); ``trajectories``:
    each seed's kept checkpoints."""
    from ..measure.auxiliary import TASKS, task_data
    from ..measure.extract import pooled_embeddings
    from ..model.models import load_model
    from ..model.swaps import swap_correct

    a = params.analysis
    name, primary = params.name, poolings[0]
    seeds = [int(s) for s in params.finetune.seeds]
    with phases.timed("beyond: checkpoints"):
        rows = trajectory_table(name, primary, emb, trajectories, params.finetune.checkpoints, a.seed)
    if not a.beyond:
        return beyond_frame(rows)
    pre = emb["pretrained"]
    split, texts, labels = np.asarray(pre["split"]), np.asarray(pre["text"], dtype=str), np.asarray(pre["label"])
    train, test = _rows_of(split)
    # the swaps and the re-embedded sentences are compared only with each other: bf16 where native
    kw = dict(batch_size=a.batch_size, max_length=a.max_length, device=device, precision=paired_precision(device))
    tasks = {task: task_data(task, list(texts[train]), list(texts[test]), seed=a.seed) for task in TASKS}
    # the tasks whose sentences differ from the stored ones (the bigram shift) are embedded again by each model
    again = {task: d[0] + d[2] for task, d in tasks.items() if d[0] != list(texts[train]) or d[2] != list(texts[test])}
    X: dict[str, dict] = {task: {} for task in tasks}
    with phases.timed("beyond: swaps"):
        pre_model, tokenizer = load_model(source.path, num_labels, revision=params.model.revision, state="pretrained",
                                          where=str(params.path or params.name), device=device)
        pre_state = pre_model.state_dict()      # its tensors outlive the model (no copy: nothing writes them)
        for task, sentences in again.items():
            X[task]["pretrained"] = pooled_embeddings(pre_model, tokenizer, sentences, [primary], **kw)[primary]
        del pre_model
        for s in seeds:
            model, tokenizer = load_model(str(finetuned[s]), num_labels, state="finetuned",
                                          where=str(params.path or params.name), device=device)
            table = swap_correct(model, pre_state, tokenizer, list(texts[test]), labels[test], progress=progress, **kw)
            rows += swap_rows(name, s, table, a.bootstrap, a.seed)
            for task, sentences in again.items():
                X[task][s] = pooled_embeddings(model, tokenizer, sentences, [primary], **kw)[primary]
            del model
        del pre_state
    with phases.timed("beyond: auxiliary probes"):
        stored = {"pretrained": pre[primary], **{s: emb[seed_labels.state_label(s)][primary] for s in seeds}}
        for task, (tr_texts, ytr, te_texts, yte) in tasks.items():
            if task in again:   # the sentences embedded again: the training ones, then the test ones
                rows += auxiliary_rows(name, task, X[task], ytr, yte, np.arange(len(tr_texts)),
                                       np.arange(len(tr_texts), len(tr_texts) + len(te_texts)), a.seed, a.bootstrap)
            else:
                rows += auxiliary_rows(name, task, stored, ytr, yte, train, test, a.seed, a.bootstrap)
    if test_domains is not None:
        with phases.timed("beyond: domains"):
            pooled = {"pretrained": pre[primary][test],
                      **{seed_labels.state_label(s): emb[seed_labels.state_label(s)][primary][test] for s in seeds}}
            primary_correct = correct[correct["metric"] == f"probe_acc_{primary}"]
            rows += domain_rows(name, np.asarray(test_domains), pooled,
                                {s: seed_labels.state_label(s) for s in seeds}, primary_correct, test,
                                seed=a.seed, n_boot=a.bootstrap)
    return beyond_frame(rows)
