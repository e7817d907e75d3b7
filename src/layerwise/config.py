"""Params files: one YAML per model study, validated with pydantic.

A params file names a model (Hub id, local directory or ``embedded:minilm``), a dataset (Hub id,
local CSV/TSV/JSONL/Parquet files or ``embedded:demo-fr``), fine-tuning settings and analysis
settings. Defaults follow the original study (5000 train / 1000 test examples, 1 epoch, seed 42).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import LayerwiseError
from .schema import ORIGINAL_LAYERS

EMBEDDED_MODELS = ("embedded:minilm",)
EMBEDDED_DATASETS = ("embedded:demo-fr",)
LOCAL_DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
State = Literal["pretrained", "finetuned", "random"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(_Strict):
    """Which encoder: a Hub id (``camembert-base``), a local directory, or ``embedded:minilm``."""

    id: str = Field(min_length=1)
    revision: str | None = None
    label: str | None = Field(None, description="Display name in the report (defaults to id).")

    @property
    def kind(self) -> Literal["embedded", "local", "hub"]:
        if self.id.startswith("embedded:"):
            return "embedded"
        return "local" if _looks_like_path(self.id) else "hub"


class DatasetSpec(_Strict):
    """Which sentences: ``embedded:demo-fr``, a Hub dataset id, or local files.

    Local data: ``source`` is one file (split into train/test with the RNG seed) or ``data_files``
    maps split names to files. CSV, TSV, JSONL/JSON and Parquet are read.
    """

    source: str | None = None
    config: str | None = None
    revision: str | None = None
    data_files: dict[str, str] | None = None
    train_split: str = "train"
    test_split: str = "test"
    text_column: str = "text"
    label_column: str = "label"
    domain_column: str | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Used when the data has no test split.")

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        if not self.source and not self.data_files:
            raise ValueError("give either 'source' or 'data_files'")
        if self.source and self.data_files:
            raise ValueError("give 'source' or 'data_files', not both")
        if self.source and self.source.startswith("embedded:") and self.source not in EMBEDDED_DATASETS:
            raise ValueError(f"unknown embedded dataset {self.source!r} (known: {', '.join(EMBEDDED_DATASETS)})")
        return self

    @property
    def kind(self) -> Literal["embedded", "local", "hub"]:
        if self.data_files:
            return "local"
        assert self.source is not None
        if self.source.startswith("embedded:"):
            return "embedded"
        return "local" if _looks_like_path(self.source) else "hub"


class FinetuneSpec(_Strict):
    """Sequence-classification fine-tuning with the transformers ``Trainer`` (original study: -a 5000 -b 1000 -n 1)."""

    num_train: int = Field(5000, gt=0, description="training examples (original study flag -a)")
    num_test: int = Field(1000, gt=0, description="test examples (original study flag -b)")
    epochs: float = Field(1.0, gt=0, description="original study flag -n")
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    batch_size: int = Field(8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_length: int = Field(512, ge=8, description="truncation length; batches are padded dynamically")
    logging_steps: int = Field(10, gt=0)
    seed: int = 42


class AnalysisSpec(_Strict):
    """What the geometry engine and the probes compute: the one settings object of the analysis
    (the engine reads it directly; its defaults are the only ones).

    Which settings feed which cache key: :data:`GEOMETRY_FIELDS` feed the geometry engine's key,
    :data:`PROBE_FIELDS` only the probes' key; :data:`UNKEYED_FIELDS` change no result (the engine
    is tested to be batch-size invariant) and feed no key.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    states: list[State] = Field(default_factory=lambda: ["pretrained", "finetuned", "random"], min_length=1)
    num_sentences: int = Field(1000, gt=1, description="test sentences feeding the token statistics")
    batch_size: int = Field(32, gt=0, description="sentences per forward pass (results do not depend on it)")
    max_length: int = Field(512, ge=8)
    token_sample: int = Field(1000, gt=1, description="tokens per layer for effective rank and IsoScore (same n everywhere)")
    sample_sentences: int = Field(256, gt=1, description="sentences kept for the standardised statistics, the "
                                  "token sample, the anisotropy baseline and rogue dimensions")
    baseline_pairs: int = Field(5000, gt=0, description="random cross-sentence token pairs (anisotropy baseline)")
    cosine_sample: int = Field(5000, gt=0, description="pairwise cosines kept per layer for plots")
    hist_bins: int = Field(32768, ge=16, description="histogram bins on [-1, 1] for the cosine quantiles")
    pool_tokens: int | None = Field(None, gt=0, description="tokens kept per sampled sentence "
                                    "(default max(8, 2 ceil(token_sample / sample_sentences)))")
    top_dims: int = Field(10, gt=0, description="rogue dimensions listed per layer")
    probe_seeds: int = Field(5, gt=0)
    bootstrap: int = Field(1000, ge=100)
    original_layers: list[int] = Field(default_factory=lambda: list(ORIGINAL_LAYERS),
                                       validation_alias=AliasChoices("original_layers", "seed_layers"),
                                       description="layers of the original study's probe grid (clipped to the "
                                       "model depth); the old key `seed_layers` is accepted")
    seed: int = Field(0, description="RNG seed of every sampling, permutation and bootstrap")

    def tokens_per_sentence(self, n_sentences: int) -> int:
        """Tokens kept per sampled sentence (``pool_tokens`` or its default)."""
        if self.pool_tokens is not None:
            return int(self.pool_tokens)
        return max(8, 2 * math.ceil(self.token_sample / max(1, n_sentences)))

    def geometry_payload(self) -> dict[str, Any]:
        """The settings the geometry engine's results depend on (its cache key)."""
        return {k: getattr(self, k) for k in GEOMETRY_FIELDS}

    def probe_payload(self) -> dict[str, Any]:
        """The settings only the probes and statistics depend on (their cache key)."""
        return {k: getattr(self, k) for k in PROBE_FIELDS}


#: AnalysisSpec fields that feed the geometry engine's cache key.
GEOMETRY_FIELDS = ("states", "num_sentences", "max_length", "token_sample", "sample_sentences", "baseline_pairs",
                   "cosine_sample", "hist_bins", "pool_tokens", "top_dims", "seed")
#: AnalysisSpec fields that only the probes and statistics read.
PROBE_FIELDS = ("probe_seeds", "bootstrap", "seed")
#: AnalysisSpec fields no result depends on (no cache key).
UNKEYED_FIELDS = ("batch_size", "original_layers")


class StudyParams(_Strict):
    """One model study: the whole content of a ``params/*.yml`` file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="slug used in paths and tables")
    title: str | None = None
    model: ModelSpec
    dataset: DatasetSpec
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def display_name(self) -> str:
        return self.model.label or self.title or self.name

    def resolve_path(self, value: str) -> Path:
        """A relative path in a params file is taken from the working directory, else from the
        params file's directory."""
        p = Path(value).expanduser()
        if p.is_absolute() or p.exists() or self._path is None:
            return p
        alt = self._path.parent / p
        return alt if alt.exists() else p

    def data_payload(self) -> dict[str, Any]:
        """What determines the selected examples (for cache keys)."""
        return {"dataset": self.dataset.model_dump(), "num_train": self.finetune.num_train,
                "num_test": self.finetune.num_test, "seed": self.finetune.seed}


def _looks_like_path(value: str) -> bool:
    p = Path(value).expanduser()
    return (value.startswith((".", "/", "~")) or p.suffix.lower() in LOCAL_DATA_SUFFIXES
            or p.exists() or "\\" in value)


def _describe_error(err: dict[str, Any], model_cls: type[BaseModel]) -> tuple[str, str, str]:
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    typ = err["type"]
    if typ == "extra_forbidden":
        parent = model_cls
        for part in err["loc"][:-1]:
            field = parent.model_fields.get(str(part))
            ann = getattr(field, "annotation", None)
            parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else parent
        allowed = ", ".join(parent.model_fields)
        return loc, f"unknown key {err['loc'][-1]!r}", f"remove it or use one of: {allowed}"
    if typ == "missing":
        return loc, "required key is missing", f"add '{err['loc'][-1]}:' to the file"
    got = err.get("input")
    got_s = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
    return loc, f"{err['msg']}{got_s}", "correct the value (see params/demo.yml for an example)"


def parse_params(data: Any, where: str = "<params>") -> StudyParams:
    """Validate an already-loaded mapping; errors name the field and the fix."""
    if not isinstance(data, dict):
        raise LayerwiseError("the file must be a YAML mapping (key: value lines)", where,
                             "start from params/demo.yml")
    try:
        return StudyParams.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        loc, what, fix = _describe_error(errors[0], StudyParams)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise LayerwiseError(f"field '{loc}': {what}{more}", where, fix) from None


def load_params(path: str | Path) -> StudyParams:
    """Read and validate a params file. Raises :class:`LayerwiseError` with file, field and fix."""
    path = Path(path)
    if not path.is_file():
        raise LayerwiseError("params file not found", str(path),
                             "give the path of a YAML file such as params/demo.yml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise LayerwiseError(f"not valid YAML{at}: {getattr(exc, 'problem', exc)}", str(path),
                             "fix the YAML syntax") from None
    params = parse_params(data, str(path))
    params._path = path.resolve()
    _check_paths(params, str(path))
    return params


def _check_paths(params: StudyParams, where: str) -> None:
    if params.model.kind == "embedded" and params.model.id not in EMBEDDED_MODELS:
        raise LayerwiseError(f"field 'model.id': unknown embedded model {params.model.id!r}", where,
                             f"use one of: {', '.join(EMBEDDED_MODELS)}")
    if params.model.kind == "local" and not params.resolve_path(params.model.id).is_dir():
        raise LayerwiseError(f"field 'model.id': local model directory {params.model.id!r} does not exist",
                             where, "give an existing directory, a Hub id such as camembert-base, or embedded:minilm")
    ds = params.dataset
    files = dict(ds.data_files or {})
    if ds.kind == "local" and ds.source:
        files["source"] = ds.source
    for key, value in files.items():
        p = params.resolve_path(value)
        if not p.exists():
            field = "dataset.source" if key == "source" else f"dataset.data_files.{key}"
            raise LayerwiseError(f"field '{field}': file {value!r} does not exist", where,
                                 "give an existing CSV/TSV/JSONL/Parquet file (relative paths are taken from "
                                 "the working directory or the params file's folder)")
        if p.is_file() and p.suffix.lower() not in LOCAL_DATA_SUFFIXES:
            raise LayerwiseError(f"field '{key}': unsupported file type {p.suffix!r}", where,
                                 f"use one of {', '.join(LOCAL_DATA_SUFFIXES)}")

