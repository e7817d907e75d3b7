"""Params files: one YAML per model study, validated with pydantic.

A params file names a model (Hub id, local directory or ``embedded:minilm``), a dataset (Hub id,
local CSV/TSV/JSONL/Parquet files or ``embedded:demo-fr``), fine-tuning settings and analysis
settings. Defaults follow the original study (5000 train / 1000 test examples, 1 epoch, seed 42).
"""

from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from ..core.errors import LayerwiseError
from ..core.tables import ORIGINAL_LAYERS, POOLINGS

EMBEDDED_MODELS = ("embedded:minilm",)
EMBEDDED_DATASETS = ("embedded:demo-fr",)
LOCAL_DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
State = Literal["pretrained", "finetuned", "random"]
#: a pooling's stored name (core.tables.POOLINGS; a test keeps the two equal)
PoolingName = Literal[POOLINGS]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: the original study's models (``original_study:`` in a params file; their published figures are in
#: :mod:`layerwise.book.original`)
ORIGINAL_STUDIES = ("camembert", "flaubert")
#: random draws (init seeds) of the random-weights state when ``analysis.random_draws`` is not given
DEFAULT_RANDOM_DRAWS = 3
#: fractions of the training steps at which the fine-tuning keeps the pooled embeddings when
#: ``finetune.checkpoints`` is not given (the start, early, a quarter, half way, the end)
DEFAULT_CHECKPOINTS = (0.0, 0.1, 0.25, 0.5, 1.0)


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
    maps split names to files. CSV, TSV, JSONL/JSON and Parquet are read; text files are decoded with
    ``encoding`` (default ``utf-8``; e.g. ``latin-1`` or ``cp1252`` for older spreadsheet exports).
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
    encoding: str = Field("utf-8", min_length=1, description="text encoding of local CSV/TSV/JSON files")
    class_names: list[str] | None = Field(
        None, description="display names of the classes in charts and text, by label id (e.g. [negative, positive] "
                          "for 0/1 labels); default: the dataset's label names. Display only: not in any cache key")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except (LookupError, ValueError):
            raise ValueError(f"unknown text encoding {value[:40]!r} (use e.g. utf-8, latin-1, cp1252)") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        if not self.source and not self.data_files:
            raise ValueError("give either 'source' or 'data_files'")
        if self.source and self.data_files:
            raise ValueError("give 'source' or 'data_files', not both")
        if self.source and self.source.startswith("embedded:") and self.source not in EMBEDDED_DATASETS:
            raise ValueError(f"unknown embedded dataset {self.source!r} (known: {', '.join(EMBEDDED_DATASETS)})")
        return self

    selection_seed: int = Field(42, description="RNG seed of the data selection (train/test/probe shuffles), "
                                "the same for every fine-tuning seed; default 42, or `finetune.seed` when a "
                                "params file gives that old one-seed key and no selection_seed")

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
    num_probe: int = Field(0, ge=0, description="probe-pool examples, disjoint from the fine-tuning and test "
                           "examples: every probe and MDL code trains on them (0: the probes fall back to the "
                           "fine-tuning examples, which the fine-tuned model has memorised)")
    epochs: float = Field(1.0, gt=0, description="original study flag -n")
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    batch_size: int = Field(8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_length: int = Field(512, ge=8, description="truncation length; batches are padded dynamically")
    logging_steps: int = Field(10, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1,
                             description="fine-tuning seeds: each is trained, cached, analysed and probed on its "
                             "own (the old key `seed: N` is read as `seeds: [N]`)")
    precision: Precision = Field("auto", description="auto (bf16 on CUDA and on CPUs with AMX/avx512_bf16, else "
                                 "fp32), fp32, bf16 or fp16 (CUDA only); see layerwise.core.precision")
    checkpoints: list[float] = Field(
        default_factory=lambda: list(DEFAULT_CHECKPOINTS),
        description="fractions of the training steps (in [0, 1], ascending, each once) at which the pooled "
        "embeddings of the probe-pool and test sentences are kept during fine-tuning, every layer and pooling "
        "(the trajectory of the representations: 0 is the pretrained model, 1 the fine-tuned one; fraction f "
        "is step round(f * steps)); [] keeps none. See layerwise.model.trajectory")

    @field_validator("checkpoints")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        """Each a fraction in [0, 1] (finite), strictly ascending: the order the steps are reached in."""
        bad = [f for f in value if not (math.isfinite(f) and 0.0 <= f <= 1.0)]
        if bad:
            raise ValueError(f"checkpoints are fractions of the training steps in [0, 1] (got {bad}); "
                             "e.g. [0, 0.1, 0.25, 0.5, 1], or [] for none")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"checkpoints must be ascending with no fraction twice (got {value}); "
                             f"e.g. {sorted(set(value))}")
        return [float(f) for f in value]

    @model_validator(mode="before")
    @classmethod
    def _one_seed(cls, data: Any) -> Any:
        """The old key ``seed: N`` is ``seeds: [N]`` (both at once is an error)."""
        if isinstance(data, dict) and "seed" in data:
            if "seeds" in data:
                raise ValueError("give `seeds: [...]` or the old `seed: N`, not both")
            data = {**{k: v for k, v in data.items() if k != "seed"}, "seeds": [data["seed"]]}
        return data

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("fine-tuning seeds must be distinct")
        return seeds

    @property
    def seed(self) -> int:
        """The first fine-tuning seed (the only one of a one-seed study)."""
        return self.seeds[0]

    def for_seed(self, seed: int) -> "FinetuneSpec":
        """These settings with the one fine-tuning seed ``seed``."""
        return self.model_copy(update={"seeds": [int(seed)]})


class AnalysisSpec(_Strict):
    """What the geometry engine and the probes compute: the one settings object of the analysis
    (the engine reads it directly; its defaults are the only ones).

    Which settings feed which cache key: every field is in exactly one of :data:`GEOMETRY_ONLY_FIELDS`
    (the geometry engine's key), :data:`PROBE_ONLY_FIELDS` (the probes' key), :data:`SHARED_FIELDS`
    (both keys) and :data:`UNKEYED_FIELDS` (no key: they change no result); :data:`GEOMETRY_FIELDS` and
    :data:`PROBE_FIELDS` are the two keys' fields.
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
    baseline_tokens: int = Field(2000, gt=1, description="tokens drawn uniformly over all analysed tokens that "
                                 "the baseline pairs are made of (token-weighted, as Ethayarajh 2019)")
    self_similarity_min_count: int = Field(5, ge=2, description="a word enters the self-similarity when it occurs "
                                           "in at least this many analysed sentences (Ethayarajh 2019: 5)")
    self_similarity_occurrences: int = Field(10, ge=2, description="occurrences (sentences) kept per word")
    self_similarity_words: int = Field(300, gt=0, description="words kept for the self-similarity (a random "
                                       "subset when more qualify)")
    cosine_sample: int = Field(5000, gt=0, description="pairwise cosines kept per layer for plots")
    hist_bins: int = Field(32768, ge=16, description="histogram bins on [-1, 1] for the cosine quantiles")
    pool_tokens: int | None = Field(None, gt=0, description="tokens kept per sampled sentence "
                                    "(default max(8, 2 ceil(token_sample / sample_sentences)))")
    top_dims: int = Field(10, gt=0, description="rogue dimensions listed per layer")
    probe_seeds: int = Field(5, gt=0, description="seeds of the MLP probe (80 % subsamples of the probe pool)")
    probe_retrainings: int = Field(20, gt=1, description="bootstrap retrainings of the linear probes, the "
                                   "control task and the lexical baseline (their CIs cross them with test resampling)")
    bootstrap: int = Field(1000, ge=100)
    original_layers: list[int] = Field(default_factory=lambda: list(ORIGINAL_LAYERS),
                                       validation_alias=AliasChoices("original_layers", "seed_layers"),
                                       description="layers of the original study's probe grid (clipped to the "
                                       "model depth); the old key `seed_layers` is accepted")
    seed: int = Field(0, description="RNG seed of every sampling, permutation and bootstrap")
    random_draws: list[int] | None = Field(
        None, min_length=1, description="init seeds of the random-weights state: each is drawn, analysed and "
        "probed on its own, and the random state is their mean with a seed-and-sentence interval, like the "
        "fine-tuning seeds (a count N is read as [seed, seed+1, ..., seed+N-1]; default: "
        f"{DEFAULT_RANDOM_DRAWS} draws from `seed`)")
    precision: Precision = Field("auto", description="forward passes of the engine: auto (fp32 unless "
                                 "layerwise.core.precision.AUTO_ANALYSIS_BF16), fp32, bf16 or fp16 (CUDA only)")
    poolings: list[PoolingName] | None = Field(
        None, min_length=1, description=f"sentence poolings of the stored embeddings, among {list(POOLINGS)} (first "
        "token, mean over the non-padding tokens, last non-padding token), the first one the study's primary pooling "
        "(MDL, memorisation, class cones, the Findings' headline); every probe, control, class geometry and "
        "similarity is computed for each. Default: the model's own pooling (its sentence-transformers pooling "
        "config) first, then the others of its kind: cls and mean for an encoder, last and mean for a decoder")

    beyond: bool = Field(True, description="the analyses beyond the two end points: layer swaps (task accuracy "
                         "with layers set back to their pretrained weights), probes for properties of the sentence "
                         "itself (length, a word's presence, two adjacent words swapped) and the primary statistics "
                         "per domain; the checkpoints during training are `finetune.checkpoints`")

    @field_validator("random_draws", mode="before")
    @classmethod
    def _draw_count(cls, value: Any, info: ValidationInfo) -> Any:
        """A count N is the draws ``[seed, ..., seed + N - 1]``; a list must hold distinct seeds."""
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("random_draws: give at least one draw (a count >= 1 or a list of seeds)")
            return [int(info.data.get("seed", 0)) + i for i in range(value)]
        if isinstance(value, list) and len(set(map(str, value))) != len(value):
            raise ValueError("random draws must be distinct seeds")
        return value

    @field_validator("poolings")
    @classmethod
    def _distinct_poolings(cls, value: Any) -> Any:
        """Each pooling once."""
        if value is not None and len(set(value)) != len(value):
            raise ValueError("poolings: name each pooling once")
        return value

    @property
    def draws(self) -> list[int]:
        """The random state's init seeds (``random_draws``, or :data:`DEFAULT_RANDOM_DRAWS` from ``seed``)."""
        if self.random_draws is not None:
            return [int(s) for s in self.random_draws]
        return [int(self.seed) + i for i in range(DEFAULT_RANDOM_DRAWS)]

    def tokens_per_sentence(self, n_sentences: int) -> int:
        """Tokens kept per sampled sentence (``pool_tokens`` or its default)."""
        if self.pool_tokens is not None:
            return int(self.pool_tokens)
        return max(8, 2 * math.ceil(self.token_sample / max(1, n_sentences)))

    def geometry_payload(self) -> dict[str, Any]:
        """The settings the geometry engine's results depend on (its cache key; the random draws resolved)."""
        payload = {k: self.draws if k == "random_draws" else getattr(self, k) for k in GEOMETRY_FIELDS}
        if payload["poolings"] is None:  # unset: the key as before the setting existed (the resolved list is
            del payload["poolings"]       # a function of the model, whose key the geometry key holds)
        return payload

    def probe_payload(self) -> dict[str, Any]:
        """The settings only the probes and statistics depend on (their cache key)."""
        return {k: getattr(self, k) for k in PROBE_FIELDS}


#: The partition of the AnalysisSpec fields (``tests/test_config.py`` checks that every field is in exactly
#: one of these four parts): the settings only the geometry engine reads (its cache key) ...
GEOMETRY_ONLY_FIELDS = ("states", "num_sentences", "max_length", "token_sample", "sample_sentences", "baseline_pairs",
                        "cosine_sample", "hist_bins", "pool_tokens", "top_dims", "baseline_tokens",
                        "self_similarity_min_count", "self_similarity_occurrences", "self_similarity_words",
                        "precision", "random_draws", "poolings")
#: ... the settings only the probes and statistics read (their cache key) ...
PROBE_ONLY_FIELDS = ("probe_seeds", "probe_retrainings", "bootstrap")
#: ... the settings both read (in both keys) ...
SHARED_FIELDS = ("seed",)
#: ... and the settings no cached result depends on (no cache key): the batch size (the engine is tested
#: to be batch-size invariant), what only the report reads (the original study's layer grid) and whether the
#: analyses beyond the end points run (their own step, keyed apart: ``study.beyond``).
UNKEYED_FIELDS = ("batch_size", "original_layers", "beyond")
#: AnalysisSpec fields that feed the geometry engine's cache key.
GEOMETRY_FIELDS = GEOMETRY_ONLY_FIELDS + SHARED_FIELDS
#: AnalysisSpec fields that feed the probes' cache key.
PROBE_FIELDS = PROBE_ONLY_FIELDS + SHARED_FIELDS


class StudyParams(_Strict):
    """One model study: the whole content of a ``params/*.yml`` file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="slug used in paths and tables")
    title: str | None = None
    model: ModelSpec
    dataset: DatasetSpec
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    original_study: str | None = Field(None, description="the original study's model this study runs "
                                       "(camembert or flaubert): the report sets its published figures beside "
                                       "ours (layerwise.book.original); none by default. Feeds no cache key")

    _path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _selection_seed(cls, data: Any) -> Any:
        """A params file giving only the old ``finetune.seed: N`` keeps selecting its data with N
        (``dataset.selection_seed`` defaults to it; otherwise to 42)."""
        if not isinstance(data, dict):
            return data
        ft, ds = data.get("finetune"), data.get("dataset")
        if isinstance(ft, dict) and "seed" in ft and isinstance(ds, dict) and "selection_seed" not in ds:
            data = {**data, "dataset": {**ds, "selection_seed": ft["seed"]}}
        return data

    @field_validator("original_study")
    @classmethod
    def _known_original(cls, value: str | None) -> str | None:
        if value is not None and value not in ORIGINAL_STUDIES:
            raise ValueError(f"unknown original study (allowed: {', '.join(ORIGINAL_STUDIES)}; "
                             "or leave the key out)")
        return value

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def where(self) -> str:
        """Where an error about these params points: their file, else their name."""
        return str(self._path) if self._path else f"params '{self.name}'"

    @property
    def display_name(self) -> str:
        return self.model.label or self.title or self.name

    def resolve_path(self, value: str) -> Path:
        """A relative path in a params file is taken from the working directory, else from the
        params file's directory."""
        p = _expand(value)
        if p.is_absolute() or _exists(p) or self._path is None:
            return p
        alt = self._path.parent / p
        return alt if _exists(alt) else p

    def data_payload(self) -> dict[str, Any]:
        """What determines the selected examples (for cache keys)."""
        # (the default encoding stays out of the key, so entries cached before the field existed still match)
        exclude = {"class_names"} | ({"encoding"} if self.dataset.encoding == "utf-8" else set())
        dataset = self.dataset.model_dump(exclude=exclude)
        # (num_probe enters only when set, so entries cached before the field existed still match)
        probe = {"num_probe": self.finetune.num_probe} if self.finetune.num_probe else {}
        # (the selection seed keeps its old place in the key: today's selections keep their hashes)
        dataset.pop("selection_seed", None)
        return {"dataset": dataset, "num_train": self.finetune.num_train,
                "num_test": self.finetune.num_test, **probe, "seed": self.dataset.selection_seed}

    def for_seed(self, seed: int) -> "StudyParams":
        """These params with the one fine-tuning seed ``seed`` (what one fine-tuning reads)."""
        out = self.model_copy(update={"finetune": self.finetune.for_seed(seed)})
        out._path = self._path
        return out


def _expand(value: str) -> Path:
    """``Path(value)`` with ``~`` expanded (kept as it is when there is no such user)."""
    try:
        return Path(value).expanduser()
    except (RuntimeError, KeyError, ValueError):
        return Path(value)


def _exists(p: Path, kind: str = "any") -> bool:
    """Whether ``p`` exists (a file or a directory for ``kind``); False for names the OS refuses
    (too long, a NUL byte) instead of an exception."""
    try:
        return p.is_file() if kind == "file" else p.is_dir() if kind == "dir" else p.exists()
    except (OSError, ValueError):
        return False


def _looks_like_path(value: str) -> bool:
    p = _expand(value)
    return (value.startswith((".", "/", "~")) or p.suffix.lower() in LOCAL_DATA_SUFFIXES
            or _exists(p) or "\\" in value)


def _loc_part(part: Any) -> str:
    text = str(part)
    return text if text.isprintable() and len(text) <= 60 else repr(text[:60])


def _describe_error(err: dict[str, Any], model_cls: type[BaseModel]) -> tuple[str, str, str]:
    loc = ".".join(_loc_part(x) for x in err["loc"]) or "(top level)"
    typ = err["type"]
    if typ == "extra_forbidden":
        parent = model_cls
        for part in err["loc"][:-1]:
            field = parent.model_fields.get(str(part))
            ann = getattr(field, "annotation", None)
            parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else parent
        allowed = ", ".join(parent.model_fields)
        return loc, f"unknown key {_loc_part(err['loc'][-1])!r}", f"remove it or use one of: {allowed}"
    if typ == "missing":
        return loc, "required key is missing", f"add '{err['loc'][-1]}:' to the file"
    got = err.get("input")
    got_s = f" (got {_short_repr(got)})" if not isinstance(got, (dict, list)) else ""
    msg = " ".join(str(err["msg"]).split())
    return loc, f"{msg}{got_s}", "correct the value (see params/demo.yml for an example)"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    if not _exists(path, "file"):
        raise LayerwiseError("params file not found", str(path),
                             "give the path of a YAML file such as params/demo.yml")
    data = _read_yaml(path)
    params = parse_params(data, str(path))
    params._path = path.resolve()
    _check_paths(params, str(path))
    return params


def _read_yaml(path: Path) -> Any:
    """The YAML content of ``path``; every way the bytes can be wrong is one LayerwiseError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LayerwiseError(f"params file cannot be read ({exc.strerror})", str(path),
                             "check the file's permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LayerwiseError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}", str(path),
                             "save the params file as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())[:200]
        raise LayerwiseError(f"not valid YAML{at}: {problem}", str(path), "fix the YAML syntax") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML types but cannot build (a date 2024-13-45)
        raise LayerwiseError(f"not valid YAML: {' '.join(str(exc).split())[:200]}", str(path),
                             "quote the value to make it a string") from None
    except RecursionError:
        raise LayerwiseError("not valid YAML: nested too deeply", str(path), "flatten the file") from None


def _check_paths(params: StudyParams, where: str) -> None:
    if params.model.kind == "embedded" and params.model.id not in EMBEDDED_MODELS:
        raise LayerwiseError(f"field 'model.id': unknown embedded model {_short_repr(params.model.id)}", where,
                             f"use one of: {', '.join(EMBEDDED_MODELS)}")
    if params.model.kind == "local" and not _exists(params.resolve_path(params.model.id), "dir"):
        raise LayerwiseError(f"field 'model.id': local model directory {_short_repr(params.model.id)} does not exist",
                             where, "give an existing directory, a Hub id such as camembert-base, or embedded:minilm")
    ds = params.dataset
    files = dict(ds.data_files or {})
    if ds.kind == "local" and ds.source:
        files["source"] = ds.source
    for key, value in files.items():
        p = params.resolve_path(value)
        field = "dataset.source" if key == "source" else f"dataset.data_files.{_loc_part(key)}"
        if not _exists(p):
            raise LayerwiseError(f"field '{field}': file {_short_repr(value)} does not exist", where,
                                 "give an existing CSV/TSV/JSONL/Parquet file (relative paths are taken from "
                                 "the working directory or the params file's folder)")
        if not _exists(p, "file") or p.suffix.lower() not in LOCAL_DATA_SUFFIXES:
            what = (f"unsupported file type {_short_repr(p.suffix)}" if _exists(p, "file")
                    else f"{_short_repr(value)} is not a file")
            raise LayerwiseError(f"field '{field}': {what}", where,
                                 f"give a file ending in one of {', '.join(LOCAL_DATA_SUFFIXES)}")

