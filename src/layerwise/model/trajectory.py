"""The pooled embeddings at checkpoints during fine-tuning: the trajectory of the representations
between the pretrained model (fraction 0) and the fine-tuned one (fraction 1).

:func:`recorder` is a transformers ``TrainerCallback``: at each fraction ``f`` of
:attr:`TrajectorySpec.fractions` it forwards the spec's texts through the model being trained (eval
mode, ``torch.inference_mode()``, the batch loop of :func:`layerwise.measure.extract.forward_batches`),
pools every layer (:func:`layerwise.measure.pooling.pooled_layers`) and writes ``step-<N>.npz``
(one float16 ``[n_texts, L+1, d]`` array per pooling name, plus ``step`` and ``fraction``, the
fractions recorded there) into a folder, atomically. The step of ``f`` is ``round(f * max_steps)``
(Python's rounding); fractions that fall on the same step share one file.

Why the capture leaves the training as it is: the forward pass runs in eval mode (no dropout, so no
random draw) under inference mode (no gradient, no autograd state), and the model's train/eval mode is
put back afterwards; the weights after training are the same with and without it (a test compares them
exactly).

Resumption: a step whose file exists is skipped, so a run resumed from a Trainer checkpoint keeps the
files written before the interruption and writes only the missing ones. The fine-tuning writes the files
in its work folder and copies them into its cache entry with ``index.json``
(:func:`layerwise.model.finetune._write_entry`); :func:`load_trajectory` reads them back.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import LayerwiseError
from ..core.repro import atomic_write_bytes
from ..measure.extract import pooled_embeddings
from ..measure.pooling import check_poolings

log = logging.getLogger(__name__)

#: The folder of the trajectory in the work folder and in the cache entry.
FOLDER = "trajectory"
#: The trajectory's description in the entry (fractions, steps, poolings, sizes).
INDEX = "index.json"


@dataclass(frozen=True)
class TrajectorySpec:
    """What to keep during a fine-tuning: the pooled embeddings of ``texts`` (in this order) at each
    fraction of the training steps in ``fractions`` (ascending, in [0, 1]), for each pooling of
    ``poolings``; forward passes of ``batch_size`` texts truncated at ``max_length`` tokens."""

    texts: list[str]
    fractions: tuple[float, ...]
    poolings: tuple[str, ...]
    batch_size: int = 32
    max_length: int = 128
    #: the forward passes' precision (the plan's: :func:`layerwise.core.precision.paired`)
    precision: str = "fp32"


def step_file(step: int) -> str:
    """The file name of the embeddings at training step ``step``."""
    return f"step-{int(step)}.npz"


def fraction_steps(fractions: Sequence[float], max_steps: int) -> dict[float, int]:
    """``{fraction: step}``: the training step of each fraction of ``max_steps`` steps,
    ``round(f * max_steps)``."""
    return {float(f): int(round(float(f) * int(max_steps))) for f in fractions}


def capture(model, tokenizer, spec: TrajectorySpec) -> dict[str, np.ndarray]:
    """The pooled embeddings of ``spec.texts`` by ``model`` now: float16 ``[n_texts, L+1, d]`` per pooling,
    rows in text order (:func:`layerwise.measure.extract.pooled_embeddings`, at the engine's precision). The model
    is left in eval mode (the caller restores its mode)."""
    return pooled_embeddings(model, tokenizer, list(spec.texts), check_poolings(spec.poolings),
                             batch_size=spec.batch_size, max_length=spec.max_length, precision=spec.precision)


def write_step(folder: Path, step: int, fractions: Sequence[float], pooled: dict[str, np.ndarray]) -> Path:
    """Write ``folder/step-<step>.npz`` atomically (a temp file in ``folder``, then ``os.replace``): one
    array per pooling, ``step`` and ``fraction`` (every fraction recorded at this step)."""
    if {"step", "fraction"} & set(pooled):
        raise ValueError("a pooling cannot be named step or fraction")
    buf = io.BytesIO()
    np.savez(buf, step=np.int64(step), fraction=np.asarray(list(fractions), np.float64), **pooled)
    path = Path(folder) / step_file(step)
    atomic_write_bytes(path, buf.getvalue())
    return path


def recorder(spec: TrajectorySpec, folder: Path, tokenizer):
    """A ``TrainerCallback`` writing the embeddings of ``spec`` into ``folder`` at its fractions of the
    training steps: step 0 when the training begins (not when it resumes past it), the others at the end
    of their step. Steps whose file exists are skipped (a resumed run); only the main process writes.
    The model is the Trainer's (``kwargs["model"]``)."""
    from transformers import TrainerCallback

    folder = Path(folder)

    class TrajectoryRecorder(TrainerCallback):
        def _due(self, state) -> dict[int, list[float]]:
            due: dict[int, list[float]] = {}
            for f, step in fraction_steps(spec.fractions, state.max_steps).items():
                due.setdefault(step, []).append(f)
            return due

        def _record(self, state, model) -> None:
            if not state.is_world_process_zero:
                return
            step = int(state.global_step)
            fractions = self._due(state).get(step)
            if not fractions or (folder / step_file(step)).is_file():
                return
            was_training = model.training
            try:
                pooled = capture(model, tokenizer, spec)
            finally:
                if was_training:
                    model.train()
            folder.mkdir(parents=True, exist_ok=True)
            write_step(folder, step, fractions, pooled)
            log.info("trajectory: embeddings at step %d (fractions %s) written to %s", step, fractions, folder)

        def on_train_begin(self, args, state, control, **kwargs):
            if int(state.global_step) == 0:
                self._record(state, kwargs["model"])

        def on_step_end(self, args, state, control, **kwargs):
            self._record(state, kwargs["model"])

    return TrajectoryRecorder()


def write_index(work: Path, dest: Path, spec: TrajectorySpec, max_steps: int, parts: dict[str, int]) -> None:
    """Copy the step files of ``spec`` from the work folder ``work`` into ``dest`` (the entry's
    ``trajectory/``) and write ``index.json`` there. A step file missing from ``work`` is an error:
    the training ran past that step without writing it (a work folder edited by hand)."""
    import shutil

    steps = fraction_steps(spec.fractions, max_steps)
    dest.mkdir(parents=True, exist_ok=True)
    for step in sorted(set(steps.values())):
        src = Path(work) / step_file(step)
        if not src.is_file():
            raise LayerwiseError(f"the embeddings at training step {step} were not written", str(work),
                                 "delete this work folder and run the fine-tuning again (it restarts from step 0)")
        shutil.copy2(src, dest / step_file(step))
    index = {"fractions": list(spec.fractions), "steps": {str(f): s for f, s in steps.items()},
             "poolings": list(spec.poolings), "n_texts": len(spec.texts), "parts": dict(parts),
             "max_steps": int(max_steps), "max_length": spec.max_length}
    (dest / INDEX).write_text(json.dumps(index, indent=2) + "\n")


def load_trajectory(entry: Path) -> dict[str, Any] | None:
    """The trajectory kept in a fine-tuning entry, or ``None`` when it has none (a format before 5, or
    ``finetune.checkpoints: []``, or data given as ``-d`` prepared rows).

    Returns ``{"fractions": [...], "steps": [one step per fraction], "parts": {"probe": n, "test": n},
    "poolings": [...], "embeddings": {fraction: {pooling: float16 [n_texts, L+1, d]}}}``: the texts are the
    probe-pool sentences then the test sentences of the selection, in its order; fractions that share a
    step share their arrays."""
    folder = Path(entry) / FOLDER
    index_file = folder / INDEX
    if not index_file.is_file():
        return None
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as exc:
        raise LayerwiseError(f"the trajectory index cannot be read ({exc})", str(index_file),
                             "delete the fine-tuning entry and run it again") from None
    fractions = [float(f) for f in index["fractions"]]
    steps = [int(index["steps"][str(f)]) for f in fractions]
    poolings = list(index["poolings"])
    loaded: dict[int, dict[str, np.ndarray]] = {}
    for step in sorted(set(steps)):
        path = folder / step_file(step)
        if not path.is_file():
            raise LayerwiseError(f"the embeddings at training step {step} are missing", str(path),
                                 "delete the fine-tuning entry and run it again (its trajectory is incomplete)")
        with np.load(path) as npz:
            loaded[step] = {p: npz[p] for p in poolings}
    return {"fractions": fractions, "steps": steps, "parts": dict(index["parts"]), "poolings": poolings,
            "embeddings": {f: loaded[s] for f, s in zip(fractions, steps)}}
