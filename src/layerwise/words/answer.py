"""Page 1's answer, layer by layer (issue 23): what fine-tuning changed in one model, in the answer model of
:mod:`layerwise.words.claims` (every outcome word from :func:`layerwise.words.claims.difference_outcome`).

Four questions are asked of every layer, each of one statistic (:data:`QUESTIONS`):

* **similar to pretrained?** debiased CKA (the primary pooling: the model's own) with the pretrained model, against the
  similarity between fine-tuning seeds (:func:`layerwise.words.claims.similarity_outcomes`): "no change
  beyond δ" = as similar to pretrained as the seeds are to each other;
* **tokens converge?** the mean cosine between the tokens of a sentence (per-sentence, paired);
* **classes apart?** the silhouette of the two classes' pooled vectors;
* **label readable?** the primary pooling's probe's accuracy on held-out test sentences.

The layer table holds one outcome word and one number per cell; three sentences say what stayed, what
changed and by how much (each statistic in its own units: no ranking across statistics), and where the label
becomes readable against the lexical baseline and random weights. The seed that stands apart (by the declared
rule of :func:`layerwise.words.claims.seed_apart`) is named with its accuracy and training loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import claims
from .prose_format import fmt, fmt_level, fmt_signed
from .probe_comparisons import finetuned_vs_lexical
from .claims import seed_apart_verdict, seed_floor_verdicts, similarity_outcomes
from ..core.schema import FIRST_TOKEN, label
from .prose_format import layer_span

#: the questions of page 1: (column, metric judged, what the cell's number is, digits); each measure is named by
#: its registry short name (:func:`layerwise.core.schema.label`), its definition is the Methods'
def questions(pooling: str = FIRST_TOKEN) -> tuple[tuple[str, str, str, int], ...]:
    """The four questions on the study's primary pooling ``pooling`` (``Study.primary_pooling``)."""
    cka, sil, probe = f"cka_debiased_{pooling}_vs_pretrained", f"silhouette_{pooling}", f"probe_acc_{pooling}"
    return (
        ("similar to pretrained", cka, f"{label(cka)} with the pretrained model, mean over seeds; the outcome "
         "compares it with the similarity between fine-tuning seeds", 2),
        ("tokens converge", "token_cosine", f"change in {label('token_cosine')}", 3),
        ("classes apart", sil, f"change in {label(sil)}", 3),
        ("label readable", probe, f"the fine-tuned model's {label(probe)}, test accuracy; the outcome "
         "compares it with the pretrained model's", 3),
    )


#: the questions on the first token (a study's own are :func:`questions` of its primary pooling)
QUESTIONS = questions(FIRST_TOKEN)
#: each question's statistic, in its own units (the sentences' "from ... to ..."): the tidy metric of its values
#: (named by its registry short name); a question not listed is its own value metric
VALUE_METRICS = {"token_cosine": "token_cosine_sentence_mean"}


def _pooling(study) -> str:
    """The study's primary pooling (``Study.primary_pooling``; the first token for an object without one)."""
    return getattr(study, "primary_pooling", None) or FIRST_TOKEN
NOT_MEASURED = "not measured"
#: the layer table's relative column widths (the layer narrow, the four questions alike)
TABLE_WIDTHS = (6, 23, 23, 23, 23)


@dataclass
class Answer:
    """One model's page-1 answer: the layer table (:data:`QUESTIONS`, one row per layer), the sentences
    (what stayed, what changed, where the label is readable), the seed note and the verdicts behind them."""

    model: str
    title: str
    table: pd.DataFrame
    sentences: list[str]
    seed_note: str = ""
    seeds: int = 1
    verdicts: dict[str, dict[int, claims.Verdict]] = field(default_factory=dict)
    questions: tuple = QUESTIONS

    def legend(self) -> str:
        """What each cell holds (printed under the table): a lead line, then one list item per question."""
        k = self.seeds
        over = f"over {k} fine-tuning seeds" if k > 1 else "one fine-tuning run, seed variation not measured"
        return (f"Each cell holds the outcome of fine-tuned against pretrained ({over}; answer model of the Methods) "
                "and one number:\n\n" + "\n".join(f"- *{c}*: {what}." for c, _, what, _ in self.questions))

    def markdown(self) -> str:
        """The answer as Markdown: the sentences, the seed note, the layer table and its legend."""
        from .markdown import markdown_table

        text = "\n\n".join(self.sentences + ([self.seed_note] if self.seed_note else []))
        return f"{text}\n\n{markdown_table(self.table, widths=TABLE_WIDTHS)}\n\n{self.legend()}\n"


def question_verdicts(study) -> dict[str, dict[int, claims.Verdict]]:
    """The answer model's verdict of every question at every layer, ``{metric: {layer: Verdict}}``."""
    tidy_all = study.tidy_all if hasattr(study, "tidy_all") else study.tidy
    correct = getattr(study, "probe_correct", None)
    out: dict[str, dict[int, claims.Verdict]] = {}
    for _, metric, _, _ in questions(_pooling(study)):
        if metric.startswith("cka_debiased_"):
            verdicts = similarity_outcomes(tidy_all, _pooling(study), correct=correct)
        else:
            verdicts = seed_floor_verdicts(tidy_all, metric, correct=correct)
        out[metric] = {int(v.detail["layer"]): v for v in verdicts if v.word != NOT_MEASURED}
    return out


def _value(tidy: pd.DataFrame, metric: str, state: str, layer: int) -> float:
    r = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] == layer)]
    return float(r["value"].mean()) if len(r) else float("nan")


def _number(tidy: pd.DataFrame, metric: str, v: claims.Verdict, digits: int) -> str:
    """The one number of a cell (:data:`QUESTIONS`)."""
    if metric.startswith("cka_debiased_"):
        return fmt(v.detail["vs_reference_mean"], digits)
    if metric.startswith("probe_acc"):
        return fmt(_value(tidy, metric, "finetuned", v.detail["layer"]), digits)
    return fmt_signed(v.detail["mean"], digits)


def layer_table(study, verdicts: dict[str, dict[int, claims.Verdict]] | None = None) -> pd.DataFrame:
    """One row per layer (every layer of the study), one column per question: "outcome (number)", or
    "not measured"."""
    verdicts = question_verdicts(study) if verdicts is None else verdicts
    tidy = study.tidy
    layers = sorted(int(x) for x in tidy.loc[tidy["layer"] >= 0, "layer"].unique())
    rows, asked = [], questions(_pooling(study))
    for layer in layers:
        row = {"layer": str(layer)}
        for column, metric, _, digits in asked:
            v = verdicts.get(metric, {}).get(layer)
            row[column] = NOT_MEASURED if v is None else f"{v.word} ({_number(tidy, metric, v, digits)})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["layer", *(c for c, *_ in asked)])


def stayed_sentence(verdicts: dict[str, dict[int, claims.Verdict]], layers: list[int]) -> str:
    """What stayed: the layers where every measured question's outcome is "no change beyond δ"."""
    same = [layer for layer in layers
            if (vs := [q[layer] for q in verdicts.values() if layer in q]) and all(v.word == claims.NO_CHANGE for v in vs)]
    first = next((m for m in verdicts if m.startswith("cka_debiased_")), QUESTIONS[0][1])
    sim = verdicts.get(first, {})
    cka = [f"{fmt(sim[layer].detail['vs_reference_mean'], 2)} at layer {layer}" for layer in same if layer in sim]
    if not same:
        return ("Stayed the same: no layer, by the answer model; no layer has the outcome no change beyond δ on "
                "every question.")
    name = label(first)
    return (f"Stayed the same: {layer_span(same)}, where every question measured has the outcome no change beyond "
            f"δ" + (f"; {name} with the pretrained model: {', '.join(cka)}" if cka else "") + ".")


def _moved(tidy: pd.DataFrame, metric: str, group: list[claims.Verdict]) -> str:
    """One question's largest move within ``group``, in the statistic's own units."""
    top = max(group, key=lambda v: abs(v.detail["mean"]))
    layer = top.detail["layer"]
    where = layer_span([v.detail["layer"] for v in group])
    most = "" if len(group) == 1 else f"{'lowest' if metric.startswith('cka_') else 'most'} at layer {layer}, "
    if metric.startswith("cka_debiased_"):
        return (f"{label(metric)} with pretrained at {where}: {most}{fmt(top.detail['vs_reference_mean'], 2)}, "
                f"against {fmt(top.detail['seed_pairs_mean'], 2)} between seeds")
    values = VALUE_METRICS.get(metric, metric)
    a, b = _value(tidy, values, "pretrained", layer), _value(tidy, values, "finetuned", layer)
    return f"{label(values)} at {where}: {most}{fmt(a, 3)} pretrained, {fmt(b, 3)} fine-tuned"


def changed_sentences(study, verdicts: dict[str, dict[int, claims.Verdict]]) -> list[str]:
    """What changed and by how much (outcome changed or changed, size unclear), then what the seeds could not
    establish: each a lead line and one list item per question, the question's largest move in its own units,
    never ranked across statistics. A similarity above the seeds' own (fine-tuned closer to pretrained than the
    seeds to each other) is no move away from pretrained: it is left out here (the table shows it)."""
    out = []
    for words, lead in (((claims.CHANGED, claims.SIZE_UNCLEAR), "Changed:"),
                        ((claims.NOT_ESTABLISHED,), None)):
        parts = []
        for _, metric, _, _ in questions(_pooling(study)):
            group = [v for v in verdicts.get(metric, {}).values() if v.word in words
                     and not (metric.startswith("cka_") and v.detail["mean"] > 0)]
            if group:
                parts.append(_moved(study.tidy, metric, group))
        if not parts:
            continue
        if lead is None:
            k = max(v.detail.get("seeds", 1) for q in verdicts.values() for v in q.values())
            lead = f"Not established with {k} seed{'s' if k != 1 else ''}:"
        out.append(lead + "\n\n" + "\n".join(f"- {p}." for p in parts))
    return out or ["Changed: nothing, by the answer model."]


def family_sentence(verdicts: dict[str, dict[int, claims.Verdict]]) -> str:
    """How the primary family is judged (:func:`layerwise.words.claims.primary_family`): its size, Holm's
    strictest level, and whether any change clears it; "" without a family of two or more tests."""
    primary = [v for q in verdicts.values() for v in q.values() if v.detail.get("family") == "primary"]
    m = max([v.detail["family_size"] for v in primary] or [0])
    if m < 2:
        return ""
    k = max(v.detail.get("seeds", 1) for v in primary)
    found = sum(v.word in (claims.CHANGED, claims.SIZE_UNCLEAR) for v in primary)
    seeds = f"{k} seed{'s' if k != 1 else ''}"
    result = f"with {seeds}, none does" if not found else f"with {seeds}, {found} of {m} do"
    return (f"The similarity to pretrained and the probe accuracy are judged together: {m} tests, Holm's method. "
            f"The clearest change must exclude 0 from its {fmt_level(1 - claims.ALPHA / m)} interval; {result}.")


def _best(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, state: str) -> tuple[int, str] | None:
    """The top layer of ``state``'s probe and its words: "0.726 at layer 6, tied with layers 2 and 3"."""
    best = claims.best_layers(correct, tidy, metric, state)
    if best.word == NOT_MEASURED:
        return None
    top = best.detail["top"]
    tied = [x for x in best.detail["layers"] if x != top]
    return top, (f"{fmt(_value(tidy, metric, state, top), 3)} at layer {top}"
                 + (f", tied with {layer_span(tied)}" if tied else ""))


def _lexical(correct: pd.DataFrame, tidy: pd.DataFrame, metric: str, state: str, layer: int) -> str:
    """The probe at ``layer`` against the lexical baseline on the same test sentences (:func:`claims.versus`):
    "Against the bag-of-words probe, it is tied: paired difference +0.010, 95% CI -0.051 to +0.069"."""
    v = claims.versus(correct, tidy, (metric, layer), ("lexical_probe_acc", -1), state)
    if v.word == NOT_MEASURED:
        return ""
    lo, hi = v.detail["diff_ci"]
    return (f"Against the bag-of-words probe, it is {v.word}: paired difference {fmt_signed(v.detail['diff'], 3)}, "
            f"95% CI {fmt_signed(lo, 3)} to {fmt_signed(hi, 3)}")


def readable_sentence(study) -> str:
    """Where the label is best read (:func:`claims.best_layers` of the primary pooling's probe, paired on the test
    sentences), the lexical baseline on the same sentences, then each state's best probe against it
    (:func:`claims.versus`) and the fine-tuned classifier itself: short sentences, one per state."""
    correct = getattr(study, "probe_correct", None)
    tidy, metric = study.tidy, f"probe_acc_{_pooling(study)}"
    if correct is None or correct.empty:
        return ""
    lexical = _value(tidy, "lexical_probe_acc", "pretrained", -1)
    baseline = [f"A bag-of-words probe (TF-IDF, the lexical baseline) scores {fmt(lexical, 3)} on the same test "
                "sentences."] if lexical == lexical else []
    out: list[str] = []
    for state, name in (("finetuned", "the fine-tuned model"), ("pretrained", "the pretrained model"),
                        ("random", "random weights")):
        best = _best(correct, tidy, metric, state)
        if best is None:
            continue
        versus = _lexical(correct, tidy, metric, state, best[0])
        lead = (f"The label is best read by the {label(metric)} of {name}: " if state == "finetuned" else
                f"For {name}, the best {label(metric)}: ")
        out += [lead + best[1] + "."] + (baseline if not out else []) + ([f"{versus}."] if versus else [])
    own = finetuned_vs_lexical(study, brief=True)
    return " ".join(out + ([own] if own else []))


def seed_note(study) -> str:
    """The seed that stands apart, by the declared rule, with its test accuracy and training loss against the
    other seeds'; "" when no seed stands apart or fewer than three seeds."""
    tidy_all = study.tidy_all if hasattr(study, "tidy_all") else study.tidy
    metric = f"cka_debiased_{_pooling(study)}_vs_pretrained"
    v = seed_apart_verdict(tidy_all, _pooling(study))
    if v.word != "stands apart":
        return "No fine-tuning seed stands apart (declared rule in the Methods)." if v.word != NOT_MEASURED else ""
    seeds = (getattr(study, "finetune", None) or {}).get("seeds") or {}
    s = str(v.detail["seed"])
    text = (f"Seed {s} stands apart: its {label(metric)} with pretrained lies outside the other seeds' range at "
            f"{layer_span(v.detail['layers'])}.")
    if s not in seeds:
        return text
    rows = [{"seed": k + (" (apart)" if k == s else ""), "test accuracy": fmt(m.get("accuracy"), 3),
             "training loss": fmt(m.get("train_loss"), 3)} for k, m in seeds.items()]
    from .markdown import markdown_table

    return text + " Its test accuracy and training loss beside the other seeds':\n\n" + \
        markdown_table(pd.DataFrame(rows))


def model_answer(study) -> Answer:
    """The page-1 answer of one model's study (:class:`layerwise.study.study.Study`)."""
    verdicts = question_verdicts(study)
    table = layer_table(study, verdicts)
    layers = [int(x) for x in table["layer"]]
    family = family_sentence(verdicts)
    sentences = [stayed_sentence(verdicts, layers), *changed_sentences(study, verdicts), *([family] if family else [])]
    readable = readable_sentence(study)
    seeds = max([v.detail.get("seeds", 1) for q in verdicts.values() for v in q.values()] or [1])
    return Answer(study.params.name, study.params.display_name, table, sentences + ([readable] if readable else []),
                  seed_note(study), seeds, verdicts, questions(_pooling(study)))
