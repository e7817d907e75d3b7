"""The probe comparisons a reviewer expects, as sentences computed from the study's tables: the fine-tuned
model's own classifier against the lexical baseline, the pretrained model's best probe against it,
mean-pooled against first-token probes, how many test sentences the control task (and so the selectivity)
rests on, and where the MDL compression falls below 1. Verdict words from :mod:`layerwise.words.claims`
(``versus``, ``best_layers``, ``interval_versus``); every number from the study's tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import claims
from ..core.schema import state_order
from .prose_format import fmt, fmt_ci, fmt_interval, fmt_signed, series
from .prose_layers import layer_span, versus_groups

#: the widest 95% half-width of an accuracy on the control task's covered sentences that the report reads
#: without a flag; the fewest sentences that allow it: :func:`min_control_sentences`
CONTROL_MAX_HALF_WIDTH = 0.10
#: how each comparison word reads against a reference ("higher than the lexical baseline")
_AGAINST = {"higher": "higher than", "lower": "lower than", "tied": "tied with"}
_POOL = {"cls": "first-token", "mean": "mean-pooled"}


def _states(tidy: pd.DataFrame, metric: str) -> list[str]:
    return state_order(tidy.loc[tidy["metric"] == metric, "state"])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
    return (f"The fine-tuned model's own classifier scores {fmt(float(acc.mean()), 3)} on the test "
            f"sentences, {seeds}, and is {_AGAINST[v.word]} the lexical baseline, "
            f"{fmt_ci(lex.value, lex.ci_low, lex.ci_high, 3)} on the same {int(lex.n)} test sentences (difference "
            f"{fmt_signed(d['mean'], 3)}, 95% CI {fmt_signed(d['ci_low'], 3)} to {fmt_signed(d['ci_high'], 3)})."
            + ("" if brief else " ") + ("" if brief else
            f"The classifier's per-sentence predictions are not stored, so the comparison is not paired: {how} "
            f"decides, each seed's binomial interval combined with the lexical baseline's (conservative, both "
            f"being scored on the same sentences)."))


def best_pretrained_vs_lexical(study, pooling: str = "cls", model: str | None = None) -> str:
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
    return (f"The pretrained model's best {_POOL[pooling]} probe is at {where}: "
            f"{fmt_interval(row.value, row.ci_low, row.ci_high, fallback=3, signed=False)}. It is "
            f"{_AGAINST[v.word]} the lexical baseline ({fmt(lex.value, 3)}), paired on the same {v.n} test "
            f"sentences: difference {fmt_interval(v.detail['diff'], lo, hi, fallback=3)}.")


def pooling_sentence(study, model: str | None = None) -> str:
    """Mean-pooled against first-token probes, per state and layer, paired on the same test sentences
    (``claims.versus``), grouped by word with the largest difference and its CI."""
    tidy, correct = _tables(study, model)
    parts = []
    for state in _states(tidy, "probe_acc_mean"):
        layers = sorted(int(x) for x in series(tidy, "probe_acc_mean", state, model)["layer"])
        vs = [claims.versus(correct, tidy, ("probe_acc_mean", lay), ("probe_acc_cls", lay), state, model)
              for lay in layers]
        vs = [claims.Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": lay})
              for v, lay in zip(vs, layers) if v.word != "not measured"]
        if vs:
            parts.append(f"{state}: {versus_groups(vs)}")
    if not parts:
        return ""
    return ("Mean-pooled against first-token probes at the same layer, paired on the same test sentences "
            f"(mean-pooled minus first-token): {'; '.join(parts)}.")


def control_coverage_sentence(study, model: str | None = None) -> str:
    """How many test sentences the control task covers, so how many the selectivity rests on, flagged when
    fewer than :func:`min_control_sentences` (the 95% half-width :data:`CONTROL_MAX_HALF_WIDTH`)."""
    tidy, _ = _tables(study, model)
    cov = tidy[tidy["metric"] == "control_coverage"]
    if cov.empty or not np.isfinite(float(cov["value"].iloc[0])):
        return ""
    total = int(cov["n"].iloc[0])
    covered, need = round(float(cov["value"].iloc[0]) * total), min_control_sentences()
    text = (f"The control task, and so every selectivity, rests on the {covered} of the {total} test sentences it "
            f"covers (those whose first content word occurs at least twice in the probe pool)")
    if covered < need:
        return (text + f": fewer than the {need} sentences at which a 95% interval of an accuracy is at most "
                f"±{fmt(CONTROL_MAX_HALF_WIDTH, 2)} wide, so the control accuracies and selectivities are thin "
                f"measurements, read with their wide intervals.")
    return text + f", at least the {need} at which a 95% interval of an accuracy is at most ±{fmt(CONTROL_MAX_HALF_WIDTH, 2)} wide."


def mdl_below_one_sentence(study, pooling: str = "cls", model: str | None = None) -> str:
    """Where the MDL compression (uniform code length / online code length) is below 1, per state, and
    where its interval lies wholly below 1, with what that means."""
    tidy, _ = _tables(study, model)
    metric, parts, n = f"mdl_compression_{pooling}", [], None
    k = len((study.finetune or {}).get("label_names") or []) or None
    for state in _states(tidy, metric):
        s = series(tidy, metric, state, model).dropna(subset=["value"])
        below = s[s["value"] < 1]
        n = int(s["n"].max()) if len(s) else n
        if below.empty:
            continue
        low = below.loc[below["value"].idxmin()]
        sure = below[below["ci_high"] < 1]["layer"].tolist()
        parts.append(f"in {state} at {layer_span(below['layer'].tolist())} (lowest {fmt(low.value, 3)} at layer "
                     f"{int(low.layer)}" + (f"; interval wholly below 1 at {layer_span(sure)})" if sure else ")"))
    if n is None:
        return ""
    bits = f"log2 {k} = {fmt(math.log2(k), 2)} bits" if k else "log2 K bits, K classes,"
    what = (f"The MDL compression is the uniform code's length ({n} labels at {bits} each) over the online "
            f"code's, whose first block is sent with the uniform code and every later block with a probe trained "
            f"on the blocks before it. It falls below 1 when the online code is longer than the uniform one: "
            f"the probes trained on the first, small blocks predict the next labels worse than guessing (more "
            f"than the uniform code's bits per label), and the later blocks do not win that back.")
    if not parts:
        return what + f" On these sentences it is at least 1 at every layer of every state ({_POOL[pooling]} embeddings)."
    return what + f" On these sentences it is below 1 on the {_POOL[pooling]} embeddings {_and(parts)}."


def probe_comparison_sentences(study, model: str | None = None) -> list[str]:
    """The comparisons of this module, in reading order, empty ones left out."""
    out = [finetuned_vs_lexical(study, model), best_pretrained_vs_lexical(study, "cls", model),
           best_pretrained_vs_lexical(study, "mean", model), pooling_sentence(study, model),
           control_coverage_sentence(study, model), mdl_below_one_sentence(study, "cls", model)]
    return [s[:1].upper() + s[1:] for s in out if s]


def view(study, model: str | None = None):
    """:func:`probe_comparison_sentences` for a notebook cell, one paragraph each
    (``IPython.display.Markdown``)."""
    from IPython.display import Markdown

    return Markdown("\n\n".join(probe_comparison_sentences(study, model)))
