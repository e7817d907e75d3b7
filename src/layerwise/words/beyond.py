"""The words of the analyses beyond the two end points (issue 27): when each layer moved, which changes the task
needs, what fine-tuning erased and where the domains differ, from the ``beyond`` table of a study
(:mod:`layerwise.study.beyond`).

Every outcome word comes from :mod:`layerwise.words.claims`: a change per seed (a swap's accuracy cost, an
auxiliary probe's or a domain's accuracy change), each with its interval over sentences, goes to
:func:`layerwise.words.claims.seed_change` with the accuracy margin δ (``schema.MARGINS["probe_acc"]``), so
"changed" needs the whole interval beyond δ and "no change beyond δ" the 90% interval within it; anything else is
"not established" with the seeds at hand. Which layers moved away from the pretrained model is the primary
question's verdict (:func:`layerwise.words.answer.question_verdicts`, the similarity against the seeds' own); the
timing of a layer's move is a description of the layers whose similarity to the start of training ended below
1 - δ (the similarity's margin) in every run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import claims
from .answer import question_verdicts
from .findings import outcomes_clause
from .prose_format import and_list, fmt, fmt_signed, layer_span
from ..core.schema import MARGINS

#: the margin of every accuracy change here: the declared accuracy margin
ACCURACY_DELTA = MARGINS["probe_acc"].value
#: the auxiliary tasks' names in the text (``measure.auxiliary.TASK_LABELS`` words, kept here for the prose)
TASK_WORDS = {"length": "sentence length", "word": "a word's presence", "bigram_shift": "two adjacent words swapped"}
#: what a swap is called in the text
SWAP_WORDS = {"single": "that layer alone set back to pretrained", "cumulative": "layers 0 to that layer set back"}
#: the share of its final change at which a layer counts as half-way moved
HALF = 0.5


def _rows(study, analysis: str) -> pd.DataFrame:
    b = getattr(study, "beyond", None)
    if b is None or b.empty:
        return pd.DataFrame(columns=["analysis"])
    return b[b["analysis"] == analysis]


def has(study, analysis: str, metric: str | None = None) -> bool:
    """Whether the study holds rows of ``analysis`` (``trajectory``, ``swap``, ``auxiliary``, ``domain``), of
    ``metric`` when given."""
    rows = _rows(study, analysis)
    return not (rows if metric is None else rows[rows["metric"] == metric]).empty


def change_verdicts(rows: pd.DataFrame, group: str, metric: str, subject: str) -> dict[int, claims.Verdict]:
    """The answer model's outcome of a per-seed change (``metric`` rows of ``group``, one per seed and layer, each
    with its interval over sentences) at every layer: :func:`layerwise.words.claims.seed_change` with δ =
    :data:`ACCURACY_DELTA`."""
    part = rows[(rows["group"] == group) & (rows["metric"] == metric) & rows["seed"].notna()]
    out = {}
    for layer, g in part.groupby("layer"):
        v = claims.seed_change(g, ACCURACY_DELTA, subject=f"{subject} at layer {layer}")
        out[int(layer)] = claims.at_layer(v, int(layer))
    return out


# --------------------------------------------------------------------------------------------------
# how the layers moved
# --------------------------------------------------------------------------------------------------

#: a layer moved during a run when its similarity to the start ended below 1 - this (the similarity's margin δ)
MOVED_DELTA = MARGINS["cka_debiased"].value


def moving_layers(study, m: pd.DataFrame | None = None) -> list[int]:
    """The layers whose similarity to the start of training ended below ``1 - δ`` (δ: the similarity's margin,
    :data:`MOVED_DELTA`) in every seed: the layers whose timing the text reads. Whether that change exceeds what
    separates the seeds from each other is page 1's question, not this one."""
    m = motion(study) if m is None else m
    if m.empty:
        return []
    final = m[m["checkpoint"] == m.groupby("seed")["checkpoint"].transform("max")]
    moved = final.groupby("layer")["cka"].max() < 1 - MOVED_DELTA
    return sorted(int(layer) for layer, yes in moved.items() if yes)


def motion(study) -> pd.DataFrame:
    """Per seed, layer and checkpoint: the similarity to the start (``cka``), the share of the layer's final
    change made so far, ``(1 - cka_t) / (1 - cka_1)`` (``share``; NaN when the layer did not move at all), and the
    probe accuracy (``probe_acc``)."""
    t = _rows(study, "trajectory")
    if t.empty:
        return pd.DataFrame(columns=["seed", "layer", "checkpoint", "cka", "share", "probe_acc", "step"])
    wide = t.pivot_table(index=["seed", "layer", "checkpoint"], columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"cka_debiased": "cka"})
    final = wide[wide["checkpoint"] == wide.groupby("seed")["checkpoint"].transform("max")]
    end = final.set_index(["seed", "layer"])["cka"]
    moved = 1 - wide.set_index(["seed", "layer"]).index.map(end).to_numpy(float)
    wide["share"] = np.where(moved > 1e-9, (1 - wide["cka"].to_numpy(float)) / np.where(moved > 1e-9, moved, 1), np.nan)
    for c in ("probe_acc", "step"):
        if c not in wide:
            wide[c] = np.nan
    return wide[["seed", "layer", "checkpoint", "cka", "share", "probe_acc", "step"]]


def half_way(study, m: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per seed and layer, the first checkpoint (fraction of training) by which the layer had made half of its
    final change (:data:`HALF`); NaN for a layer that did not move."""
    m = motion(study) if m is None else m
    if m.empty:
        return pd.DataFrame(columns=["seed", "layer", "fraction"])
    out = []
    for (seed, layer), g in m.groupby(["seed", "layer"]):
        reached = g[g["share"] >= HALF]["checkpoint"]
        out.append({"seed": int(seed), "layer": int(layer),
                    "fraction": float(reached.min()) if len(reached) else math.nan})
    return pd.DataFrame(out)


def _pct(f: float) -> str:
    return f"{f:.0%}"


def motion_sentences(study) -> list[str]:
    """The answer of "How the layers moved" in two sentences: which layers moved in every run and when they had
    made half of their final change (median over seeds); then which seed moved latest. One sentence when no layer
    moved beyond the margin."""
    if not has(study, "trajectory"):
        return []
    m = motion(study)                           # read once: the layers, the half-way points and the ends
    layers = moving_layers(study, m)
    if not layers:
        return [f"No layer's similarity to the start of training ended below {fmt(1 - MOVED_DELTA, 2)} in every seed: "
                "the runs show no move to time."]
    final = m[(m["checkpoint"] == m.groupby("seed")["checkpoint"].transform("max")) & m["layer"].isin(layers)]
    hw = half_way(study, m)
    hw = hw[hw["layer"].isin(layers)]
    median = hw.groupby("layer")["fraction"].median().dropna()
    groups: dict[float, list[int]] = {}
    for layer, f in median.items():
        groups.setdefault(float(f), []).append(int(layer))
    kept = sorted(m["checkpoint"].unique())

    def when(f: float) -> str:   # the checkpoints bracket the half-way point: it lies after the one before f
        before = [c for c in kept if c < f]
        return f"by {_pct(f)} of training" if not before or before[-1] == 0 else \
            f"between {_pct(before[-1])} and {_pct(f)} of training"

    parts = [f"{layer_span(ls)} {when(f)}" for f, ls in sorted(groups.items())]
    first = (f"{layer_span(layers)[0].upper()}{layer_span(layers)[1:]} moved in every run (similarity to the start "
             f"{fmt(final['cka'].min(), 2)} to {fmt(final['cka'].max(), 2)} at the end); half of that change was made "
             f"at {and_list(parts)} (median over seeds).")
    per_seed = hw.groupby("seed")["fraction"].mean()
    if per_seed.nunique() <= 1:
        second = "Every seed moved on the same schedule."
    else:
        late = int(per_seed.idxmax())
        others = per_seed.drop(late)
        second = (f"Seed {late} moved latest: the first checkpoint past half of the final change comes at "
                  f"{_pct(per_seed[late])} of training on average over these layers, against "
                  f"{and_list([_pct(v) for v in others])} for seed{'s' if len(others) > 1 else ''} "
                  f"{and_list([str(int(s)) for s in others.index])}.")
    return [first, second]


# --------------------------------------------------------------------------------------------------
# which changes the task needs
# --------------------------------------------------------------------------------------------------

def swap_verdicts(study) -> dict[str, dict[int, claims.Verdict]]:
    """The outcome of each swap's accuracy change (swapped - unswapped) at every layer, per kind."""
    rows = _rows(study, "swap")
    return {kind: change_verdicts(rows, kind, "accuracy_change", f"accuracy with {SWAP_WORDS[kind]}")
            for kind in ("single", "cumulative") if not rows.empty}


def _cell(v: claims.Verdict | None) -> str:
    if v is None or "mean" not in v.detail:
        return "not measured"
    d = v.detail
    return f"{_word(v)} ({fmt_signed(100 * d['mean'], 1)} [{fmt_signed(100 * d['low'], 1)}, " \
           f"{fmt_signed(100 * d['high'], 1)}])"


def _word(v: claims.Verdict) -> str:
    """The outcome as printed, without the margin's value (the section states δ once, in points)."""
    return claims.outcome_label(v).split(" = ")[0]


def swap_table(study) -> pd.DataFrame:
    """One row per layer: whether the layer moved away from the pretrained model (the primary question), and the
    accuracy change in points with its interval and outcome for the single and the cumulative swap."""
    verdicts = swap_verdicts(study)
    if not verdicts:
        return pd.DataFrame()
    metric = f"cka_debiased_{study.primary_pooling}_vs_pretrained"
    moved = question_verdicts(study).get(metric, {})
    layers = sorted(set(verdicts.get("single", {})) | set(verdicts.get("cumulative", {})))
    rows = [{"layer": str(layer),
             "similarity to pretrained": claims.outcome_label(moved[layer]) if layer in moved else "not measured",
             "swap this layer (points)": _cell(verdicts.get("single", {}).get(layer)),
             "swap layers 0 to this (points)": _cell(verdicts.get("cumulative", {}).get(layer))} for layer in layers]
    return pd.DataFrame(rows)


def _unswapped(study) -> float:
    rows = _rows(study, "swap")
    base = rows[(rows["group"] == "none") & (rows["metric"] == "accuracy")]
    return float(base["value"].mean()) if len(base) else math.nan


def swap_sentences(study) -> list[str]:
    """Which single swaps cost accuracy beyond δ (and how much), how the other layers are judged, and the
    cumulative swap's outcome per layer."""
    verdicts = swap_verdicts(study)
    if not verdicts:
        return []
    single = list(verdicts.get("single", {}).values())
    cost = [v for v in single if v.word == claims.CHANGED and v.detail["mean"] < 0]
    lead = f"The fine-tuned models score {fmt(100 * _unswapped(study), 1)}% on the test sentences."
    if cost:
        top = min(cost, key=lambda v: v.detail["mean"])
        found = (f"Setting {layer_span([v.detail['layer'] for v in cost])} back to pretrained costs more than "
                 f"δ = {fmt(100 * ACCURACY_DELTA, 0)} points; the most at layer {top.detail['layer']}: "
                 f"{fmt_signed(100 * top.detail['mean'], 1)} points [{fmt_signed(100 * top.detail['low'], 1)}, "
                 f"{fmt_signed(100 * top.detail['high'], 1)}].")
    else:
        found = f"No single layer set back to pretrained costs more than δ = {fmt(100 * ACCURACY_DELTA, 0)} points."
    out = [f"{lead} {found}", f"One layer set back: {outcomes_clause(single)}."]
    if verdicts.get("cumulative"):
        out.append(f"Layers 0 to l set back: {outcomes_clause(list(verdicts['cumulative'].values()))}.")
    return out


# --------------------------------------------------------------------------------------------------
# what fine-tuning erased
# --------------------------------------------------------------------------------------------------

def erased_verdicts(study) -> dict[str, dict[int, claims.Verdict]]:
    """The outcome of each auxiliary probe's accuracy change (fine-tuned - pretrained) at every layer, per task."""
    rows = _rows(study, "auxiliary")
    return {task: change_verdicts(rows, task, "probe_acc_change", f"{TASK_WORDS.get(task, task)} probe")
            for task in dict.fromkeys(rows["group"]) if not rows.empty} if not rows.empty else {}


def readable(study, task: str) -> dict[int, str]:
    """Per layer, whether the pretrained model's probe for ``task`` is "above chance" (its accuracy beyond the upper
    interval end of its permuted-label control), "at chance" or "not measured"
    (:func:`layerwise.words.claims.null_verdict`)."""
    rows = _rows(study, "auxiliary")
    pre = rows[(rows["group"] == task) & (rows["state"] == "pretrained")]
    return {int(layer): claims.null_verdict(g[g["metric"] == "probe_acc"], g[g["metric"] == "control_acc"],
                                            f"{task} probe, pretrained, layer {layer}").word
            for layer, g in pre.groupby("layer")}


def erased_sentences(study) -> list[str]:
    """One sentence per auxiliary task: where the pretrained probe reads the property at all (above its
    permuted-label control), the largest change among the layers that changed (with its interval), then every
    layer's outcome."""
    out = []
    for task, verdicts in erased_verdicts(study).items():
        vs = list(verdicts.values())
        if not vs:
            continue
        name = TASK_WORDS.get(task, task)
        name = name[0].upper() + name[1:]
        chance = readable(study, task)
        at = [layer for layer, word in chance.items() if word == "at chance"]
        above = [layer for layer, word in chance.items() if word == "above chance"]
        before = ("the pretrained probe is at chance at every layer (it cannot read the property here); "
                  if at and not above and len(at) == len(chance) else
                  f"the pretrained probe is above chance at {layer_span(above)} only; " if above and at else "")
        moved = [v for v in vs if v.word in (claims.CHANGED, claims.SIZE_UNCLEAR)]
        if moved:
            d = max(moved, key=lambda v: abs(v.detail["mean"])).detail
            where = (f"the largest change is at layer {d['layer']}, {fmt_signed(100 * d['mean'], 1)} points "
                     f"[{fmt_signed(100 * d['low'], 1)}, {fmt_signed(100 * d['high'], 1)}]; ")
        else:
            where = ""
        out.append(f"{name}: {before}{where}{outcomes_clause(vs)}.")
    return out


def lost(study) -> dict[str, list[int]]:
    """The layers where each auxiliary probe lost accuracy beyond δ (outcome changed, downwards)."""
    return {task: [layer for layer, v in vs.items() if v.word == claims.CHANGED and v.detail["mean"] < 0]
            for task, vs in erased_verdicts(study).items()}


# --------------------------------------------------------------------------------------------------
# domains
# --------------------------------------------------------------------------------------------------

def domain_table(study, layer: int | None = None) -> pd.DataFrame:
    """One row per domain at ``layer`` (default: the last): its n, the similarity to pretrained (mean over seeds),
    the probe accuracy pretrained and fine-tuned, and the outcome of the accuracy change."""
    rows = _rows(study, "domain")
    if rows.empty:
        return pd.DataFrame()
    layer = int(rows["layer"].max()) if layer is None else layer
    at = rows[rows["layer"] == layer]
    out = []
    for d, g in at.groupby("group", sort=True):
        cka = g[(g["metric"] == "cka_debiased")]["value"].mean()
        pre = g[(g["metric"] == "probe_acc") & (g["state"] == "pretrained")]["value"].mean()
        ft = g[(g["metric"] == "probe_acc") & (g["state"] == "finetuned")]["value"].mean()
        v = change_verdicts(rows, d, "probe_acc_change", f"probe accuracy on {d}").get(layer)
        out.append({"domain": d, "n": int(g["n"].max()), "similarity to pretrained": fmt(cka, 2),
                    "probe accuracy, pretrained": fmt(pre, 3), "fine-tuned": fmt(ft, 3),
                    "change": _cell(v)})
    return pd.DataFrame(out)


def domain_sentences(study) -> list[str]:
    """The similarity to the pretrained model at the last layer in each domain (mean over seeds, with the domain's
    n), lowest first, then the outcome of the probe accuracy change in each domain. The similarities are values,
    not a ranking: no interval separates them."""
    table = domain_table(study)
    if table.empty:
        return []
    rows = _rows(study, "domain")
    layer = int(rows["layer"].max())
    cka = rows[(rows["metric"] == "cka_debiased") & (rows["layer"] == layer)].groupby("group")["value"].mean()
    n = dict(zip(table["domain"], table["n"]))
    values = [f"{fmt(v, 2)} on {d} (n = {n[d]})" for d, v in cka.sort_values().items()]
    first = f"At layer {layer}, the similarity to the pretrained model is {and_list(values)}."
    verdicts = {d: change_verdicts(rows, d, "probe_acc_change", f"probe accuracy on {d}").get(layer)
                for d in table["domain"]}
    second = "The probe accuracy change there: " + "; ".join(
        f"{d} {_word(v)}" for d, v in verdicts.items() if v is not None)
    second += f" (δ = {fmt(100 * ACCURACY_DELTA, 0)} points)."
    return [first, second]


# --------------------------------------------------------------------------------------------------
# page 1
# --------------------------------------------------------------------------------------------------

def page_lines(study) -> list[str]:
    """One line per analysis for page 1 (those the study holds): how the layers moved, which changes the task
    needs, what fine-tuning erased, where the domains differ."""
    lines = []
    moved = motion_sentences(study)
    if moved:
        lines.append(f"**How the layers moved.** {moved[0]}")
    verdicts = swap_verdicts(study)
    if verdicts:
        cost = [layer for layer, v in verdicts.get("single", {}).items()
                if v.word == claims.CHANGED and v.detail["mean"] < 0]
        cum = [layer for layer, v in verdicts.get("cumulative", {}).items()
               if v.word == claims.CHANGED and v.detail["mean"] < 0]
        needed = (f"setting {layer_span(cost)} alone back to pretrained costs accuracy beyond δ" if cost
                  else "no single layer set back to pretrained costs accuracy beyond δ")
        together = (f"; setting layers 0 to l back costs accuracy beyond δ for l = {', '.join(map(str, sorted(cum)))}"
                    if cum else "")
        lines.append(f"**Which changes the task needs.** {needed.capitalize()}{together}.")
    erased = lost(study)
    if erased:
        parts = [f"{TASK_WORDS.get(t, t)} at {layer_span(ls)}" for t, ls in erased.items() if ls]
        lines.append("**What fine-tuning erased.** " + (
            f"Probes lost accuracy beyond δ for {and_list(parts)}." if parts else
            "No auxiliary probe lost accuracy beyond δ at any layer."))
    dom = domain_sentences(study)
    if dom:
        lines.append(f"**Domains.** {dom[0]}")
    return lines


#: what a section says when the study lacks its analysis
ABSENT = {"trajectory": "This study kept no checkpoints during fine-tuning (`finetune.checkpoints` is empty, or "
                        "its fine-tuning entries predate them).",
          "swap": "This study has no layer swaps (`analysis.beyond: false`).",
          "auxiliary": "This study has no auxiliary probes (`analysis.beyond: false`).",
          "domain": "The dataset has no domain column (`dataset.domain_column`), so nothing is broken down by domain."}
#: relative column widths of the swap table and the domain table (the layer and the domain narrow)
SWAP_WIDTHS = (8, 22, 35, 35)
DOMAIN_WIDTHS = (14, 8, 16, 16, 12, 34)


def view_table(df: pd.DataFrame, widths=None):
    """A table as Markdown (``IPython.display.Markdown``; :func:`layerwise.words.markdown.markdown_table`), so the
    PDF lays it out within the page."""
    from IPython.display import Markdown

    from .markdown import markdown_table

    return Markdown(markdown_table(df, widths=widths))


def findings_view(study):
    """The chapter's conclusion first: page 1's lines (:func:`page_lines`) as a list, or what the study lacks."""
    from IPython.display import Markdown

    lines = page_lines(study)
    return Markdown("\n".join(f"- {line}" for line in lines) if lines else
                    " ".join(ABSENT[a] for a in ("trajectory", "swap", "auxiliary")))


def sentences(study, analysis: str) -> list[str]:
    """A section's sentences (``trajectory``: :func:`motion_sentences`, ``swap``, ``auxiliary``, ``domain``), or
    what the study lacks (:data:`ABSENT`) when it holds no rows of ``analysis``."""
    said = {"trajectory": motion_sentences, "swap": swap_sentences, "auxiliary": erased_sentences,
            "domain": domain_sentences}[analysis]
    return said(study) if has(study, analysis) else [ABSENT[analysis]]
