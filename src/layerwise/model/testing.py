"""Tiny random-initialised models of every architecture the study uses, built offline for tests.

``tiny_model_dir("bert" | "camembert" | "flaubert")`` returns a directory that
``AutoModelForSequenceClassification.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load with
``HF_HUB_OFFLINE=1``: a randomly initialised ``*ForSequenceClassification`` model (2 labels, hidden size
32, 2 layers, 2 heads) and a real tokenizer of the same family as the published French models, trained
in a second or two on French sentences:

- ``bert``: ``BertTokenizer`` (WordPiece, ``[CLS] ... [SEP]``, lower-cased, accents kept), a
  ``vocab.txt`` of frequent words, characters and ``##`` word endings;
- ``camembert``: ``CamembertTokenizer`` (SentencePiece unigram, ``<s> ... </s>``) from a model
  trained with ``sentencepiece.SentencePieceTrainer``, its vocabulary laid out as ``camembert-base``'s
  (same special token ids: ``<pad>`` 1, ``<unk>`` 3, ``<s>`` 5, ``</s>`` 6);
- ``flaubert``: ``FlaubertTokenizer`` (Moses pre-tokenisation + BPE with ``</w>`` word ends,
  ``<s> ... </s>``), ``vocab.json`` + ``merges.txt`` learned with :func:`learn_bpe`, special
  token ids as in ``flaubert_base_cased`` (``<s>`` 0, ``</s>`` 1, ``<pad>`` 2, ``<unk>`` 3).

``tiny_model_dir("gpt2")`` (:data:`DECODER_ARCHS`, not in the encoder fixtures of :data:`TINY_ARCHS`) is a
tiny GPT-2 decoder: a byte-level BPE ``GPT2Tokenizer`` (``Ġ`` marks a leading space, no special token added
to a sentence, no padding token: as ``gpt2``'s) whose merges are learned with :func:`learn_bpe`, and a
random ``GPT2ForSequenceClassification`` (classification on the last non-padding token).

The tokenizers are trained on the texts of the embedded demo corpus (when its files exist) plus the
built-in sentences of :func:`tiny_dataset`. Builds are cached under ``<cache_root>/tiny/<arch>-v1``
(written atomically, complete iff ``DONE.json`` exists); a cached build is reused as long as the
training texts are unchanged (their hash is recorded in ``tiny_model.json``).

The module also gives deterministic French sentences with sentiment labels for tests
(:func:`tiny_dataset`, :func:`tiny_texts`, :func:`tiny_labels`).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..core.errors import LayerwiseError
from ..core.repro import atomic_dir, atomic_write_json, cache_root, content_hash, is_done

log = logging.getLogger(__name__)

TINY_ARCHS = ("bert", "camembert", "flaubert")
#: tiny decoders (built by :func:`tiny_model_dir` like the encoders, outside the encoder fixtures)
DECODER_ARCHS = ("gpt2",)
VERSION = "v1"
HIDDEN_SIZE = 32
NUM_LAYERS = 2
NUM_HEADS = 2
INTERMEDIATE_SIZE = 37  # BERT/CamemBERT only: FlauBERT's feed-forward width is fixed at 4 * hidden size
MAX_TOKENS = 128
NUM_LABELS = 2
SEED = 0
MANIFEST = "tiny_model.json"
_DEMO_DIR = Path(__file__).parents[1] / "resources" / "demo_fr"
_LABELS = {0: "negative", 1: "positive"}

# ---------------------------------------------------------------------------------------------------
# Built-in French sentences with sentiment labels (written for this project)
# ---------------------------------------------------------------------------------------------------
_OPENERS = ("", "Franchement, ", "À mon avis, ", "Honnêtement, ", "Pour moi, ", "Sincèrement, ",
            "Au final, ")
_SUBJECTS = ("ce livre", "ce film", "cet album", "ce roman", "cette série", "ce disque",
             "ce documentaire", "cette bande dessinée", "ce coffret", "cette nouvelle édition",
             "ce concert filmé", "ce recueil de poèmes")
_PREDICATES = {
    1: ("est une vraie réussite", "m'a beaucoup plu", "vaut largement son prix", "m'a ému aux larmes",
        "est un pur plaisir", "mérite toutes les étoiles", "est une petite merveille",
        "m'a enchanté du début à la fin", "dépasse toutes mes attentes", "est drôle et touchant"),
    0: ("est une grosse déception", "m'a profondément ennuyé", "ne vaut pas son prix",
        "est une perte de temps", "ne mérite aucune étoile", "est un ratage complet",
        "m'a laissé totalement indifférent", "ne tient pas ses promesses", "est long et confus",
        "est plat et sans intérêt"),
}
_ENDINGS = {
    1: (".", " !", ", je le recommande.", " et la livraison était rapide.",
        " malgré un début un peu lent.", ", à offrir sans hésiter !", " : 5/5."),
    0: (".", " !", ", je le déconseille.", " et la livraison était rapide.",
        " malgré une belle couverture.", ", à éviter absolument !", " : 1/5."),
}


def _sentence(opener: str, subject: str, predicate: str, ending: str) -> str:
    """One review sentence; the subject is capitalised when it opens the sentence."""
    head = f"{opener}{subject}" if opener else subject[0].upper() + subject[1:]
    return f"{head} {predicate}{ending}"


def _all_sentences(label: int) -> list[str]:
    """Every sentence of polarity ``label``, in a fixed order (the product of the phrase lists)."""
    return [_sentence(*combo)
            for combo in itertools.product(_OPENERS, _SUBJECTS, _PREDICATES[label], _ENDINGS[label])]


def tiny_dataset(n: int = 40, seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` distinct short French review sentences and their sentiment labels (1 positive, 0 negative).

    Deterministic in ``(n, seed)``; the two classes are balanced (``n // 2`` negatives, the rest
    positives) and shuffled. Each sentence is an opener, a subject (a book, film, album...), a clearly
    positive or negative predicate and an ending; the label is the polarity of the predicate, so a
    classifier can learn it from the words alone.
    """
    if n < 0:
        raise LayerwiseError(f"n must be >= 0, got {n}", "layerwise.model.testing.tiny_dataset")
    pools = {label: _all_sentences(label) for label in (0, 1)}
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2), dtype=np.int64)
    if max(int((labels == k).sum()) for k in (0, 1)) > min(len(p) for p in pools.values()):
        raise LayerwiseError(f"n={n} exceeds the built-in sentence pool", "layerwise.model.testing.tiny_dataset",
                             f"ask for at most {2 * min(len(p) for p in pools.values())} sentences")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(labels)
    picks = {k: iter(rng.permutation(len(pools[k]))) for k in (0, 1)}
    texts = [pools[int(k)][next(picks[int(k)])] for k in labels]
    return texts, [int(k) for k in labels]


def write_tiny_jsonl(path: str | Path, n: int = 40, seed: int = 0) -> Path:
    """:func:`tiny_dataset` ``(n, seed)`` written as a local JSONL dataset (``text``, ``label``) at ``path``."""
    texts, labels = tiny_dataset(n, seed=seed)
    path = Path(path)
    path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n"
                            for t, y in zip(texts, labels)), encoding="utf-8")
    return path


def tiny_texts(n: int = 40, seed: int = 0) -> list[str]:
    """The sentences of :func:`tiny_dataset` ``(n, seed)``."""
    return tiny_dataset(n, seed)[0]


def tiny_labels(n: int = 40, seed: int = 0) -> list[int]:
    """The labels of :func:`tiny_dataset` ``(n, seed)`` (aligned with :func:`tiny_texts`)."""
    return tiny_dataset(n, seed)[1]


def training_texts() -> tuple[list[str], str]:
    """The texts the tiny tokenizers are trained on, and where they come from.

    The embedded demo corpus texts (``resources/demo_fr/*.jsonl``) when those files exist, always
    followed by 300 built-in sentences (:func:`tiny_dataset` ``(300, seed=0)``) so that the test
    sentences are well covered.
    """
    texts: list[str] = []
    files = sorted(_DEMO_DIR.glob("*.jsonl"))
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(str(json.loads(line)["text"]))
    texts += tiny_texts(300, seed=0)
    source = "demo_fr corpus + built-in sentences" if files else "built-in sentences"
    return texts, source


# ---------------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------------
def _count_words(words) -> Counter:
    """Occurrences of each non-empty word."""
    return Counter(w for w in words if w)


def _bert_tokenizer(texts: list[str], out: Path):
    """WordPiece vocabulary (lower-cased, accents kept), chosen deterministically from ``texts``.

    The texts go through BERT's own normaliser and pre-tokeniser (``tokenizers``); the vocabulary is
    the 5 special tokens, every character seen (alone and as a ``##`` continuation), the 60 most
    frequent word endings of 2 to 4 characters as ``##`` pieces and the 400 most frequent words (ties
    broken alphabetically), so that frequent words are one token and rare ones split into pieces.
    (The ``tokenizers`` WordPiece trainer breaks ties in hash order: its vocabulary changes from run
    to run, hence this rule.)
    """
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer

    norm = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre = pre_tokenizers.BertPreTokenizer()
    words = _count_words(w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    chars = sorted({c for w in words for c in w})
    endings = Counter(w[-k:] for w in words for k in (2, 3, 4) if len(w) > k)

    def top(counter: Counter, k: int) -> list[str]:
        """The ``k`` most frequent keys, ties broken alphabetically."""
        return [w for w, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    vocab += [f"##{e}" for e in top(endings, 60)]
    vocab += [w for w in top(words, 400) if w not in set(vocab)]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(out / "vocab.txt"), do_lower_case=True, strip_accents=False,
                         model_max_length=MAX_TOKENS)


def _camembert_tokenizer(texts: list[str], out: Path):
    """SentencePiece unigram model trained on ``texts``, laid out like ``camembert-base``'s vocabulary.

    The pieces and scores are read with ``SentencePieceProcessor`` and rearranged by transformers'
    ``CamembertConverter.convert_from_spm`` (the conversion ``camembert-base`` goes through), which
    gives the same special token ids. The model is trained with the ``identity`` normalisation so
    the converted tokenizer needs no precompiled charsmap (reading that would need ``protobuf``).
    """
    import sentencepiece as spm
    from transformers import CamembertTokenizer
    from transformers.convert_slow_tokenizer import CamembertConverter

    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buf, model_type="unigram", vocab_size=800,
        hard_vocab_limit=False, character_coverage=1.0, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    (out / "sentencepiece.bpe.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    pieces = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
    vocab = CamembertConverter.convert_from_spm(vocab=pieces)["vocab"]
    return CamembertTokenizer(vocab=vocab, model_max_length=MAX_TOKENS)


_FLAUBERT_SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]


def learn_bpe(word_counts: dict[str, int], num_merges: int, min_count: int = 2) -> list[tuple[str, str]]:
    """Learn BPE merges with ``</w>`` word ends (the subword-nmt / XLM / FlauBERT convention).

    Algorithm of Sennrich, Haddow & Birch (2016), "Neural Machine Translation of Rare Words with
    Subword Units" (ACL): every word starts as its characters, the last one suffixed with ``</w>``;
    repeatedly merge the most frequent adjacent pair of symbols (pair frequency = sum of the counts
    of the words where it occurs), ties broken by the smallest pair in string order, until
    ``num_merges`` merges are learned or no pair occurs ``min_count`` times. Deterministic (the
    ``tokenizers`` BPE trainer breaks ties in hash order).
    """
    vocab_words = sorted(w for w in word_counts if w)
    symbols = [list(w[:-1]) + [w[-1] + "</w>"] for w in vocab_words]
    freqs = [word_counts[w] for w in vocab_words]
    pairs: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, sym in enumerate(symbols):
        for pair in zip(sym, sym[1:]):
            pairs[pair] += freqs[i]
            where[pair].add(i)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges and pairs:
        best, count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < min_count:
            break
        merges.append(best)
        for i in sorted(where.pop(best, ())):
            sym = symbols[i]
            for pair in zip(sym, sym[1:]):
                pairs[pair] -= freqs[i]
            merged, j = [], 0
            while j < len(sym):
                if j + 1 < len(sym) and (sym[j], sym[j + 1]) == best:
                    merged.append(sym[j] + sym[j + 1])
                    j += 2
                else:
                    merged.append(sym[j])
                    j += 1
            symbols[i] = merged
            for pair in zip(merged, merged[1:]):
                pairs[pair] += freqs[i]
                where[pair].add(i)
        for pair in [p for p, c in pairs.items() if c <= 0]:
            del pairs[pair]
    return merges


_FLAUBERT_SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]


def _flaubert_tokenizer(texts: list[str], out: Path):
    """``vocab.json`` + ``merges.txt`` learned with :func:`learn_bpe` (600 merges) on Moses-tokenised
    French, special tokens first with ``flaubert_base_cased``'s ids."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer
    from transformers import FlaubertTokenizer

    norm, moses = MosesPunctNormalizer(lang="fr"), MosesTokenizer(lang="fr")
    words = _count_words(w for t in texts for w in moses.tokenize(norm.normalize(t), escape=False))
    merges = learn_bpe(words, num_merges=600)
    chars = sorted({c for w in words for c in w})
    chars = [form for c in chars for form in (c, c + "</w>")]
    vocab: dict[str, int] = {}
    for token in _FLAUBERT_SPECIALS + chars + [a + b for a, b in merges]:
        vocab.setdefault(token, len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    (out / "merges.txt").write_text("".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return FlaubertTokenizer(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt"),
                             do_lowercase=False, model_max_length=MAX_TOKENS)


GPT2_END = "<|endoftext|>"
#: GPT-2's pre-tokenisation, approximated: a word, a run of punctuation or of spaces, each with its leading space
_GPT2_PIECES = r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"


def byte_symbols() -> dict[int, str]:
    """The byte-level alphabet of GPT-2's BPE: each of the 256 bytes as one printable character (a printable
    Latin-1 byte stands for itself, every other byte for a character from U+0100 on, in byte order)."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    out, extra = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + extra)
            extra += 1
    return out


def _gpt2_tokenizer(texts: list[str], out: Path):
    """A byte-level BPE ``GPT2Tokenizer``: merges learned with :func:`learn_bpe` (600) on the texts' pieces in
    the byte alphabet (:func:`byte_symbols`), the word-end marker dropped (GPT-2 marks a word's start with
    ``Ġ``, the space's symbol); the 256 byte symbols, the merges' products and ``<|endoftext|>`` as vocabulary."""
    import re

    from transformers import GPT2Tokenizer

    symbols = byte_symbols()
    pieces = _count_words("".join(symbols[b] for b in piece.encode("utf-8"))
                          for t in texts for piece in re.findall(_GPT2_PIECES, t))
    merges = list(dict.fromkeys((a, b.removesuffix("</w>")) for a, b in learn_bpe(pieces, num_merges=600)))
    vocab: dict[str, int] = {}
    for token in [symbols[b] for b in range(256)] + [a + b for a, b in merges] + [GPT2_END]:
        vocab.setdefault(token, len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return GPT2Tokenizer(vocab=vocab, merges=[tuple(m) for m in merges], model_max_length=MAX_TOKENS)


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------
def _config(arch: str, tok):
    """The tiny model configuration of ``arch``, its vocabulary and special ids taken from ``tok``."""
    from transformers import BertConfig, CamembertConfig, FlaubertConfig, GPT2Config

    common = dict(num_labels=NUM_LABELS, id2label=dict(_LABELS), label2id={v: k for k, v in _LABELS.items()})
    if arch == "gpt2":  # no pad_token_id, as gpt2's: models.load_model sets it from the tokenizer
        end = tok.convert_tokens_to_ids(GPT2_END)
        return GPT2Config(vocab_size=len(tok), n_embd=HIDDEN_SIZE, n_layer=NUM_LAYERS, n_head=NUM_HEADS,
                          n_inner=INTERMEDIATE_SIZE, n_positions=MAX_TOKENS, bos_token_id=end, eos_token_id=end,
                          **common)
    if arch == "bert":
        return BertConfig(vocab_size=len(tok), hidden_size=HIDDEN_SIZE, num_hidden_layers=NUM_LAYERS,
                          num_attention_heads=NUM_HEADS, intermediate_size=INTERMEDIATE_SIZE,
                          max_position_embeddings=MAX_TOKENS, pad_token_id=tok.pad_token_id, **common)
    if arch == "camembert":
        # RoBERTa positions start after the padding index (as 514 positions serve 512 tokens in
        # camembert-base), so 128 tokens need pad_token_id + 1 + 128 positions.
        return CamembertConfig(vocab_size=len(tok), hidden_size=HIDDEN_SIZE, num_hidden_layers=NUM_LAYERS,
                               num_attention_heads=NUM_HEADS, intermediate_size=INTERMEDIATE_SIZE,
                               max_position_embeddings=MAX_TOKENS + tok.pad_token_id + 1,
                               pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, **common)
    return FlaubertConfig(vocab_size=len(tok), emb_dim=HIDDEN_SIZE, n_layers=NUM_LAYERS, n_heads=NUM_HEADS,
                          max_position_embeddings=MAX_TOKENS, embed_init_std=HIDDEN_SIZE ** -0.5,
                          pad_index=tok.pad_token_id, unk_index=tok.unk_token_id,
                          mask_index=tok.mask_token_id, bos_index=tok.bos_token_id,
                          eos_index=tok.sep_token_id, **common)


_TOKENIZERS = {"bert": _bert_tokenizer, "camembert": _camembert_tokenizer, "flaubert": _flaubert_tokenizer,
               "gpt2": _gpt2_tokenizer}


def _check_arch(arch: str) -> None:
    """Raise a :class:`LayerwiseError` naming the valid choices when ``arch`` is not a tiny arch."""
    if arch not in TINY_ARCHS + DECODER_ARCHS:
        raise LayerwiseError(f"unknown tiny architecture {arch!r}", "layerwise.model.testing.tiny_model_dir",
                             f"use one of {', '.join(TINY_ARCHS + DECODER_ARCHS)}")


def _build(arch: str, out: Path, texts: list[str]) -> None:
    """Train ``arch``'s tokenizer on ``texts`` and save it with a seeded random model into ``out``.

    The weights are drawn inside ``torch.random.fork_rng`` so the caller's random state is untouched.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    scratch = out / "_tokenizer_sources"
    scratch.mkdir()
    tok = _TOKENIZERS[arch](texts, scratch)
    tok.save_pretrained(out)
    if (scratch / "sentencepiece.bpe.model").is_file():  # kept beside tokenizer.json, as in camembert-base
        (out / "sentencepiece.bpe.model").write_bytes((scratch / "sentencepiece.bpe.model").read_bytes())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForSequenceClassification.from_config(_config(arch, tok))
    model.save_pretrained(out)
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()


def tiny_model_dir(arch: str, root: Path | None = None) -> Path:
    """Directory of a tiny random-initialised ``arch`` classifier and its tokenizer (built once, cached).

    ``arch`` is one of :data:`TINY_ARCHS` or :data:`DECODER_ARCHS`. The directory is ``<root>/<arch>-v1`` with ``root``
    defaulting to ``cache_root() / "tiny"``; it is reused while its ``DONE.json`` marker exists and its
    ``tiny_model.json`` records the hash of the current training texts, otherwise it is rebuilt
    atomically (seconds). Weights are drawn after ``torch.manual_seed(0)``: same texts, same model.
    """
    _check_arch(arch)
    root = Path(root) if root is not None else cache_root() / "tiny"
    final = root / f"{arch}-{VERSION}"
    texts, source = training_texts()
    texts_hash = content_hash(texts)
    if is_done(final):
        try:
            if json.loads((final / MANIFEST).read_text(encoding="utf-8")).get("texts_hash") == texts_hash:
                return final
        except (OSError, ValueError):
            pass
        log.info("rebuilding %s: its training texts changed", final)
    with atomic_dir(final) as tmp:
        _build(arch, tmp, texts)
        atomic_write_json(tmp / MANIFEST, {
            "arch": arch, "version": VERSION, "seed": SEED, "hidden_size": HIDDEN_SIZE,
            "num_hidden_layers": NUM_LAYERS, "num_attention_heads": NUM_HEADS,
            "texts_hash": texts_hash, "texts_source": source, "num_texts": len(texts)})
    return final
