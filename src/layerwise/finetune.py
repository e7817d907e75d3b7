"""Fine-tuning for sequence classification: the seed's two steps (``prepare``, ``finetune``), made
fast (dynamic padding), cached (content-hash key) and resumable (Trainer checkpoints).

``prepare(params, out_dir)`` tokenizes the selected train/test examples (truncated at
``finetune.max_length``, never padded) and saves them with ``datasets.DatasetDict.save_to_disk``.

``finetune(params)`` trains an ``AutoModelForSequenceClassification`` with the transformers
``Trainer``: batches are padded per batch by ``DataCollatorWithPadding`` (the seed padded every text
to 512 tokens) and drawn with similar lengths (the Trainer's ``group_by_length`` sampler), mixed precision on CUDA (bf16 when supported, else fp16), seeds fixed through
``transformers.set_seed``, device chosen by the Trainer (cuda, then mps, else cpu; ``LAYERWISE_DEVICE=cpu``
forces the CPU). The result is a cache entry ``<cache>/finetune/<name>-<key>`` holding the model,
its tokenizer, ``metrics.json`` (test accuracy and macro-F1 with 95 % confidence intervals, the
majority-class baseline and a one-sided binomial test against it), ``history.json`` (training loss
and evaluation curve) and ``manifest.json`` (params, data selection, versions, git commit, key).

Cache and resumption: the key is a content hash of the model (id and revision, or the bytes of a
local model directory), the data selection, the hyper-parameters and, with ``data=``, the prepared
data. An entry is complete iff it holds ``DONE.json`` (written last, then the directory is renamed
into place), so an interrupted run never leaves something that looks finished. Training runs in
``<entry>.work``; the Trainer writes checkpoints there and a rerun resumes from the last complete one.
A lock on the work directory makes a second run of the same entry wait for the first (then return it).

Several GPUs: the Trainer's own distributed data parallel mode works unchanged, e.g.
``accelerate launch -m layerwise.cli finetune params/camembert.yml`` or
``torchrun --nproc_per_node 4 -m layerwise.cli finetune params/camembert.yml``; ``batch_size`` is then
per device, and only the main process writes the cache entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .config import StudyParams
from .errors import LayerwiseError
from .repro import atomic_dir, atomic_write_json, cache_root, content_hash, file_hash, is_done, provenance

log = logging.getLogger(__name__)

#: Bumped when what a cache entry holds changes (forces retraining of older entries).
FORMAT_VERSION = 2
#: Evaluations on the test split during training (the history curve); the last one, at the end of
#: training, gives the final metrics.
NUM_EVALS = 4
#: Checkpoints during training (for resumption) when ``save_steps`` is not given.
NUM_SAVES = 10
PREPARED_INFO = "layerwise.json"
CONFIDENCE = 0.95
BOOTSTRAP = 1000
HISTORY_KEYS = ("step", "epoch", "loss", "eval_loss", "eval_accuracy")
MANIFEST_KIND = "layerwise-finetune"
PREPARED_KIND = "layerwise-prepared"


@dataclass
class FinetuneResult:
    """A finished fine-tuning: ``path`` is the model directory (``from_pretrained`` loads it),
    ``metrics`` what :func:`load_finetune_metrics` returns, ``cached`` whether nothing was trained."""

    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass
class _Data:
    """Tokenized train/test splits plus what identifies them."""

    train: Any
    test: Any
    label_names: list[str]
    selection: dict[str, Any]
    prepared: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# statistics of the final evaluation
# --------------------------------------------------------------------------------------------------

def majority_baseline(y_true: np.ndarray) -> tuple[int, float]:
    """The best constant predictor on the test labels: ``(class, share)`` with ``share = max_c n_c / n``
    (a conservative baseline: at least the accuracy of predicting the training majority)."""
    values, counts = np.unique(np.asarray(y_true), return_counts=True)
    i = int(np.argmax(counts))
    return int(values[i]), float(counts[i] / counts.sum())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Accuracy with its Wilson 95 % CI (``stats.wilson_ci``), macro-F1 with a percentile bootstrap
    95 % CI over test items (``stats.macro_f1_ci``), the majority-class baseline
    (:func:`majority_baseline`) and the one-sided exact binomial p-value of the accuracy against it
    (``stats.binomial_vs_majority``: H0 accuracy = baseline, H1 accuracy > baseline)."""
    from .stats import binomial_vs_majority, macro_f1_ci, wilson_ci

    y_true = np.asarray(y_true).astype(int).reshape(-1)
    y_pred = np.asarray(y_pred).astype(int).reshape(-1)
    n = int(len(y_true))
    correct = int(np.sum(y_true == y_pred))
    acc, acc_lo, acc_hi = wilson_ci(correct, n, level=CONFIDENCE)
    f1, f1_lo, f1_hi = macro_f1_ci(y_true, y_pred, n_boot=BOOTSTRAP, seed=seed, level=CONFIDENCE)
    maj_class, maj = majority_baseline(y_true)
    p = binomial_vs_majority(correct, n, maj) if 0 < maj < 1 else math.nan
    return {"n_test": n, "correct": correct, "accuracy": acc, "accuracy_ci": [acc_lo, acc_hi],
            "macro_f1": f1, "macro_f1_ci": [f1_lo, f1_hi], "majority_class": maj_class,
            "majority_baseline": maj, "binomial_p": p, "confidence": CONFIDENCE}


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------

def _where(params: StudyParams) -> str:
    return str(params.path) if params.path else f"params '{params.name}'"


def _tokenize(dset, tokenizer, max_length: int, *, padding: bool | str = False):
    """Add ``input_ids``/``attention_mask`` (truncated at ``max_length``; no padding unless asked)."""
    def enc(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length, padding=padding)

    return dset.map(enc, batched=True, desc=None)


def _tokenizer_fingerprint(tokenizer) -> str:
    """Content hash of a tokenizer's vocabulary (identifies it whatever its path)."""
    return content_hash(sorted(tokenizer.get_vocab().items()))


def _model_source(params: StudyParams, checkpoint: str | None) -> tuple[str, str | None, dict[str, Any]]:
    """(source for from_pretrained, revision, key part identifying the weights)."""
    from .models import resolve_model, weights_key

    if checkpoint:
        path = Path(checkpoint).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise LayerwiseError(f"checkpoint directory {checkpoint!r} has no config.json", "-c/--checkpoint",
                                     "give a directory written by save_pretrained, or a Hub id")
            return str(path), None, {"checkpoint_files": file_hash(path)}
        if checkpoint.startswith((".", "/", "~")):
            raise LayerwiseError(f"checkpoint directory {checkpoint!r} does not exist", "-c/--checkpoint",
                                 "give an existing directory or a Hub id such as camembert-base")
        return checkpoint, None, {"checkpoint": checkpoint}
    source = resolve_model(params.model, params)
    key = weights_key(params, source)
    return source, params.model.revision, key


def _prepared_hash(path: Path) -> str:
    """Hash of the tokenized data files of a prepared directory (not of its timestamps)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix == ".arrow")
    return content_hash([(str(f.relative_to(path)), file_hash(f)) for f in files])


def prepare(params: StudyParams, out_dir: str | os.PathLike, *, num_train: int | None = None,
            num_test: int | None = None, checkpoint: str | None = None) -> Path:
    """Tokenize the selected train/test examples for the model (``checkpoint`` overrides the params'
    model) and write them atomically with ``DatasetDict.save_to_disk(out_dir)``. Texts are truncated
    at ``finetune.max_length`` and not padded (batches are padded when training). ``out_dir`` also
    receives ``layerwise.json`` (params, selection, tokenizer, provenance) and ``DONE.json``.
    Refuses to replace a non-empty directory that ``prepare`` did not write."""
    import datasets

    from .data import load_splits
    from .models import load_tokenizer

    out = Path(out_dir).expanduser()
    _check_replaceable(out, PREPARED_INFO, PREPARED_KIND, "OUT")
    source, revision, _ = _model_source(params, checkpoint)
    tokenizer = load_tokenizer(source, revision=revision, where=_where(params))
    splits = load_splits(params, num_train=num_train, num_test=num_test)
    max_length = params.finetune.max_length
    dd = datasets.DatasetDict({"train": _tokenize(splits.train, tokenizer, max_length),
                               "test": _tokenize(splits.test, tokenizer, max_length)})
    with atomic_dir(out) as tmp:
        dd.save_to_disk(str(tmp))
        atomic_write_json(tmp / PREPARED_INFO, {
            "kind": PREPARED_KIND, "format": FORMAT_VERSION, "params": params.model_dump(mode="json"),
            "params_path": str(params.path) if params.path else None, "selection": splits.selection,
            "label_names": splits.label_names, "num_train": len(splits.train), "num_test": len(splits.test),
            "max_length": max_length, "tokenizer_source": source, "tokenizer_revision": revision,
            "tokenizer_fingerprint": _tokenizer_fingerprint(tokenizer), "data_hash": _prepared_hash(tmp),
            **provenance()})
    return out


def _check_replaceable(path: Path, marker: str, kind: str, flag: str) -> None:
    """Never delete a user's directory: only an empty one, or one we wrote (``marker`` JSON file
    inside whose ``kind`` is ``kind``)."""
    if not path.exists():
        return
    ours = False
    if path.is_dir():
        if not any(path.iterdir()):
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            ours = json.loads((path / marker).read_text()).get("kind") == kind
    if not ours:
        raise LayerwiseError(f"{path} exists and was not written by layerwise", flag,
                             "give a new or empty directory")


def _load_prepared(path: str | os.PathLike, num_train: int | None, num_test: int | None, tokenizer) -> _Data:
    import datasets

    p = Path(path).expanduser()
    if not is_done(p) or not (p / PREPARED_INFO).is_file():
        raise LayerwiseError(f"{p} is not a complete prepared data directory", "-d/--data",
                             "write it with `layerwise prepare PARAMS OUT` (an interrupted prepare leaves none)")
    info = json.loads((p / PREPARED_INFO).read_text())
    if info.get("tokenizer_fingerprint") != _tokenizer_fingerprint(tokenizer):
        raise LayerwiseError(f"{p} was tokenized for {info.get('tokenizer_source')!r}, not for this model's tokenizer",
                             "-d/--data", "prepare the data with the same model (prepare -c CHECKPOINT)")
    dd = datasets.load_from_disk(str(p))
    parts = {}
    for split, want in (("train", num_train), ("test", num_test)):
        dset = dd[split]
        if want is not None:
            if want > len(dset):
                raise LayerwiseError(f"asks for {want} {split} examples but {p} holds {len(dset)}", "-d/--data",
                                     f"ask for at most {len(dset)} or prepare more (-a/-b)")
            dset = dset.select(range(want))
        parts[split] = dset
    selection = dict(info["selection"])
    selection["train_index"] = list(parts["train"]["index"])
    selection["test_index"] = list(parts["test"]["index"])
    selection["hash"] = content_hash({"prepared": info["selection"]["hash"], "num_train": len(parts["train"]),
                                      "num_test": len(parts["test"])})
    prepared = {"path": str(p), "data_hash": _prepared_hash(p), "max_length": info.get("max_length"),
                "tokenizer_source": info.get("tokenizer_source")}
    return _Data(parts["train"], parts["test"], list(info["label_names"]), selection, prepared)


# --------------------------------------------------------------------------------------------------
# checkpoints of the work directory
# --------------------------------------------------------------------------------------------------

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def checkpoint_complete(path: Path) -> bool:
    """A Trainer checkpoint is usable iff its ``trainer_state.json`` (written last) parses and the
    config, weights, optimizer and scheduler files exist."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return ((path / "config.json").is_file() and any((path / w).is_file() for w in _WEIGHTS)
            and (path / "optimizer.pt").is_file() and (path / "scheduler.pt").is_file())


def last_checkpoint(work: Path) -> Path | None:
    """The highest-step complete ``checkpoint-N`` in ``work``; incomplete ones above it are removed."""
    if not work.is_dir():
        return None
    found = []
    for d in work.iterdir():
        if d.is_dir() and d.name.startswith("checkpoint-") and d.name[len("checkpoint-"):].isdigit():
            found.append((int(d.name.split("-")[1]), d))
    for _, d in sorted(found, reverse=True):
        if checkpoint_complete(d):
            return d
        log.info("removing incomplete checkpoint %s", d)
        shutil.rmtree(d, ignore_errors=True)
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence transformers' own bars ("Loading weights", "Writing model shards" at every checkpoint)
    and warnings; the Trainer's training bar (its own tqdm) is not affected."""
    from transformers.utils import logging as tlog

    bars, level = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


@contextlib.contextmanager
def _work_lock(work: Path, enabled: bool = True, progress: bool = True) -> Iterator[None]:
    """An exclusive lock on the work directory (``fcntl.flock``, released by the OS even when the
    process is killed): two runs never train the same entry at once; the second one waits."""
    if not enabled:
        yield
        return
    work.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(work / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            msg = f"another run is fine-tuning this entry ({work}): waiting for it"
            if progress:
                print(msg, file=sys.stderr)
            log.warning(msg)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------------
# the Trainer
# --------------------------------------------------------------------------------------------------

def _precision() -> dict[str, bool]:
    """Mixed precision on CUDA only: bf16 when the GPU supports it, else fp16."""
    import torch

    from .models import pick_device

    if pick_device().type != "cuda":
        return {}
    return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}


def _argmax_logits(logits, labels):
    """Keep only the predicted class from evaluation (no logits, no hidden states accumulate)."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(dim=-1)


class _Accuracy:
    """``compute_metrics``: accuracy of the argmax predictions. It keeps the predictions of the
    latest evaluation (and the training step it ran at), so that the Trainer's evaluation at the end
    of training serves as the final test evaluation (no second pass over the test split)."""

    def __init__(self):
        self.trainer = None
        self.step: int | None = None
        self.predictions: np.ndarray | None = None
        self.labels: np.ndarray | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        self.predictions = np.asarray(eval_pred.predictions).reshape(-1)
        self.labels = np.asarray(eval_pred.label_ids).reshape(-1)
        self.step = int(self.trainer.state.global_step) if self.trainer is not None else None
        return {"accuracy": float(np.mean(self.predictions == self.labels))}


def build_trainer(model, tokenizer, train, test, *, output_dir: str | os.PathLike, epochs: float,
                  learning_rate: float, batch_size: int, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                  logging_steps: int = 10, seed: int = 42, save_steps: int | None = None,
                  max_steps: int | None = None, progress: bool = True, evaluate: bool = True,
                  group_by_length: bool = True):
    """A ``Trainer`` for tokenized ``train``/``test`` datasets (``label`` + tokenizer columns): padding
    per batch (``DataCollatorWithPadding``), batches of similar lengths (``group_by_length``: the
    Trainer's ``LengthGroupedSampler``, random mega-batches sorted by length, so little padding is
    left), accuracy as the evaluation metric, test evaluations
    ``NUM_EVALS`` times during training, checkpoints every ``save_steps`` (default: ``NUM_SAVES`` per
    run, the last 2 kept), mixed precision on CUDA, seeds ``seed`` for the model and the data order."""
    import torch
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    from .models import pick_device

    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max_steps if max_steps and max_steps > 0 else max(1, math.ceil(steps_per_epoch * epochs))
    eval_steps = max(1, math.ceil(total / NUM_EVALS))
    save_steps = save_steps or max(1, math.ceil(total / NUM_SAVES))
    model.config.output_hidden_states = False
    model.config.output_attentions = False
    accuracy = _Accuracy()
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps else -1,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size * 2,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        logging_strategy="steps",
        logging_steps=logging_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=pick_device().type == "cpu",
        dataloader_pin_memory=torch.cuda.is_available(),
        **_precision(),
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train, eval_dataset=test, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy,
        preprocess_logits_for_metrics=_argmax_logits,
    )
    accuracy.trainer = trainer
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rec in log_history:
        row = {k: rec[k] for k in HISTORY_KEYS if k in rec}
        if set(row) - {"step", "epoch"}:
            out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# the cached fine-tuning
# --------------------------------------------------------------------------------------------------

def _hyper(params: StudyParams, num_train: int | None, num_test: int | None, epochs: float | None) -> dict[str, Any]:
    hp = params.finetune.model_dump()
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


@dataclass
class _Plan:
    """Everything a fine-tuning needs before the model is loaded, and its cache entry."""

    source: str
    revision: str | None
    hyper: dict[str, Any]
    data: _Data
    tokenizer: Any
    payload: dict[str, Any]
    key: str
    entry: Path


def _plan(params: StudyParams, num_train: int | None, num_test: int | None, epochs: float | None,
          data: str | os.PathLike | None, checkpoint: str | None) -> _Plan:
    from .data import load_splits
    from .models import load_tokenizer

    source, revision, model_key = _model_source(params, checkpoint)
    hp = _hyper(params, num_train, num_test, epochs)
    tokenizer = None
    if data is not None:
        tokenizer = load_tokenizer(source, revision=revision, where=_where(params))
        dat = _load_prepared(data, num_train, num_test, tokenizer)
    else:
        splits = load_splits(params, num_train=num_train, num_test=num_test)
        dat = _Data(splits.train, splits.test, splits.label_names, splits.selection)
    payload = {"format": FORMAT_VERSION, "model": model_key, "selection": dat.selection["hash"], "hyper": hp,
               "prepared": dat.prepared["data_hash"] if dat.prepared else None}
    key = content_hash(payload)
    entry = cache_root() / "finetune" / f"{params.name}-{key}"
    return _Plan(source, revision, hp, dat, tokenizer, payload, key, entry)


def finetune_entry(params: StudyParams, *, num_train: int | None = None, num_test: int | None = None,
                   epochs: float | None = None, data: str | os.PathLike | None = None,
                   checkpoint: str | None = None) -> Path:
    """The cache entry that :func:`finetune` would return for these arguments (nothing is trained;
    the entry may not exist yet)."""
    return _plan(params, num_train, num_test, epochs, data, checkpoint).entry


def finetune(params: StudyParams, *, num_train: int | None = None, num_test: int | None = None,
             epochs: float | None = None, save: str | os.PathLike | None = None,
             data: str | os.PathLike | None = None, checkpoint: str | None = None, progress: bool = True,
             save_steps: int | None = None) -> FinetuneResult:
    """Fine-tune the params' model (or ``checkpoint``) on the params' data (or the prepared ``data``
    directory), cached: the same inputs return the existing entry at once (``cached=True``).

    Overrides mirror the seed's flags: ``num_train`` (-a), ``num_test`` (-b), ``epochs`` (-n),
    ``save`` (-s: also copy the finished model directory there), ``data`` (-d), ``checkpoint`` (-c).
    ``save_steps`` sets the checkpoint interval (default: about ``NUM_SAVES`` per run; it does not
    enter the cache key). An interrupted run resumes from the last complete checkpoint of the work
    directory (``metrics["resumed_from_step"]``)."""
    plan = _plan(params, num_train, num_test, epochs, data, checkpoint)
    entry = plan.entry
    if save is not None:
        _check_replaceable(Path(save).expanduser(), "manifest.json", MANIFEST_KIND, "-s/--save")
    if not is_done(entry):
        work = entry.with_suffix(".work")
        with _work_lock(work, enabled=_is_main_process(), progress=progress):
            if not is_done(entry):  # (another run may have finished it while this one waited)
                with _quiet():
                    return _train(params, plan, save=save, progress=progress, save_steps=save_steps)
            shutil.rmtree(work, ignore_errors=True)
    _copy_to(entry, save)
    return FinetuneResult(entry, load_finetune_metrics(entry), cached=True)


def _is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` / ``accelerate launch`` run (both set ``RANK``), or a plain run."""
    return int(os.environ.get("RANK", "0")) == 0


def _train(params: StudyParams, plan: _Plan, *, save, progress: bool, save_steps: int | None) -> FinetuneResult:
    """Train, evaluate and write the cache entry of ``plan`` (resuming from the work directory)."""
    from transformers import set_seed

    from .models import load_model

    entry, dat, hp = plan.entry, plan.data, plan.hyper
    ft = params.finetune
    where = _where(params)
    work = entry.with_suffix(".work")
    seed = ft.seed
    set_seed(seed)
    model, tokenizer = load_model(plan.source, len(dat.label_names), revision=plan.revision, where=where)
    model.config.id2label = dict(enumerate(dat.label_names))
    model.config.label2id = {n: i for i, n in enumerate(dat.label_names)}
    if dat.prepared is None:
        dat.train = _tokenize(dat.train, tokenizer, ft.max_length)
        dat.test = _tokenize(dat.test, tokenizer, ft.max_length)
    trainer = build_trainer(model, tokenizer, dat.train, dat.test, output_dir=work, epochs=hp["epochs"],
                            learning_rate=ft.learning_rate, batch_size=ft.batch_size, weight_decay=ft.weight_decay,
                            warmup_ratio=ft.warmup_ratio, logging_steps=ft.logging_steps, seed=seed,
                            save_steps=save_steps, progress=progress)
    main = trainer.is_world_process_zero()
    # (the caller holds the work directory's lock)
    resume = last_checkpoint(work) if main else _shared_last_checkpoint(work)
    resumed_from = None
    if resume is not None:
        resumed_from = int(resume.name.split("-")[1])
        msg = f"resuming from {resume.name} ({work})"
        log.info(msg)
        if progress and main:
            print(msg, file=sys.stderr)
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.perf_counter() - t0
    step = int(trainer.state.global_step)
    store = trainer.compute_metrics
    last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if store.step == step and last_eval is not None and last_eval.get("step") == step:
        y_pred, y_true, eval_loss = store.predictions, store.labels, float(last_eval["eval_loss"])
    else:  # e.g. resumed from a checkpoint taken after the last step: evaluate now
        pred = trainer.predict(dat.test, metric_key_prefix="eval")
        y_pred = np.asarray(pred.predictions).reshape(-1)
        y_true = np.asarray(pred.label_ids).reshape(-1)
        eval_loss = float(pred.metrics.get("eval_loss", math.nan))
    metrics = classification_metrics(y_true, y_pred, seed=seed)
    history = _history(trainer.state.log_history)
    if not history or history[-1].get("step") != step or "eval_loss" not in history[-1]:
        history.append({"step": step, "epoch": float(trainer.state.epoch or hp["epochs"]),
                        "eval_loss": eval_loss, "eval_accuracy": metrics["accuracy"]})
    metrics.update({
        "eval_loss": eval_loss, "n_train": len(dat.train), "epochs": hp["epochs"], "global_step": step,
        "train_loss": float(out.training_loss), "train_seconds": train_seconds,
        "resumed_from_step": resumed_from, "label_names": dat.label_names,
        "device": str(trainer.args.device),
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "cache_key": plan.key,
    })
    if main:
        with atomic_dir(entry) as tmp:
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / "metrics.json", metrics)
            atomic_write_json(tmp / "history.json", history)
            atomic_write_json(tmp / "manifest.json", {
                "kind": MANIFEST_KIND, "params": params.model_dump(mode="json"),
                "params_path": str(params.path) if params.path else None, "model_source": plan.source,
                "revision": plan.revision, "hyper_parameters": hp, "selection": dat.selection,
                "prepared": dat.prepared, "cache_key": plan.key, "key_payload": plan.payload,
                **provenance()})
        shutil.rmtree(work, ignore_errors=True)
    if main:
        _copy_to(entry, save)
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(entry, {**metrics, "history": history}, cached=False)


def _shared_last_checkpoint(work: Path) -> Path | None:
    """Non-main processes of a distributed run: the same choice as the main process, without deleting."""
    found = sorted(((int(d.name.split("-")[1]), d) for d in work.glob("checkpoint-*")
                    if d.name.split("-")[1].isdigit()), reverse=True) if work.is_dir() else []
    return next((d for _, d in found if checkpoint_complete(d)), None)


def _copy_to(entry: Path, save: str | os.PathLike | None) -> None:
    """``-s DIR``: copy the finished model directory to ``DIR`` (atomically; never over a foreign dir)."""
    if save is None:
        return
    dest = Path(save).expanduser()
    if dest.resolve() == entry.resolve():
        return
    _check_replaceable(dest, "manifest.json", MANIFEST_KIND, "-s/--save")
    with atomic_dir(dest) as tmp:
        shutil.copytree(entry, tmp, dirs_exist_ok=True)


def load_finetune_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """The metrics of a finished fine-tuning directory, with its ``history`` (list of dicts: step,
    epoch, loss / eval_loss / eval_accuracy). Raises :class:`LayerwiseError` when incomplete."""
    p = Path(path)
    if not is_done(p) or not (p / "metrics.json").is_file():
        raise LayerwiseError(f"{p} is not a finished fine-tuning directory", None,
                             "run `layerwise finetune PARAMS` (an interrupted run leaves no such directory)")
    metrics = json.loads((p / "metrics.json").read_text())
    history_file = p / "history.json"
    metrics["history"] = json.loads(history_file.read_text()) if history_file.is_file() else []
    return metrics
