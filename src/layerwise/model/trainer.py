"""The transformers ``Trainer`` as fine-tuning runs it, and the work directory it runs in.

``build_trainer`` makes the ``Trainer``: batches padded per batch (``DataCollatorWithPadding``) and
drawn with similar lengths (the Trainer's ``group_by_length`` sampler), mixed precision (``precision``:
auto picks bf16 on CUDA and AMX/avx512_bf16 CPUs), seeds for the model and the data order, device chosen by the Trainer
(cuda, then mps, else cpu; ``LAYERWISE_DEVICE=cpu`` forces the CPU). :class:`EvalRecorder` keeps the
predictions of the latest evaluation, so that the evaluation at the end of training serves as the
final test evaluation.

The work directory: the Trainer writes ``checkpoint-N`` directories there; :func:`last_checkpoint`
finds the one to resume from, and :func:`work_lock` makes a second run of the same work directory
wait for the first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import LayerwiseError
from .models import pick_device
from ..core.precision import resolve as resolve_precision, trainer_flags

log = logging.getLogger(__name__)

#: Evaluations on the test split during training (the history curve); the last one, at the end of
#: training, gives the final metrics.
NUM_EVALS = 4
#: Checkpoints during training (for resumption) when ``save_steps`` is not given: one every this many
#: seconds of training (an interruption loses at most that much work). A short run (the demo's seeds
#: take well under a minute each) writes none: its final model is written to the cache entry anyway,
#: and each checkpoint (model, optimizer state, about 3x the weights) cost about 1 s of a 30 s seed.
SAVE_EVERY_S = 300.0
#: The environment variable that replaces :data:`SAVE_EVERY_S` (seconds, >= 0; 0: a checkpoint after every step).
SAVE_EVERY_ENV = "LAYERWISE_SAVE_EVERY_S"


def save_every_s() -> float:
    """The checkpoint interval in seconds: ``$LAYERWISE_SAVE_EVERY_S`` when set, else :data:`SAVE_EVERY_S`."""
    value = os.environ.get(SAVE_EVERY_ENV)
    if value is None or not value.strip():
        return SAVE_EVERY_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise LayerwiseError(f"{SAVE_EVERY_ENV}={value!r} is not a number of seconds", SAVE_EVERY_ENV,
                             "set it to 0 or more seconds between checkpoints (default 300), or unset it")
    return seconds
HISTORY_KEYS = ("step", "epoch", "loss", "eval_loss", "eval_accuracy")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


# --------------------------------------------------------------------------------------------------
# checkpoints and the lock of the work directory
# --------------------------------------------------------------------------------------------------

def checkpoint_complete(path: Path) -> bool:
    """A Trainer checkpoint is usable iff its ``trainer_state.json`` (written last) parses and the
    config, weights, optimizer and scheduler files exist."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return ((path / "config.json").is_file() and any((path / w).is_file() for w in _WEIGHTS)
            and (path / "optimizer.pt").is_file() and (path / "scheduler.pt").is_file())


def checkpoint_step(path: Path) -> int:
    """The training step of a ``checkpoint-N`` directory."""
    return int(path.name.split("-")[1])


def last_checkpoint(work: Path, *, remove_incomplete: bool = True) -> Path | None:
    """The highest-step complete ``checkpoint-N`` in ``work``. Incomplete ones above it are removed,
    unless ``remove_incomplete`` is False (the other processes of a distributed run make the same
    choice as the main one without deleting)."""
    if not work.is_dir():
        return None
    found = []
    for d in work.iterdir():
        if d.is_dir() and d.name.startswith("checkpoint-") and d.name[len("checkpoint-"):].isdigit():
            found.append((checkpoint_step(d), d))
    for _, d in sorted(found, reverse=True):
        if checkpoint_complete(d):
            return d
        if remove_incomplete:
            log.info("removing incomplete checkpoint %s", d)
            shutil.rmtree(d, ignore_errors=True)
    return None


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` / ``accelerate launch`` run (both set ``RANK``), or a plain run."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def work_lock(work: Path, enabled: bool = True, progress: bool = True) -> Iterator[None]:
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
            log.info(msg)  # the log file; the terminal gets the one line below
            if progress:
                print(msg, file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------------
# the Trainer
# --------------------------------------------------------------------------------------------------

def _argmax_logits(logits, labels):
    """Keep only the predicted class from evaluation (no logits, no hidden states accumulate)."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(dim=-1)


class EvalRecorder:
    """The Trainer's ``compute_metrics`` (accuracy of the argmax predictions) that keeps the
    predictions and labels of the latest evaluation, and the training step it ran at (recorded by
    the callback :func:`build_trainer` adds). The caller creates it and hands it to :func:`build_trainer`."""

    def __init__(self):
        self.step: int | None = None
        self.predictions: np.ndarray | None = None
        self.labels: np.ndarray | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        self.predictions = np.asarray(eval_pred.predictions).reshape(-1)
        self.labels = np.asarray(eval_pred.label_ids).reshape(-1)
        self.step = None  # set by the callback's on_evaluate, which the Trainer calls right after
        return {"accuracy": float(np.mean(self.predictions == self.labels))}

    def at_step(self, step: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(predictions, labels)`` of the evaluation at ``step``, or None when none ran there."""
        if self.step != step or self.predictions is None:
            return None
        return self.predictions, self.labels


def _step_recorder(recorder: EvalRecorder):
    """A ``TrainerCallback`` that writes the step of every evaluation into ``recorder``."""
    from transformers import TrainerCallback

    class RecordEvalStep(TrainerCallback):
        def on_evaluate(self, args, state, control, **kwargs):
            recorder.step = int(state.global_step)

    return RecordEvalStep()


def _schedule(n_train: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    """``eval_steps``: ``NUM_EVALS`` evaluations per run."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    total = max_steps if max_steps and max_steps > 0 else max(1, math.ceil(steps_per_epoch * epochs))
    return max(1, math.ceil(total / NUM_EVALS))


def _timed_saves(every_s: float):
    """A ``TrainerCallback`` that asks for a checkpoint once ``every_s`` seconds of training have passed
    since the start or the last checkpoint (never at the last step: the final model is saved apart)."""
    import time

    from transformers import TrainerCallback

    class TimedSaves(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.last = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() - self.last >= every_s and state.global_step < state.max_steps:
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            self.last = time.monotonic()

    return TimedSaves()


def build_trainer(model, tokenizer, train, test, *, output_dir: str | os.PathLike, epochs: float,
                  learning_rate: float, batch_size: int, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                  logging_steps: int = 10, seed: int = 42, save_steps: int | None = None,
                  max_steps: int | None = None, progress: bool = True, evaluate: bool = True,
                  group_by_length: bool = True, recorder: EvalRecorder | None = None, precision: str = "auto",
                  device=None, fused_optimizer: bool = True, callbacks: list | None = None):
    """A ``Trainer`` for tokenized ``train``/``test`` datasets (``label`` + tokenizer columns): padding
    per batch (``DataCollatorWithPadding``), batches of similar lengths (``group_by_length``: the
    Trainer's ``LengthGroupedSampler``, random mega-batches sorted by length, so little padding is
    left), accuracy as the evaluation metric (``recorder`` keeps the latest evaluation's predictions),
    test evaluations ``NUM_EVALS`` times during training, checkpoints every ``save_steps`` steps, or
    (default) every :func:`save_every_s` seconds of training, the last 2 kept, a linear warm-up over the fraction ``warmup_ratio`` of
    the steps, mixed precision ``precision`` (the plan's, already resolved; ``auto`` is resolved by
    :mod:`layerwise.core.precision`), on ``device`` (the plan's; default :func:`~layerwise.model.models.pick_device`),
    seeds ``seed`` for the model and the data order. AdamW runs torch's fused kernel on CPU and CUDA
    (``fused_optimizer``; one pass over the parameters per step instead of one operator per tensor and
    operation: the optimizer's share of a bf16 CPU step fell from 5% to 1%, ``bench/RESULTS-step.md``).
    The dropout masks are drawn in bulk during training (:func:`layerwise.model.dropout.install`, which
    the caller wraps around ``trainer.train()``). ``callbacks``: more ``TrainerCallback`` objects (the
    fine-tuning's trajectory recorder, :mod:`layerwise.model.trajectory`)."""
    import torch
    from transformers import DataCollatorWithPadding, PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio is a fraction of the training steps in [0, 1) (got {warmup_ratio})")
    eval_steps = _schedule(len(train), batch_size, epochs, max_steps)
    device = pick_device() if device is None else device
    model.config.output_hidden_states = False
    model.config.output_attentions = False
    recorder = recorder if recorder is not None else EvalRecorder()
    args = TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps if max_steps else -1,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size * 2,
        learning_rate=learning_rate, weight_decay=weight_decay,
        # transformers 5 has no ``warmup_ratio`` field: ``warmup_steps`` takes the ratio, as a float in
        # [0, 1) (checked above), and applies it to the Trainer's own count of the total steps
        warmup_steps=warmup_ratio,
        logging_strategy="steps", logging_steps=logging_steps,
        eval_strategy="steps" if evaluate else "no", eval_steps=eval_steps if evaluate else None,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or None, save_total_limit=2,
        seed=seed, data_seed=seed, train_sampling_strategy="group_by_length" if group_by_length else "random",
        report_to="none", disable_tqdm=not progress, use_cpu=device.type == "cpu",
        optim="adamw_torch_fused" if fused_optimizer and device.type in ("cpu", "cuda") else "adamw_torch",
        dataloader_pin_memory=torch.cuda.is_available(),
        **trainer_flags(resolve_precision(precision, device, purpose="finetune")),
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train, eval_dataset=test, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=recorder,
        preprocess_logits_for_metrics=_argmax_logits, callbacks=[_step_recorder(recorder), *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_logged_callback(progress))
    if not save_steps:
        trainer.add_callback(_timed_saves(save_every_s()))
    return trainer


def _log_record(state, logs: dict[str, Any] | None) -> None:
    """One Trainer log record (losses, learning rate, evaluation) as an info line of this module's
    logger (the log file), instead of the dict the Trainer prints to stdout."""
    if logs and state.is_world_process_zero:
        items = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in logs.items() if k != "total_flos")
        log.info("trainer step %s: %s", state.global_step, items)


def _logged_callback(progress: bool):
    """The Trainer's progress bars (``progress``) or none; its metric records go to the log instead
    of stdout (:func:`_log_record`)."""
    from transformers import ProgressCallback, TrainerCallback

    class LoggedProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            _log_record(state, logs)

    class LoggedMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            _log_record(state, logs)

    return LoggedProgress() if progress else LoggedMetrics()


def history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's log as the training curve: ``step``, ``epoch`` and the losses / accuracy
    (records with nothing but a step and an epoch are left out)."""
    out = []
    for rec in log_history:
        row = {k: rec[k] for k in HISTORY_KEYS if k in rec}
        if set(row) - {"step", "epoch"}:
            out.append(row)
    return out
