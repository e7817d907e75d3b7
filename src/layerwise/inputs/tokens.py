"""Tokenisation for the geometry engine: every text is encoded once (truncated, unpadded) into compact
arrays, with the special-token mask and the word groups of its tokens.

A *word* is the tokenizer's own word group: ``word_ids()`` of a fast tokenizer (BERT's WordPiece,
CamemBERT's SentencePiece: a whitespace-delimited word with its attached punctuation), or, for a slow
tokenizer without ``word_ids()`` (FlauBERT/XLM), its own word-boundary markers: BPE that marks word
ends with ``</w>`` closes a word at such a token; WordPiece ``##`` continues a word; SentencePiece
``▁`` (or byte-level ``Ġ``) starts one. Special tokens belong to no word (-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Encoded", "encode", "effective_max_length", "word_groups_from_tokens"]


@dataclass
class Encoded:
    """The encoded texts: token ids, special-token mask, token-type ids (or None), lengths and the
    word index of every token (-1 for special tokens), all per text."""

    ids: list[np.ndarray]
    special: list[np.ndarray]
    type_ids: list[np.ndarray] | None
    lengths: np.ndarray
    words: list[np.ndarray] | None = None


def effective_max_length(tokenizer, max_length: int, config=None) -> int:
    """``max_length`` capped by the tokenizer's ``model_max_length`` or, when the tokenizer does not know
    it, by the model's position embeddings (RoBERTa-like models reserve ``pad_token_id + 1`` of them)."""
    cap = getattr(tokenizer, "model_max_length", None)
    if isinstance(cap, int) and 0 < cap < 100_000:
        return min(int(max_length), cap)
    pos = getattr(config, "max_position_embeddings", None) if config is not None else None
    if isinstance(pos, int) and pos > 0:
        if getattr(config, "model_type", "") in ("roberta", "camembert", "xlm-roberta"):
            pos -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        return min(int(max_length), pos)
    return int(max_length)


def word_groups_from_tokens(tokens: list[str], special: np.ndarray) -> np.ndarray:
    """Word index of every token from the tokenizer's word-boundary markers (for tokenizers without
    ``word_ids()``): a token ending with ``</w>`` ends its word (FlauBERT/XLM BPE); otherwise ``##``
    continues the previous word and ``▁``/``Ġ`` starts a new one; a token without any marker is a word
    of its own. Special tokens get -1.

    >>> word_groups_from_tokens(["<s>", "ma", "g", "nifi", "que</w>", ".</w>", "</s>"],
    ...                         np.array([1, 0, 0, 0, 0, 0, 1], bool)).tolist()
    [-1, 0, 0, 0, 0, 1, -1]
    """
    out = np.full(len(tokens), -1, np.int64)
    content = [t for t, s in zip(tokens, special) if not s]
    end_marked = any(t.endswith("</w>") for t in content)
    starts_marked = any(t.startswith(("▁", "Ġ")) for t in content)
    word, open_word = -1, False
    for k, (tok, is_special) in enumerate(zip(tokens, special)):
        if is_special:
            open_word = False
            continue
        if not open_word or end_marked:
            starts = not open_word
        elif tok.startswith("##"):
            starts = False
        else:  # SentencePiece: only a marked token starts a word; no markers: every token is a word
            starts = tok.startswith(("▁", "Ġ")) or not starts_marked
        word += starts
        out[k] = word
        open_word = not (end_marked and tok.endswith("</w>"))
    return out


def _word_ids(tokenizer, enc, ids: list[np.ndarray], special: list[np.ndarray]) -> list[np.ndarray]:
    """Word index per token of every text: ``word_ids()`` where the tokenizer has it, else the
    tokenizer's markers (:func:`word_groups_from_tokens`)."""
    out = []
    for i, (x, s) in enumerate(zip(ids, special)):
        try:
            w = enc.word_ids(i)
        except (ValueError, AttributeError):  # slow tokenizers have no word ids
            w = None
        if w is not None:
            words = np.array([-1 if v is None else v for v in w], np.int64)
        else:
            words = word_groups_from_tokens(tokenizer.convert_ids_to_tokens(x.tolist()), s)
        words[s] = -1
        out.append(words)
    return out


def encode(tokenizer, texts: list[str], max_length: int) -> Encoded:
    """Tokenize every text once (truncated, unpadded) and keep compact arrays and word groups."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    special = [np.asarray(x, dtype=bool) for x in enc["special_tokens_mask"]]
    type_ids = None
    if "token_type_ids" in enc:
        type_ids = [np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"]]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    return Encoded(ids, special, type_ids, lengths, _word_ids(tokenizer, enc, ids, special))
