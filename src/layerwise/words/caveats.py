"""The caveats of one model study as short sentences, every number from ``manifest["caveats"]`` (written by
``study.caveat_step.study_caveats``): how the tokenizer cuts the corpus, where the first token barely
varies between sentences, the pooling the model declares, how the corpus was made and what the
fine-tuning, probe and test parts share. A study without caveats (computed before them) or a topic
without data gives no sentence: :func:`caveat_sentences` leaves its key out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core.tables import FIRST_TOKEN, LAST_TOKEN, MEAN_TOKENS
from ..measure.constancy import CONSTANT_FIRST_TOKEN
from ..measure.seeds import split_label
from .prose_format import and_list, fmt
from .prose_format import layer_span

#: the topics, in the order :func:`caveat_list` states them
ORDER = ("tokenizer", "first_token", "pooling", "provenance", "overlap")
#: what each pooling mode pools, for prose (``inputs.caveats.POOLING_MODES``)
POOLING_WORDS = {MEAN_TOKENS: "mean", FIRST_TOKEN: "first-token (CLS)", "max": "max",
                 "mean_sqrt_len": "length-scaled mean", "weighted_mean": "position-weighted mean", LAST_TOKEN: "last-token"}
#: the parts of a selection as prose
PART_WORDS = {"train": "fine-tuning", "probe": "probe", "test": "test"}


def pct(share: float) -> str:
    """A share as a percentage for prose: ``13%`` from 10% on, ``3.2%``, ``<0.1%`` for a small non-zero
    share, ``0%``."""
    if share >= 0.1:
        return f"{share:.0%}"
    if share >= 0.001:
        return f"{100 * share:.1f}%"
    return "<0.1%" if share > 0 else "0%"


def tokenizer_sentence(fit: dict[str, Any]) -> str | None:
    """Subwords per word, the unknown tokens and the truncated sentences (``inputs.caveats.tokenizer_fit``)."""
    if not fit or fit.get("subwords_per_word") is None:
        return None
    unknown = ("it has no unknown token" if not fit.get("has_unknown_token", True) else "no token is unknown"
               if not fit.get("unknown_tokens") else f"{pct(fit['unknown_share'])} of tokens are unknown")
    cut = f"{fit['truncated']} of {fit['sentences']} sentences were cut at {fit['max_length']} tokens"
    what = ", ".join(x for x in (fit.get("tokenizer_class"), f"{fit['vocab_size']:,} entries" if fit.get("vocab_size")
                                 else None, {True: "lower-cased", False: "cased"}.get(fit.get("lowercase")) if
                                 fit.get("lowercase") is not None else None) if x)
    return (f"The tokenizer{f' ({what})' if what else ''} splits a word into {fmt(fit['subwords_per_word'])} subwords "
            f"on average; {unknown}; {cut}.")


def _constant(rows: list[dict[str, float]], threshold: float) -> list[int]:
    """The layers of one state's first-token rows whose mean cosine is at least ``threshold``."""
    return [int(r["layer"]) for r in rows if r.get("value") is not None and r["value"] >= threshold]


def _state_clauses(first: dict[str, list[dict[str, float]]], threshold: float) -> list[str]:
    """``pretrained: layers 0–5``, one clause per state (fine-tuned seeds with the same layers grouped),
    for the states with constant layers."""
    seeds = [s for s in first if split_label(s)[0] == "finetuned"]
    groups: dict[tuple[int, ...], list[str]] = {}
    for s in seeds:
        layers = tuple(_constant(first[s], threshold))
        if layers:
            groups.setdefault(layers, []).append(str(split_label(s)[1]))
    clauses = []
    for state in ("pretrained", "finetuned", "random"):
        if state == "finetuned":
            for layers, ss in groups.items():
                which = f" seed{'s' if len(ss) > 1 else ''} {and_list(ss)}" if len(seeds) > 1 else ""
                clauses.append(f"fine-tuned{which}: {layer_span(layers)}")
        elif first.get(state) and _constant(first[state], threshold):
            clauses.append(f"{state}: {layer_span(_constant(first[state], threshold))}")
    return clauses


def first_token_sentence(first: dict[str, list[dict[str, float]]],
                         threshold: float = CONSTANT_FIRST_TOKEN) -> str | None:
    """Where the first token barely varies between sentences (``measure.constancy.first_token_constancy``
    at least ``threshold``), per state; or that it varies at every layer."""
    if not first:
        return None
    clauses = _state_clauses(first, threshold)
    if not clauses:
        return (f"The first token varies between sentences at every layer of every state (mean cosine between "
                f"sentences below {fmt(threshold)}).")
    return (f"Where the first token barely varies between sentences (mean cosine between sentences ≥ "
            f"{fmt(threshold)}), its statistics describe one nearly fixed vector. Such layers, per model: "
            + "; ".join(clauses) + ".")


def pooling_sentence(pooling: dict[str, Any] | None) -> str | None:
    """The pooling the model declares (``inputs.caveats.model_pooling``) and what it says of the first token."""
    if not pooling or not pooling.get("modes"):
        return None
    modes = list(pooling["modes"])
    words = and_list([POOLING_WORDS.get(m, m.replace("_", " ")) for m in modes])
    what = ("its first token was trained as the sentence summary" if modes == [FIRST_TOKEN]
            else "its first token was not trained as a sentence summary")
    return f"The model declares {words} pooling (sentence-transformers {pooling.get('source')}): {what}."


def provenance_sentence(provenance: dict[str, Any] | None) -> str | None:
    """How the corpus was made, from its datasheet (``inputs.caveats.corpus_provenance``), or that it is not declared."""
    if not provenance:
        return None
    if not provenance.get("declared"):
        return f"How the corpus ({provenance.get('dataset')}) was made is not declared: no datasheet was read."
    text = str(provenance["text"]).rstrip()
    return (f"How the corpus was made is declared in its datasheet ({provenance.get('source')}). "
            f"{text}{'' if text.endswith(('.', '!', '?')) else '.'}")


def _count(k: int, verb: str) -> str:
    """``1 sentence is <verb>`` / ``2 sentences are <verb>``."""
    return f"{k} sentence is {verb}" if k == 1 else f"{k} sentences are {verb}"


def _duplicates_clause(overlap: dict[str, Any]) -> str:
    """The exact duplicates within and across the parts, or that there are none."""
    parts = [p for p in ("train", "probe", "test") if overlap.get("parts", {}).get(p)]
    within = [_count(w["copies"], f"repeated within the {PART_WORDS[p]} part")
              for p, w in overlap.get("within", {}).items() if p in parts and w.get("copies")]
    across = [_count(a["shared"], "shared by the {} and {} parts".format(*(PART_WORDS[x] for x in pair.split("-"))))
              for pair, a in overlap.get("across", {}).items() if a.get("shared")]
    if not within and not across:
        return (f"No sentence is repeated within a part or shared between the "
                f"{and_list([PART_WORDS[p] for p in parts])} parts")
    text = and_list(within + across)
    return text[:1].upper() + text[1:]


def overlap_sentence(overlap: dict[str, Any] | None) -> str | None:
    """Duplicates within and across the parts, and the test part's word n-grams found in the fine-tuning
    part (``inputs.caveats.split_overlap``)."""
    if not overlap or not overlap.get("parts"):
        return None
    text = _duplicates_clause(overlap)
    grams = overlap.get("ngrams") or {}
    if grams.get("test_share_in_train") is not None:
        text += (f". Of the test part's {grams['n']}-word sequences, {pct(grams['test_share_in_train'])} also occur "
                 f"in the fine-tuning part")
        if grams.get("test_sentences_with_train_ngram") is not None:
            text += f" ({pct(grams['test_sentences_with_train_ngram'])} of test sentences hold at least one)"
    return text + "."


#: each topic's sentence maker
SENTENCES: dict[str, Callable[[Any], str | None]] = {
    "tokenizer": tokenizer_sentence, "first_token": first_token_sentence, "pooling": pooling_sentence,
    "provenance": provenance_sentence, "overlap": overlap_sentence}


def caveat_sentences(study: Any) -> dict[str, str]:
    """``{topic: sentence}`` for the topics of ``study.manifest["caveats"]`` that have data (:data:`ORDER`);
    empty for a study computed before the caveats."""
    found = (getattr(study, "manifest", None) or {}).get("caveats") or {}
    out = {}
    for topic in ORDER:
        sentence = SENTENCES[topic](found.get(topic)) if found.get(topic) else None
        if sentence:
            out[topic] = sentence
    return out


def caveat_list(study: Any) -> list[str]:
    """The sentences of :func:`caveat_sentences` in the fixed order :data:`ORDER`."""
    sentences = caveat_sentences(study)
    return [sentences[t] for t in ORDER if t in sentences]


#: what bears on the random-weights observation of the probes (the first token barely varying, the model's own
#: pooling): placed beside it in the Findings
EXPLAIN_RANDOM = ("first_token", "pooling")


def caveats_markdown(study: Any, topics: Sequence[str] = ORDER) -> str:
    """The caveats of ``topics`` as a Markdown list under a bold lead line ("" when none is computed)."""
    sentences = caveat_sentences(study)
    items = [sentences[t] for t in topics if t in sentences]
    if not items:
        return ""
    return "**What bears on these results** (computed from the data and the model):\n\n" + \
        "\n".join(f"- {s}" for s in items) + "\n"


def view(study: Any, topics: Sequence[str] = ORDER):
    """:func:`caveats_markdown` for a notebook cell (``IPython.display.Markdown``)."""
    from IPython.display import Markdown

    return Markdown(caveats_markdown(study, topics))
