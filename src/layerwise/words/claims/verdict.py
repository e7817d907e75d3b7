"""The verdict record every claim of the report is: :class:`Verdict`, the words it may say (:data:`WORDS`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: The verdict words the report may print; every verdict's ``word`` is one of them.
WORDS = ("higher", "lower", "changed", "negligible", "significant", "not significant", "best",
         "tied", "above chance", "at chance", "not measured", "rises", "falls", "peaks", "dips", "flat", "changed, size unclear",
         "no change beyond δ", "not established", "stands apart", "no seed stands apart")


@dataclass(frozen=True)
class Verdict:
    """One claim: ``word`` (from :data:`WORDS`), what it is about (``subject``), the tidy rows it
    rests on (``rows``), their sample size ``n`` and the numbers that decided it (``detail``)."""

    word: str
    subject: str
    rows: pd.DataFrame
    n: int
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of claims.WORDS")




#: Detail of a verdict made with a single fine-tuning seed.
SEED_VARIATION_NOT_MEASURED = "seed variation not measured (one fine-tuning seed)"


def seeds_in(rows: pd.DataFrame) -> int:
    """Fine-tuning seeds among ``rows``: distinct values of a ``seed`` column, else one per row."""
    return int(rows["seed"].nunique()) if "seed" in rows.columns else len(rows)


def at_layer(v: Verdict, layer: int) -> Verdict:
    """``v`` with ``detail["layer"]`` set (the per-layer lists of verdicts carry their layer)."""
    return Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": int(layer)})
