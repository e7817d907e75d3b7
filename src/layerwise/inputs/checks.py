"""What ``layerwise check`` can know before any work: the model's position limit against the
``max_length`` settings, the states the chapters need, and the local data files (empty, header only,
a delimiter that does not match the file's suffix, not decodable with ``dataset.encoding``, malformed
lines), then the selection itself (labels, class names, sizes, repeated texts), the sentences the
geometry reads, and the cache folder (a writable folder with room for the run: :func:`space_needed`).

Every problem is one :class:`LayerwiseError` naming the file (params or data) and the field or line
at fault; a local file problem never points at the network.
"""

from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import disk
from .config import StudyParams
from ..core.errors import LayerwiseError

#: bytes read to decide "empty" / "header only" (a larger text file has data rows)
HEAD_BYTES = 1 << 16
#: model types whose position ids start after the padding index (two positions fewer usable)
_PADDING_OFFSET_TYPES = ("roberta", "camembert", "xlm-roberta")


def one_line(text: str, limit: int = 240) -> str:
    """``text`` on one line (whitespace runs folded, control characters escaped), at most ``limit``
    characters."""
    flat = " ".join(str(text).split())
    flat = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ==================================================================================================
# Local data files
# ==================================================================================================

def split_file(params: StudyParams, split: str) -> str | None:
    """The local file a split is read from (None for embedded and Hub data)."""
    ds = params.dataset
    if ds.kind != "local":
        return None
    if ds.data_files:
        value = ds.data_files.get(split)
        return str(params.resolve_path(value)) if value else None
    return str(params.resolve_path(ds.source)) if split == "train" and ds.source else None


def _field(params: StudyParams, split: str) -> str:
    return f"dataset.data_files.{split}" if params.dataset.data_files else "dataset.source"


def _file_problem(path: str, builder: str, encoding: str) -> tuple[str, str] | None:
    """``(what, fix)`` when ``path`` is empty, blank, header only or an unreadable Parquet file."""
    try:
        size = os.stat(path).st_size
        if builder == "parquet":
            return _parquet_problem(path) if size else ("the file is empty (0 bytes)", "give a Parquet file with rows")
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror or type(exc).__name__})", "check the file and its permissions"
    if size == 0:
        return "the file is empty (0 bytes)", "give a file with a header line and data rows" if builder == "csv" \
            else "give a file with one JSON object per line"
    text = head.decode(encoding, errors="replace")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "the file holds only blank lines", "give a file with data rows"
    if builder == "csv" and size <= HEAD_BYTES and len(lines) == 1:
        return "the file has a header line but no data rows", "add data rows (one example per line)"
    return _delimiter_problem(Path(path).suffix.lower(), lines[0]) if builder == "csv" else None


def _delimiter_problem(suffix: str, header: str) -> tuple[str, str] | None:
    """A header line whose delimiter is not the one the suffix stands for (``.csv``: commas, ``.tsv``:
    tabs): the reader would split every line wrongly."""
    if suffix == ".csv" and "," not in header:
        for sep, name in (("\t", "tab"), (";", "semicolon")):
            if sep in header:
                fix = ("rename it to .tsv (tab-separated), or save it with commas" if sep == "\t" else
                       "save it with commas (the reader of .csv files expects commas), or with tabs as .tsv")
                return (f"the header line is {name}-separated ({header[:60]!r}) but a .csv file is read "
                        "as comma-separated", fix)
    if suffix == ".tsv" and "\t" not in header and "," in header:
        return (f"the header line is comma-separated ({header[:60]!r}) but a .tsv file is read as "
                "tab-separated", "rename it to .csv, or save it with tabs")
    return None


def _parquet_problem(path: str) -> tuple[str, str] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"not a valid Parquet file ({one_line(exc, 160)})", "write it again with pandas.DataFrame.to_parquet"
    return ("the file has no rows", "give a Parquet file with rows") if rows == 0 else None


def check_local_files(params: StudyParams, files: dict[str, str], builder: str) -> None:
    """Cheap checks before the reader runs: every file non-empty, with rows beyond a header (and, for
    JSON, decodable with ``dataset.encoding``, which the JSON reader does not check itself)."""
    for split, path in files.items():
        problem = _file_problem(path, builder, params.dataset.encoding)
        if problem is None and builder == "json":  # (pyarrow's JSON reader lets invalid UTF-8 through)
            problem = _decode_problem(path, params.dataset.encoding)
        if problem:
            what, fix = problem
            raise LayerwiseError(f"field '{_field(params, split)}': {what}", path, fix)


def _decode_problem(path: str, encoding: str) -> tuple[str, str] | None:
    """Decode ``path`` incrementally; the first undecodable byte with its line number, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line, done = 1, 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = line + chunk[: max(exc.start, 0)].count(b"\n")
                byte = chunk[exc.start] if 0 <= exc.start < len(chunk) else None
                shown = f"byte 0x{byte:02x}" if byte is not None else "a byte"
                return (f"not valid {encoding} text: {shown} at line {at} (byte offset {done + exc.start}; "
                        f"dataset.encoding is {encoding!r})",
                        "save the file as UTF-8, or set dataset.encoding in the params file to the file's "
                        "encoding (e.g. latin-1 or cp1252)")
            line += chunk.count(b"\n")
            done += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return (f"not valid {encoding} text: the file ends inside a character (dataset.encoding is "
                    f"{encoding!r})", "save the file as UTF-8 or set dataset.encoding to its encoding")
    return None


def _json_problem(path: str, encoding: str) -> tuple[str, str] | None:
    """The first line of a JSON-lines file (or record of a JSON array) that is not a JSON object."""
    text = Path(path).read_text(encoding=encoding)
    fix = "give one JSON object per line, such as {\"text\": \"...\", \"label\": 0}"
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return f"not valid JSON at line {getattr(exc, 'lineno', '?')}: {one_line(getattr(exc, 'msg', exc), 80)}", fix
        bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None) \
            if isinstance(records, list) else None
        return (f"record {bad} of the JSON array is not an object", fix) if bad is not None else None
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            return f"line {number} is not valid JSON ({one_line(getattr(exc, 'msg', exc), 80)})", fix
        if not isinstance(value, dict):
            return f"line {number} is a JSON {type(value).__name__}, not an object", fix
    return None


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def local_read_error(params: StudyParams, files: dict[str, str], builder: str, exc: BaseException) -> LayerwiseError:
    """The error to show when the reader failed on local ``files``: the file and line at fault where
    they can be found (encoding, JSON lines), else the reader's root cause, with a local fix."""
    encoding = params.dataset.encoding
    for split, path in files.items():
        problem = None
        try:
            if builder != "parquet":
                problem = _decode_problem(path, encoding)
                if problem is None and builder == "json":
                    problem = _json_problem(path, encoding)
        except OSError as err:
            problem = f"the file cannot be read ({err.strerror or type(err).__name__})", "check the file"
        if problem:
            return LayerwiseError(f"field '{_field(params, split)}': {problem[0]}", path, problem[1])
    root = _root_cause(exc)
    kind = {"csv": "CSV/TSV", "json": "JSON lines", "parquet": "Parquet"}[builder]
    where = ", ".join(dict.fromkeys(files.values()))
    return LayerwiseError(f"cannot read the data file ({type(root).__name__}: {one_line(root, 200)})", where,
                          f"check that it is a valid {kind} file with the columns named in the params file")


# ==================================================================================================
# Model and settings
# ==================================================================================================

def position_limit(config: Any) -> int | None:
    """Positions a model can embed (``max_position_embeddings``, less the padding offset of RoBERTa-like
    models); None when the config does not say."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    if getattr(config, "model_type", None) in _PADDING_OFFSET_TYPES:
        pad = getattr(config, "pad_token_id", None)
        n -= (pad if isinstance(pad, int) else 1) + 1
    return n


def model_config(params: StudyParams) -> tuple[str, Any]:
    """``(source, config)`` of the params' model: the errors of :func:`models.check_model_available`."""
    from transformers import AutoConfig

    from ..model.models import check_model_available, quiet_transformers

    source = check_model_available(params)
    with quiet_transformers():
        return source, AutoConfig.from_pretrained(source, revision=params.model.revision)


def check_lengths(params: StudyParams, limit: int | None) -> None:
    """``finetune.max_length`` and ``analysis.max_length`` within the model's positions."""
    if limit is None:
        return
    for field, value in (("finetune.max_length", params.finetune.max_length),
                         ("analysis.max_length", params.analysis.max_length)):
        if value > limit:
            raise LayerwiseError(f"field '{field}': {value} tokens is more than the {limit} positions of model "
                                 f"{params.model.id!r}", params.where, f"set {field} to at most {limit}")


def check_states(params: StudyParams) -> None:
    """The report chapters compare every state with ``pretrained`` (CKA, paired tests): it must be there."""
    states = params.analysis.states
    if "pretrained" not in states:
        raise LayerwiseError(f"field 'analysis.states': the report chapters compare every state with 'pretrained', "
                             f"which is missing (got {states})", params.where,
                             "add pretrained to analysis.states, e.g. [pretrained, finetuned, random]")


def sentences_note(params: StudyParams, n_test: int) -> str | None:
    """The warning when ``analysis.num_sentences`` asks for more test sentences than the selection has
    (the geometry then reads all ``n_test`` of them), else None."""
    want = params.analysis.num_sentences
    if want <= n_test:
        return None
    return (f"{params.where}: field 'analysis.num_sentences' asks for {want} test sentences but the selection has "
            f"{n_test}: the geometry statistics use {n_test} (set analysis.num_sentences to at most {n_test}, or "
            f"raise finetune.num_test)")


def check_cache() -> tuple[Path, int | None]:
    """The cache folder (created when missing) is a folder this process can write in: ``(path, free
    bytes)``. A path that is a file, a read-only or foreign folder is one :class:`LayerwiseError`."""
    import tempfile

    from ..core.repro import CACHE_ELSEWHERE, cache_root

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

    from ..model.models import quiet_transformers

    try:
        with torch.device("meta"), quiet_transformers():
            config.num_labels = num_labels
            model = AutoModelForSequenceClassification.from_config(config)
        return 4 * sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - an estimate only: an unknown architecture skips it
        return None


def space_needed(params: StudyParams, config: Any, splits: Any, to_train: int) -> dict[str, int] | None:
    """Bytes the run still writes to the cache, by part (None when the model's size is unknown):
    ``finetune`` the weights of each of the ``to_train`` seeds not in the cache yet, ``checkpoints`` the
    peak of the work folder while one trains (:data:`PEAK_CHECKPOINTS` checkpoints of
    :data:`CHECKPOINT_WEIGHTS` times the weights), ``results`` the stored float16 embeddings (first token
    and mean, every layer, every sentence, every engine state)."""
    weights = _weight_bytes(config, splits.num_labels)
    if weights is None:
        return None
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layers", 0) or 12) + 1
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "emb_dim", 0) or 768)
    texts = len(splits.train) + len(splits.test) + (len(splits.probe) if splits.probe is not None else 0)
    states = sum(len(params.finetune.seeds) if s == "finetuned" else 1 for s in params.analysis.states)
    return {"finetune": to_train * weights,
            "checkpoints": PEAK_CHECKPOINTS * CHECKPOINT_WEIGHTS * weights if to_train else 0,
            "results": 2 * 2 * texts * layers * hidden * states}


def _seeds_to_train(params: StudyParams, splits: Any) -> int:
    """Fine-tuning seeds of ``params`` without a complete cache entry."""
    from ..model.finetune import finetune_entry
    from ..model.models import model_source
    from ..core.repro import is_done

    if "finetuned" not in params.analysis.states:
        return 0
    source = model_source(params)
    return sum(not is_done(finetune_entry(params.for_seed(s), splits=splits, source=source))
               for s in params.finetune.seeds)


def check_space(params: StudyParams, config: Any, splits: Any, root: Path, free: int | None) -> dict[str, int] | None:
    """The estimate of :func:`space_needed` against the cache folder's free space: an error when the run
    cannot fit."""
    need = space_needed(params, config, splits, _seeds_to_train(params, splits))
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
    """Every check that costs no training: settings, model config, the cache folder, data files,
    labels and class names, sizes, repeated texts, and the cache's free space against the run's needs."""
    from .data import load_splits

    check_states(params)
    source, config = model_config(params)
    limit = position_limit(config)
    check_lengths(params, limit)
    root, free = check_cache()
    splits = load_splits(params)
    need = check_space(params, config, splits, root, free)
    note = sentences_note(params, len(splits.test))
    return CheckReport(params=params, source=source, positions=limit, splits=splits, cache=root, free=free,
                       need=need, warnings=[note] if note else [])
