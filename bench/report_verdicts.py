"""The verdicts the report prints, read from a study with the library's own claim functions
(``layerwise.words.claims``, ``layerwise.words.findings``), as ``{key: verdict}`` with
the numbers left out: what bench_precision compares between an fp32 and a bf16 analysis.

* per-state change verdicts (``claims.state_change_verdicts``: fine-tuned and random against
  pretrained, every per-sentence metric and layer; the geometry chapter's sentences and charts);
* seed-floor verdicts (``claims.seed_floor_verdicts``, per metric and layer);
* best-layer sets of the probes (``claims.best_layers``: word and the layers of the set);
* the top probe against the lexical baseline (``claims.versus``);
* chance verdicts of the similarities (``claims.chance_verdicts``) and their seed floor
  (``claims.seed_similarity_change``);
* page 1's answer (``answer.question_verdicts``: each question at each layer);
* the Findings list (``findings.model_findings``): each changed statistic with its verdict, layers and
  largest layer; each unchanged statistic with its verdict (numbers masked); the observations.
"""

from __future__ import annotations

import re

import pandas as pd

_NUMBER = re.compile(r"[-+]?\d*\.\d+(?:e[-+]?\d+)?")


def _mask(text: str) -> str:
    """``text`` with its decimal numbers replaced by ``#`` (layer numbers, integers, stay)."""
    return _NUMBER.sub("#", str(text))


def _per_sentence_metrics(tidy: pd.DataFrame) -> list[str]:
    found = tidy["metric"].astype(str)
    return sorted({m[len("effect_"):] for m in found if m.startswith("effect_")})


def change_verdicts(tidy: pd.DataFrame, tidy_all: pd.DataFrame) -> dict[str, str]:
    from layerwise.words import claims

    out: dict[str, str] = {}
    states = set(tidy["state"])
    for metric in _per_sentence_metrics(tidy):
        for state in ("finetuned", "random"):
            if state in states:
                for v in claims.state_change_verdicts(tidy, metric, state):
                    out[f"change/{metric}/{state}/layer {v.detail.get('layer')}"] = v.word
        for v in claims.seed_floor_verdicts(tidy_all, metric):
            out[f"seed floor/{metric}/layer {v.detail.get('layer')}"] = v.word
    for metric in ("probe_acc_cls", "probe_acc_mean"):
        for v in claims.seed_floor_verdicts(tidy_all, metric):
            out[f"seed floor/{metric}/layer {v.detail.get('layer')}"] = v.word
    return out


def probe_verdicts(tidy: pd.DataFrame, correct: pd.DataFrame | None) -> dict[str, str]:
    from layerwise.words import claims

    out: dict[str, str] = {}
    if correct is None or correct.empty:
        return out
    for pooling in ("cls", "mean"):
        metric = f"probe_acc_{pooling}"
        for state in sorted(set(tidy["state"])):
            v = claims.best_layers(correct, tidy, metric, state)
            out[f"best layers/{metric}/{state}"] = f"{v.word} {v.detail.get('layers', '')}"
            if v.word != "not measured":
                lex = claims.versus(correct, tidy, (metric, int(v.detail["top"])), ("lexical_probe_acc", -1), state)
                out[f"versus lexical/{metric}/{state}"] = lex.word
    return out


def similarity_verdicts(tidy_all: pd.DataFrame) -> dict[str, str]:
    from layerwise.words import claims
    from layerwise.measure import similarity

    has_seed = "seed" in tidy_all.columns
    aggregate = tidy_all[tidy_all["seed"].isna()] if has_seed else tidy_all
    # (the fine-tuning seeds: the random draws have per-seed rows too, and no seed-pair floor)
    per_seed = tidy_all[tidy_all["seed"].notna() & (tidy_all["state"] == "finetuned")] if has_seed else tidy_all.iloc[0:0]
    out: dict[str, str] = {}
    for measure in similarity.FLOOR_MEASURES:
        for pooling in ("cls", "mean"):
            for state in ("finetuned", "random"):
                for v in claims.chance_verdicts(aggregate, measure, pooling, state):
                    out[f"chance/{measure}_{pooling}/{state}/layer {int(v.rows['layer'].iloc[0])}"] = v.word
            vs = per_seed[per_seed["metric"] == f"{measure}_{pooling}_vs_pretrained"]
            between = per_seed[per_seed["metric"] == f"{measure}_{pooling}_between_seeds"]
            for layer in sorted(set(vs["layer"]) - {-1}):
                v = claims.seed_similarity_change(vs[vs["layer"] == layer], between[between["layer"] == layer])
                out[f"similarity seed floor/{measure}_{pooling}/layer {layer}"] = v.word
    return out


def findings_verdicts(study) -> dict[str, str]:
    from layerwise.words import findings

    f = findings.model_findings(study)
    out = {f"findings/changed/{r['statistic']}": f"{r['verdict']}; {_mask(r['outcomes'])}; largest at layer "
                                                  f"{r['largest at layer']}" for _, r in f.changed.iterrows()}
    out.update({f"findings/unchanged/{r['statistic']}": f"{_mask(r['verdict'])}; {_mask(r['outcomes'])}"
                for _, r in f.unchanged.iterrows()})
    out.update({f"findings/observation {i}": _mask(t) for i, t in enumerate(f.observations)})
    return out


def answer_verdicts(study) -> dict[str, str]:
    """Page 1's verdicts: each question of the answer model at each layer (``answer.question_verdicts``)."""
    from layerwise.words import answer

    return {f"page 1/{q}/layer {layer}": v.word for q, per_layer in answer.question_verdicts(study).items()
            for layer, v in per_layer.items()}


def report_verdicts(study) -> dict[str, str]:
    """Every verdict the report prints for ``study`` (a :class:`layerwise.study.study.Study`), by key."""
    tidy, tidy_all = study.tidy, study.tidy_all
    return {**answer_verdicts(study), **change_verdicts(tidy, tidy_all),
            **probe_verdicts(tidy, getattr(study, "probe_correct", None)),
            **similarity_verdicts(tidy_all), **findings_verdicts(study)}
