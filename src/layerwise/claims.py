"""The verdict rules of the report, in one place.

Every sentence or table of the report that says "higher", "lower", "changed", "best", "significant",
"negligible" (or that a floor was not measured) takes its verdict from a function of this module.
A verdict is a :class:`Verdict`: the word, the tidy rows it rests on and their ``n``, so a reader (and
a test) can trace each claim to its data. The prose module turns verdicts into sentences; it never
decides a verdict itself.

Sections (each added by the issue that defines its rules):

* effect size before significance, best layers by paired comparison (held-out probing issue);
* floors: chance (permutation nulls), seed-to-seed variation, random weights (seeds issue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: The verdict words the report may print; every verdict's ``word`` is one of them.
WORDS = ("higher", "lower", "changed", "unchanged", "negligible", "significant", "not significant", "best",
         "tied", "above chance", "at chance", "not measured")


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
