"""What ``layerwise check`` can know before any work: the model's position limit against the
``max_length`` settings, the states the chapters need, and the local data files (:mod:`layerwise.inputs.checks`),
then the selection itself (labels, class names, sizes, repeated texts: :func:`layerwise.inputs.data.load_splits`),
the sentences the geometry reads, and the cache folder (a writable folder with room for the run:
:func:`space_needed`, which asks which fine-tuning entries are missing).

Every problem is one :class:`LayerwiseError` naming the file (params or data) and the field or line
at fault; a local file problem never points at the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import disk
from ..core.errors import LayerwiseError
from ..core.repro import CACHE_ELSEWHERE, cache_root, is_done
from ..inputs.checks import check_lengths, check_states, position_limit, sentences_note
from ..inputs.config import StudyParams
from ..inputs.data import load_splits
from ..model.finetune import finetune_entry
from ..model.models import (check_model_available, check_model_type, kind_notes, model_source, quiet_transformers,
                            resolve_poolings)


def model_config(params: StudyParams) -> tuple[str, Any]:
    """``(source, config)`` of the params' model: the errors of :func:`models.check_model_available`."""
    from transformers import AutoConfig

    source = check_model_available(params)
    with quiet_transformers():
        return source, AutoConfig.from_pretrained(source, revision=params.model.revision)


def check_cache() -> tuple[Path, int | None]:
    """The cache folder (created when missing) is a folder this process can write in: ``(path, free
    bytes)``. A path that is a file, a read-only or foreign folder is one :class:`LayerwiseError`."""
    import tempfile

    root = cache_root()
    try:
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:  # (named by the folder, not by the probe file's random name)
        err = disk.fault(OSError(exc.errno, exc.strerror), "the cache folder", root, CACHE_ELSEWHERE)
        if err is None:
            raise
        raise err from None
    return root, disk.free_bytes(root)


#: checkpoints a fine-tuning may hold at once in its work folder (the Trainer keeps 2 and writes the next
#: before it drops the oldest) and their size in weights (the weights and the optimizer's two moments)
PEAK_CHECKPOINTS, CHECKPOINT_WEIGHTS = 3, 3


def _weight_bytes(config: Any, num_labels: int) -> int | None:
    """Bytes of the fp32 weights of the model with a classification head (built on the meta device:
    nothing is allocated), or None when it cannot be built."""
    import torch
    from transformers import AutoModelForSequenceClassification

    try:
        with torch.device("meta"), quiet_transformers():
            config.num_labels = num_labels
            model = AutoModelForSequenceClassification.from_config(config)
        return 4 * sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - an estimate only: an unknown architecture skips it
        return None


def space_needed(params: StudyParams, config: Any, splits: Any, to_train: int, poolings: int = 2) -> dict[str, int] | None:
    """Bytes the run still writes to the cache, by part (None when the model's size is unknown):
    ``finetune`` the weights of each of the ``to_train`` seeds not in the cache yet, ``checkpoints`` the
    peak of the work folder while one trains (:data:`PEAK_CHECKPOINTS` checkpoints of
    :data:`CHECKPOINT_WEIGHTS` times the weights), ``trajectory`` the float16 embeddings each of those seeds keeps
    at ``finetune.checkpoints`` (the probe-pool and test sentences, each pooling, every layer, at each fraction
    strictly between 0 and 1), ``results`` the stored float16 embeddings (each of the study's ``poolings``, every
    layer, every sentence, every engine state)."""
    weights = _weight_bytes(config, splits.num_labels)
    if weights is None:
        return None
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layers", 0) or 12) + 1
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "emb_dim", 0) or 768)
    texts = len(splits.train) + len(splits.test) + (len(splits.probe) if splits.probe is not None else 0)
    per_seed = {"finetuned": len(params.finetune.seeds), "random": len(params.analysis.draws)}
    states = sum(per_seed.get(s, 1) for s in params.analysis.states)
    kept = sum(0.0 < f < 1.0 for f in params.finetune.checkpoints)
    kept_texts = len(splits.test) + (len(splits.probe) if splits.probe is not None else 0)
    return {"finetune": to_train * weights,
            "checkpoints": PEAK_CHECKPOINTS * CHECKPOINT_WEIGHTS * weights if to_train else 0,
            "trajectory": to_train * 2 * poolings * kept * kept_texts * layers * hidden,
            "results": 2 * poolings * texts * layers * hidden * states}


def _seeds_to_train(params: StudyParams, splits: Any) -> int:
    """Fine-tuning seeds of ``params`` without a complete cache entry."""
    if "finetuned" not in params.analysis.states:
        return 0
    source = model_source(params)
    return sum(not is_done(finetune_entry(params.for_seed(s), splits=splits, source=source))
               for s in params.finetune.seeds)


def check_space(params: StudyParams, config: Any, splits: Any, root: Path, free: int | None,
                poolings: int = 2) -> dict[str, int] | None:
    """The estimate of :func:`space_needed` (``poolings``: how many the study stores) against the cache
    folder's free space: an error when the run cannot fit."""
    need = space_needed(params, config, splits, _seeds_to_train(params, splits), poolings)
    if need is None or free is None or sum(need.values()) <= free:
        return need
    parts = ", ".join(f"{name} {disk.human(n)}" for name, n in need.items() if n)
    raise LayerwiseError(f"the cache folder has {disk.human(free)} free but this run needs about "
                         f"{disk.human(sum(need.values()))} ({parts})", str(root),
                         "free some space on that disk, or set LAYERWISE_CACHE to a folder on a disk with more space")


@dataclass
class CheckReport:
    """What ``layerwise check`` found: the model source and its position limit, the selected data (its
    ``selection['duplicates']``: what was done with repeated texts), the cache folder with its free
    space and the estimate of what the run writes there (:func:`space_needed`), and warnings."""

    params: StudyParams
    source: str
    positions: int | None
    splits: Any
    cache: Path | None = None
    free: int | None = None
    need: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)
    #: the study's poolings, primary first (``models.resolve_poolings``), and what the model's kind means
    poolings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def label_mapping(self) -> str:
        """``'neg' -> 0, 'pos' -> 1``: how the label values of the file map to class ids."""
        return ", ".join(f"{name!r} -> {i}" for i, name in enumerate(self.splits.label_names))

    def space(self) -> str:
        """``/cache: 12 GB free; this run writes about 1.1 GB (...)``."""
        free = disk.human(self.free) if self.free is not None else "unknown space"
        if not self.need:
            return f"{self.cache}: {free} free"
        parts = ", ".join(f"{k} {disk.human(v)}" for k, v in self.need.items() if v)
        return f"{self.cache}: {free} free; this run writes about {disk.human(sum(self.need.values()))} ({parts})"


def run_checks(params: StudyParams) -> CheckReport:
    """Every check that costs no training: settings, model config (a supported encoder or decoder, and what its
    kind means for the params: :func:`models.kind_notes`), the study's poolings, the cache folder, data files,
    labels and class names, sizes, repeated texts, and the cache's free space against the run's needs."""
    check_states(params)
    source, config = model_config(params)
    check_model_type(config.model_type, f"{params.where}: field 'model.id'")
    poolings = resolve_poolings(params, model_source(params))
    notes, kind_warnings = kind_notes(config.model_type, poolings, getattr(config, "pad_token_id", None) is not None)
    limit = position_limit(config)
    check_lengths(params, limit)
    root, free = check_cache()
    splits = load_splits(params)
    need = check_space(params, config, splits, root, free, len(poolings))
    note = sentences_note(params, len(splits.test))
    return CheckReport(params=params, source=source, positions=limit, splits=splits, cache=root, free=free,
                       need=need, warnings=([note] if note else []) + kind_warnings, poolings=poolings, notes=notes)
