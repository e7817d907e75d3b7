"""The probes in words: where the label is read best, against pretrained, the lexical baseline, the controls and
the random state; memorisation; the original study's probe grid."""

from __future__ import annotations

from collections.abc import Sequence
import pandas as pd
from ..core.schema import FIRST_TOKEN, LAST_TOKEN, MEAN_TOKENS, pooling_adjective, pooling_noun
from . import claims
from .prose_format import states_of, and_list, fmt, fmt_interval, layer_span, series
from .claims import seed_floor_verdicts
from ..core.schema import state_order
from .prose_format import fmt_ci
from .prose_layers import capitalised, outcome_table


def _probe_layers(correct: pd.DataFrame, metric: str, model: str | None) -> list[int]:
    sel = correct["metric"] == metric
    if model is not None:
        sel &= correct["model"] == model
    return sorted(int(v) for v in correct.loc[sel, "layer"].unique() if v >= 0)


def versus_groups(verdicts: list[claims.Verdict], digits: int = 3) -> str:
    """``claims.state_versus`` verdicts grouped by word, the largest moved difference with its CI."""
    parts = []
    for word in ("higher", "lower", "tied"):
        group = [v for v in verdicts if v.word == word]
        if not group:
            continue
        text = f"{word} at {layer_span([v.detail['layer'] for v in group])}"
        if word != "tied":
            top = max(group, key=lambda v: abs(v.detail["diff"]))
            lo, hi = top.detail["diff_ci"]
            where = "" if len(group) == 1 else f"largest at layer {top.detail['layer']}: "
            text += f" ({where}{fmt_interval(top.detail['diff'], lo, hi, fallback=digits)})"
        parts.append(text)
    return and_list(parts) if parts else ""


def probe_change_claim(tidy: pd.DataFrame, correct: pd.DataFrame, pooling: str = FIRST_TOKEN, *,
                       tidy_all: pd.DataFrame | None = None, state: str = "finetuned", model: str | None = None) -> str:
    """``state`` against pretrained on the probe, layer by layer, paired on the same test sentences
    (``claims.state_versus``), then its seed floor (``claims.seed_change``) as a lead line and a small table
    (:func:`outcome_table`)."""
    metric = f"probe_acc_{pooling}"
    verdicts = [claims.state_versus(correct, tidy, metric, layer, state, model=model)
                for layer in _probe_layers(correct, metric, model)]
    verdicts = [v for v in verdicts if v.word != "not measured"]
    if not verdicts:
        return ""
    pool = pooling_adjective(pooling)
    floor = [v for v in seed_floor_verdicts(tidy if tidy_all is None else tidy_all, metric, state=state, model=model,
                                            correct=correct) if v.word != "not measured"]
    if state != "finetuned":
        if not floor:
            return ""
        k = max(v.n for v in floor)
        draws = "one random draw" if k == 1 else f"{floor[0].n} random draws"
        return (f"{capitalised(state)} weights against pretrained on the same probe, {draws}:\n\n"
                + outcome_table(floor, unit="random draw"))
    text = (f"Against pretrained on the same {verdicts[0].n} test sentences, the fine-tuned {pool} probe is "
            f"{versus_groups(verdicts)}.")
    if not floor:
        return text + f" {capitalised(claims.SEED_VARIATION_NOT_MEASURED)}."
    seeds = max(v.n for v in floor)
    only = ", over the seeds only" if any(not v.detail.get("sentence_term", True) for v in floor) and seeds > 1 else ""
    over = (f"By the answer model over {seeds} fine-tuning seeds{only}" if seeds > 1 else
            f"By the answer model, with {claims.SEED_VARIATION_NOT_MEASURED}")
    return f"{text} {over}:\n\n{outcome_table(floor)}"


def best_layers_clause(tidy: pd.DataFrame, correct: pd.DataFrame, metric: str, state: str,
                       model: str | None = None, digits: int = 3) -> str:
    """``claims.best_layers`` of one state in a few words: "finetuned: layer 6 (0.726)" or
    "pretrained: layers 1–5, not separated (highest 0.649 at layer 3)"."""
    v = claims.best_layers(correct, tidy, metric, state, model)
    if v.word == "not measured":
        return ""
    top = v.rows[v.rows["layer"] == v.detail["top"]].iloc[0]
    if v.word == "best":
        return f"{state} layer {int(top.layer)}: {fmt_interval(top.value, top.ci_low, top.ci_high, fallback=digits, signed=False)}"
    return f"{state} {layer_span(v.detail['layers'])}, tied, highest {fmt(top.value, digits)} at layer {int(top.layer)}"


def probe_paragraph(tidy: pd.DataFrame, correct: pd.DataFrame | None, pooling: str = FIRST_TOKEN, *,
                    tidy_all: pd.DataFrame | None = None, model: str | None = None) -> str:
    """The probe result, claim first: what fine-tuning changed (paired, with the seed floor as a table), the
    best layers of every state, random weights against pretrained (a table), and the references (chance,
    control task, selectivity) at the fine-tuned model's highest layer; blocks separated by blank lines.
    Without per-sentence correctness: the older per-state sentence (``prose_probes.probe_sentence``)."""

    metric = f"probe_acc_{pooling}"
    if correct is None or correct.empty:
        return probe_sentence(tidy, pooling, model)
    states = states_of(tidy, metric)
    best = [b for b in (best_layers_clause(tidy, correct, metric, s, model) for s in states) if b]
    parts = [probe_change_claim(tidy, correct, pooling, tidy_all=tidy_all, model=model).strip()]
    if best:
        parts.append("Best layers, paired on the same test sentences: "
                     + " ".join(f"{capitalised(b) if i else b}." for i, b in enumerate(best)))
    if "random" in states:
        parts.append(probe_change_claim(tidy, correct, pooling, tidy_all=tidy_all, state="random", model=model).strip())
    top = best_layer(tidy, metric, "finetuned", model)
    if top is not None:
        refs = _controls_text(tidy, pooling, "finetuned", int(top.layer), model).strip()[1:-1]
        if refs:
            parts.append(f"References at the fine-tuned model's highest layer, {int(top.layer)}: {refs}.")
    return "\n\n".join(p for p in parts if p)


def best_layer(tidy: pd.DataFrame, metric: str, state: str, model: str | None = None) -> pd.Series | None:
    """The row of the layer where ``metric`` is highest for ``state``."""
    s = series(tidy, metric, state, model)
    return None if s.empty else s.loc[s["value"].idxmax()]


def best_layer_text(correct: pd.DataFrame | None, tidy: pd.DataFrame, metric: str, state: str,
                    model: str | None = None) -> tuple[str, int | None]:
    """The best-layer claim of one probe (``claims.best_layers``) as words, and the top layer: one layer
    is named only when the paired comparison singles it out; otherwise the set is named."""
    from . import claims

    if correct is None or correct.empty:
        top = best_layer(tidy, metric, state, model)
        if top is None:
            return "", None
        return (f"highest at layer {int(top.layer)} with {fmt_ci(top.value, top.ci_low, top.ci_high, 3)} (not "
                f"tested against the other layers)"), int(top.layer)
    v = claims.best_layers(correct, tidy, metric, state, model)
    if v.word == "not measured":
        return "", None
    top = v.rows[v.rows["layer"] == v.detail["top"]].iloc[0]
    acc = fmt_ci(top.value, top.ci_low, top.ci_high, 3)
    if v.word == "best":
        return (f"best at layer {int(top.layer)} with {acc} (every other layer lower, paired 95% CI on the same "
                f"{v.n} test sentences)"), int(top.layer)
    return (f"best {layer_span(v.detail['layers'])}, which the paired comparison on {v.n} test sentences does not "
            f"separate; highest at layer {int(top.layer)}: {acc}"), int(top.layer)


def _controls_text(tidy: pd.DataFrame, pooling: str, state: str, layer: int, model: str | None) -> str:
    def at(metric):
        s = series(tidy, f"{metric}_{pooling}", state, model)
        s = s[s["layer"] == layer]
        return None if s.empty else s.iloc[0]

    bits = []
    chance = at("probe_chance_acc")
    if chance is not None:
        bits.append(f"chance baseline (permuted labels) {fmt(chance.value, 3)}")
    ctrl, sel = at("control_acc"), at("selectivity")
    if ctrl is not None and sel is not None:
        bits.append(f"control task {fmt(ctrl.value, 3)} and selectivity "
                    f"{fmt_ci(sel.value, sel.ci_low, sel.ci_high, 3)} on the {int(ctrl.n)} covered test sentences")
    return f" ({'; '.join(bits)})" if bits else ""


def probe_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, model: str | None = None,
                   correct: pd.DataFrame | None = None) -> str:
    """Best probe layer(s) per state, by paired comparison (``claims.best_layers`` on the per-sentence
    ``correct`` table), with the chance baseline, the control task and the selectivity at the top layer."""
    metric = f"probe_acc_{pooling}"
    parts = []
    for state in states_of(tidy, metric):
        text, top = best_layer_text(correct, tidy, metric, state, model)
        if top is None:
            continue
        parts.append(f"{state}: {text}{_controls_text(tidy, pooling, state, top, model)}")
    if not parts:
        return ""
    pool = pooling_adjective(pooling)
    return f"Linear probes on the {pool} embeddings: " + "; ".join(parts) + "."


def lexical_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, correct: pd.DataFrame | None = None,
                     state: str = "finetuned", model: str | None = None) -> str:
    """The lexical baseline (bag of word 1-2-grams) against the top layer probe of ``state``, paired on the
    same test sentences (``claims.versus``)."""
    from . import claims

    lex = tidy[(tidy["metric"] == "lexical_probe_acc") & ((tidy["model"] == model) if model else True)]
    if lex.empty:
        return ""
    r = lex.iloc[0]
    text = (f"The lexical baseline (logistic regression on TF-IDF of word 1- and 2-grams) scores "
            f"{fmt_ci(r.value, r.ci_low, r.ci_high, 3)} on the same {int(r.n)} test sentences")
    top = best_layer(tidy, f"probe_acc_{pooling}", state, model)
    if top is None or correct is None or correct.empty:
        return text + "."
    v = claims.versus(correct, tidy, (f"probe_acc_{pooling}", int(top.layer)), ("lexical_probe_acc", -1), state, model)
    if v.word == "not measured":
        return text + "."
    how = {"higher": "above it", "lower": "below it", "tied": "not distinguishable from it"}[v.word]
    lo, hi = v.detail["diff_ci"]
    return (text + f". The {state} model's highest {pooling_adjective(pooling)} probe, "
            f"at layer {int(top.layer)}, is {how}: paired difference {fmt_interval(v.detail['diff'], lo, hi, fallback=3)}.")


def memorisation_sentence(tidy: pd.DataFrame, pooling: str = FIRST_TOKEN, state: str = "finetuned",
                          model: str | None = None) -> str:
    """Probe accuracy and MDL compression when the probe trains on fine-tuning sentences vs on unseen
    (probe-pool) sentences, at equal n, at the last layer and where the MDL gap is largest."""
    parts = []
    for seen, unseen, what, digits in ((f"mdl_compression_seen_{pooling}", f"mdl_compression_{pooling}",
                                        "MDL compression", 2),
                                       (f"probe_acc_seen_{pooling}", f"probe_acc_{pooling}", "Probe accuracy", 3)):
        a, b = series(tidy, seen, state, model), series(tidy, unseen, state, model)
        if a.empty or b.empty:
            continue
        m = a.merge(b, on="layer", suffixes=("_seen", "_unseen"))
        last = m.iloc[-1]
        gap = m.loc[(m["value_seen"] - m["value_unseen"]).idxmax()]
        text = (f"{what} of the {state} model at layer {int(last.layer)}, {int(last.n_seen)} sentences each: "
                f"{fmt_ci(last.value_seen, last.ci_low_seen, last.ci_high_seen, digits)} on fine-tuning sentences, "
                f"{fmt_ci(last.value_unseen, last.ci_low_unseen, last.ci_high_unseen, digits)} on unseen ones.")
        if int(gap.layer) != int(last.layer):
            text += (f" Its largest gap is at layer {int(gap.layer)}: "
                     f"{fmt(gap.value_seen, digits)} against {fmt(gap.value_unseen, digits)}.")
        parts.append(text)
    if not parts:
        return "The memorisation check was not computed (no probe pool separate from the fine-tuning sentences)."
    return " ".join(parts)


def models_best_sentence(tidy: pd.DataFrame, metric: str = f"probe_acc_{FIRST_TOKEN}", state: str = "finetuned",
                         what: str = "first-token probe accuracy", correct: pd.DataFrame | None = None) -> str:
    """The comparison: per model, the best layer (or the best-layer set, ``claims.best_layers`` on the
    per-sentence ``correct`` table) of ``metric`` for ``state``."""
    parts = []
    for model in dict.fromkeys(tidy["model"]):
        text, top = best_layer_text(correct, tidy, metric, state, model)
        if top is not None:
            last = int(tidy[(tidy["model"] == model) & (tidy["layer"] >= 0)]["layer"].max())
            parts.append(f"{model} (layers 0 to {last}): {text}")
    if not parts:
        return ""
    return f"Best {what} ({state}): " + "; ".join(parts) + "."


def grid_metric(poolings: Sequence[str]) -> str:
    """The probe of the original study's grid: the first token's (the original study's view) when the study
    stores it, else the study's primary pooling's."""
    return f"probe_acc_{FIRST_TOKEN if FIRST_TOKEN in poolings else poolings[0]}"


def poolings_sentence(study) -> str:
    """Which poolings the study reads and why the first is first: the model's own (its sentence-transformers
    pooling config), the params' ``analysis.poolings``, or the default of the model's kind (an encoder's
    first token, a decoder's last token)."""
    poolings = list(getattr(study, "poolings", None) or (FIRST_TOKEN, MEAN_TOKENS))
    nouns = [pooling_noun(p) for p in poolings]
    rest = f", then {and_list(nouns[1:])}" if len(nouns) > 1 else ""
    declared = ((getattr(study, "manifest", None) or {}).get("caveats") or {}).get("pooling") or {}
    params = getattr(getattr(study, "params", None), "analysis", None)
    if params is not None and getattr(params, "poolings", None):
        why = "as the params set them (analysis.poolings)"
    elif list(declared.get("modes") or []) == poolings[:1]:
        why = (f"{nouns[0]} first, the model's own pooling (declared in its sentence-transformers "
               f"{declared.get('source')})")
    elif poolings[0] == LAST_TOKEN:
        why = (f"{nouns[0]} first, a decoder's default when the model declares none (under causal attention only "
               "the last token has seen the whole sentence)")
    else:
        why = f"{nouns[0]} first, an encoder's default when the model declares none"
    lead = f"Poolings: {why}{rest}." if not why.startswith("as ") else f"Poolings: {and_list(nouns)}, {why}."
    return (lead + f" The {pooling_adjective(poolings[0])} embeddings are the study's primary pooling: the MDL "
            "code, the memorisation check, the class geometry and the Findings' headline read them.")


def grid_table(tidy: pd.DataFrame, layers: Sequence[int], metric: str = f"probe_acc_{FIRST_TOKEN}",
               rows: Sequence[str] = ("state",)) -> pd.DataFrame:
    """The original study's grid as a table: rows (states, or models and states) x layers, values to 3
    decimals. The layers are those of ``schema.grid_layers(params.analysis.original_layers,
    schema.n_layers(tidy))``."""
    df = tidy[(tidy["metric"] == metric) & tidy["layer"].isin(list(layers))]
    wide = df.pivot_table(index=list(rows), columns="layer", values="value", aggfunc="first")
    if "state" in rows:
        order = state_order(df["state"])
        wide = wide.reset_index()
        wide["_o"] = wide["state"].map(order.index)
        wide = wide.sort_values([c for c in rows if c != "state"] + ["_o"]).drop(columns="_o").set_index(list(rows))
    wide.columns = [f"layer {c}" for c in wide.columns]
    return wide.round(3)
