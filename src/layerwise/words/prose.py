"""Sentences and small tables that state results, computed from the tidy result tables (never typed
by hand): the chapters call these and show them with :func:`say`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..core.schema import state_order

from .claims import ALPHA  # the one significance level (layerwise.words.claims)
from .prose_format import _effect_digits, _states, fmt, fmt_ci, fmt_interval, fmt_p, fmt_signed, layer_span, series  # noqa: F401  (re-exported)
from .prose_seeds import (outcome_clause, seed_apart_sentence, seed_floor_sentence,  # noqa: F401  (re-exported)
                          seed_floor_verdicts, similarity_floor_sentence)


def trend_sentence(tidy: pd.DataFrame, metric: str, what: str, *, states: Sequence[str] | None = None,
                   digits: int = 2, model: str | None = None) -> str:
    """How ``metric`` moves through the layers, per state: first, last, maximum and minimum layer."""
    parts = []
    for state in states or _states(tidy, metric):
        s = series(tidy, metric, state, model)
        if s.empty:
            continue
        first, last = s.iloc[0], s.iloc[-1]
        hi, lo = s.loc[s["value"].idxmax()], s.loc[s["value"].idxmin()]
        a, b = fmt(first.value, digits), fmt(last.value, digits)  # compare what the reader sees
        if a == b:
            text = f"{state}: {what} is {a} at layer {int(first.layer)} and at layer {int(last.layer)}"
        else:
            verb = "rises" if last.value > first.value else "falls"
            text = f"{state}: {what} {verb} from {a} at layer {int(first.layer)} to {b} at layer {int(last.layer)}"
        extras = []
        for label, row in (("maximum", hi), ("minimum", lo)):
            shown = fmt(row.value, digits)
            if int(row.layer) not in (int(first.layer), int(last.layer)) and shown not in (a, b):
                extras.append(f"{label} {shown} at layer {int(row.layer)}")
        parts.append(text + (f" ({', '.join(extras)})" if extras else ""))
    if not parts:
        return f"No values of {what} were computed."
    return "; ".join(parts) + "."


def change_sentence(tidy: pd.DataFrame, metric: str, what: str, *, state: str = "finetuned",
                    reference: str = "pretrained", digits: int = 2, model: str | None = None,
                    verdict_metric: str | None = None) -> str:
    """Where ``state`` differs most from ``reference`` on ``metric`` (largest absolute difference), and at
    the first layer. The words come from :mod:`layerwise.words.claims`: with ``verdict_metric`` (a per-sentence
    metric with paired tests), the verdict of its test at those layers (effect and CI); without it, the
    difference is described, not judged."""
    a, b = series(tidy, metric, reference, model), series(tidy, metric, state, model)
    if a.empty or b.empty:
        return ""
    m = a.merge(b, on="layer", suffixes=("_ref", "_new"))
    m["diff"] = m["value_new"] - m["value_ref"]
    top = m.loc[m["diff"].abs().idxmax()]
    low = m.iloc[0]
    text = (f"The largest difference between {state} and {reference} in {what} is at layer {int(top.layer)} "
            f"({fmt(top.value_ref, digits)} {reference}, {fmt(top.value_new, digits)} {state}, "
            f"{fmt_signed(top['diff'], _effect_digits(top['diff']))}); at layer {int(low.layer)} the difference is "
            f"{fmt_signed(low['diff'], _effect_digits(low['diff']))}.")
    if verdict_metric is None:
        return text
    from . import claims

    verdicts = {v.detail["layer"]: v for v in claims.state_change_verdicts(tidy, verdict_metric, state, reference,
                                                                            model)}
    judged = [f"layer {lay}: {verdicts[lay].word} ({effect_text(verdicts[lay])})"
              for lay in dict.fromkeys([int(top.layer), int(low.layer)]) if lay in verdicts]
    return text + (f" Paired per-sentence test on {verdict_metric.replace('_', ' ')}: " + "; ".join(judged) + "."
                   if judged else "")


def study_sentence(study) -> str:
    """What was analysed: the model, its depth, the states and the sample sizes."""
    p = study.params
    tidy = study.tidy
    layers = tidy.loc[tidy["layer"] >= 0, "layer"]
    last = int(layers.max()) if not layers.empty else 0
    n = tidy.loc[tidy["metric"] == "token_cosine_mean", "n"]
    ps = getattr(study, "per_sentence", None)
    n_sent = int(ps["sentence"].nunique()) if ps is not None and not ps.empty else None
    states = _states(tidy, "token_cosine_mean") or _states(tidy, tidy["metric"].iloc[0])
    text = (f"Model: {p.display_name} (`{p.model.id}`), {last} layers after the embedding output; "
            f"states: {', '.join(states)}.")
    if n_sent:
        text += f" Token statistics use {n_sent} test sentences"
        text += f" (up to {int(n.max()):,} token pairs per layer and state)." if not n.empty else "."
    return text


def effect_text(v) -> str:
    """``+0.25, 95% CI +0.22 to +0.28`` for a verdict of :func:`layerwise.words.claims.effect_verdict`."""
    d = v.detail
    digits = _effect_digits(d["effect"])
    low, high = d.get("low", float("nan")), d.get("high", float("nan"))
    if low != low or high != high:
        return fmt_signed(d["effect"], digits)
    return (f"{fmt_signed(d['effect'], digits)}, 95% CI {fmt_signed(low, digits)} to "
            f"{fmt_signed(high, digits)}")


def _verdict_groups(verdicts) -> str:
    """"higher at layer 6 (+0.25, 95% CI ...); negligible at layers 0 (...), 1 (...)": the verdicts of
    :func:`layerwise.words.claims.state_change_verdicts` grouped by word, each layer with its effect and CI."""
    parts = []
    for word in ("higher", "lower", "negligible", "not significant"):
        group = [v for v in verdicts if v.word == word]
        if group:
            items = ", ".join(f"{v.detail['layer']} ({effect_text(v)})" for v in group)
            parts.append(f"{word} at layer{'s' if len(group) > 1 else ''} {items}")
    return "; ".join(parts)


def significance_sentence(tidy: pd.DataFrame, metric: str, what: str, *, state: str = "finetuned",
                          alpha: float | None = None, model: str | None = None) -> str:
    """Per layer, the verdict of :mod:`layerwise.words.claims` (size before significance) for ``state``
    against pretrained on a per-sentence metric, each with its mean paired difference and CI."""
    from . import claims

    alpha = claims.ALPHA if alpha is None else alpha
    verdicts = claims.state_change_verdicts(tidy, metric, state, model=model, alpha=alpha)
    if not verdicts:
        return ""
    return (f"Per-sentence paired tests of {state} against pretrained on {what} (mean paired difference "
            f"with 95% CI; Holm-adjusted over all {claims.family_size(tidy)} tests of the study, {alpha:g} "
            f"level; a difference is negligible below {claims.NEGLIGIBLE_SD:g} pretrained between-sentence "
            f"SD): " + _verdict_groups(verdicts) + ".")


def _finetune_row(m: Mapping[str, Any]) -> dict[str, Any]:
    """One row of :func:`finetune_table`: four columns, so that the table (with a model and a run column
    in the comparison) keeps to the report's six (``markdown.MAX_TABLE_COLUMNS``); the number of test
    examples is in :func:`finetune_sentence`."""
    acc_ci = m.get("accuracy_ci") or [float("nan")] * 2
    f1_ci = m.get("macro_f1_ci") or [float("nan")] * 2
    p = m.get("binomial_p", float("nan"))
    baseline = fmt(m.get("majority_baseline"), 3)
    return {"test accuracy": fmt_ci(m.get("accuracy", float("nan")), *acc_ci, digits=3),
            "macro-F1": fmt_ci(m.get("macro_f1", float("nan")), *f1_ci, digits=3),
            "majority baseline (binomial p)": f"{baseline} ({fmt_p(p)})" if p == p else baseline,
            "training time (s)": fmt(m.get("train_seconds"), 0) if m.get("train_seconds") else "n/a"}


def _mean_seconds(metrics: list[Mapping[str, Any]]) -> float | None:
    """The mean training time of the runs that recorded one (None when none did)."""
    seconds = [float(m["train_seconds"]) for m in metrics if m.get("train_seconds")]
    return sum(seconds) / len(seconds) if seconds else None


def _seed_mean(per_seed: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over seeds of accuracy and macro-F1 with the seed-and-sentence interval
    (``stats.seed_sentence_interval``); the training time is the mean over the seeds that recorded one."""
    import numpy as np

    from ..measure.stats import se_from_ci, seed_sentence_interval

    ms = list(per_seed.values())
    out: dict[str, Any] = {"majority_baseline": ms[0].get("majority_baseline"), "n_test": ms[0].get("n_test", ""),
                           "binomial_p": float("nan"), "train_seconds": _mean_seconds(ms)}
    for k in ("accuracy", "macro_f1"):
        v = np.array([m.get(k, np.nan) for m in ms], dtype=float)
        ci = np.array([m.get(f"{k}_ci") or [np.nan, np.nan] for m in ms], dtype=float)
        iv = seed_sentence_interval(v, se_from_ci(ci[:, 0], ci[:, 1]))
        out[k], out[f"{k}_ci"] = float(iv.estimate), [float(iv.low), float(iv.high)]
    return out


def finetune_table(finetune: Mapping[str, Any] | Mapping[str, Mapping[str, Any]], *, per_model: bool = False
                   ) -> pd.DataFrame:
    """The fine-tuning scores as a table: accuracy and macro-F1 with CIs, majority baseline with the
    binomial p-value, training time (one row per model when ``per_model``). Several fine-tuning seeds
    (``finetune["seeds"]``): one row per seed, then the mean over seeds (its CI combines seed and
    sentence variation, ``stats.seed_sentence_interval``; training time: the mean)."""
    items = finetune.items() if per_model else [("", finetune)]
    rows, index = [], []
    for model, m in items:
        if not m:
            continue
        per_seed = m.get("seeds") or {}
        entries = ([(f"seed {s}", v) for s, v in per_seed.items()] + [("mean over seeds", _seed_mean(per_seed))]
                   if len(per_seed) > 1 else [("fine-tuned model", m)])
        for label, metrics in entries:
            rows.append(({"model": model} if per_model else {}) | ({"seed": label} if per_model else {})
                        | _finetune_row(metrics))
            index.append(label)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    if per_model:
        df = df.set_index(["model", "seed"]) if (df["seed"] != "fine-tuned model").any() else \
            df.drop(columns="seed").set_index("model")
        return df
    return df.set_axis(index).rename_axis("run")


def finetune_sentence(finetune: Mapping[str, Any], name: str = "The fine-tuned model") -> str:
    """Test accuracy with CI against the majority baseline, and the binomial test."""
    if not finetune or "accuracy" not in finetune:
        return "This study has no fine-tuned state."
    acc_ci = finetune.get("accuracy_ci") or [None, None]
    f1_ci = finetune.get("macro_f1_ci") or [None, None]
    p = finetune.get("binomial_p", float("nan"))
    base = finetune.get("majority_baseline", float("nan"))
    verdict = ("significantly above" if isinstance(p, (int, float)) and p < ALPHA else "not significantly above")
    per_seed = finetune.get("seeds") or {}
    if len(per_seed) > 1:
        mean = _seed_mean(per_seed)
        worst = max(float(m.get("binomial_p", float("nan"))) for m in per_seed.values())
        every = "every seed is" if worst < ALPHA else "not every seed is"
        return (f"Averaged over {len(per_seed)} fine-tuning seeds, {name[:1].lower() + name[1:]} reaches a test accuracy "
                f"of {fmt_ci(mean['accuracy'], *mean['accuracy_ci'], digits=3)} on {finetune.get('n_test', 'the')} "
                f"test examples, an interval over seeds and sentences; the table gives the macro-F1. "
                f"{every[:1].upper() + every[1:]} significantly above the "
                f"majority-class baseline of {fmt(base, 3)} (one-sided binomial tests, largest {fmt_p(worst)}).")
    return (f"{name} reaches a test accuracy of {fmt_ci(finetune['accuracy'], *acc_ci, digits=3)} and a "
            f"macro-F1 of {fmt_ci(finetune.get('macro_f1', float('nan')), *f1_ci, digits=3)} on "
            f"{finetune.get('n_test', 'the')} test examples. It is {verdict} the majority-class baseline of "
            f"{fmt(base, 3)} (one-sided binomial test, {fmt_p(p)}).")


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


def probe_sentence(tidy: pd.DataFrame, pooling: str = "cls", model: str | None = None,
                   correct: pd.DataFrame | None = None) -> str:
    """Best probe layer(s) per state, by paired comparison (``claims.best_layers`` on the per-sentence
    ``correct`` table), with the chance baseline, the control task and the selectivity at the top layer."""
    metric = f"probe_acc_{pooling}"
    parts = []
    for state in _states(tidy, metric):
        text, top = best_layer_text(correct, tidy, metric, state, model)
        if top is None:
            continue
        parts.append(f"{state}: {text}{_controls_text(tidy, pooling, state, top, model)}")
    if not parts:
        return ""
    pool = "first-token" if pooling == "cls" else "mean-pooled"
    return f"Linear probes on the {pool} embeddings: " + "; ".join(parts) + "."


def lexical_sentence(tidy: pd.DataFrame, pooling: str = "cls", correct: pd.DataFrame | None = None,
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
    return (text + f". The {state} model's highest {'first-token' if pooling == 'cls' else 'mean-pooled'} probe, "
            f"at layer {int(top.layer)}, is {how}: paired difference {fmt_interval(v.detail['diff'], lo, hi, fallback=3)}.")


def memorisation_sentence(tidy: pd.DataFrame, pooling: str = "cls", state: str = "finetuned",
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


def split_table(study) -> pd.DataFrame:
    """The three disjoint parts of the data selection, their sizes and what reads each (from the study's
    manifest and tidy table)."""
    sel = (study.manifest or {}).get("selection") or {}
    tidy = study.tidy
    cov = tidy[tidy["metric"] == "control_coverage"]["value"]
    n_test = len(sel.get("test_index", []))
    covered = f"; control task: the {round(float(cov.iloc[0]) * n_test)} covered ones" if not cov.empty else ""
    pool = len(sel.get("probe_index", []))
    rows = [("fine-tuning", len(sel.get("train_index", [])),
             "fine-tuning; memorisation check (probe and MDL at the probe pool's size)" if pool else
             "fine-tuning; the probes and MDL (no probe pool)"),
            ("probe pool", pool, "training of every probe, control task and lexical baseline; MDL codes"),
            ("test", n_test, "every probe score" + covered + "; class geometry, token statistics, CKA")]
    return pd.DataFrame(rows, columns=["part", "sentences", "used for"]).set_index("part")


def convergence_table(tidy: pd.DataFrame, name: str = "spearman_convergence_probe") -> pd.DataFrame:
    """Spearman correlation across layers between the mean token cosine and the probe accuracy, per
    model and state, with CI and p-value."""
    rho = tidy[tidy["metric"] == name]
    p = tidy[tidy["metric"] == f"{name}_p"][["model", "state", "value"]].rename(columns={"value": "p"})
    df = rho.merge(p, on=["model", "state"], how="left")
    df = df.assign(_o=df["state"].map(state_order(df["state"]).index)).sort_values(["model", "_o"])
    return pd.DataFrame({
        "model": df["model"], "state": df["state"],
        "Spearman rho": [fmt_ci(v, lo, hi) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"])],
        "p-value": [fmt_p(v) for v in df["p"]], "layers": df["n"].astype(int)}).set_index(["model", "state"])


def models_best_sentence(tidy: pd.DataFrame, metric: str = "probe_acc_cls", state: str = "finetuned",
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


def grid_table(tidy: pd.DataFrame, layers: Sequence[int], metric: str = "probe_acc_cls",
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


def say(*sentences: str):
    """The sentences as one Markdown paragraph (``IPython.display.Markdown``), empty ones dropped."""
    from IPython.display import Markdown

    return Markdown(" ".join(s.strip() for s in sentences if s and s.strip()))


from .prose_layers import (change_claim, effects_markdown, effects_sentence, layer_span, layers_sentence,  # noqa: E402,F401
                           metric_paragraph, probe_paragraph, tests_note)
from .prose_geometry import (class_geometry_paragraph, cka_diagonal_sentence, convergence_paragraph,  # noqa: E402,F401
                             self_similarity_paragraph, standardised_sentence)
