"""The answer model's outcomes in words (the verdicts come from :mod:`layerwise.words.claims`; this module
never decides one): one outcome with its deciding interval, outcomes grouped by layer, the heatmap's marks."""

from __future__ import annotations

import math
import pandas as pd
from . import claims
from .claims import seed_floor_verdicts
from .prose_format import ci_digits, fmt, fmt_interval, fmt_signed, layer_span


#: the heatmap's mark for each outcome of the answer model (the chapter's text gives the key)
OUTCOME_MARKS = {claims.CHANGED: "C", claims.SIZE_UNCLEAR: "c", claims.NO_CHANGE: "=", claims.NOT_ESTABLISHED: "?"}


def effect_marks(tidy: pd.DataFrame, state: str = "finetuned", *, tidy_all: pd.DataFrame | None = None
                 ) -> tuple[pd.DataFrame, str]:
    """The mark of each (per-sentence metric, layer) cell of the effect heatmap, and what the marks mean.
    With several fine-tuning seeds in ``tidy_all``, the per-sentence tests describe the checkpoints and the
    mark is the answer model's outcome over the seeds (:data:`OUTCOME_MARKS`, :func:`seed_floor_verdicts`);
    with one run, a star where the Holm-adjusted paired test is significant and the effect not negligible
    (:func:`claims.effect_words`). Columns ``metric``, ``layer``, ``mark``."""
    words = claims.effect_words(tidy, state)
    seeded = tidy_all is not None and "seed" in tidy_all.columns and \
        tidy_all.loc[tidy_all["state"] == state, "seed"].nunique() > 1
    if not seeded:
        marks = words.assign(mark=["*" if w in ("higher", "lower") else "" for w in words["word"]])
        return marks[["metric", "layer", "mark"]], f"* Holm-adjusted p < {claims.ALPHA}, not negligible"
    rows = [{"metric": m, "layer": v.detail["layer"], "mark": OUTCOME_MARKS.get(v.word, "")}
            for m in words["metric"].unique() for v in seed_floor_verdicts(tidy_all, m, state=state)]
    key = "marks: outcome over seeds, " + ", ".join(f"{mark} {word}" for word, mark in OUTCOME_MARKS.items())
    return pd.DataFrame(rows, columns=["metric", "layer", "mark"]), key


def outcome_clause(v: claims.Verdict, digits: int = 3) -> str:
    """One outcome with its numbers: "changed (+0.27, 95% CI +0.10 to +0.44)"; "not established with 3
    seeds (every seed moved up: +0.38, +0.35, +0.08; the smallest change 3 seeds detect: 0.41)"; "no
    change beyond δ = 0.05 (90% CI ...)". The interval printed is the one that decided."""
    d = v.detail
    if v.word not in claims.OUTCOMES:
        return v.word
    ci = fmt_interval(d["mean"], d["low"], d["high"], d["deciding_level"], digits)
    extra = []
    if v.word == claims.NOT_ESTABLISHED and d.get("direction") and d.get("seeds", 1) > 1:
        extra.append(f"every seed moved {d['direction']}: " + ", ".join(fmt_signed(x, _seed_digits(d)) for x in d["per_seed"]))
    if v.word == claims.NOT_ESTABLISHED and d.get("mde") == d.get("mde") and d.get("seeds", 1) > 1:
        extra.append(f"smallest detectable change {fmt(d['mde'], _seed_digits(d))}")
    if v.word == claims.NOT_ESTABLISHED and d.get("delta") == d.get("delta") and not d.get("equivalence_reachable"):
        extra.append("too few test sentences for no change beyond δ to be shown")
    if not d.get("sentence_term", True) and d.get("seeds", 1) > 1:
        extra.append("over the seeds only: this statistic has no sentence interval")
    if d.get("leave_one_out"):
        same = sum(w == v.word for w in d["leave_one_out"])
        extra.append(f"same outcome in {same} of {len(d['leave_one_out'])} leave-one-seed-out analyses")
    if d.get("clipped"):
        extra.append("interval clipped at the range a difference can take")
    if not d.get("seed_variation_measured", True):
        extra.append("one run: seed variation not measured")
    return f"{claims.outcome_label(v)} ({'; '.join([ci, *extra])})"


def _seed_digits(d: dict) -> int:
    """Decimals for the per-seed values and the detectable change: those of the deciding interval."""
    return ci_digits(d.get("low", math.nan), d.get("high", math.nan), 3)


def group_notes(top: claims.Verdict, digits: int = 3) -> list[str]:
    """What :func:`outcome_clause` adds to the interval of an outcome group's largest difference: the
    per-seed values and the smallest detectable change (not established), the leave-one-seed-out agreement
    (a change)."""
    return [p for p in outcome_clause(top, digits).rstrip(")").split(" (", 1)[1].split("; ")[1:]
            if "no sentence interval" not in p and "seed variation not measured" not in p
            and ("leave-one-seed-out" not in p or top.word in (claims.CHANGED, claims.SIZE_UNCLEAR))]


def _group_sentence(group: list[claims.Verdict], digits: int = 3) -> str:
    """One outcome's layers and its largest difference, as one sentence: "Not established with 3 seeds at
    layers 3–6: at layer 6, +0.3, 95% CI -0.1 to +0.7; every seed moved up: +0.4, +0.3, +0.1." A change
    adds how many analyses leaving one seed out agree."""
    top = max(group, key=lambda v: abs(v.detail["mean"]))
    d = top.detail
    where = f", largest at layer {d['layer']}" if len(group) > 1 else ""
    extra = group_notes(top, digits)
    label = claims.outcome_label(top)
    return (f"{label[:1].upper() + label[1:]} at {layer_span([v.detail['layer'] for v in group])}{where}: "
            + "; ".join([fmt_interval(d["mean"], d["low"], d["high"], d["deciding_level"], digits), *extra]) + ".")


def outcome_groups(verdicts: list[claims.Verdict], digits: int = 3) -> str:
    """Outcomes grouped by layer, in :data:`claims.OUTCOMES` order, one sentence each with the group's
    largest difference (:func:`_group_sentence`): "Changed at layers 5, 6: at layer 6, +0.27, 95% CI +0.10
    to +0.44; same outcome in 3 of 3 leave-one-seed-out analyses. Not established with 3 seeds at
    layers 1–4: ..." (the first word in lower case: the caller leads into it)."""
    groups = [[v for v in verdicts if v.word == word] for word in claims.OUTCOMES]
    text = " ".join(_group_sentence(g, digits) for g in groups if g)
    return text[:1].lower() + text[1:]


def seed_floor_sentence(tidy: pd.DataFrame, metric: str, what: str, *, reference: str = "pretrained",
                        state: str = "finetuned", model: str | None = None, correct: pd.DataFrame | None = None,
                        digits: int = 3) -> str:
    """One sentence: the answer model's outcome for ``what`` (``metric``) at every layer
    (:func:`seed_floor_verdicts`, :func:`outcome_groups`); one seed says that seed variation was not
    measured."""
    verdicts = [v for v in seed_floor_verdicts(tidy, metric, reference=reference, state=state, model=model,
                                               correct=correct) if v.word != "not measured"]
    cap = what[:1].upper() + what[1:]
    if not verdicts:
        return f"{cap}: no {state} rows to compare with the {reference} state."
    seeds = max(v.n for v in verdicts)
    over = (f"across {seeds} fine-tuning seeds" if seeds > 1 else claims.SEED_VARIATION_NOT_MEASURED) \
        if state == "finetuned" else ("one random draw" if seeds == 1 else f"{seeds} random draws")
    return f"{cap}, {state} against {reference}, {over}: {outcome_groups(verdicts, digits)}"
