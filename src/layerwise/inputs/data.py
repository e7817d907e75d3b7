"""Datasets: the embedded French demo corpus, Hub datasets and local files, reduced to a
deterministic train/test selection with columns ``text``, ``label`` (int) and, when known, ``domain``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_local_files, local_read_error, split_file
from .config import StudyParams
from .duplicates import DuplicateReport, conflicting_labels, duplicate_groups, first_copies, near_duplicates, normalise
from ..core.errors import LayerwiseError
from ..core.repro import content_hash

log = logging.getLogger(__name__)
RESOURCES = Path(__file__).parents[1] / "resources"
_BUILDERS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".jsonl": ("json", {}),
             ".json": ("json", {}), ".parquet": ("parquet", {})}
MAX_EMPTY_FRACTION = 0.05


@dataclass
class Splits:
    """The selected examples: ``train`` (fine-tuning), ``probe`` (the probe pool: the probes and MDL train on
    it, the fine-tuning never sees it; empty when ``finetune.num_probe`` is 0) and ``test`` are
    ``datasets.Dataset`` objects with columns ``text``, ``label`` (0..K-1), ``index`` (row in the source
    split, counted from 0 before any row is dropped) and optionally ``domain``. The three are disjoint."""

    train: Any
    test: Any
    label_names: list[str]
    selection: dict[str, Any] = field(default_factory=dict)
    probe: Any = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def demo_corpus_files() -> list[Path]:
    """The JSONL files of the embedded ``embedded:demo-fr`` corpus (one per domain)."""
    files = sorted((RESOURCES / "demo_fr").glob("*.jsonl"))
    if not files:
        raise LayerwiseError("the embedded demo corpus is missing from the installed package",
                             str(RESOURCES / "demo_fr"), "reinstall layerwise (pip install -e .)")
    return files


def load_raw(params: StudyParams):
    """Load the source data as a ``datasets.DatasetDict`` (no selection yet)."""
    import datasets

    ds = params.dataset
    where = params.where
    datasets.disable_progress_bars() if not log.isEnabledFor(logging.INFO) else None
    try:
        if ds.kind == "embedded":
            return datasets.load_dataset("json", data_files={"train": [str(p) for p in demo_corpus_files()]})
        if ds.kind == "local":
            return _load_local(params, where)
        return datasets.load_dataset(ds.source, ds.config, revision=ds.revision)
    except LayerwiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - the datasets library raises many kinds
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        fix = ("check the network connection, or download the data once with network, or point "
               "'dataset.data_files' at local CSV/JSONL/Parquet files, or use 'embedded:demo-fr'")
        if "scripts are no longer supported" in msg:
            fix = ("this dataset needs a loading script, which datasets>=4 no longer runs; use a parquet "
                   "dataset such as tblard/allocine or local files in 'dataset.data_files'")
        raise LayerwiseError(f"could not load dataset {ds.source or ds.data_files!r}: {msg}", where, fix) from None


def _load_local(params: StudyParams, where: str):
    """Local files: checked first (empty, header only), read with ``dataset.encoding``; a read error
    names the file and, where it can be found, the line (never the network)."""
    import datasets

    ds = params.dataset
    files = ({k: str(params.resolve_path(v)) for k, v in ds.data_files.items()} if ds.data_files
             else {"train": str(params.resolve_path(ds.source))})
    suffixes = {Path(f).suffix.lower() for f in files.values()}
    if len(suffixes) != 1 or next(iter(suffixes)) not in _BUILDERS:
        raise LayerwiseError(f"cannot read files with suffixes {sorted(suffixes)}", where,
                             "use CSV, TSV, JSONL or Parquet files, all of one kind")
    builder, kwargs = _BUILDERS[suffixes.pop()]
    kwargs = {**kwargs, "encoding": ds.encoding} if builder != "parquet" else kwargs
    check_local_files(params, files, builder)
    quiet = logging.getLogger("datasets")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # (datasets logs each read error itself, twice)
    try:
        return datasets.load_dataset(builder, data_files=files, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any reader error: explained by file and line, or its root cause
        raise local_read_error(params, files, builder, exc) from None
    finally:
        quiet.setLevel(level)


def _label_mapping(column_values: list[Any], feature: Any) -> tuple[list[str], dict[Any, int]]:
    names = getattr(feature, "names", None)
    if names:
        return list(names), {i: i for i in range(len(names))}
    uniq = sorted({v for v in column_values if v is not None}, key=lambda v: (str(type(v)), v))
    return [str(u) for u in uniq], {u: i for i, u in enumerate(uniq)}


def _clean_split(dset, params: StudyParams, split: str):
    """The split with an ``index`` column (its row in the source, counted from 0, set before anything
    is dropped), without empty texts (a few are dropped with a warning), its labels checked."""
    ds = params.dataset
    where = params.where
    cols = dset.column_names
    source = split_file(params, split)
    in_split = f"split {split!r}" + (f" ({source})" if source else "")
    for key, col in (("text_column", ds.text_column), ("label_column", ds.label_column),
                     ("domain_column", ds.domain_column)):
        if col is not None and col not in cols:
            shown = ", ".join(c if c.isprintable() else repr(c) for c in cols)[:300]
            raise LayerwiseError(f"field 'dataset.{key}': column {col!r} not found in {in_split} "
                                 f"(columns: {shown})", where, f"set dataset.{key} to one of them")
    dset = dset.add_column("index", list(range(len(dset))))
    texts = list(dset[ds.text_column])
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        if len(bad) > MAX_EMPTY_FRACTION * len(texts):
            raise LayerwiseError(f"{len(bad)} of {len(texts)} texts in {in_split} are empty or not text",
                                 where, f"clean the data or check that '{ds.text_column}' is the text column")
        log.warning("%s: dropping %d empty texts from %s", where, len(bad), in_split)
        keep = sorted(set(range(len(texts))) - set(bad))
        dset = dset.select(keep)
    _check_labels(list(dset[ds.label_column]), list(dset["index"]), f"column {ds.label_column!r} of {in_split}",
                  source or where)
    return dset


def _check_labels(labels: list[Any], index: list[int], what: str, where: str) -> None:
    """Every row has a label, and labels are strings or numbers (mapped to 0..K-1 later)."""
    missing = [i for i, v in zip(index, labels) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        rows = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise LayerwiseError(f"field 'dataset.label_column': {what} has no label in {len(missing)} of "
                             f"{len(labels)} rows (rows {rows}, counted from 0 without the header)", where,
                             "fill in the missing labels or remove those rows")
    wrong = next(((i, v) for i, v in zip(index, labels) if not isinstance(v, (str, int, float))), None)
    if wrong is not None:
        raise LayerwiseError(f"field 'dataset.label_column': labels of {what} must be strings or numbers; row "
                             f"{wrong[0]} holds {type(wrong[1]).__name__} {repr(wrong[1])[:60]}", where,
                             "give one class name or number per row")


def _check_sizes(params: StudyParams, num_train: int, num_test: int, n_train: int, n_test: int,
                 held_out: bool, dropped: int = 0) -> None:
    """Enough rows for ``num_train`` and ``num_test``, the error naming the field at fault. With the
    test examples held out of the train split, both come from its ``n_train`` rows. The counts are of
    distinct texts: ``dropped`` repeated rows are not counted (the message says so)."""
    ds, where = params.dataset, params.where
    if dropped:
        where = f"{where} (after {dropped} duplicate rows were removed)"
    if not held_out:
        for field_name, want, have, split in (("finetune.num_train", num_train, n_train, ds.train_split),
                                              ("finetune.num_test", num_test, n_test, ds.test_split)):
            if want > have:
                raise LayerwiseError(f"field '{field_name}': asks for {want} examples but split {split!r} has "
                                     f"{have}", where, f"set {field_name} to at most {have}")
        return
    if num_train + num_test <= n_train:
        return
    rows = f"split {ds.train_split!r} has {n_train} rows (the {num_test} test examples are held out of it)"
    if n_train - num_test < 2:
        raise LayerwiseError(f"field 'finetune.num_test': {num_test} test examples leave "
                             f"{max(n_train - num_test, 0)} of {n_train} rows of split {ds.train_split!r} "
                             f"for the {num_train} training examples", where,
                             f"set finetune.num_test to at most {max(n_train - num_train, 1)}")
    raise LayerwiseError(f"field 'finetune.num_train': asks for {num_train} examples but {rows}, leaving "
                         f"{n_train - num_test}", where,
                         f"set finetune.num_train to at most {n_train - num_test}"
                         + (f" or finetune.num_test to at most {n_train - num_train}" if n_train - num_train >= 1
                            else ""))


def _orders(raw, params: StudyParams, num_train: int, num_test: int):
    """The cleaned train and test sources (with their ``index`` column), their shuffled row orders
    without repeated texts (:func:`duplicates.first_copies`: the first copy of each text in the order
    is kept, and a training row whose text is a selected test sentence is dropped), whether the test
    rows were held out of the train split (when the source has no test split) and the rows dropped.
    Without repeated texts the orders are the plain shuffles (so selections, and keys, stay as they were)."""
    ds = params.dataset
    where = params.where
    if ds.train_split not in raw:
        raise LayerwiseError(f"field 'dataset.train_split': split {ds.train_split!r} not found "
                             f"(splits: {', '.join(raw)})", where, "set dataset.train_split to one of them")
    train_all = _clean_split(raw[ds.train_split], params, ds.train_split)
    train_keys = [normalise(t) for t in train_all[ds.text_column]]
    rng = np.random.default_rng(params.dataset.selection_seed)
    if ds.test_split in raw:
        test_all = _clean_split(raw[ds.test_split], params, ds.test_split)
        test_keys = [normalise(t) for t in test_all[ds.text_column]]
        test_order, dropped_test = first_copies(rng.permutation(len(test_all)), test_keys)
        train_order, dropped = first_copies(rng.permutation(len(train_all)), train_keys,
                                            taken={test_keys[i] for i in test_order[:num_test]})
        dropped += dropped_test
        held_out = False
        _check_sizes(params, num_train, num_test, len(train_order), len(test_order), held_out, dropped)
    else:
        order, dropped = first_copies(rng.permutation(len(train_all)), train_keys)
        test_all = train_all
        test_order, train_order = order[:num_test], order[num_test:]
        held_out = True
        _check_sizes(params, num_train, num_test, len(order), len(order), held_out, dropped)
    return train_all, test_all, train_order, test_order, held_out, dropped


def _tidy(d, ds, mapping: dict[Any, int]):
    """The selected rows as ``text``, ``label`` (0..K-1), ``index`` and, when known, ``domain``."""
    import datasets

    out = {"text": list(d[ds.text_column]), "label": [mapping[v] for v in d[ds.label_column]],
           "index": list(d["index"])}
    if ds.domain_column:
        out["domain"] = [str(v) for v in d[ds.domain_column]]
    elif "domain" in d.column_names:
        out["domain"] = [str(v) for v in d["domain"]]
    return datasets.Dataset.from_dict(out)


def _check_probe_size(params: StudyParams, num_train: int, num_probe: int, left: int) -> None:
    """Enough rows of the train source for the probe pool after the fine-tuning examples."""
    if num_probe > max(left - num_train, 0):
        have = max(left - num_train, 0)
        raise LayerwiseError(f"field 'finetune.num_probe': asks for {num_probe} probe-pool examples but the "
                             f"{num_train} fine-tuning examples leave {have} rows of split "
                             f"{params.dataset.train_split!r}", params.where,
                             f"set finetune.num_probe to at most {have} (or lower finetune.num_train)")


def load_splits(params: StudyParams, num_train: int | None = None, num_test: int | None = None) -> Splits:
    """Deterministic selection: shuffle each split with ``dataset.selection_seed`` and take the first
    ``num_train`` / ``num_test`` rows; the probe pool is the next ``finetune.num_probe`` rows of the
    shuffled train source (after the fine-tuning rows, so the three parts are disjoint). When the source
    has no test split, ``num_test`` rows are held out from the train split first. Raises
    :class:`LayerwiseError` for missing columns, empty texts, a single class or too few examples."""
    ds = params.dataset
    num_train = num_train or params.finetune.num_train
    num_test = num_test or params.finetune.num_test
    num_probe = params.finetune.num_probe
    where = params.where
    raw = load_raw(params)
    train_all, test_all, train_order, test_order, held_out, dropped = _orders(raw, params, num_train, num_test)
    _check_probe_size(params, num_train, num_probe, len(train_order))
    label_feature = raw[ds.train_split].features.get(ds.label_column)
    names, mapping = _label_mapping(list(train_all[ds.label_column]) + list(test_all[ds.label_column]), label_feature)
    if len(names) < 2:
        raise LayerwiseError(f"field 'dataset.label_column': column {ds.label_column!r} has a single class",
                             where, "a classification study needs at least two labels")
    check_class_names(params, names)
    train = _tidy(train_all.select(train_order[:num_train]), ds, mapping)
    test = _tidy(test_all.select(test_order[:num_test]), ds, mapping)
    probe = _tidy(train_all.select(train_order[num_train:num_train + num_probe]), ds, mapping)
    for name, part in (("train", train), ("test", test), ("probe", probe)):
        if len(set(part["label"])) < 2 and (name != "probe" or num_probe):
            raise LayerwiseError(f"the selected {name} examples hold a single class", where,
                                 "select more examples (finetune.num_train / num_test / num_probe) or shuffle the data")
    selection = {"train_index": list(train["index"]), "test_index": list(test["index"]), "held_out_test": held_out,
                 "label_names": names}
    if num_probe:  # (only when set, so selections made before the probe pool existed keep their hash)
        selection["probe_index"] = list(probe["index"])
    selection["hash"] = content_hash({"payload": params.data_payload(), "num_train": num_train,
                                      "num_test": num_test, **selection})
    # (after the hash: what the selection did with repeated texts is in its rows already)
    selection["duplicates"] = _duplicate_report(params, train_all, test_all, held_out, dropped,
                                                (train, probe, test)).as_dict()
    return Splits(train=train, test=test, label_names=names, selection=selection, probe=probe)


def duplicates_note(params: StudyParams, splits: Splits) -> str | None:
    """The warning a run logs when the selection removed repeated texts or found near-duplicates (None
    when it did neither); ``check`` prints the same sentence on its own line instead."""
    dup = splits.selection.get("duplicates") or {}
    if not (dup.get("removed") or dup.get("near_test")):
        return None
    return f"{params.where}: " + DuplicateReport.from_dict(dup).sentence()


def check_class_names(params: StudyParams, names: list[str]) -> None:
    """``dataset.class_names`` (display names, optional) gives one name per class of the data."""
    given = params.dataset.class_names
    if given and len(given) != len(names):
        shown = f"{len(given)} name" + ("s" if len(given) != 1 else "")
        raise LayerwiseError(f"field 'dataset.class_names': {shown} ({given}) for the {len(names)} classes of the "
                             f"data ({names})", params.where,
                             f"give one display name per class, in this order: {len(names)} names, or remove the field")


def _duplicate_report(params: StudyParams, train_all, test_all, held_out: bool, dropped: int,
                      parts: tuple) -> DuplicateReport:
    """What the selection did with repeated texts and how many test sentences have a near-duplicate among
    the fine-tuning and probe sentences (``check`` prints it, a run logs it: :func:`duplicates_note`)."""
    ds = params.dataset
    sources = [train_all] if held_out else [train_all, test_all]
    keys = [normalise(t) for d in sources for t in d[ds.text_column]]
    labels = [v for d in sources for v in d[ds.label_column]]
    groups, _ = duplicate_groups(keys)
    train, probe, test = parts
    near = near_duplicates(list(test["text"]), list(train["text"]) + (list(probe["text"]) if len(probe) else []))
    return DuplicateReport(removed=dropped, groups=groups, conflicting=conflicting_labels(keys, labels),
                           near_test=near)
