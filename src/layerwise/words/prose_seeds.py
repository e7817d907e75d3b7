"""Sentences about the seed-to-seed floor (re-exported by :mod:`layerwise.words.prose`): whether fine-tuning
changed a statistic beyond the variation between fine-tuning seeds, from :func:`layerwise.words.claims.seed_change`
(never decided here)."""

from __future__ import annotations

import math

import pandas as pd

from . import claims


def _per_layer_differences(tidy: pd.DataFrame, metric: str, reference: str, state: str,
                           digits: int = 2) -> dict[int, tuple]:
    """``{layer: (per-seed difference rows, delta)}`` for ``metric``: a per-sentence metric reads its
    paired ``effect_<metric>`` rows per seed (delta from ``reference_sd_<metric>``); a scalar metric the
    per-seed value minus the reference's (:func:`claims.difference_rows`; delta from the reference row's
    own interval, :func:`claims.scalar_threshold`: NaN when it has none)."""
    seeds = tidy[tidy["seed"].notna()] if "seed" in tidy.columns else tidy.iloc[0:0]
    aggregate = tidy[tidy["seed"].isna()] if "seed" in tidy.columns else tidy
    out: dict[int, tuple] = {}
    effect = seeds[(seeds["metric"] == f"effect_{metric}") & (seeds["state"] == state) & (seeds["layer"] >= 0)]
    if len(effect) or (aggregate["metric"] == f"effect_{metric}").any():
        sd = aggregate[(aggregate["metric"] == f"reference_sd_{metric}") & (aggregate["state"] == state)]
        sd = sd.set_index("layer")["value"]
        for layer in sorted(set(aggregate.loc[aggregate["metric"] == f"effect_{metric}", "layer"]) | set(effect["layer"])):
            if layer < 0:
                continue
            out[int(layer)] = (effect[effect["layer"] == layer],
                               claims.negligible_threshold(sd.get(layer, math.nan)))
        return out
    rows = pd.concat([aggregate[aggregate["state"] == reference], seeds[seeds["state"] == state]])
    rows = rows[(rows["metric"] == metric) & (rows["layer"] >= 0)]
    for layer, g in rows.groupby("layer"):
        ref = g[g["state"] == reference]
        if len(ref):
            out[int(layer)] = (claims.difference_rows(g, reference, state), claims.scalar_threshold(ref, digits))
    return out


def seed_floor_verdicts(tidy: pd.DataFrame, metric: str, *, reference: str = "pretrained", state: str = "finetuned",
                        model: str | None = None, digits: int = 2) -> list[claims.Verdict]:
    """:func:`claims.seed_change` at every layer of ``metric`` (``tidy``: aggregate and per-seed rows,
    ``Study.tidy_all``). A NaN delta (no reference SD) gives delta 0: the size rule is skipped;
    ``digits``: the printed precision of a scalar statistic without interval (:func:`claims.scalar_threshold`)."""
    if model is not None:
        tidy = tidy[tidy["model"] == model]
    out = []
    for layer, (diff, delta) in _per_layer_differences(tidy, metric, reference, state, digits).items():
        delta = 0.0 if not delta == delta else delta
        v = claims.seed_change(diff, delta, subject=f"{metric}, layer {layer}")
        out.append(claims.Verdict(v.word, v.subject, v.rows, v.n, {**v.detail, "layer": layer}))
    return out


def _layers(layers: list[int]) -> str:
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(str(x) for x in layers)


def seed_floor_sentence(tidy: pd.DataFrame, metric: str, what: str, *, reference: str = "pretrained",
                        state: str = "finetuned", model: str | None = None) -> str:
    """One sentence: at which layers ``what`` (``metric``) is "changed by fine-tuning" beyond the
    seed-to-seed variation (:func:`claims.seed_change`: the seed-and-sentence interval of the mean
    difference excludes 0, every seed moves the same way, and the mean difference exceeds the negligible
    threshold). With one seed: seed variation not measured, and nothing is called changed."""
    verdicts = seed_floor_verdicts(tidy, metric, reference=reference, state=state, model=model)
    cap = what[:1].upper() + what[1:]
    if not verdicts:
        return f"{cap}: no {state} rows to compare with the {reference} state."
    if all(v.word == "not measured" for v in verdicts):
        return (f"{cap}: {claims.SEED_VARIATION_NOT_MEASURED}, so no layer is called changed by fine-tuning "
                "against the seed-to-seed floor.")
    by: dict[str, list[int]] = {}
    for v in verdicts:
        by.setdefault(v.word, []).append(v.detail["layer"])
    seeds = max(v.n for v in verdicts)
    parts = []
    if by.get("changed"):
        best = max((v for v in verdicts if v.word == "changed"), key=lambda v: abs(v.detail["mean"]))
        parts.append(f"changed by fine-tuning at {_layers(by['changed'])} (largest at layer {best.detail['layer']}: "
                     f"mean difference {best.detail['mean']:+.3g}, {100 * 0.95:.0f} % CI "
                     f"{best.detail['ci_low']:+.3g} to {best.detail['ci_high']:+.3g} over seeds and sentences)")
    if by.get("negligible"):
        parts.append(f"moved by a negligible amount at {_layers(by['negligible'])}")
    if by.get("unchanged"):
        parts.append(f"not changed beyond the seed-to-seed variation at {_layers(by['unchanged'])}")
    return f"Across {seeds} fine-tuning seeds, {what} is " + "; ".join(parts) + "."


def _layer_of(v: claims.Verdict) -> int:
    return int(v.rows["layer"].iloc[0])


def similarity_floor_sentence(tidy: pd.DataFrame, pooling: str = "cls", measure: str = "cka_debiased", *,
                              state: str = "finetuned", reference: str = "pretrained") -> str:
    """One sentence on the same-layer similarity of ``state`` with ``reference`` against its two floors:
    chance (:func:`claims.chance_verdicts`: above the 95th percentile of its permutation null) and
    seed-to-seed variation (:func:`claims.seed_similarity_change`: below the interval of the similarity
    between fine-tuning seeds). ``tidy``: ``Study.tidy_all`` (aggregate and per-seed rows)."""
    has_seed = "seed" in tidy.columns
    aggregate = tidy[tidy["seed"].isna()] if has_seed else tidy
    seeds = tidy[tidy["seed"].notna()] if has_seed else tidy.iloc[0:0]
    name = {"cka": "linear CKA", "cka_debiased": "debiased linear CKA", "procrustes": "Procrustes similarity",
            "mutual_knn": "mutual k-NN alignment"}.get(measure, measure)
    what = f"{name} of the {'first-token' if pooling == 'cls' else 'mean-pooled'} embeddings, {state} against {reference}"
    chance = [v for v in claims.chance_verdicts(aggregate, measure, pooling, state, reference) if v.word != "not measured"]
    if not chance:
        return ""
    by: dict[str, list[int]] = {}
    for v in chance:
        by.setdefault(v.word, []).append(_layer_of(v))
    parts = [f"{word} at {_layers(sorted(ls))}" for word, ls in by.items()]
    vs = seeds[seeds["metric"] == f"{measure}_{pooling}_vs_{reference}"]
    between = seeds[seeds["metric"] == f"{measure}_{pooling}_between_seeds"]
    floor = [claims.seed_similarity_change(vs[vs["layer"] == layer], between[between["layer"] == layer])
             for layer in sorted(set(aggregate.loc[aggregate["metric"] == f"{measure}_{pooling}_vs_{reference}",
                                                   "layer"]) - {-1})]
    if not floor or all(v.word == "not measured" for v in floor):
        seed_text = f"{claims.SEED_VARIATION_NOT_MEASURED}, so no layer is called changed against it"
    else:
        changed = [_layer_of(v) for v in floor if v.word == "changed"]
        seed_text = (f"changed by fine-tuning (below the similarity between fine-tuning seeds) at {_layers(changed)}"
                     if changed else "no layer below the similarity between fine-tuning seeds (not changed beyond seed "
                     "variation)")
    return f"{what[:1].upper() + what[1:]}: " + "; ".join(parts) + f" (permutation null); {seed_text}."
