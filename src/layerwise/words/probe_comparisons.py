"""The probe comparisons a reviewer expects, as sentences computed from the study's tables: the fine-tuned
model's own classifier against the lexical baseline, the pretrained model's best probe against it,
mean-pooled against first-token probes, how many test sentences the control task (and so the selectivity)
rests on, where the MDL compression falls below 1 and what fine-tuning did to it (:func:`mdl_paragraph`);
lists of like results as small tables (:func:`layerwise.words.markdown.markdown_table`). Verdict words from
:mod:`layerwise.words.claims` (``versus``, ``best_layers``, ``interval_versus``); every number from the study's
tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..core.schema import FIRST_TOKEN, MEAN_TOKENS, POOLINGS, pooling_adjective
from . import claims
from ..core.schema import state_order
from .prose_format import fmt, fmt_ci, fmt_interval, series
from .prose_layers import layers_sentence, outcome_table
from .prose_format import layer_span

#: the widest 95% half-width of an accuracy on the control task's covered sentences that the report reads
#: without a flag; the fewest sentences that allow it: :func:`min_control_sentences`
CONTROL_MAX_HALF_WIDTH = 0.10
#: how each comparison word reads against a reference ("higher than the lexical baseline")
_AGAINST = {"higher": "higher than", "lower": "lower than", "tied": "tied with"}


def _poolings(study) -> list[str]:
    """The study's poolings, primary first (``Study.poolings``; first token and mean for a bare object)."""
    return list(getattr(study, "poolings", None) or (FIRST_TOKEN, MEAN_TOKENS))


def states_of(tidy: pd.DataFrame, metric: str) -> list[str]:
    return state_order(tidy.loc[tidy["metric"] == metric, "state"])


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def min_control_sentences(half_width: float = CONTROL_MAX_HALF_WIDTH) -> int:
    """The fewest test sentences whose 95% interval of an accuracy is at most ``half_width`` wide on each
    side in the worst case (accuracy 0.5, normal approximation): n = ceil((z_.975 x 0.5 / half_width)^2)."""
    from scipy.stats import norm

    return math.ceil((float(norm.ppf(0.975)) * 0.5 / half_width) ** 2)


def _tables(study, model: str | None):
    tidy, correct = study.tidy, getattr(study, "probe_correct", None)
    if model is not None:
        tidy = tidy[tidy["model"] == model]
        correct = None if correct is None else correct[correct["model"] == model]
    return tidy, (pd.DataFrame(columns=["model", "state", "metric", "layer", "sentence", "correct"])
                  if correct is None else correct)


def _lexical(tidy: pd.DataFrame, state: str = "finetuned") -> pd.Series | None:
    """The lexical baseline's row (the one scored beside ``state``, else the first)."""
    lex = tidy[tidy["metric"] == "lexical_probe_acc"]
    mine = lex[lex["state"] == state]
    return None if lex.empty else (mine if len(mine) else lex).iloc[0]


def _se(low, high) -> np.ndarray:
    from ..measure.stats import se_from_ci

    return se_from_ci(np.asarray(low, dtype=float), np.asarray(high, dtype=float))


def finetuned_vs_lexical(study, model: str | None = None, *, brief: bool = False) -> str:
    """The fine-tuned model's own classifier (its test accuracy, mean over the fine-tuning seeds) against the
    lexical baseline, by :func:`claims.interval_versus`. The classifier's per-sentence predictions are not
    stored, so the comparison is not paired: each seed's difference has the SE of its binomial interval and
    of the lexical baseline's interval combined (conservative on the same sentences), and the interval over
    seeds and sentences decides. ``brief``: without the sentence on how it was compared (page 1)."""
    tidy, _ = _tables(study, model)
    ft, lex = study.finetune or {}, _lexical(tidy)
    if lex is None or "accuracy" not in ft:
        return ""
    per_seed = ft.get("seeds") or {"": ft}
    acc = np.array([float(m["accuracy"]) for m in per_seed.values()])
    ci = np.array([m.get("accuracy_ci") or [np.nan, np.nan] for m in per_seed.values()], dtype=float)
    se = np.sqrt(np.nan_to_num(_se(ci[:, 0], ci[:, 1])) ** 2 + float(np.nan_to_num(_se(lex.ci_low, lex.ci_high))) ** 2)
    v = claims.interval_versus(acc - float(lex.value), se, "fine-tuned classifier vs lexical baseline")
    if v.word == "not measured":
        return ""
    d, k = v.detail, len(acc)
    seeds = (f"the mean over {k} fine-tuning seeds (" + ", ".join(f"seed {s}: {fmt(a, 3)}" for s, a in
                                                               zip(per_seed, acc)) + ")") if k > 1 else "one run"
    how = "the difference's interval over seeds and sentences" if k > 1 else "the difference's sentence interval"
    text = (f"The fine-tuned model's own classifier scores {fmt(float(acc.mean()), 3)} on the test sentences, "
            f"{seeds}. It is {_AGAINST[v.word]} the lexical baseline, "
            f"{fmt_ci(lex.value, lex.ci_low, lex.ci_high, 3)} on the same {int(lex.n)} test sentences: difference "
            f"{fmt_interval(d['mean'], d['ci_low'], d['ci_high'], fallback=3)}.")
    if brief:
        return text
    return text + f" The classifier's per-sentence predictions are not stored, so {how} decides, unpaired (see Methods)."


def best_pretrained_vs_lexical(study, pooling: str = FIRST_TOKEN, model: str | None = None) -> str:
    """The pretrained model's best probe layer (``claims.best_layers``; its top layer) against the lexical
    baseline, paired on the same test sentences (``claims.versus``)."""
    tidy, correct = _tables(study, model)
    metric, lex = f"probe_acc_{pooling}", _lexical(tidy, "pretrained")
    best = claims.best_layers(correct, tidy, metric, "pretrained", model)
    if lex is None or best.word == "not measured":
        return ""
    top = int(best.detail["top"])
    v = claims.versus(correct, tidy, (metric, top), ("lexical_probe_acc", -1), "pretrained", model)
    if v.word == "not measured":
        return ""
    row = best.rows[best.rows["layer"] == top].iloc[0]
    where = (f"layer {top}" if best.word == "best" else
             f"layer {top}, the highest of the tied {layer_span(best.detail['layers'])}")
    lo, hi = v.detail["diff_ci"]
    return (f"The pretrained model's best {pooling_adjective(pooling)} probe is at {where}: "
            f"{fmt_interval(row.value, row.ci_low, row.ci_high, fallback=3, signed=False)}. It is "
            f"{_AGAINST[v.word]} the lexical baseline ({fmt(lex.value, 3)}), paired on the same {v.n} test "
            f"sentences: difference {fmt_interval(v.detail['diff'], lo, hi, fallback=3)}.")


def _versus_cells(verdicts: list[claims.Verdict], digits: int = 3) -> dict[str, str]:
    """``claims.versus`` verdicts as table cells, one per word: its layers, and for higher or lower the
    largest difference with its CI ("-" where no layer has that word)."""
    cells = {}
    for word in ("higher", "lower", "tied"):
        group = [v for v in verdicts if v.word == word]
        text = layer_span([v.detail["layer"] for v in group]) if group else "-"
        if group and word != "tied":
            top = max(group, key=lambda v: abs(v.detail["diff"]))
            lo, hi = top.detail["diff_ci"]
            where = f"; largest at layer {top.detail['layer']}" if len(group) > 1 else ""
            text += f"{where}: {fmt_interval(top.detail['diff'], lo, hi, fallback=digits)}"
        cells[word] = text
    return cells


def pooling_sentence(study, model: str | None = None) -> str:
    """Each pair of the study's poolings (in declaration order, :data:`POOLINGS`: mean-pooled against
    first-token, last-token against first-token and mean-pooled), per state and layer, paired on the same test
    sentences (``claims.versus``): a lead sentence and a small table per pair, one row per state, the layers
    of each word with the largest difference and its CI."""
    from .markdown import markdown_table

    tidy, correct = _tables(study, model)
    have = [p for p in POOLINGS if p in _poolings(study)]
    out = []
    for i, a in enumerate(have):
        for b in have[:i]:
            rows = []
            for state in states_of(tidy, f"probe_acc_{a}"):
                layers = sorted(int(x) for x in series(tidy, f"probe_acc_{a}", state, model)["layer"])
                vs = [claims.versus(correct, tidy, (f"probe_acc_{a}", lay), (f"probe_acc_{b}", lay), state, model)
                      for lay in layers]
                vs = [v for v in claims.layer_verdicts(vs, layers) if v.word != "not measured"]
                if vs:
                    rows.append({"state": state, **_versus_cells(vs)})
            if rows:
                wa, wb = pooling_adjective(a), pooling_adjective(b)
                out.append(f"{capitalised(wa)} against {wb} probes at the same layer, paired on the same test "
                           f"sentences, {wa} minus {wb}:\n\n" + markdown_table(pd.DataFrame(rows)))
    return "\n\n".join(out)


def control_coverage_sentence(study, model: str | None = None) -> str:
    """How many test sentences the control task covers, so how many the selectivity rests on, flagged when
    fewer than :func:`min_control_sentences` (the 95% half-width :data:`CONTROL_MAX_HALF_WIDTH`)."""
    tidy, _ = _tables(study, model)
    cov = tidy[tidy["metric"] == "control_coverage"]
    if cov.empty or not np.isfinite(float(cov["value"].iloc[0])):
        return ""
    total = int(cov["n"].iloc[0])
    covered, need = round(float(cov["value"].iloc[0]) * total), min_control_sentences()
    text = (f"The control task covers {covered} of the {total} test sentences: those whose first content word "
            f"occurs at least twice in the probe pool. Every selectivity rests on these sentences.")
    wide = f"a 95% interval of an accuracy is at most ±{fmt(CONTROL_MAX_HALF_WIDTH, 2)} wide"
    if covered < need:
        return (text + f" That is fewer than the {need} sentences at which {wide}, so the control accuracies and "
                f"selectivities are thin measurements.")
    return text + f" That is at least the {need} at which {wide}."


def mdl_below_one_sentence(study, pooling: str = FIRST_TOKEN, model: str | None = None) -> str:
    """Where the MDL compression (uniform code length / online code length) is below 1, per state, and
    where its interval lies wholly below 1, with what that means (the method: Methods): a few sentences
    and a small table, one row per state with a layer below 1."""
    from .markdown import markdown_table

    tidy, _ = _tables(study, model)
    metric, rows, n = f"mdl_compression_{pooling}", [], None
    k = len((study.finetune or {}).get("label_names") or []) or None
    for state in states_of(tidy, metric):
        s = series(tidy, metric, state, model).dropna(subset=["value"])
        below = s[s["value"] < 1]
        n = int(s["n"].max()) if len(s) else n
        if below.empty:
            continue
        low = below.loc[below["value"].idxmin()]
        sure = below[below["ci_high"] < 1]["layer"].tolist()
        rows.append({"state": state, "below 1 at": layer_span(below["layer"].tolist()),
                     "lowest": f"{fmt(low.value, 3)} at layer {int(low.layer)}",
                     "interval wholly below 1 at": layer_span(sure) if sure else "-"})
    if n is None:
        return ""
    bits = f"log2 {k} = {fmt(math.log2(k), 2)} bits" if k else "log2 K bits, K classes,"
    what = (f"The MDL compression falls below 1 when the online code is longer than the uniform one, here {n} "
            f"labels at {bits} each (see Methods).")
    if not rows:
        return what + f" On these sentences it is at least 1 at every layer of every state ({pooling_adjective(pooling)} embeddings)."
    return (what + f" On these sentences it is below 1 on the {pooling_adjective(pooling)} embeddings at these layers:\n\n"
            + markdown_table(pd.DataFrame(rows)))


def mdl_paragraph(study, pooling: str = FIRST_TOKEN, model: str | None = None) -> str:
    """What fine-tuning did to the MDL compression: a lead line and the answer model's outcomes per layer as
    a small table (:func:`layerwise.words.prose_layers.outcome_table` of ``claims.seed_change`` through
    ``seed_floor_verdicts``), then what the layers do (:func:`layerwise.words.prose_layers.layers_sentence`)."""

    metric, what = f"mdl_compression_{pooling}", "the compression"
    tidy_all = getattr(study, "tidy_all", None)
    tidy_all = study.tidy if tidy_all is None else tidy_all
    layers = layers_sentence(study.tidy, metric, what, model=model)
    floor = [v for v in claims.seed_floor_verdicts(tidy_all, metric, model=model) if v.word != "not measured"]
    if not floor:
        return layers
    seeds = max(v.n for v in floor)
    over = f"over {seeds} fine-tuning seeds" if seeds > 1 else f"with {claims.SEED_VARIATION_NOT_MEASURED}"
    return (f"Fine-tuned against pretrained, {what} by the answer model {over}:\n\n{outcome_table(floor)}\n"
            f"{layers}")


def probe_comparison_sentences(study, model: str | None = None) -> list[str]:
    """The comparisons of this module, in reading order, empty ones left out."""
    poolings = _poolings(study)
    out = [finetuned_vs_lexical(study, model), *(best_pretrained_vs_lexical(study, p, model) for p in poolings),
           pooling_sentence(study, model), control_coverage_sentence(study, model),
           mdl_below_one_sentence(study, poolings[0], model)]
    return [capitalised(s) for s in out if s]


def view(study, model: str | None = None):
    """:func:`probe_comparison_sentences` for a notebook cell, one paragraph each
    (``IPython.display.Markdown``)."""
    from IPython.display import Markdown

    return Markdown("\n\n".join(probe_comparison_sentences(study, model)))
