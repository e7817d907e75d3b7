"""Known answers for the findings (layerwise.words.findings): a large change is listed as a finding, a
negligible one under "did not change", and one fine-tuning seed says seed variation was not measured."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from layerwise.words import claims, findings

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
             _row("token_cosine_sentence_mean", 0.3, state="pretrained", lo=0.28, hi=0.32)]
    tidy = pd.DataFrame(rows)
    params = SimpleNamespace(name="m", display_name="Model M")
    return SimpleNamespace(tidy=tidy, probe_correct=None, params=params)


def test_large_change_is_a_finding_and_negligible_did_not_change():
    f = findings.model_findings(_study())
    assert list(f.changed["statistic"]) == [findings._describe("token_cosine")]
    top = f.changed.iloc[0]
    assert top["verdict"] == "higher" and top["largest at layer"] == 2 and top["n"] == 100
    assert top["size / floor"] == "50.0"                                     # 0.5 / (0.1 x 0.1)
    assert "0.80" in top["finetuned"] and "0.30" in top["pretrained"]
    assert list(f.unchanged["statistic"]) == [findings._describe("cov_trace")]
    assert f.unchanged.iloc[0]["verdict"] == "negligible"
    text = f.markdown()
    assert "higher after fine-tuning" in text and "Did not change" in text and "negligible" in text


def test_one_seed_says_seed_variation_not_measured():
    f = findings.model_findings(_study())
    assert f.seeds == 1
    assert f.changed.iloc[0]["seed floor"] == claims.SEED_VARIATION_NOT_MEASURED
    assert claims.SEED_VARIATION_NOT_MEASURED in f.markdown()


def test_summary_table_across_models():
    f = findings.model_findings(_study())
    md = findings.summary_markdown([f, f])
    assert md.count("| Model M |") == 2 and "not measured (one seed)" in md


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
    assert len(obs) == 1 and "random weights match the pretrained model" in obs[0]


def _seeded_study(per_seed_effects):
    """``_study`` plus per-seed ``effect_token_cosine`` rows (the seed column of ``Study.tidy_all``)."""
    study = _study()
    seeds = pd.DataFrame([{**_row("effect_token_cosine", e, lo=e - 0.01, hi=e + 0.01), "seed": s}
                          for s, e in enumerate(per_seed_effects, start=42)])
    tidy_all = pd.concat([study.tidy.assign(seed=pd.NA), seeds], ignore_index=True)
    tidy_all["seed"] = tidy_all["seed"].astype("Int64")
    return SimpleNamespace(**vars(study), tidy_all=tidy_all)


def test_a_change_within_seed_variation_is_not_a_finding():
    """Seeds that agree (0.49, 0.50, 0.51): the change clears the seed floor and stays a finding. Seeds
    that disagree (0.05, 0.50, 0.95, the paired test on the seed mean still significant): the same
    statistic moves to "did not change", naming the seed-to-seed variation."""
    agree = findings.model_findings(_seeded_study([0.49, 0.50, 0.51]))
    assert agree.seeds == 3 and list(agree.changed["statistic"]) == [findings._describe("token_cosine")]
    assert agree.changed.iloc[0]["seed floor"] == "changed"
    spread = findings.model_findings(_seeded_study([0.05, 0.50, 0.95]))
    assert spread.changed.empty
    row = spread.unchanged[spread.unchanged["statistic"] == findings._describe("token_cosine")].iloc[0]
    assert "not beyond the seed-to-seed variation" in row["verdict"]


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


def test_scalar_statistics_are_judged_on_their_seed_floor():
    name = findings._describe("erank")
    moved = findings.model_findings(_scalar_study({42: 20.0, 43: 21.0, 44: 22.0}))
    assert list(moved.changed["statistic"]) == [name]
    row = moved.changed.iloc[0]
    assert row["verdict"] == "changed" and row["seed floor"] == "changed" and row["n"] == 3
    assert row["largest at layer"] == 2 and float(row["size / floor"]) > 1
    # seeds that disagree in sign: not a change, listed under "did not change"
    spread = findings.model_findings(_scalar_study({42: -20.0, 43: 5.0, 44: 60.0}))
    assert spread.changed.empty and name in list(spread.unchanged["statistic"])
    c = spread.conclusion(probes=False)
    assert f"Not changed: {name} (not beyond the seed-to-seed variation at any layer)" in c
    assert "moved in the mean over seeds" not in c
    assert "changed at layer 2, most at layer 2" in moved.conclusion(probes=False)   # one layer: "layer"
    # a consistent shift too small to matter (0.1 x the SD behind the interval: 0.1 x 5 x 10 / 1.96 = 2.6): negligible
    tiny = findings.model_findings(_scalar_study({42: 0.50, 43: 0.52, 44: 0.54}))
    assert tiny.changed.empty
    # every seed moved by exactly the same amount (a tiny model, an interval of zero width): still listed
    same = findings.model_findings(_scalar_study({42: 20.0, 43: 20.0, 44: 20.0}))
    assert same.changed.iloc[0]["size / floor"].startswith("unbounded")
    # one seed: nothing to judge, the statistic is not listed at all
    one = findings.model_findings(_scalar_study({42: 20.0}))
    assert one.changed.empty and name not in list(one.unchanged["statistic"])
