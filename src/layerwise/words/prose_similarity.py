"""The similarity between states in words: chance against the permutation null, the answer model against the
similarity between fine-tuning seeds, the seed that stands apart."""

from __future__ import annotations

import pandas as pd
from ..core.schema import FIRST_TOKEN, pooling_adjective
from . import claims
from .prose_format import and_list, fmt, layer_span, series
from .claims import similarity_outcomes
from .claims import seed_apart_verdict
from .prose_layers import capitalised, layer_table, layers_sentence, outcome_sentence
from .prose_format import value_span


def similarity_summary(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, measure: str = "cka_debiased", *,
                       state: str = "finetuned", reference: str = "pretrained",
                       correct: pd.DataFrame | None = None) -> str:
    """A similarity of ``state`` with ``reference`` in two sentences and a table: chance
    (``claims.chance_verdicts``: above the 95th percentile of its permutation null), the answer model
    against the similarity between fine-tuning seeds (:func:`layerwise.words.claims.similarity_outcomes`)
    by layer, then :func:`layer_table`. ``tidy``: ``Study.tidy_all``; ``correct``: ``Study.probe_correct`` (the
    primary family's probes, :func:`layerwise.words.claims.primary_family`)."""
    aggregate = tidy[tidy["seed"].isna()] if "seed" in tidy.columns else tidy
    name = {"cka": "linear CKA", "cka_debiased": "debiased CKA", "procrustes": "Procrustes similarity",
            "mutual_knn": "mutual k-NN alignment"}.get(measure, measure)
    pool = pooling_adjective(pooling)
    chance = [v for v in claims.chance_verdicts(aggregate, measure, pooling, state, reference) if v.word != "not measured"]
    if not chance:
        return ""
    by: dict[str, list[int]] = {}
    for v in chance:
        by.setdefault(v.word, []).append(int(v.rows["layer"].iloc[0]))
    q95 = [v.detail["null_q95"] for v in chance]
    lo, hi = fmt(min(q95), 3), fmt(max(q95), 3)
    text = (f"The {pool} {name} of {state} with {reference} is "
            + and_list([f"{word} at {layer_span(sorted(ls))}" for word, ls in by.items()])
            + f" (null 95th percentile {lo if lo == hi else f'{lo}–{hi}'}).")
    floor = similarity_outcomes(tidy, pooling, measure, reference=reference, correct=correct) \
        if state == "finetuned" else []
    claim = (outcome_sentence(floor, "against the similarity between seeds", "")
             if floor else f"{capitalised(claims.SEED_VARIATION_NOT_MEASURED)}, so no layer is judged against it.")
    table = layer_table(aggregate, f"{measure}_{pooling}_vs_{reference}", floor=floor, states=[state], digits=3,
                        difference=f"{reference} minus seeds")
    return f"{text} {claim}" + ("\n\n" + table if table else "")


def seed_apart_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, measure: str = "cka_debiased") -> str:
    """Which fine-tuning seed stands apart, by the declared rule (:func:`seed_apart_verdict`); "" with fewer
    than three seeds. ``tidy``: ``Study.tidy_all``."""
    v = seed_apart_verdict(tidy, pooling, measure)
    if v.word == "not measured":
        return ""
    what = f"{pooling_adjective(pooling)} debiased CKA with pretrained"
    rule = (f"A seed stands apart when it lies outside the other seeds' range by more than "
            f"{fmt(v.detail['margin'], 2)}, or their sentence interval, at 2 or more layers.")
    if v.word == "no seed stands apart":
        return f"On the {what}, no seed stands apart. {rule}"
    return f"On the {what}, seed {v.detail['seed']} stands apart at {layer_span(v.detail['layers'])}. {rule}"




def cka_null_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, state: str = "finetuned",
                      model: str | None = None) -> str:
    """Biased CKA against its permutation null (``claims.chance_verdicts`` on ``cka_null_q95_*``): the null's
    95th percentile over the layers, then where the observed values lie above it (descriptive: it says the two
    states share more than shuffled sentences do, not whether fine-tuning changed them)."""
    rows = tidy if model is None else tidy[tidy["model"] == model]
    vs = [v for v in claims.chance_verdicts(rows, "cka", pooling, state) if v.word != "not measured"]
    if not vs:
        return "Its permutation null was not computed, so no chance level is given for it."
    by: dict[str, list[int]] = {}
    for v in vs:
        by.setdefault(v.word, []).append(int(v.rows["layer"].iloc[0]))
    where = and_list([f"{word} at {layer_span(ls)}" for word, ls in by.items()])
    return (f"Its permutation null's 95th percentile is {value_span([v.detail['null_q95'] for v in vs])} "
            f"at {layer_span(sorted(l for ls in by.values() for l in ls))}, and the observed value is {where}.")


def cka_diagonal_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, state: str = "finetuned", *,
                          model: str | None = None, label: str | None = None, judged: bool = True) -> str:
    """The biased linear CKA of ``state`` against pretrained layer by layer, descriptively (its shape,
    ``claims.layer_trend``), with its permutation null's computed level (:func:`cka_null_sentence`); the
    verdicts on fine-tuning are the debiased CKA's against its floors (:func:`similarity_summary`), said
    unless ``judged`` is false (a second pooling in the same paragraph)."""
    metric = f"cka_{pooling}_vs_pretrained"
    if series(tidy, metric, state, model).dropna(subset=["value"]).empty:
        return ""
    pool = pooling_adjective(pooling)
    text = layers_sentence(tidy, metric, f"the biased linear CKA of the {pool} embeddings with pretrained",
                           states=[state], digits=3, model=model)
    text = f"{label}: {text[:1].lower() + text[1:]}" if label else text
    rule = (" Whether fine-tuning changed the similarity is judged on the debiased CKA against its floors, not on "
            "the biased CKA." if judged else "")
    return f"{text} {cka_null_sentence(tidy, pooling, state, model)}{rule}"
