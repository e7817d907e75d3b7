"""Tokenized training data: the original study's first step (``layerwise prepare``) and what fine-tuning reads.

``prepare(params, out_dir)`` tokenizes the selected train/test examples (truncated at
``finetune.max_length``, never padded: batches are padded when training) and saves them with
``datasets.DatasetDict.save_to_disk``, plus ``layerwise.json`` (params, selection, tokenizer
fingerprint, hash of the data files, provenance) and ``DONE.json``.

``load_prepared(path, ...)`` reads such a directory back as :class:`TrainData`, refusing data that was
tokenized for another tokenizer; ``from_splits`` wraps a selection not yet tokenized.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inputs.config import StudyParams
from ..inputs.data import Splits, load_splits
from ..core.errors import LayerwiseError
from .models import ModelSource, load_tokenizer, model_source
from ..core.repro import atomic_dir, atomic_write_json, content_hash, file_hash, provenance, verify_entry

PREPARED_INFO = "layerwise.json"
PREPARED_KIND = "layerwise-prepared"
#: Version of the layout of a prepared directory (recorded in ``layerwise.json``).
PREPARED_FORMAT = 2


@dataclass(frozen=True)
class TrainData:
    """Train/test splits for fine-tuning plus what identifies them. ``prepared`` describes the
    prepared directory they were read from (already tokenized), or is None (raw texts)."""

    train: Any
    test: Any
    label_names: list[str]
    selection: dict[str, Any]
    prepared: dict[str, Any] | None = None

    @classmethod
    def from_splits(cls, splits: Splits) -> TrainData:
        return cls(splits.train, splits.test, list(splits.label_names), splits.selection)


def tokenize(dset, tokenizer, max_length: int, *, padding: bool | str = False):
    """Add ``input_ids``/``attention_mask`` (truncated at ``max_length``; no padding unless asked)."""
    def enc(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length, padding=padding)

    return dset.map(enc, batched=True, desc=None)


def tokenizer_fingerprint(tokenizer) -> str:
    """Content hash of a tokenizer's vocabulary (identifies it whatever its path)."""
    return content_hash(sorted(tokenizer.get_vocab().items()))


def prepared_hash(path: Path) -> str:
    """Hash of the tokenized data files of a prepared directory (not of its timestamps)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix == ".arrow")
    return content_hash([(str(f.relative_to(path)), file_hash(f)) for f in files])


def check_replaceable(path: Path, marker: str, kind: str, flag: str) -> None:
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


def prepare(params: StudyParams, out_dir: str | os.PathLike, *, num_train: int | None = None,
            num_test: int | None = None, checkpoint: str | None = None, splits: Splits | None = None,
            source: ModelSource | None = None) -> Path:
    """Tokenize the selected train/test examples for the model (``checkpoint`` overrides the params'
    model) and write them atomically with ``DatasetDict.save_to_disk(out_dir)``. Texts are truncated
    at ``finetune.max_length`` and not padded (batches are padded when training). ``out_dir`` also
    receives ``layerwise.json`` (params, selection, tokenizer, provenance) and ``DONE.json``.
    Refuses to replace a non-empty directory that ``prepare`` did not write. ``splits`` and
    ``source``: the selection and model already resolved by the caller (loaded here otherwise)."""
    import datasets

    out = Path(out_dir).expanduser()
    check_replaceable(out, PREPARED_INFO, PREPARED_KIND, "OUT")
    source = source or model_source(params, checkpoint)
    tokenizer = load_tokenizer(source.path, revision=source.revision, where=params.where)
    splits = splits or load_splits(params, num_train=num_train, num_test=num_test)
    max_length = params.finetune.max_length
    dd = datasets.DatasetDict({"train": tokenize(splits.train, tokenizer, max_length),
                               "test": tokenize(splits.test, tokenizer, max_length)})
    with atomic_dir(out) as tmp:
        dd.save_to_disk(str(tmp))
        atomic_write_json(tmp / PREPARED_INFO, {
            "kind": PREPARED_KIND, "format": PREPARED_FORMAT, "params": params.model_dump(mode="json"),
            "params_path": str(params.path) if params.path else None, "selection": splits.selection,
            "label_names": splits.label_names, "num_train": len(splits.train), "num_test": len(splits.test),
            "max_length": max_length, "tokenizer_source": source.path, "tokenizer_revision": source.revision,
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), "data_hash": prepared_hash(tmp),
            **provenance()})
    return out


def _first_rows(dset, want: int | None, split: str, p: Path):
    if want is None:
        return dset
    if want > len(dset):
        raise LayerwiseError(f"asks for {want} {split} examples but {p} holds {len(dset)}", "-d/--data",
                             f"ask for at most {len(dset)} or prepare more (-a/-b)")
    return dset.select(range(want))


def load_prepared(path: str | os.PathLike, num_train: int | None, num_test: int | None, tokenizer) -> TrainData:
    """The first ``num_train``/``num_test`` rows (all when None) of a directory written by
    :func:`prepare`, checked to be complete and tokenized by ``tokenizer``."""
    import datasets

    p = Path(path).expanduser()
    if verify_entry(p).state != "ok" or not (p / PREPARED_INFO).is_file():  # a reader: moves nothing
        raise LayerwiseError(f"{p} is not a complete prepared data directory", "-d/--data",
                             "write it with `layerwise prepare PARAMS OUT` (an interrupted prepare leaves none)")
    info = json.loads((p / PREPARED_INFO).read_text())
    if info.get("tokenizer_fingerprint") != tokenizer_fingerprint(tokenizer):
        raise LayerwiseError(f"{p} was tokenized for {info.get('tokenizer_source')!r}, not for this model's tokenizer",
                             "-d/--data", "prepare the data with the same model (prepare -c CHECKPOINT)")
    dd = datasets.load_from_disk(str(p))
    train = _first_rows(dd["train"], num_train, "train", p)
    test = _first_rows(dd["test"], num_test, "test", p)
    selection = dict(info["selection"])
    selection["train_index"] = list(train["index"])
    selection["test_index"] = list(test["index"])
    selection["hash"] = content_hash({"prepared": info["selection"]["hash"], "num_train": len(train),
                                      "num_test": len(test)})
    prepared = {"path": str(p), "data_hash": prepared_hash(p), "max_length": info.get("max_length"),
                "tokenizer_source": info.get("tokenizer_source")}
    return TrainData(train, test, list(info["label_names"]), selection, prepared)
