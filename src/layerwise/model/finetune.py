"""Fine-tuning for sequence classification, cached and resumable: the seed's second step
(``layerwise finetune``). The first, ``prepare``, lives in :mod:`layerwise.model.prepared`; the Trainer,
its checkpoints and the work lock in :mod:`layerwise.model.trainer`.

``finetune(params)`` trains an ``AutoModelForSequenceClassification`` with the transformers
``Trainer`` (see :func:`layerwise.model.trainer.build_trainer`). The result is a cache entry
``<cache>/finetune/<name>-<key>`` (found by its key alone: a renamed study reuses it,
:func:`layerwise.core.locks.find_entry`) holding the model, its tokenizer, ``metrics.json`` (test accuracy
and macro-F1 with 95 % confidence intervals, the majority-class baseline and a one-sided binomial
test against it: :func:`layerwise.measure.stats.classification_metrics`), ``history.json`` (training loss and
evaluation curve), ``manifest.json`` (params, data selection, versions, git commit, key) and, unless
``finetune.checkpoints`` is empty, ``trajectory/`` (the pooled embeddings of the probe-pool and test
sentences at those fractions of the training: :mod:`layerwise.model.trajectory`).

Cache and resumption: the key is a content hash of :data:`FINETUNE_FORMAT`, the model (id and
revision, or the bytes of a local model directory), the data selection, the hyper-parameters and,
with ``data=``, the prepared data. The training code does not enter the key: a change to what
training produces bumps :data:`FINETUNE_FORMAT` (a test records the code hash of the training path
per format version and fails when the code changes without a bump). An entry is complete iff it
holds ``DONE.json`` (written last, then the directory is renamed into place), so an interrupted run
never leaves something that looks finished. Training runs in ``<entry>.work``; the Trainer writes
checkpoints there (and the trajectory's step files, in ``trajectory/``) and a rerun resumes from the
last complete checkpoint, keeping the step files already written. A lock on the work directory makes
a second run of the same entry wait for the first (then return it).

The study pipeline loads the data selection and resolves the model once per run and hands them in
(``splits=``, ``source=``); the ``layerwise finetune`` command lets :func:`finetune` load them.

Several GPUs: the Trainer's own distributed data parallel mode works unchanged, e.g.
``accelerate launch -m layerwise.cli finetune params/camembert.yml`` or
``torchrun --nproc_per_node 4 -m layerwise.cli finetune params/camembert.yml``; ``batch_size`` is then
per device, and only the main process writes the cache entry.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core import disk
from ..inputs.config import StudyParams
from ..inputs.data import Splits, load_splits
from ..core.errors import LayerwiseError
from .dropout import install as bulk_dropout_masks
from .models import (ModelSource, load_model, load_tokenizer, model_source, pick_device, quiet_transformers,
                     resolve_poolings)
from ..core.precision import paired as paired_precision, resolve as resolve_precision
from ..core.locks import entry_path
from .prepared import TrainData, check_replaceable, load_prepared, tokenize
from ..core.repro import (CACHE_ELSEWHERE, atomic_dir, atomic_write_json, cache_root, content_hash, is_done, provenance,
                          verify_entry)
from ..measure.pooling import check_poolings
from ..measure.stats import classification_metrics
from .trainer import (EvalRecorder, build_trainer, checkpoint_step, history, is_main_process, last_checkpoint,
                      work_lock)
from .trajectory import FOLDER as TRAJECTORY, TrajectorySpec, recorder as trajectory_recorder, write_index

log = logging.getLogger(__name__)

#: Version of what a fine-tuning cache entry holds and how it is trained: bump it when a change alters
#: the weights, the metrics or the entry's layout (older entries are then retrained).
#: ``tests/test_finetune.py`` records the code hash of the training path per version. Format 4: fused
#: AdamW and, on CPU, dropout masks drawn in bulk (:mod:`layerwise.model.dropout`; another random stream).
#: Format 5: the entry keeps the pooled embeddings at checkpoints during training (``trajectory/``,
#: :mod:`layerwise.model.trajectory`; ``finetune.checkpoints``, in the key when not empty).
FINETUNE_FORMAT = 5
CONFIDENCE = 0.95
BOOTSTRAP = 1000
MANIFEST_KIND = "layerwise-finetune"


@dataclass
class FinetuneResult:
    """A finished fine-tuning: ``path`` is the model directory (``from_pretrained`` loads it),
    ``metrics`` what :func:`load_finetune_metrics` returns, ``cached`` whether nothing was trained."""

    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


# --------------------------------------------------------------------------------------------------
# the cache entry
# --------------------------------------------------------------------------------------------------

def _hyper(params: StudyParams, num_train: int | None, num_test: int | None, epochs: float | None,
           device: Any) -> dict[str, Any]:
    hp = params.finetune.model_dump()
    hp.pop("checkpoints")  # what is kept during training, not how it trains: the key's `trajectory` entry
    if len(hp.pop("seeds")) != 1:
        raise ValueError("one fine-tuning is one seed: pass params.for_seed(seed)")
    hp["seed"] = params.finetune.seed  # (the key of a one-seed fine-tuning, as before seeds became a list)
    hp["precision"] = resolve_precision(hp["precision"], device, purpose="finetune")  # never `auto` in a key
    if num_train is not None:
        hp["num_train"] = int(num_train)
    if num_test is not None:
        hp["num_test"] = int(num_test)
    if epochs is not None:
        if epochs <= 0:
            raise LayerwiseError(f"epochs must be positive (got {epochs})", "-n/--num-epochs", "give e.g. -n 1")
        hp["epochs"] = float(epochs)
    for name, value in (("num_train", num_train), ("num_test", num_test)):
        if value is not None and value <= 0:
            flag = "-a/--num-train" if name == "num_train" else "-b/--num-test"
            raise LayerwiseError(f"{name} must be positive (got {value})", flag, "give a positive number")
    return hp


@dataclass(frozen=True)
class FinetunePlan:
    """Everything a fine-tuning needs before the model is loaded, and its cache entry."""

    source: ModelSource
    hyper: dict[str, Any]
    data: TrainData
    payload: dict[str, Any]
    key: str
    entry: Path
    #: the device the fine-tuning runs on (picked once: the plan's precision is resolved for it and the
    #: Trainer runs on it)
    device: Any = None
    #: the embeddings kept at checkpoints during training (None: ``finetune.checkpoints: []`` or prepared data)
    trajectory: TrajectorySpec | None = None
    #: how many of the trajectory's texts are probe-pool sentences and test sentences (in that order)
    trajectory_parts: dict[str, int] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        """Where the Trainer writes its checkpoints until the entry is finished: ``<entry>.work``, or
        the work directory of the same key under another study name (a renamed study resumes it)."""
        own = self.entry.with_suffix(".work")
        others = [] if own.exists() else sorted(self.entry.parent.glob(f"*-{self.key}.work"))
        return others[0] if others else own


def plan_finetune(params: StudyParams, *, num_train: int | None = None, num_test: int | None = None,
                  epochs: float | None = None, data: str | os.PathLike | None = None, checkpoint: str | None = None,
                  splits: Splits | None = None, source: ModelSource | None = None, device: Any = None,
                  poolings: Sequence[str] | None = None) -> FinetunePlan:
    """What :func:`finetune` will do for these arguments, decided once: the model source, the device (the
    run's ``device``, else :func:`~layerwise.model.models.pick_device`) and the precision resolved for it,
    the hyper-parameters, the training data, the embeddings to keep during training (the trajectory: the
    probe-pool then the test sentences at ``finetune.checkpoints``, for ``poolings``, by default the study's,
    :func:`~layerwise.model.models.resolve_poolings`; none with prepared ``data``), the cache key and entry
    (nothing is loaded but the data selection when ``splits`` is not given, and the model's config files
    when ``poolings`` is not; nothing is trained)."""
    if source is not None and checkpoint:
        raise ValueError("give the model as source= or as checkpoint=, not both")
    if splits is not None and (data is not None or num_train is not None or num_test is not None):
        raise ValueError("splits= is the params' own selection: it excludes data=, num_train= and num_test=")
    source = source or model_source(params, checkpoint)
    device = pick_device() if device is None else device
    hp = _hyper(params, num_train, num_test, epochs, device)
    if data is not None:
        tokenizer = load_tokenizer(source.path, revision=source.revision, where=params.where)
        dat = load_prepared(data, num_train, num_test, tokenizer)
    else:
        splits = splits or load_splits(params, num_train=num_train, num_test=num_test)
        dat = TrainData.from_splits(splits)
    payload = {"format": FINETUNE_FORMAT, "model": source.key, "selection": dat.selection["hash"], "hyper": hp,
               "prepared": dat.prepared["data_hash"] if dat.prepared else None}
    trajectory, parts = None, {}
    if params.finetune.checkpoints and data is None:
        trajectory, parts = _trajectory_spec(params, splits, source, poolings, device)
    if trajectory is not None:
        # the texts are the selection's (its hash is in the key); the truncation and the precision change the
        # stored vectors
        payload["trajectory"] = {"fractions": list(trajectory.fractions), "poolings": list(trajectory.poolings),
                                 "max_length": trajectory.max_length, "precision": trajectory.precision}
    key = content_hash(payload)
    return FinetunePlan(source, hp, dat, payload, key, entry_path(cache_root() / "finetune", params.name, key),
                        device, trajectory, parts)


def _trajectory_spec(params: StudyParams, splits: Splits, source: ModelSource, poolings: Sequence[str] | None,
                     device: Any) -> tuple[TrajectorySpec | None, dict[str, int]]:
    """The trajectory of a fine-tuning on the params' own selection: the probe-pool sentences (none when
    ``num_probe`` is 0) then the test sentences, at the fractions of ``finetune.checkpoints`` strictly between 0
    and 1 (the two ends are the pretrained and the fine-tuned model, which the geometry engine embeds anyway), for
    the study's poolings (sorted: the entry's content is a function of its key), with the engine's batch size and
    truncation, in :func:`layerwise.core.precision.paired` (bf16 where native: half the time of fp32 on such a CPU;
    against the engine's fp32 ends it moves the similarity by less than 1e-4). None when no fraction lies between
    the ends."""
    inner = tuple(float(f) for f in params.finetune.checkpoints if 0.0 < f < 1.0)
    if not inner:
        return None, {}
    probe = list(splits.probe["text"]) if splits.probe is not None and len(splits.probe) else []
    test = list(splits.test["text"])
    names = sorted(check_poolings(poolings if poolings else resolve_poolings(params, source)))
    spec = TrajectorySpec(probe + test, inner, tuple(names), batch_size=params.analysis.batch_size,
                          max_length=params.analysis.max_length,
                          precision=paired_precision(device))
    return spec, {"probe": len(probe), "test": len(test)}


def finetune_entry(params: StudyParams, *, num_train: int | None = None, num_test: int | None = None,
                   epochs: float | None = None, data: str | os.PathLike | None = None,
                   checkpoint: str | None = None, splits: Splits | None = None,
                   source: ModelSource | None = None) -> Path:
    """The cache entry that :func:`finetune` would return for these arguments (nothing is trained;
    the entry may not exist yet)."""
    return plan_finetune(params, num_train=num_train, num_test=num_test, epochs=epochs, data=data,
                         checkpoint=checkpoint, splits=splits, source=source).entry


def finetune(params: StudyParams, *, num_train: int | None = None, num_test: int | None = None,
             epochs: float | None = None, save: str | os.PathLike | None = None,
             data: str | os.PathLike | None = None, checkpoint: str | None = None, progress: bool = True,
             save_steps: int | None = None, splits: Splits | None = None,
             source: ModelSource | None = None, plan: FinetunePlan | None = None) -> FinetuneResult:
    """Fine-tune the params' model (or ``checkpoint``) on the params' data (or the prepared ``data``
    directory), cached: the same inputs return the existing entry at once (``cached=True``).

    Overrides mirror the seed's flags: ``num_train`` (-a), ``num_test`` (-b), ``epochs`` (-n),
    ``save`` (-s: also copy the finished model directory there), ``data`` (-d), ``checkpoint`` (-c).
    ``save_steps`` sets the checkpoint interval in steps (default: one checkpoint every
    ``trainer.SAVE_EVERY_S`` seconds of training; it does not enter the cache key). An interrupted run resumes from the last complete checkpoint of the work
    directory (``metrics["resumed_from_step"]``). ``splits`` (the params' selection, from
    ``data.load_splits(params)``) and ``source`` (``models.model_source(params)``): what the caller
    already loaded, so that nothing is loaded twice; ``plan``: the :func:`plan_finetune` of these params
    already made (the study pipeline plans each seed once), in place of the other inputs."""
    plan = plan or plan_finetune(params, num_train=num_train, num_test=num_test, epochs=epochs, data=data,
                                 checkpoint=checkpoint, splits=splits, source=source)
    if save is not None:
        check_replaceable(Path(save).expanduser(), "manifest.json", MANIFEST_KIND, "-s/--save")
    if not is_done(plan.entry):
        with disk.writing("the fine-tuning work folder", plan.work, CACHE_ELSEWHERE), \
                work_lock(plan.work, enabled=is_main_process(), progress=progress):
            if not is_done(plan.entry):  # (another run may have finished it while this one waited)
                with quiet_transformers():
                    return _train(params, plan, save=save, progress=progress, save_steps=save_steps)
            shutil.rmtree(plan.work, ignore_errors=True)
    _copy_to(plan.entry, save)
    return FinetuneResult(plan.entry, load_finetune_metrics(plan.entry), cached=True)


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------

def _resume_point(work: Path, main: bool, progress: bool) -> Path | None:
    """The checkpoint to resume from (the caller holds the work directory's lock)."""
    resume = last_checkpoint(work, remove_incomplete=main)
    if resume is not None:
        msg = f"resuming from {resume.name} ({work})"
        log.info(msg)
        if progress and main:
            print(msg, file=sys.stderr)
    return resume


def _final_evaluation(trainer, recorder: EvalRecorder, test) -> tuple[np.ndarray, np.ndarray, float]:
    """``(predictions, labels, loss)`` on the test split at the last step: the Trainer's evaluation at
    the end of training when it ran in this process, else a new one (e.g. resumed from a checkpoint
    taken after the last step)."""
    step = int(trainer.state.global_step)
    last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    recorded = recorder.at_step(step)
    if recorded is not None and last_eval is not None and last_eval.get("step") == step:
        return recorded[0], recorded[1], float(last_eval["eval_loss"])
    pred = trainer.predict(test, metric_key_prefix="eval")
    return (np.asarray(pred.predictions).reshape(-1), np.asarray(pred.label_ids).reshape(-1),
            float(pred.metrics.get("eval_loss", math.nan)))


def _train(params: StudyParams, plan: FinetunePlan, *, save, progress: bool,
           save_steps: int | None) -> FinetuneResult:
    """Train, evaluate and write the cache entry of ``plan`` (resuming from the work directory)."""
    from transformers import set_seed

    dat, hp, ft = plan.data, plan.hyper, params.finetune
    set_seed(ft.seed)
    model, tokenizer = load_model(plan.source.path, len(dat.label_names), revision=plan.source.revision,
                                  where=params.where)
    model.config.id2label = dict(enumerate(dat.label_names))
    model.config.label2id = {n: i for i, n in enumerate(dat.label_names)}
    train, test = dat.train, dat.test
    if dat.prepared is None:
        train, test = tokenize(train, tokenizer, ft.max_length), tokenize(test, tokenizer, ft.max_length)
    recorder = EvalRecorder()
    callbacks = [] if plan.trajectory is None else [trajectory_recorder(plan.trajectory, plan.work / TRAJECTORY,
                                                                        tokenizer)]
    trainer = build_trainer(model, tokenizer, train, test, output_dir=plan.work, epochs=hp["epochs"],
                            learning_rate=ft.learning_rate, batch_size=ft.batch_size, weight_decay=ft.weight_decay,
                            warmup_ratio=ft.warmup_ratio, logging_steps=ft.logging_steps, seed=ft.seed,
                            save_steps=save_steps, progress=progress, recorder=recorder, precision=hp["precision"],
                            device=plan.device, callbacks=callbacks)
    main = trainer.is_world_process_zero()
    resume = _resume_point(plan.work, main, progress)
    t0 = time.perf_counter()
    with disk.writing("the fine-tuning checkpoint", plan.work, CACHE_ELSEWHERE,
                      cleanup=lambda: last_checkpoint(plan.work, remove_incomplete=main),
                      then="then run again: the training resumes from the last complete checkpoint"):
        with bulk_dropout_masks(model, enabled=trainer.args.device.type == "cpu"):
            out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.perf_counter() - t0
    step = int(trainer.state.global_step)
    y_pred, y_true, eval_loss = _final_evaluation(trainer, recorder, test)
    metrics = classification_metrics(y_true, y_pred, seed=ft.seed, n_boot=BOOTSTRAP, level=CONFIDENCE)
    curve = history(trainer.state.log_history)
    if not curve or curve[-1].get("step") != step or "eval_loss" not in curve[-1]:
        curve.append({"step": step, "epoch": float(trainer.state.epoch or hp["epochs"]),
                      "eval_loss": eval_loss, "eval_accuracy": metrics["accuracy"]})
    metrics.update({
        "eval_loss": eval_loss, "n_train": len(train), "epochs": hp["epochs"], "global_step": step,
        "train_loss": float(out.training_loss), "train_seconds": train_seconds,
        "resumed_from_step": checkpoint_step(resume) if resume else None, "label_names": dat.label_names,
        "device": str(trainer.args.device),
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "cache_key": plan.key,
    })
    if main:
        with disk.writing("the fine-tuned model's cache entry", plan.entry, CACHE_ELSEWHERE):
            _write_entry(params, plan, trainer, tokenizer, metrics, curve)
        _copy_to(plan.entry, save)
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(plan.entry, {**metrics, "history": curve}, cached=False)


def _write_entry(params: StudyParams, plan: FinetunePlan, trainer, tokenizer, metrics: dict[str, Any],
                 curve: list[dict[str, Any]]) -> None:
    """Write the finished model, metrics, history and manifest atomically; drop the work directory."""
    with atomic_dir(plan.entry) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_json(tmp / "history.json", curve)
        atomic_write_json(tmp / "manifest.json", {
            "kind": MANIFEST_KIND, "params": params.model_dump(mode="json"),
            "params_path": str(params.path) if params.path else None, "model_source": plan.source.path,
            "revision": plan.source.revision, "hyper_parameters": plan.hyper, "selection": plan.data.selection,
            "prepared": plan.data.prepared, "cache_key": plan.key, "key_payload": plan.payload,
            **provenance()})
        if plan.trajectory is not None:
            write_index(plan.work / TRAJECTORY, tmp / TRAJECTORY, plan.trajectory, int(trainer.state.max_steps),
                        plan.trajectory_parts)
    shutil.rmtree(plan.work, ignore_errors=True)


def _copy_to(entry: Path, save: str | os.PathLike | None) -> None:
    """``-s DIR``: copy the finished model directory to ``DIR`` (atomically; never over a foreign dir)."""
    if save is None:
        return
    dest = Path(save).expanduser()
    if dest.resolve() == entry.resolve():
        return
    check_replaceable(dest, "manifest.json", MANIFEST_KIND, "-s/--save")
    with disk.writing("the copy of the fine-tuned model (-s/--save)", dest, "give -s/--save a folder on a writable "
                      "disk with space"), atomic_dir(dest) as tmp:
        shutil.copytree(entry, tmp, dirs_exist_ok=True)


def load_finetune_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """The metrics of a finished fine-tuning directory, with its ``history`` (list of dicts: step,
    epoch, loss / eval_loss / eval_accuracy). Raises :class:`LayerwiseError` when incomplete."""
    p = Path(path)
    if verify_entry(p).state != "ok" or not (p / "metrics.json").is_file():  # a reader: moves nothing
        raise LayerwiseError(f"{p} is not a finished fine-tuning directory", None,
                             "run `layerwise finetune PARAMS` (an interrupted run leaves no such directory)")
    metrics = json.loads((p / "metrics.json").read_text())
    history_file = p / "history.json"
    metrics["history"] = json.loads(history_file.read_text()) if history_file.is_file() else []
    return metrics
