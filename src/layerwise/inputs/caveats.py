"""Caveats computed from a study's inputs, the facts that explain its results (issue 23): how well the
tokenizer fits the corpus (:func:`tokenizer_fit`), the pooling the model declares (:func:`model_pooling`),
how the corpus was made (:func:`corpus_provenance`) and what the fine-tuning, probe and test parts share
(:func:`split_overlap`). Pure functions of their arguments and of files on disk, never the network; every
result is a JSON-ready dict of plain ints, floats and strings.

Words are the regex ``\\w+`` occurrences (Unicode letters, digits and ``_``): the same on every
tokenizer, unlike a tokenizer's own word groups (:mod:`layerwise.inputs.tokens`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from ..core.tables import FIRST_TOKEN, LAST_TOKEN, MEAN_TOKENS
from .data import RESOURCES
from .duplicates import normalise

#: what a word is for :func:`tokenizer_fit` and the n-grams of :func:`split_overlap`
WORD = re.compile(r"\w+")
#: word n-gram length of :func:`split_overlap`
NGRAM = 5
#: the parts of a selection, in order (fine-tuning, probe pool, test)
PARTS = ("train", "probe", "test")
#: examples (index lists) kept per duplicate count
EXAMPLES = 3
#: the sentence-transformers pooling flags and what each pools (``pooling_mode_<flag>``)
#: (the stored names of :data:`layerwise.core.tables.POOLINGS` for the three the study computes)
POOLING_MODES = {"cls_token": FIRST_TOKEN, "mean_tokens": MEAN_TOKENS, "max_tokens": "max",
                 "mean_sqrt_len_tokens": "mean_sqrt_len", "weightedmean_tokens": "weighted_mean",
                 "lasttoken": LAST_TOKEN}
#: the datasheet section that says how a corpus was made, and how many of its sentences are kept
PROVENANCE_SECTION = "How it was made"
PROVENANCE_SENTENCES = 2
#: the datasheets of the embedded corpora
DATASHEETS = {"embedded:demo-fr": RESOURCES / "demo_fr" / "DATASHEET.md"}


def _lengths(tokenizer, texts: list[str], **kwargs) -> list[int]:
    """Token count of each of ``texts`` under ``tokenizer`` (``input_ids`` of one call)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, **kwargs)["input_ids"]]


def tokenizer_fit(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, Any]:
    """How the tokenizer cuts ``texts``: ``subwords_per_word``, the mean over word occurrences (:data:`WORD`)
    of the tokens the tokenizer gives the word alone (no special tokens); ``unknown_share``, the share of
    the sentences' tokens (no special tokens) equal to ``tokenizer.unk_token_id`` (0 and
    ``has_unknown_token`` False when it has none); ``truncated_share``, the share of texts longer than
    ``max_length`` tokens with the special tokens (cut by the engine); and the counts behind them.
    ``tokenizer``: anything callable on a list of texts that returns ``{"input_ids": [[...], ...]}``."""
    texts = [str(t) for t in texts]
    counts = Counter(w for t in texts for w in WORD.findall(t))
    words = list(counts)
    pieces = _lengths(tokenizer, words, add_special_tokens=False)
    n_words = sum(counts.values())
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    n_tokens = sum(len(i) for i in ids)
    n_unknown = sum(int(t == unk) for i in ids for t in i) if unk is not None else 0
    full = _lengths(tokenizer, texts)
    truncated = sum(n > max_length for n in full)
    return {"sentences": len(texts), "words": n_words, "distinct_words": len(words),
            "subwords_per_word": float(sum(counts[w] * p for w, p in zip(words, pieces)) / n_words) if n_words else None,
            "tokens": n_tokens, "has_unknown_token": unk is not None, "unknown_tokens": n_unknown,
            "unknown_share": float(n_unknown / n_tokens) if n_tokens else 0.0,
            "max_length": int(max_length), "truncated": int(truncated),
            "truncated_share": float(truncated / len(texts)) if texts else 0.0, **vocabulary(tokenizer)}


def vocabulary(tokenizer) -> dict[str, Any]:
    """What the tokenizer is: ``tokenizer_class`` (its class name, e.g. ``BertTokenizerFast``: WordPiece),
    ``vocab_size`` and ``lowercase`` (whether it lower-cases its input; None when it does not say)."""
    size = getattr(tokenizer, "vocab_size", None)
    lower = getattr(tokenizer, "do_lower_case", None)
    if lower is None:
        lower = (getattr(tokenizer, "init_kwargs", None) or {}).get("do_lower_case")
    return {"tokenizer_class": type(tokenizer).__name__, "vocab_size": int(size) if isinstance(size, int) else None,
            "lowercase": bool(lower) if lower is not None else None}


def _hub_file(model_id: str, filename: str, revision: str | None) -> Path | None:
    """``filename`` of Hub model ``model_id`` when it is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers brings it
        return None
    try:
        found = try_to_load_from_cache(model_id, filename, revision=revision)
    except Exception:  # noqa: BLE001 - an id that is no repo id, a damaged cache: nothing declared
        return None
    return Path(found) if isinstance(found, str) else None


def _model_file(model_dir: str | Path, name: str, revision: str | None) -> Path | None:
    """File ``name`` of a local model folder, or of a Hub model in the local cache; None when absent."""
    local = Path(str(model_dir)).expanduser()
    if local.is_dir():
        return local / name if (local / name).is_file() else None
    return _hub_file(str(model_dir), name, revision)


def model_pooling(model_dir: str | Path, revision: str | None = None) -> dict[str, Any] | None:
    """The pooling the model declares in a sentence-transformers layout: ``modules.json`` naming a
    ``sentence_transformers.models.Pooling`` module whose folder's ``config.json`` sets the
    ``pooling_mode_*`` flags (:data:`POOLING_MODES`). ``{"mode": "mean", "modes": ["mean"], "source":
    "1_Pooling/config.json"}`` (``mode``: the modes joined by ``+`` when several are set); None when the
    model declares none (a plain checkpoint, or a Hub id whose files are not in the local cache)."""
    modules_file = _model_file(model_dir, "modules.json", revision)
    if modules_file is None:
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        folder = next(str(m.get("path") or "") for m in modules if str(m.get("type", "")).endswith("models.Pooling"))
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return None
    source = f"{folder}/config.json" if folder else "config.json"
    config_file = _model_file(model_dir, source, revision)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file else None
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        return None
    modes = [name for flag, name in POOLING_MODES.items() if config.get(f"pooling_mode_{flag}") is True]
    if not modes and isinstance(config.get("pooling_mode"), str):
        modes = [POOLING_MODES.get(config["pooling_mode"], config["pooling_mode"])]
    return {"mode": "+".join(modes) if modes else "unknown", "modes": modes, "source": source}


def _section(markdown: str, title: str) -> str:
    """The text of the ``## title`` section of ``markdown`` (lines joined by spaces), empty when absent."""
    lines, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("#"):
            if inside:
                break
            inside = line.lstrip("#").strip().lower() == title.lower()
        elif inside:
            lines.append(line.strip())
    return " ".join(x for x in lines if x)


def _first_sentences(text: str, count: int) -> str:
    """The first ``count`` sentences of ``text`` (cut after ``.``, ``!`` or ``?`` before a capital)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(«])", text.strip())
    return " ".join(parts[:count])


def corpus_provenance(source: str | None, folder: str | Path | None = None) -> dict[str, Any] | None:
    """How the corpus was made, from its datasheet: the first :data:`PROVENANCE_SENTENCES` sentences of its
    ":data:`PROVENANCE_SECTION`" section and the datasheet's path (relative to the package for an embedded
    corpus). The datasheet of an embedded corpus (:data:`DATASHEETS`) or a ``DATASHEET.md`` in ``folder``
    (local files). ``{"dataset", "declared": False, "text": None, "source": None}`` when nothing declares it
    (a Hub dataset: no local card is read); None without a ``source``."""
    if not source:
        return None
    sheet = DATASHEETS.get(source)
    if sheet is None and folder is not None and (Path(folder) / "DATASHEET.md").is_file():
        sheet = Path(folder) / "DATASHEET.md"
    text = ""
    if sheet is not None and sheet.is_file():
        text = _first_sentences(_section(sheet.read_text(encoding="utf-8"), PROVENANCE_SECTION), PROVENANCE_SENTENCES)
    if not text:
        return {"dataset": source, "declared": False, "text": None, "source": None}
    shown = sheet.relative_to(RESOURCES.parents[1]) if sheet.is_relative_to(RESOURCES.parents[1]) else sheet
    return {"dataset": source, "declared": True, "text": text, "source": shown.as_posix(),
            "section": PROVENANCE_SECTION}


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word ``n``-grams (:data:`WORD` on :func:`duplicates.normalise` of ``text``) of one text."""
    words = WORD.findall(normalise(text))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _within(keys: list[str], rows: list[int]) -> dict[str, Any]:
    """Exact duplicates inside one part: extra ``copies``, ``groups`` (texts seen more than once) and up
    to :data:`EXAMPLES` groups of row indices."""
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(keys[r], []).append(r)
    many = [g for g in groups.values() if len(g) > 1]
    return {"groups": len(many), "copies": sum(len(g) - 1 for g in many), "examples": many[:EXAMPLES]}


def _across(keys: list[str], rows_a: list[int], rows_b: list[int]) -> dict[str, Any]:
    """Texts of part a also in part b: ``shared`` (distinct texts) and up to :data:`EXAMPLES` index pairs."""
    first_b: dict[str, int] = {}
    for r in rows_b:
        first_b.setdefault(keys[r], r)
    pairs, seen = [], set()
    for r in rows_a:
        if keys[r] in first_b and keys[r] not in seen:
            seen.add(keys[r])
            pairs.append([r, first_b[keys[r]]])
    return {"shared": len(pairs), "examples": pairs[:EXAMPLES]}


def _ngram_overlap(texts: list[str], rows: dict[str, list[int]], n: int) -> dict[str, Any]:
    """Share of the test part's distinct word ``n``-grams found in train and in probe, and share of test
    sentences with any ``n``-gram found in train (None where a part is empty)."""
    grams = {p: [_ngrams(texts[r], n) for r in rows[p]] for p in PARTS}
    pools = {p: set().union(*grams[p]) if grams[p] else set() for p in PARTS}
    test = pools["test"]
    share = {p: (float(len(test & pools[p]) / len(test)) if test and rows[p] else None) for p in ("train", "probe")}
    hit = [bool(g & pools["train"]) for g in grams["test"]]
    return {"n": n, "test_ngrams": len(test), "test_share_in_train": share["train"],
            "test_share_in_probe": share["probe"],
            "test_sentences_with_train_ngram": float(sum(hit) / len(hit)) if hit and rows["train"] else None}


def split_overlap(texts: Sequence[str], split: Sequence[str], n: int = NGRAM) -> dict[str, Any]:
    """What the parts (:data:`PARTS`: ``train``, ``probe``, ``test``; ``split`` names each text's part) share:
    exact duplicates after :func:`duplicates.normalise` within each part (``within``) and across each
    pair of parts (``across``, keyed ``"train-test"`` etc.), with a few examples' indices into ``texts``;
    and the word ``n``-gram overlap of the test part with the others (``ngrams``)."""
    texts = [str(t) for t in texts]
    keys = [normalise(t) for t in texts]
    rows = {p: [i for i, s in enumerate(split) if str(s) == p] for p in PARTS}
    return {"parts": {p: len(r) for p, r in rows.items()},
            "within": {p: _within(keys, rows[p]) for p in PARTS},
            "across": {f"{a}-{b}": _across(keys, rows[a], rows[b]) for a, b in combinations(PARTS, 2)},
            "ngrams": _ngram_overlap(texts, rows, n)}
