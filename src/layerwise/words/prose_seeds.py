"""Sentences about the seed-to-seed floor (re-exported by :mod:`layerwise.words.prose`): whether fine-tuning
changed a statistic beyond the variation between fine-tuning seeds, from :func:`layerwise.words.claims.seed_change`
(never decided here)."""

from __future__ import annotations

import math

import pandas as pd

from . import claims
from .prose_format import ci_digits, fmt, fmt_interval, fmt_signed, layer_span


#: probes whose sentence term comes from the paired per-sentence correctness (``probe_correct``)
PROBE_METRICS = ("probe_acc_cls", "probe_acc_mean")


def _reference_value(aggregate: pd.DataFrame, metric: str, reference: str, layer: int) -> float:
    """The reference state's value of ``metric`` (a per-sentence metric: its registry row, e.g.
    ``token_cosine_var`` -> ``token_cosine_var_mean``) at ``layer``, for a relative margin; NaN if absent."""
    from ..core.schema import PER_SENTENCE_SPECS

    stem, suffix = (metric[:-len("_content")], "_content") if metric.endswith("_content") else (metric, "")
    name = PER_SENTENCE_SPECS[stem] + suffix if stem in PER_SENTENCE_SPECS else metric
    r = aggregate[(aggregate["metric"] == name) & (aggregate["state"] == reference) & (aggregate["layer"] == layer)]
    return float(r["value"].mean()) if len(r) else math.nan


def _delta(aggregate: pd.DataFrame, metric: str, reference: str, layer: int) -> float:
    """The declared margin of ``metric`` at ``layer`` (``schema.MARGINS``; NaN when none is declared)."""
    from ..core.schema import margin

    m = margin(metric)
    return math.nan if m is None else m.delta(_reference_value(aggregate, metric, reference, layer))


def paired_probe_se(correct: pd.DataFrame | None, metric: str, layer: int, state: str, reference: str) -> float:
    """The sentence SE of a probe's accuracy difference, paired on the same test sentences:
    ``sd_i(c_state(i) - c_reference(i)) / sqrt(n)`` (``probe_correct``: c = the share of retrainings, and
    of seeds, that got sentence i right); NaN without both states' rows."""
    if correct is None or correct.empty:
        return math.nan
    at = correct[(correct["metric"] == metric) & (correct["layer"] == layer)]
    both = pd.concat([at[at["state"] == s].set_index("sentence")["correct"] for s in (state, reference)], axis=1,
                     join="inner").dropna()
    if len(both) < 2:
        return math.nan
    d = both.iloc[:, 0].to_numpy(float) - both.iloc[:, 1].to_numpy(float)
    return float(d.std(ddof=1) / math.sqrt(len(d)))


def _per_layer_differences(tidy: pd.DataFrame, metric: str, reference: str, state: str,
                           correct: pd.DataFrame | None = None) -> dict[int, tuple]:
    """``{layer: (per-seed difference rows, delta)}`` for ``metric``: a per-sentence metric reads its
    paired ``effect_<metric>`` rows per seed; any other the per-seed value minus the reference's
    (:func:`claims.difference_rows`), a probe's sentence interval from the paired correctness
    (:func:`paired_probe_se`). delta: the declared margin (``schema.MARGINS``). A state without per-seed
    rows (the random state, one draw) uses its aggregate row as its one seed."""
    from scipy.stats import norm

    has_seed = "seed" in tidy.columns
    seeds = tidy[tidy["seed"].notna()] if has_seed else tidy.iloc[0:0]
    aggregate = tidy[tidy["seed"].isna()] if has_seed else tidy
    if seeds[seeds["state"] == state].empty:
        seeds = aggregate
    out: dict[int, tuple] = {}
    effect = seeds[(seeds["metric"] == f"effect_{metric}") & (seeds["state"] == state) & (seeds["layer"] >= 0)]
    if len(effect):
        for layer, g in effect.groupby("layer"):
            out[int(layer)] = (g, _delta(aggregate, metric, reference, int(layer)))
        return out
    rows = pd.concat([aggregate[aggregate["state"] == reference], seeds[seeds["state"] == state]])
    rows = rows[(rows["metric"] == metric) & (rows["layer"] >= 0)]
    z = float(norm.ppf(0.975))
    for layer, g in rows.groupby("layer"):
        if g[g["state"] == reference].empty or g[g["state"] == state].empty:
            continue
        diff = claims.difference_rows(g, reference, state)
        se = paired_probe_se(correct, metric, int(layer), state, reference) if metric in PROBE_METRICS else math.nan
        if se == se:
            diff = diff.assign(ci_low=diff["value"] - z * se, ci_high=diff["value"] + z * se)
        out[int(layer)] = (diff, _delta(aggregate, metric, reference, int(layer)))
    return out


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


def seed_floor_verdicts(tidy: pd.DataFrame, metric: str, *, reference: str = "pretrained", state: str = "finetuned",
                        model: str | None = None, correct: pd.DataFrame | None = None) -> list[claims.Verdict]:
    """The answer model (:func:`claims.seed_change`, :func:`claims.difference_outcome`) at every layer of
    ``metric`` (``tidy``: aggregate and per-seed rows, ``Study.tidy_all``; ``correct``: the probes' paired
    correctness, for a probe's sentence term). ``detail["layer"]`` added."""
    if model is not None:
        tidy = tidy[tidy["model"] == model]
        correct = None if correct is None else correct[correct["model"] == model]
    out = []
    for layer, (diff, delta) in _per_layer_differences(tidy, metric, reference, state, correct).items():
        v = claims.seed_change(diff, delta, subject=f"{metric}, layer {layer}")
        out.append(claims.Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": layer}))
    return out


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


def _layer_of(v: claims.Verdict) -> int:
    return int(v.rows["layer"].iloc[0])


def similarity_outcomes(tidy: pd.DataFrame, pooling: str = "cls", measure: str = "cka_debiased", *,
                        reference: str = "pretrained") -> list[claims.Verdict]:
    """The answer model of a similarity to ``reference`` at every layer (:func:`claims.seed_similarity_change`
    with the measure's margin): no change = within delta of the similarity between fine-tuning seeds.
    ``tidy``: ``Study.tidy_all``. ``detail["layer"]`` added."""
    from ..core.schema import margin

    if "seed" not in tidy.columns:
        return []
    seeds = tidy[tidy["seed"].notna() & (tidy["state"] == "finetuned")]   # (not the random draws)
    vs = seeds[seeds["metric"] == f"{measure}_{pooling}_vs_{reference}"]
    between = seeds[seeds["metric"] == f"{measure}_{pooling}_between_seeds"]
    m = margin(f"{measure}_{pooling}_vs_{reference}")
    out = []
    for layer in sorted(set(vs["layer"]) - {-1}):
        v = claims.seed_similarity_change(vs[vs["layer"] == layer], between[between["layer"] == layer],
                                          m.value if m else float("nan"), subject=f"{measure} {pooling}, layer {layer}")
        if v.word != "not measured":
            out.append(claims.Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": int(layer)}))
    return out


def similarity_floor_sentence(tidy: pd.DataFrame, pooling: str = "cls", measure: str = "cka_debiased", *,
                              state: str = "finetuned", reference: str = "pretrained") -> str:
    """One sentence on the same-layer similarity of ``state`` with ``reference``: chance
    (:func:`claims.chance_verdicts`: above the 95th percentile of its permutation null), a level judged
    apart, then the answer model against the similarity between fine-tuning seeds
    (:func:`similarity_outcomes`). ``tidy``: ``Study.tidy_all`` (aggregate and per-seed rows)."""
    aggregate = tidy[tidy["seed"].isna()] if "seed" in tidy.columns else tidy
    name = {"cka": "linear CKA", "cka_debiased": "debiased linear CKA", "procrustes": "Procrustes similarity",
            "mutual_knn": "mutual k-NN alignment"}.get(measure, measure)
    what = f"{name} of the {'first-token' if pooling == 'cls' else 'mean-pooled'} embeddings, {state} against {reference}"
    chance = [v for v in claims.chance_verdicts(aggregate, measure, pooling, state, reference) if v.word != "not measured"]
    if not chance:
        return ""
    by: dict[str, list[int]] = {}
    for v in chance:
        by.setdefault(v.word, []).append(_layer_of(v))
    parts = [f"{word} at {layer_span(sorted(ls))}" for word, ls in by.items()]
    floor = similarity_outcomes(tidy, pooling, measure, reference=reference) if state == "finetuned" else []
    only = any(not v.detail.get("sentence_term", True) for v in floor)
    seed_text = (f"Against the similarity between fine-tuning seeds, as {reference} minus seeds"
                 f"{', over the seeds only' if only else ''}: {outcome_groups(floor, 2)}" if floor else
                 f"{claims.SEED_VARIATION_NOT_MEASURED[:1].upper()}{claims.SEED_VARIATION_NOT_MEASURED[1:]}, so no "
                 "layer is judged against it.")
    q95 = [v.detail["null_q95"] for v in chance]
    lo, hi = fmt(min(q95), 3), fmt(max(q95), 3)
    null = f"permutation null's 95th percentile {lo if lo == hi else f'{lo}–{hi}'}"
    return f"{what[:1].upper() + what[1:]}: " + "; ".join(parts) + f", {null}. {seed_text}"


def seed_apart_verdict(tidy: pd.DataFrame, pooling: str = "cls", measure: str = "cka_debiased") -> claims.Verdict:
    """:func:`claims.seed_apart` on the per-seed profile of ``measure`` with pretrained over the layers, the
    margin the measure's δ (``tidy``: ``Study.tidy_all``); "not measured" without per-seed rows."""
    from ..core.schema import margin

    metric = f"{measure}_{pooling}_vs_pretrained"
    if "seed" not in tidy.columns:
        return claims.Verdict("not measured", metric, tidy.iloc[0:0], 0)
    rows = tidy[tidy["seed"].notna() & (tidy["state"] == "finetuned") & (tidy["metric"] == metric) & (tidy["layer"] >= 0)]
    m = margin(metric)
    return claims.seed_apart(rows, m.value if m else 0.0)


def seed_apart_sentence(tidy: pd.DataFrame, pooling: str = "cls", measure: str = "cka_debiased") -> str:
    """Which fine-tuning seed stands apart, by the declared rule (:func:`seed_apart_verdict`); "" with fewer
    than three seeds. ``tidy``: ``Study.tidy_all``."""
    v = seed_apart_verdict(tidy, pooling, measure)
    if v.word == "not measured":
        return ""
    what = f"{'first-token' if pooling == 'cls' else 'mean-pooled'} debiased CKA with pretrained"
    rule = (f"A seed stands apart when it lies outside the other seeds' range by more than "
            f"{fmt(v.detail['margin'], 2)}, or their sentence interval, at 2 or more layers.")
    if v.word == "no seed stands apart":
        return f"On the {what}, no seed stands apart. {rule}"
    return f"On the {what}, seed {v.detail['seed']} stands apart at {layer_span(v.detail['layers'])}. {rule}"
