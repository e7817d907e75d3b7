"""One statistic layer by layer, in words: its shape through the layers, what fine-tuning did to it by the
answer model (outcomes from :mod:`layerwise.words.claims`) and the per-layer table with every number."""

from __future__ import annotations

from collections.abc import Sequence
import pandas as pd
from . import claims
from .prose_format import effect_digits, states_of, and_list, fmt, fmt_interval, layer_span, series
from .claims import seed_floor_verdicts
from .prose_outcomes import group_notes, outcome_clause, outcome_groups
from .prose_format import capitalised




def trend_verdict(tidy: pd.DataFrame, metric: str, state: str, digits: int = 2, model: str | None = None):
    """:func:`layerwise.words.claims.layer_trend` of one state's series. The tolerance is the larger of half a
    unit of the last printed digit (values that print the same are flat) and the widest half-width of the
    series' 95% intervals, where the rows have them: a trend verb only for a change that clears its
    interval."""
    rows = series(tidy, metric, state, model)
    tolerance = 0.5 * 10 ** -digits
    if {"ci_low", "ci_high"} <= set(rows.columns):
        half = ((rows["ci_high"] - rows["ci_low"]) / 2).dropna()
        tolerance = max(tolerance, float(half.max()) if len(half) else 0.0)
    return claims.layer_trend(rows, tolerance, f"{metric} ({state})")


def profile_text(v: claims.Verdict, digits: int = 2) -> str:
    """One state's numbers: ``0.03 → 0.23 (peak 0.24 at layer 5)``, ``flat at 0.36``."""
    d = v.detail
    if v.word == "flat":
        return f"flat at {fmt(d['first'], digits)}"
    text = f"{fmt(d['first'], digits)} → {fmt(d['last'], digits)}"
    ends = (d["first_layer"], d["last_layer"])
    extra = [f"{label} {fmt(d[key], digits)} at layer {d[key + '_layer']}"
             for label, key in (("peak", "max"), ("low", "min"))
             if d[key + "_layer"] not in ends and fmt(d[key], digits) not in (fmt(d["first"], digits),
                                                                             fmt(d["last"], digits))]
    return ", ".join([text, *extra])


def _trends(tidy: pd.DataFrame, metric: str, states: Sequence[str] | None, digits: int,
            model: str | None) -> dict[str, claims.Verdict]:
    verdicts = {s: trend_verdict(tidy, metric, s, digits, model) for s in (states or states_of(tidy, metric))}
    return {s: v for s, v in verdicts.items() if v.word != "not measured"}


def _shapes(verdicts: dict[str, claims.Verdict]) -> list[str]:
    """``rises in pretrained and finetuned``, ``is flat in random``: states grouped by ``claims.layer_trend``."""
    groups: dict[str, list[str]] = {}
    for s, v in verdicts.items():
        key = v.word + (f" at layer {v.detail['max_layer']}" if v.word == "peaks" else
                        f" at layer {v.detail['min_layer']}" if v.word == "dips" else "")
        groups.setdefault(key, []).append(s)
    return [f"{'is flat' if key == 'flat' else key} in {and_list(ss)}" for key, ss in groups.items()]


def layers_sentence(tidy: pd.DataFrame, metric: str, what: str, *, states: Sequence[str] | None = None,
                    digits: int = 2, model: str | None = None) -> str:
    """What the layers do to ``what``, states grouped by shape (``claims.layer_trend``), with every
    state's numbers in one clause: "Through the layers, X rises in pretrained and finetuned and is flat
    in random (layer 0 → 6: pretrained 0.03 → 0.23, finetuned 0.03 → 0.57, random flat at 0.36)."""
    verdicts = _trends(tidy, metric, states, digits, model)
    if not verdicts:
        return f"No values of {what} were computed."
    shapes = _shapes(verdicts)
    any_v = next(iter(verdicts.values())).detail
    numbers = "; ".join(f"{s} {profile_text(v, digits)}" for s, v in verdicts.items())
    return (f"Through the layers, {what} {and_list(shapes)}. Layer {any_v['first_layer']} → {any_v['last_layer']}: "
            f"{numbers}.")


def _largest(verdicts: list[claims.Verdict]) -> claims.Verdict:
    return max(verdicts, key=lambda v: abs(v.detail["effect"]))


def _effect(v: claims.Verdict) -> str:
    d = v.detail
    return fmt_interval(d["effect"], d.get("low", float("nan")), d.get("high", float("nan")),
                        fallback=effect_digits(d["effect"]))


def tested_clause(verdicts: list[claims.Verdict]) -> str:
    """The paired tests' verdicts grouped by word, then the largest moved effect with its CI as a second
    sentence: "higher at layers 2–6, lower at layer 1 and negligible at layer 0. Largest at layer 6: +0.27,
    95% CI ..." (the caller ends it with a full stop)."""
    parts = [f"{word} at {layer_span([v.detail['layer'] for v in verdicts if v.word == word])}"
             for word in ("higher", "lower", "not significant", "negligible") if any(v.word == word for v in verdicts)]
    moved = [v for v in verdicts if v.word in ("higher", "lower")]
    if not moved:
        return and_list(parts) if parts else ""
    top = _largest(moved)
    return f"{and_list(parts)}. Largest at layer {top.detail['layer']}: {_effect(top)}"


def seed_clause(floor: list[claims.Verdict], digits: int = 3) -> str:
    """The answer model's outcomes per layer (``claims.seed_change`` through
    :func:`layerwise.words.claims.seed_floor_verdicts`) in one clause (:func:`layerwise.words.prose_outcomes.outcome_groups`)."""
    floor = [v for v in floor if v.word != "not measured"]
    if not floor:
        return claims.SEED_VARIATION_NOT_MEASURED + "."
    seeds = max(v.n for v in floor)
    over = f"across {seeds} fine-tuning seeds" if seeds > 1 else claims.SEED_VARIATION_NOT_MEASURED
    only = ", over the seeds only" if any(not v.detail.get("sentence_term", True) for v in floor) and seeds > 1 else ""
    return f"{over}{only}: {outcome_groups(floor, digits)}"


def change_claim(tidy: pd.DataFrame, metric: str, what: str, *, tidy_all: pd.DataFrame | None = None,
                 verdict_metric: str | None = None, state: str = "finetuned", model: str | None = None,
                 digits: int = 2) -> str:
    """What fine-tuning did to ``what``, layer by layer, in the answer model's outcomes
    (:func:`layerwise.words.claims.difference_outcome` through :func:`seed_clause`). With ``verdict_metric`` (a
    per-sentence metric): its per-seed paired effects decide, and the paired per-sentence tests
    (``claims.state_change_verdicts``, size before significance) are printed first as a description of
    these checkpoints; without: the per-seed differences of ``metric`` itself. ``digits``: how the
    statistic is printed."""
    tidy_all = tidy if tidy_all is None else tidy_all
    if verdict_metric is not None:
        verdicts = claims.state_change_verdicts(tidy, verdict_metric, state, model=model)
        if not verdicts:
            return ""
        floor = seed_floor_verdicts(tidy_all, verdict_metric, state=state, model=model)
        return (f"Fine-tuned against pretrained, {what} is {tested_clause(verdicts)}, in paired per-sentence tests "
                f"on these checkpoints. {capitalised(seed_clause(floor))}")
    floor = seed_floor_verdicts(tidy_all, metric, state=state, model=model)
    if not floor:
        return ""
    if all(v.word == "not measured" for v in floor):
        return f"Whether fine-tuning changed {what} is not judged: {claims.SEED_VARIATION_NOT_MEASURED}."
    return f"Fine-tuned against pretrained, {what} {seed_clause(floor, max(3, digits))}"


def metric_paragraph(tidy: pd.DataFrame, metric: str, what: str, *, tidy_all: pd.DataFrame | None = None,
                     verdict_metric: str | None = None, tested: str | None = None, digits: int = 2,
                     states: Sequence[str] | None = None, model: str | None = None) -> str:
    """A result paragraph: the fine-tuning claim (:func:`change_claim`; ``tested`` names the statistic
    of ``verdict_metric`` when it differs from ``what``, e.g. the per-sentence mean against the median),
    then what the layers do with the numbers (:func:`layers_sentence`)."""
    claim = change_claim(tidy, metric, tested or what, tidy_all=tidy_all, verdict_metric=verdict_metric, model=model,
                         digits=digits)
    layers = layers_sentence(tidy, metric, what, states=states, digits=digits, model=model)
    return " ".join(s for s in (capitalised(claim) if claim else "", layers if claim else capitalised(layers)) if s)


def outcome_sentence(floor: list[claims.Verdict], what: str, against: str = "after fine-tuning") -> str:
    """The answer model's outcomes of ``what`` grouped by word, layers only (the numbers are in
    :func:`layer_table`): "The mean token cosine after fine-tuning, over 3 seeds: no change beyond δ at layers
    0–2; not established at layers 3–6." (the outcome is fine-tuned minus pretrained)"""
    measured = [v for v in floor if v.word != "not measured"]
    if not measured:
        return f"Whether fine-tuning changed {what} is not judged: {claims.SEED_VARIATION_NOT_MEASURED}." if floor else ""
    seeds = max(v.n for v in measured)
    groups = [f"{word} at {layer_span([v.detail['layer'] for v in measured if v.word == word])}"
              for word in claims.OUTCOMES if any(v.word == word for v in measured)]
    over = f"over {seeds} seeds" if seeds > 1 else claims.SEED_VARIATION_NOT_MEASURED
    return f"{capitalised(what)}{' ' + against if against else ''}, {over}: {'; '.join(groups)}."


def _outcome_cells(floor: list[claims.Verdict], digits: int, difference: str = "difference") -> dict[int, dict[str, str]]:
    """Per layer: the outcome (with δ; the header says when the statistic has no sentence interval), the
    deciding ``difference`` and, on each outcome's largest difference, the notes of
    :func:`layerwise.words.prose_outcomes.group_notes`."""

    measured = [v for v in floor if v.word != "not measured"]
    if not measured:
        return {}
    tops = {id(max(g, key=lambda v: abs(v.detail["mean"])))
            for g in ([v for v in measured if v.word == w] for w in claims.OUTCOMES) if g}
    seeds = max(v.n for v in measured)
    head = f"over {seeds} seeds" if seeds > 1 else "over one seed"
    if seeds > 1 and any(not v.detail.get("sentence_term", True) for v in measured):
        head += ", no sentence interval"
    cells = {}
    for v in measured:
        d = v.detail
        word = claims.outcome_label(v) if v.word == claims.NO_CHANGE else v.word
        cells[int(d["layer"])] = {
            f"{head}: {difference}": f"{word}: "
            + fmt_interval(d["mean"], d["low"], d["high"], d["deciding_level"], max(3, digits)),
            "note": "; ".join(group_notes(v, max(3, digits))) if id(v) in tops else ""}
    return cells


def layer_table(tidy: pd.DataFrame, metric: str, *, floor: Sequence[claims.Verdict] = (),
                tests: dict[int, str] | None = None, states: Sequence[str] | None = None, digits: int = 2,
                model: str | None = None, difference: str = "difference") -> str:
    """One row per layer: each state's value of ``metric``, the paired test's word (``tests``: layer ->
    word) and the answer model's outcome over the seeds with its deciding difference (``floor``), at most
    ``markdown.MAX_TABLE_COLUMNS`` columns; the notes on each outcome's largest difference follow as a list."""
    from .markdown import markdown_table

    values = {s: {int(r.layer): fmt(r.value, digits) for r in series(tidy, metric, s, model).itertuples()
                  if r.value == r.value}
              for s in (states or states_of(tidy, metric))}
    values = {s: v for s, v in values.items() if v}
    outcomes = _outcome_cells(list(floor), digits, difference)
    layers = sorted(set().union(*values.values(), outcomes)) if values or outcomes else []
    if not layers:
        return ""
    rows = []
    for layer in layers:
        row = {"layer": str(layer), **{s: v.get(layer, "") for s, v in values.items()}}
        if tests:
            row["paired test"] = tests.get(layer, "")
        rows.append(row | outcomes.get(layer, {}))
    df = pd.DataFrame(rows).fillna("")
    notes = [f"- Layer {r['layer']}: {r['note']}." for r in df.to_dict("records") if r.get("note")]
    # at most MAX_TABLE_COLUMNS columns: the notes on each outcome's largest difference go under the table
    table = markdown_table(df.drop(columns=[c for c in ("note",) if c in df.columns]))
    return table.rstrip("\n") + ("\n\n" + "\n".join(notes) if notes else "")


def metric_summary(tidy: pd.DataFrame, metric: str, what: str, *, tidy_all: pd.DataFrame | None = None,
                   verdict_metric: str | None = None, tested: str | None = None, digits: int = 2,
                   states: Sequence[str] | None = None, model: str | None = None) -> str:
    """A result in two sentences and a table: the answer model's outcome by layer
    (:func:`outcome_sentence`, on ``verdict_metric`` when given, named ``tested``), the shape through the
    layers (``claims.layer_trend``), then :func:`layer_table` with every number (the paired per-sentence
    tests of ``verdict_metric`` as one word per layer)."""
    tidy_all = tidy if tidy_all is None else tidy_all
    floor = seed_floor_verdicts(tidy_all, verdict_metric or metric, model=model)
    tests = ({int(v.detail["layer"]): v.word for v in claims.state_change_verdicts(tidy, verdict_metric, "finetuned",
                                                                                     model=model)}
             if verdict_metric else {})
    trends = _trends(tidy, metric, states, digits, model)
    shape = f"Through the layers, {what} {and_list(_shapes(trends))}." if trends else ""
    text = " ".join(p for p in (outcome_sentence(floor, tested or what), shape) if p)
    table = layer_table(tidy, metric, floor=floor, tests=tests, states=states, digits=digits, model=model)
    return capitalised(text) + ("\n\n" + table if table else "")


def effects_markdown(tidy: pd.DataFrame, metrics: dict[str, str], *, tidy_all: pd.DataFrame | None = None,
                     state: str = "finetuned", model: str | None = None) -> str:
    """The paired tests of several per-sentence statistics as one small table (:func:`tests_note` above
    it): per statistic, the layers of each test verdict, the largest moved effect with its CI and the
    answer model's outcome over the seeds, layers grouped by outcome. ``metrics``: metric -> name."""
    from .markdown import markdown_table

    rows = []
    for metric, what in metrics.items():
        verdicts = claims.state_change_verdicts(tidy, metric, state, model=model)
        if not verdicts:
            continue
        moved = [v for v in verdicts if v.word in ("higher", "lower")]
        floor = [v for v in seed_floor_verdicts(tidy if tidy_all is None else tidy_all, metric, state=state,
                                                model=model) if v.word != "not measured"]
        seeds = "; ".join(f"{claims.outcome_label(g[0]).split(' = ')[0]}: {layer_span([v.detail['layer'] for v in g]).split(' ', 1)[1]}"
                          for g in ([v for v in floor if v.word == w] for w in claims.OUTCOMES) if g)
        rows.append({"statistic": what, "paired tests by layer": "; ".join(
            f"{w}: {layer_span([v.detail['layer'] for v in verdicts if v.word == w]).split(' ', 1)[1]}"
            for w in ("higher", "lower", "not significant", "negligible") if any(v.word == w for v in verdicts)),
            "largest": f"layer {_largest(moved).detail['layer']}: {_effect(_largest(moved))}" if moved else "-",
            "over the seeds": seeds or claims.SEED_VARIATION_NOT_MEASURED})
    if not rows:
        return ""
    return tests_note(tidy) + "\n\n" + markdown_table(pd.DataFrame(rows))


def tests_note(tidy: pd.DataFrame) -> str:
    """How the paired tests decide, in one sentence (the rules of ``claims``)."""
    return (f"Each verdict is a per-sentence paired test of finetuned against pretrained: negligible below "
            f"{claims.NEGLIGIBLE_SD:g} pretrained between-sentence SD, else higher or lower when the Holm-adjusted "
            f"p-value (one family of {claims.family_size(tidy)} tests) is below {claims.ALPHA:g}.")


def outcome_table(floor: list[claims.Verdict], digits: int = 3, unit: str = "seed") -> str:
    """The answer model's outcomes (:func:`layerwise.words.claims.seed_floor_verdicts`) as a small
    Markdown table, one row per outcome: its layers, the largest difference with its deciding interval,
    and the notes of :func:`layerwise.words.prose_outcomes.outcome_clause` that bear on it."""
    from .markdown import markdown_table

    rows = []
    for group in ([v for v in floor if v.word == word] for word in claims.OUTCOMES):
        if not group:
            continue
        top = max(group, key=lambda v: abs(v.detail["mean"]))
        d = top.detail
        notes = [p for p in outcome_clause(top, digits).rstrip(")").split(" (", 1)[1].split("; ")[1:]
                 if "no sentence interval" not in p and "seed variation not measured" not in p
                 and ("leave-one-seed-out" not in p or top.word in (claims.CHANGED, claims.SIZE_UNCLEAR))]
        if unit == "random draw":    # (the random state's seeds are its draws)
            notes = [p.replace("every seed", "every draw").replace("leave-one-seed-out", "leave-one-draw-out")
                     for p in notes]
        rows.append({"outcome": claims.outcome_label(top, unit),
                     "layers": layer_span([v.detail["layer"] for v in group]).split(" ", 1)[1],
                     "largest difference": f"layer {d['layer']}: "
                                           + fmt_interval(d["mean"], d["low"], d["high"], d["deciding_level"], digits),
                     "note": "; ".join(notes) or "-"})
    return markdown_table(pd.DataFrame(rows)) if rows else ""


