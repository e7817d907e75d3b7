"""Duplicate and near-duplicate texts, so that no sentence is on both sides of a split.

Exact duplicates are texts equal after :data:`NORMALISATION` (:func:`normalise`). The selection keeps
the first copy of each text in its shuffled order and drops the later copies (:func:`first_copies`),
before the order is cut into the fine-tuning, probe and test parts: every copy of a text is thus on
one side only. A corpus without duplicates keeps its order, hence its selection and its cache keys.

Near-duplicates (the same text with a word changed) are counted, not removed: the Jaccard similarity
of the sets of character 5-grams of the normalised texts (:data:`SHINGLE`; hashed into
``scikit-learn``'s ``HashingVectorizer``), at least :data:`NEAR_THRESHOLD` (:func:`near_duplicates`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: the normalisation under which two texts are the same text
NORMALISATION = "Unicode NFC, whitespace runs folded to one space, case folded"
#: character n-gram length of the near-duplicate shingles
SHINGLE = 5
#: shingle Jaccard similarity from which two texts are near-duplicates
NEAR_THRESHOLD = 0.8
#: query rows compared at once (bounds the dense block of similarities in memory)
_CHUNK = 256


def normalise(text: Any) -> str:
    """``text`` in Unicode NFC, its whitespace runs folded to one space (trimmed), case folded."""
    return " ".join(unicodedata.normalize("NFC", str(text)).split()).casefold()


def first_copies(order: Sequence[int], keys: Sequence[str], taken: Iterable[str] = ()) -> tuple[np.ndarray, int]:
    """``order`` (row numbers) without the rows whose key (:func:`normalise` of the text) came earlier in
    ``order`` or is in ``taken``, and how many rows were dropped. Without duplicates, ``order`` itself."""
    seen = set(taken)
    kept = []
    for row in order:
        key = keys[int(row)]
        if key not in seen:
            seen.add(key)
            kept.append(int(row))
    kept_order = np.asarray(kept, dtype=np.asarray(order).dtype if len(order) else np.int64)
    return kept_order, len(order) - len(kept)


def duplicate_groups(keys: Sequence[str]) -> tuple[int, int]:
    """``(groups, extra copies)``: texts that occur more than once, and the copies beyond the first."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    many = [c for c in counts.values() if c > 1]
    return len(many), sum(many) - len(many)


def conflicting_labels(keys: Sequence[str], labels: Sequence[Any]) -> int:
    """Texts (by key) that occur with more than one label."""
    seen: dict[str, set] = {}
    for k, v in zip(keys, labels):
        seen.setdefault(k, set()).add(str(v))
    return sum(len(v) > 1 for v in seen.values())


def _shingles(texts: Sequence[str]):
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(analyzer="char", ngram_range=(SHINGLE, SHINGLE), binary=True, norm=None,
                            alternate_sign=False, lowercase=False, n_features=1 << 20)
    x = vec.transform([normalise(t) for t in texts]).tocsr()
    x.data[:] = 1.0
    return x


def near_duplicates(queries: Sequence[str], pool: Sequence[str], threshold: float = NEAR_THRESHOLD) -> int:
    """How many ``queries`` have a near-duplicate in ``pool``: a text whose character
    :data:`SHINGLE`-gram set has a Jaccard similarity of at least ``threshold`` with theirs."""
    if not len(queries) or not len(pool):
        return 0
    q, p = _shingles(queries), _shingles(pool)
    q_size, p_size = np.diff(q.indptr), np.diff(p.indptr)
    found = 0
    for start in range(0, q.shape[0], _CHUNK):
        inter = (q[start:start + _CHUNK] @ p.T).toarray()
        union = q_size[start:start + _CHUNK, None] + p_size[None, :] - inter
        jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        found += int((jaccard >= threshold).any(axis=1).sum())
    return found


@dataclass(frozen=True)
class DuplicateReport:
    """What the selection did with repeated texts: ``removed`` copies dropped (later copies of a text
    already selected, or training rows whose text is a test sentence), in ``groups`` texts that occur
    more than once, ``conflicting`` of them with differing labels; ``near_test`` test sentences with a
    near-duplicate among the fine-tuning and probe sentences (kept)."""

    removed: int = 0
    groups: int = 0
    conflicting: int = 0
    near_test: int = 0
    near_threshold: float = NEAR_THRESHOLD
    normalisation: str = NORMALISATION

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shingle": SHINGLE}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "DuplicateReport":
        """The report :meth:`as_dict` wrote (a selection's ``duplicates``); fields it lacks take defaults."""
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})

    def sentence(self) -> str:
        """One line for ``check`` and the log."""
        text = (f"{self.removed} repeated rows removed ({self.groups} texts occur more than once, compared after "
                f"{self.normalisation}; each text is kept once, in one part of the split)")
        if self.conflicting:
            text += f"; {self.conflicting} of them with differing labels (the kept copy's label is used)"
        return (text + f"; {self.near_test} test sentences have a near-duplicate among the fine-tuning and probe "
                f"sentences (character {SHINGLE}-gram Jaccard >= {self.near_threshold}; kept)")
