"""The fine-tuning run in words and tables: one row per seed and their mean, the split of the sentences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
import pandas as pd
from .claims import ALPHA  # the one significance level (layerwise.words.claims)
from .prose_format import fmt, fmt_ci, fmt_p


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
