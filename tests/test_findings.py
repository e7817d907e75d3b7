"""Known answers for the findings (layerwise.words.findings), in the answer model of layerwise.words.claims: a large
change is listed as a finding, an equivalent one as "no change beyond δ", seeds that cannot decide as "not
established with k seeds", and one fine-tuning seed says seed variation was not measured."""

from __future__ import annotations

from pathlib import Path
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from layerwise.core import schema
from layerwise.words import claims, findings, prose_outcomes

ROOT = Path(__file__).resolve().parents[1]


def _row(metric, value, layer=2, state="finetuned", lo=np.nan, hi=np.nan, n=100):
    return {"model": "m", "state": state, "layer": layer, "metric": metric, "value": value, "ci_low": lo,
            "ci_high": hi, "n": n}


def _study(seed_rows: bool = False):
    rows = []
    for metric, effect in (("token_cosine", 0.5), ("cov_trace", 0.001)):  # large; negligible (delta 0.01)
        rows += [_row(f"effect_{metric}", effect, lo=effect - 0.01, hi=effect + 0.01),
                 _row(f"test_p_{metric}", 1e-9), _row(f"test_p_holm_{metric}", 1e-8),
                 _row(f"reference_sd_{metric}", 0.1)]
    rows += [_row("token_cosine_sentence_mean", 0.8, state="finetuned", lo=0.78, hi=0.82),
             _row("token_cosine_sentence_mean", 0.3, state="pretrained", lo=0.28, hi=0.32),
             _row("cov_trace", 1.0, state="pretrained", lo=0.9, hi=1.1)]           # delta = 10% of 1.0
    tidy = pd.DataFrame(rows)
    params = SimpleNamespace(name="m", display_name="Model M")
    return SimpleNamespace(tidy=tidy, probe_correct=None, params=params)


def test_large_change_is_a_finding_and_equivalent_is_no_change_beyond_delta():
    f = findings.model_findings(_study())
    assert list(f.changed["statistic"]) == [findings._describe("token_cosine")]
    top = f.changed.iloc[0]
    assert top["verdict"] == "changed" and top["largest at layer"] == 2 and top["n"] == 1
    assert top["finetuned"] == "0.800" and top["pretrained"] == "0.300"
    assert top["difference"] == "+0.500, 95% CI +0.490 to +0.510"
    assert list(f.unchanged["statistic"]) == [findings._describe("cov_trace")]
    assert f.unchanged.iloc[0]["outcomes"] == "no change beyond δ: 2"
    text = f.markdown()
    assert "changed" in text and "no change beyond δ" in text and "Did not change" not in text
    assert list(f.table().columns) == list(findings.TABLE_COLUMNS) and len(findings.TABLE_COLUMNS) <= 6


def test_one_seed_says_seed_variation_not_measured():
    f = findings.model_findings(_study())
    assert f.seeds == 1
    assert claims.SEED_VARIATION_NOT_MEASURED in f.markdown()


def test_summary_table_across_models():
    f = findings.model_findings(_study())
    md = findings.summary_markdown([f, f])
    assert md.count("| Model M |") == 2 and "1 (seed variation not measured)" in md


def test_statistics_go_by_their_registry_short_names():
    """Issue 24: a Findings row, the summary and the sentences name a statistic by its registry short name (with
    the pooling's words: the table mixes poolings), never by the registry's long description (Methods')."""
    judged = [*findings.PER_SENTENCE_METRICS, *findings.PROBES, *findings.SCALARS, *findings.SIMILARITIES.values()]
    for metric in judged:
        name = findings._describe(metric)
        assert name == schema.label(findings.MEAN_METRIC.get(metric, metric)) and name != metric
        assert name != schema.lookup(findings.MEAN_METRIC.get(metric, metric)).description
    assert [findings._describe(m) for m in ("token_cosine", "probe_acc_mean", "cka_debiased_cls_vs_pretrained")] == \
        ["token cosine", "linear probe (mean pooling)", "debiased CKA (first token)"]
    f = findings.model_findings(_study())
    assert list(f.table()["statistic"]) == ["token cosine", "covariance trace"]
    assert "| Model M | token cosine: changed at layer 2 (" in findings.summary_markdown([f])
    assert f.sentences()[0].startswith("**Token cosine**: changed at layer 2")
    assert "the clearest is token cosine, changed at layer 2" in f.conclusion(probes=False)


def test_random_weights_matching_pretrained_is_an_observation():
    rng = np.random.default_rng(0)
    correct, tidy = [], []
    base = {layer: rng.random(200) < 0.7 for layer in range(3)}
    for state in ("pretrained", "finetuned", "random"):
        for layer in range(3):
            hit = base[layer].copy()
            if state == "random":
                hit[:3] = ~hit[:3]                    # random weights: nearly the same sentences right
            correct += [{"model": "m", "state": state, "metric": "probe_acc_cls", "layer": layer, "sentence": i,
                         "correct": float(h)} for i, h in enumerate(hit)]
            tidy.append(_row("probe_acc_cls", float(hit.mean()), layer, state))
    obs = findings.random_observations(pd.DataFrame(tidy), pd.DataFrame(correct))
    assert len(obs) == 1 and "random weights (one random draw) against the pretrained model, on the linear probe " \
        "(first token)." in obs[0]
    assert "No change beyond δ at layers 0–2." in obs[0]          # 3 of 200 sentences differ: within 0.03


def _seeded_study(per_seed_effects):
    """``_study`` plus per-seed ``effect_token_cosine`` rows (the seed column of ``Study.tidy_all``)."""
    study = _study()
    seeds = pd.DataFrame([{**_row("effect_token_cosine", e, lo=e - 0.01, hi=e + 0.01), "seed": s}
                          for s, e in enumerate(per_seed_effects, start=42)])
    tidy_all = pd.concat([study.tidy.assign(seed=pd.NA), seeds], ignore_index=True)
    tidy_all["seed"] = tidy_all["seed"].astype("Int64")
    return SimpleNamespace(**vars(study), tidy_all=tidy_all)


def test_seeds_that_cannot_decide_give_not_established_with_their_direction():
    """Seeds that agree (0.49, 0.50, 0.51): "changed". Three seeds that all moved up, one weakly (0.08,
    0.35, 0.38, the reviewer's layer-6 token cosine): "not established with 3 seeds", the direction and the
    per-seed values said, never "did not change"."""
    agree = findings.model_findings(_seeded_study([0.49, 0.50, 0.51]))
    assert agree.seeds == 3 and list(agree.changed["statistic"]) == [findings._describe("token_cosine")]
    assert agree.changed.iloc[0]["verdict"] == "changed" and agree.changed.iloc[0]["n"] == 3
    weak = findings.model_findings(_seeded_study([0.38, 0.35, 0.08]))
    assert weak.changed.empty
    row = weak.unchanged[weak.unchanged["statistic"] == findings._describe("token_cosine")].iloc[0]
    assert row["outcomes"] == "not established with 3 seeds: 2" and row["verdict"] == "not established with 3 seeds"
    text = weak.markdown()
    assert "Did not change" not in text and "did not change" not in text
    from layerwise.words import prose_outcomes

    sentence = prose_outcomes.seed_floor_sentence(_seeded_study([0.38, 0.35, 0.08]).tidy_all, "token_cosine", "the cosine")
    assert "every seed moved up: +0.4, +0.3, +0.1" in sentence and "smallest detectable change 0.5" in sentence


def test_class_names_come_from_params_then_the_selection_and_stay_out_of_the_keys(tmp_path):
    from layerwise.inputs.config import load_params
    from layerwise.core.errors import LayerwiseError

    params = load_params(ROOT / "params" / "demo.yml")
    assert params.dataset.class_names == ["negative", "positive"]
    plain = params.model_copy(update={"dataset": params.dataset.model_copy(update={"class_names": None})})
    assert params.data_payload() == plain.data_payload()  # display only: the selection hash does not move
    manifest = {"selection": {"label_names": ["0", "1"]}}
    assert findings.class_names(SimpleNamespace(manifest=manifest, params=params)) == ["negative", "positive"]
    assert findings.class_names(SimpleNamespace(manifest=manifest, params=plain)) == ["0", "1"]
    three = params.model_copy(update={"dataset": params.dataset.model_copy(update={"class_names": ["a", "b", "c"]})})
    with pytest.raises(LayerwiseError, match="class_names"):
        findings.class_names(SimpleNamespace(manifest=manifest, params=three))


def _scalar_study(seeds: dict[int, float]):
    """A study whose only statistic is the effective rank at layer 2: pretrained 250 (CI 245 to 255, n 100)
    and one fine-tuned row per seed at 250 + the seed's shift."""
    rows = [{**_row("erank", 250.0, state="pretrained", lo=245.0, hi=255.0), "seed": None}]
    rows += [{**_row("erank", 250.0 + d, lo=245.0 + d, hi=255.0 + d), "seed": s} for s, d in seeds.items()]
    mean = 250.0 + float(np.mean(list(seeds.values())))
    rows.append({**_row("erank", mean, lo=mean - 5, hi=mean + 5), "seed": None})
    tidy_all = pd.DataFrame(rows)
    return SimpleNamespace(tidy=tidy_all[tidy_all["seed"].isna()].drop(columns="seed"), tidy_all=tidy_all,
                           probe_correct=None, params=SimpleNamespace(name="m", display_name="Model M"))


def test_scalar_statistics_are_judged_by_the_answer_model():
    name = findings._describe("erank")
    moved = findings.model_findings(_scalar_study({42: 40.0, 43: 41.0, 44: 42.0}))   # delta = 10% of 250
    assert list(moved.changed["statistic"]) == [name]
    row = moved.changed.iloc[0]
    assert row["verdict"] == "changed" and row["n"] == 3 and row["largest at layer"] == 2
    # seeds that disagree in sign: not established, listed with its outcome
    spread = findings.model_findings(_scalar_study({42: -20.0, 43: 5.0, 44: 60.0}))
    assert spread.changed.empty and name in list(spread.unchanged["statistic"])
    c = spread.conclusion(probes=False)
    assert c.endswith("The other statistic shows no change beyond δ or is not established at every layer.")
    assert {"statistic": name, "not established with 3 seeds": "2"} in spread.unchanged_table().to_dict("records")


def test_no_change_is_printed_only_for_the_equivalence_outcome():
    """Findings, conclusions, summary and seed prose of synthetic studies covering every outcome: the
    words "no change", "did not change", "does not change", "not changed" and "unchanged" appear only as
    the equivalence outcome "no change beyond δ"."""
    import re

    from layerwise.words import prose_outcomes

    banned = re.compile(r"\b(did not change|does not change|do not change|not changed|unchanged|no change"
                        r"(?! beyond δ))", re.I)
    studies = [_study(), _seeded_study([0.49, 0.50, 0.51]), _seeded_study([0.38, 0.35, 0.08]),
               _seeded_study([0.001, -0.002, 0.0]), _scalar_study({42: -20.0, 43: 5.0, 44: 60.0}),
               _scalar_study({42: 0.1, 43: -0.1, 44: 0.0})]
    for study in studies:
        f = findings.model_findings(study)
        texts = [f.markdown(), f.conclusion(True), f.conclusion(False), findings.summary_markdown([f])]
        tidy_all = getattr(study, "tidy_all", study.tidy)
        texts += [prose_outcomes.seed_floor_sentence(tidy_all, m, "it") for m in ("token_cosine", "erank", "cov_trace")]
        for text in texts:
            assert not banned.search(text), banned.search(text).group(0) + " in: " + text


def test_effect_heatmap_marks_the_outcome_over_seeds():
    """With several seeds the heatmap marks the answer model's outcome (C changed, ? not established),
    not the per-sentence Holm star, so the figure and the Findings say the same."""
    from layerwise.book import charts

    from layerwise.book import render
    from layerwise.words.prose_outcomes import effect_marks

    for effects, mark in (([0.49, 0.50, 0.51], "C"), ([0.38, 0.35, 0.08], "?")):
        study = _seeded_study(effects)
        marks, key = effect_marks(study.tidy, "finetuned", tidy_all=study.tidy_all)
        data = charts.effect_heatmap(study.tidy, "finetuned", marks=marks, key=key).data
        assert data.set_index("label").loc[charts.schema_label("token_cosine"), "star"] == mark
        assert "outcome over seeds" in key
        svg = render.to_svg(charts.effect_heatmap(study.tidy, "finetuned", marks=marks, key=key))
        assert float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg).group(1)) <= charts.BOOK_COLUMN  # key fits
    one = _study()
    marks, key = effect_marks(one.tidy, "finetuned")                            # one run: the Holm star
    data = charts.effect_heatmap(one.tidy, "finetuned", marks=marks, key=key).data
    assert data.set_index("label").loc[charts.schema_label("token_cosine"), "star"] == "*"


def test_seed_accuracy_scatter_pairs_each_seed_with_its_accuracy():
    from layerwise.book import charts, charts_seeds

    rows = [{"model": "m", "state": "finetuned", "layer": layer, "metric": "cka_debiased_cls_vs_pretrained",
             "value": v, "ci_low": np.nan, "ci_high": np.nan, "n": 180, "seed": s}
            for s, values in {42: [1.0, 0.6, 0.1], 44: [1.0, 0.9, 0.3]}.items() for layer, v in enumerate(values)]
    tidy_all = pd.DataFrame(rows).astype({"seed": "Int64"})
    finetune = {"seeds": {"42": {"accuracy": 0.75}, "44": {"accuracy": 0.70}}}
    df = charts_seeds.seed_accuracy_frame(tidy_all, finetune)
    assert len(df) == 4 and set(df["layer"]) == {1, 2}                          # layer 0 left out
    assert df.set_index(["seed", "layer"]).loc[("44", 2), ["accuracy", "value"]].tolist() == [0.70, 0.3]
    chart = charts.seed_accuracy_scatter(tidy_all, finetune)
    assert "against each seed's accuracy (2 seeds, no test)" in chart.to_dict()["title"]
