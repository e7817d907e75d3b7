"""The caveats of one model study (issue 23), computed from its inputs and its stored embeddings: the
tokenizer's fit to the corpus, the pooling the model declares, the corpus's provenance, the overlap
between the fine-tuning, probe and test parts (:mod:`layerwise.inputs.caveats`) and the first token's
constancy between sentences per layer and state (:mod:`layerwise.measure.constancy`).

What needs the tokenizer or the embeddings is computed once and kept in a cache entry (``caveats/``, keyed
by the geometry entry, the weights, the truncation length and this code), so a cached study loads no
tokenizer; the pooling and the provenance are read from their small files at every load. A tokenizer that
cannot be loaded (a Hub model no longer in the local cache) leaves ``tokenizer`` None, with a warning,
and nothing is cached, so a later load with the tokenizer at hand fills it in."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import LayerwiseError
from ..core.tables import FIRST_TOKEN
from ..core.locks import cached_entry, entry_key, find_entry
from ..core.repro import atomic_dir, cache_root, code_hash, content_hash
from ..inputs import caveats
from ..inputs.config import StudyParams
from ..inputs.tokens import effective_max_length
from ..measure.constancy import first_token_constancy
from ..model.models import ModelSource, load_tokenizer, quiet_transformers

log = logging.getLogger(__name__)

#: the topics of ``manifest["caveats"]``, in the order the report states them
TOPICS = ("tokenizer", "first_token", "pooling", "provenance", "overlap")
#: the file of a caveats cache entry
FILE = "caveats.json"


def _states(entry: Path) -> list[str]:
    """The engine states stored in geometry entry ``entry`` (its ``embeddings_<state>.npz`` files)."""
    return sorted(p.name[len("embeddings_"):-len(".npz")] for p in entry.glob("embeddings_*.npz"))


def first_token(entry: Path) -> dict[str, list[dict[str, float]]]:
    """:func:`measure.constancy.first_token_constancy` on the test sentences of every state stored in
    geometry entry ``entry``: ``{state: [{"layer": int, "value": float}, ...]}`` (each fine-tuned seed its
    own state; the random draws one state ``random``, their mean per layer)."""
    out, draws = {}, {}
    for state in _states(entry):
        with np.load(entry / f"embeddings_{state}.npz") as z:
            if FIRST_TOKEN not in z.files:   # a study without first-token pooling (a decoder's default)
                continue
            frame = first_token_constancy(z[FIRST_TOKEN][z["split"] == "test"])
        rows = [{"layer": int(r.layer), "value": float(r.value)} for r in frame.itertuples()]
        if state.partition("@")[0] == "random":   # a random draw, random@<seed> (measure.seeds.state_label;
            # not imported: this step's key must not hold the engine's code)
            draws[state] = rows
        else:
            out[state] = rows
    if draws:
        layers = [[r["layer"] for r in rows] for rows in draws.values()]
        values = np.array([[r["value"] for r in rows] for rows in draws.values()], dtype=float)
        out["random"] = [{"layer": layer, "value": float(v)} for layer, v in zip(layers[0], values.mean(axis=0))]
    return out


def _tokenizer_fit(params: StudyParams, source: ModelSource, texts: list[str]) -> dict[str, Any] | None:
    """:func:`inputs.caveats.tokenizer_fit` with the pretrained model's tokenizer at the engine's truncation
    length; None (with a warning) when the tokenizer cannot be loaded."""
    try:
        tokenizer = load_tokenizer(source.path, revision=source.revision, where=params.where)
    except LayerwiseError as exc:
        log.warning("caveats: the tokenizer's fit is not computed (%s)", exc)
        return None
    with quiet_transformers():
        return caveats.tokenizer_fit(tokenizer, texts, effective_max_length(tokenizer, params.analysis.max_length))


def measured(params: StudyParams, source: ModelSource, entry: Path) -> dict[str, Any]:
    """The caveats read from the tokenizer and the stored embeddings of geometry entry ``entry``:
    ``tokenizer`` (on every sentence of the selection), ``overlap`` and ``first_token``."""
    with np.load(entry / f"embeddings_{_states(entry)[0]}.npz") as z:
        texts, split = [str(t) for t in z["text"]], [str(s) for s in z["split"]]
    return {"tokenizer": _tokenizer_fit(params, source, texts), "overlap": caveats.split_overlap(texts, split),
            "first_token": first_token(entry)}


def _key(params: StudyParams, source: ModelSource, entry: Path) -> str:
    """The caveats entry's key: the geometry entry, the weights, the truncation length and this code."""
    return content_hash({"analysis": entry_key(entry), "model": source.key, "max_length": params.analysis.max_length,
                         "code": code_hash("study.caveat_step")})


def _cached(params: StudyParams, source: ModelSource, entry: Path) -> dict[str, Any]:
    """:func:`measured`, read from its cache entry or computed and kept there (not kept when the tokenizer
    was missing or the cache cannot be written)."""
    parent, key = cache_root() / "caveats", _key(params, source, entry)
    found = find_entry(parent, key)
    if found is not None:
        return json.loads((found / FILE).read_text(encoding="utf-8"))
    values = measured(params, source, entry)

    def write(target: Path) -> None:
        """Write the computed values as entry ``target`` (atomically)."""
        with atomic_dir(target) as tmp:
            (tmp / FILE).write_text(json.dumps(values, indent=1), encoding="utf-8")

    if values["tokenizer"] is not None:
        with contextlib.suppress(LayerwiseError, OSError):  # a read-only cache: computed again next time
            cached_entry(parent, params.name, key, write, what="the caveats", progress=False)
    return values


def _data_folder(params: StudyParams) -> Path | None:
    """The folder of a local corpus's files (where its ``DATASHEET.md`` would be), else None."""
    ds = params.dataset
    if ds.kind != "local":
        return None
    first = ds.source or next(iter((ds.data_files or {}).values()), None)
    return params.resolve_path(first).parent if first else None


def study_caveats(params: StudyParams, source: ModelSource, entry: Path) -> dict[str, Any]:
    """Every caveat of the study (:data:`TOPICS`), JSON-ready: what :func:`measured` gives (cached) and
    ``pooling`` (:func:`inputs.caveats.model_pooling` of the pretrained model) and ``provenance``
    (:func:`inputs.caveats.corpus_provenance`). ``entry``: the study's geometry entry."""
    values = _cached(params, source, entry)
    ds = params.dataset
    return {"tokenizer": values.get("tokenizer"), "first_token": values.get("first_token"),
            "pooling": caveats.model_pooling(source.path, source.revision),
            "provenance": caveats.corpus_provenance(ds.source or ("local files" if ds.data_files else None),
                                                    _data_folder(params)),
            "overlap": values.get("overlap")}
