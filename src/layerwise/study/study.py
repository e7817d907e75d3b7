"""The study on disk: the contract between a run and the chapters.

A study directory (``report/_layerwise/studies/<model>/``) holds every table of one model study as
Parquet (:data:`layerwise.core.tables.TABLES`), the validated params (``params.json``), the fine-tuning
metrics (``finetune.json``) and the provenance (``manifest.json``: params, data selection, versions,
git commit, cache entries). ``layerwise run`` writes it with :func:`write_study`; a chapter reads it
with one call to :func:`read_study` and computes nothing. The directory is written atomically (a
temporary directory renamed in), so a chapter never reads half a study.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..inputs.config import StudyParams
from ..core.errors import LayerwiseError
from ..core.repro import atomic_dir, atomic_write_json, content_hash, verify_entry
from ..core.tables import FIRST_TOKEN, MEAN_TOKENS, POOLINGS, TABLES, TIDY_COLUMNS, n_layers
from ..core.tables import beyond_frame, grid_layers


#: the tables every study directory holds (``tidy_seeds`` came with seeds, ``beyond`` with issue 27: older
#: studies lack them)
REQUIRED = tuple(t for t in TABLES if t not in ("tidy_seeds", "beyond"))


@dataclass
class Study:
    """Every table of one model study (see docs/architecture.md, "Result tables")."""

    params: StudyParams
    tidy: pd.DataFrame
    per_sentence: pd.DataFrame
    cosine_sample: pd.DataFrame
    rogue: pd.DataFrame
    cka: pd.DataFrame
    cones: pd.DataFrame
    finetune: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    #: per-sentence correctness of the probes (``probe_study.CORRECT_COLUMNS``): the paired comparisons of
    #: ``claims.best_layers`` read it
    probe_correct: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["model", "state", "metric", "layer", "sentence", "correct"]))
    #: the per-seed rows of the fine-tuned state (``schema.TIDY_COLUMNS`` + ``seed``) and the similarities
    #: between seeds; ``tidy`` is the aggregate view (see :mod:`layerwise.measure.seeds`)
    tidy_seeds: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {**{c: [] for c in TIDY_COLUMNS}, "seed": pd.array([], dtype="Int64")}))
    #: the analyses beyond the two end points (:data:`layerwise.core.tables.BEYOND_COLUMNS`: checkpoints during
    #: training, layer swaps, auxiliary probes, domains); empty for a study without them
    beyond: pd.DataFrame = field(default_factory=lambda: beyond_frame([]))

    @property
    def tidy_all(self) -> pd.DataFrame:
        """``tidy`` and ``tidy_seeds`` in one table, ``seed`` NA on the aggregate rows (what the seed
        floors of ``prose_outcomes.seed_floor_sentence`` and ``charts.seed_band`` read)."""
        agg = self.tidy.assign(seed=pd.array([pd.NA] * len(self.tidy), dtype="Int64"))
        return pd.concat([agg, self.tidy_seeds], ignore_index=True) if len(self.tidy_seeds) else agg

    @property
    def poolings(self) -> list[str]:
        """The study's poolings, its primary pooling first (``analysis.poolings`` resolved: the model's own
        first, ``models.resolve_poolings``); a study written before the setting: first token, then mean."""
        found = [p for p in self.manifest.get("poolings") or () if p in POOLINGS]
        return found or [FIRST_TOKEN, MEAN_TOKENS]

    @property
    def primary_pooling(self) -> str:
        """The study's primary pooling (the first of :attr:`poolings`): MDL, memorisation, class cones and
        the Findings' headline statistics read it."""
        return self.poolings[0]

    @property
    def seeds(self) -> list[int]:
        """The study's fine-tuning seeds."""
        return list(self.params.finetune.seeds)

    @property
    def name(self) -> str:
        return self.params.name

    @property
    def key(self) -> str:
        """A hash naming what this study holds: the cached results it was read from (their entries and keys),
        the caveats computed beside them and the fine-tuning metrics (with every seed's history), so that a
        study written before any of them changed is rewritten and its chapters executed again."""
        entries = self.manifest.get("cache_entries") or {}
        return content_hash({"entries": {k: Path(v).name for k, v in entries.items() if v},
                             "cache_key": self.manifest.get("cache_key"), "caveats": self.manifest.get("caveats"),
                             "finetune": self.finetune})


def write_study(study: Study, directory: str | Path) -> Path:
    """Write ``study`` to ``directory`` (Parquet tables + JSON), replacing it atomically."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        for table in TABLES:
            getattr(study, table).to_parquet(tmp / f"{table}.parquet", index=False)
        atomic_write_json(tmp / "params.json", {"path": str(study.params.path) if study.params.path else None,
                                                "params": study.params.model_dump(mode="json")})
        atomic_write_json(tmp / "finetune.json", study.finetune)
        atomic_write_json(tmp / "manifest.json", {**study.manifest, "study_key": study.key})
    return directory


def read_study(directory: str | Path) -> Study:
    """The study written by :func:`write_study` in ``directory``. A reader: it checks the files against
    ``DONE.json`` and moves or deletes nothing (a damaged study is an error here; ``layerwise run``,
    the writer, replaces it)."""
    directory = Path(directory)
    check = verify_entry(directory)
    if check.state == "damaged":
        raise LayerwiseError(f"the study is damaged ({check.reason})", str(directory),
                             "rerun `layerwise run` to write it again")
    if check.state != "ok":
        raise LayerwiseError("no complete study in this directory", str(directory),
                             "run `layerwise run --params <file>` first (it writes report/_layerwise/studies/)")
    try:
        saved = json.loads((directory / "params.json").read_text(encoding="utf-8"))
        params = StudyParams.model_validate(saved["params"])
        if saved.get("path"):
            params._path = Path(saved["path"])
        # (a study written before seeds has no tidy_seeds table)
        tables = {t: pd.read_parquet(directory / f"{t}.parquet") for t in TABLES
                  if t in REQUIRED or (directory / f"{t}.parquet").is_file()}
        finetune = json.loads((directory / "finetune.json").read_text(encoding="utf-8"))
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise LayerwiseError(f"the study could not be read ({type(exc).__name__}: {exc})", str(directory),
                             "rerun `layerwise run` to write it again") from None
    return Study(params=params, finetune=finetune, manifest=manifest, **tables)


def read_studies(directories: Sequence[str | Path]) -> list[Study]:
    """The studies of several directories (the comparison chapter)."""
    return [read_study(d) for d in directories]


def combine(studies: Sequence[Study], table: str = "tidy") -> pd.DataFrame:
    """One table (``tidy``, ``cka``, ...) of several studies, concatenated."""
    return pd.concat([getattr(s, table) for s in studies], ignore_index=True)


def shared_pooling(studies: Sequence[Study]) -> str:
    """The pooling the comparison chapter draws: the first study's poolings in order, the first that every
    study stores (the first study's primary pooling when the others have it; mean pooling, in every default,
    otherwise)."""
    for p in studies[0].poolings:
        if all(p in s.poolings for s in studies):
            return p
    raise LayerwiseError("the studies share no pooling", "comparison chapter",
                         f"add {MEAN_TOKENS!r} to analysis.poolings of each params file")


def grid_pooling(studies: Sequence[Study]) -> str:
    """The pooling of the original study's grid across models: the first token (the original study's view)
    when every study stores it, else :func:`shared_pooling`."""
    return FIRST_TOKEN if all(FIRST_TOKEN in s.poolings for s in studies) else shared_pooling(studies)


def original_layers_of(studies: Sequence[Study]) -> list[int]:
    """The original study's grid layers present in any of ``studies`` (sorted union of each model's
    :func:`layerwise.core.tables.grid_layers`)."""
    found: set[int] = set()
    for s in studies:
        found.update(grid_layers(s.params.analysis.original_layers, n_layers(s.tidy)))
    return sorted(found)
