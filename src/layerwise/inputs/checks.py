"""The checks of the inputs alone: the local data files (empty, header only, a delimiter that does not
match the file's suffix, not decodable with ``dataset.encoding``, malformed lines), the settings
against the model's position limit, the states the chapters need, and the sentences the geometry
reads. :mod:`layerwise.study.preflight` runs them with the checks that need the model and the cache
(``layerwise check``).

Every problem is one :class:`LayerwiseError` naming the file (params or data) and the field or line
at fault; a local file problem never points at the network.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any

from ..core.errors import LayerwiseError
from .config import StudyParams

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
