"""The verdict rules of layerwise.words.claims, section "size before significance": known answers, the one
correction family, and that chapters/methods.qmd states the negligible-effect threshold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layerwise.words import claims, prose
from layerwise.measure import comparisons, stats

ROOT = Path(__file__).resolve().parents[1]


def test_size_before_significance_known_answers():
    # the reviewer's case: -0.0014 with p = 1.9e-30, pretrained between-sentence SD 0.05 -> delta 0.005
    tiny = claims.effect_verdict(-0.0014, 1.9e-30, claims.negligible_threshold(0.05))
    assert tiny.word == "negligible" and tiny.detail["delta"] == pytest.approx(0.005)
    large = claims.effect_verdict(0.25, 1e-12, claims.negligible_threshold(0.05))
    assert large.word == "higher"
    assert claims.effect_verdict(-0.25, 1e-12, 0.005).word == "lower"
    assert claims.effect_verdict(0.25, 0.2, 0.005).word == "not significant"
    assert claims.effect_verdict(0.25, float("nan"), 0.005).word == "not significant"
    assert claims.effect_verdict(0.001, 0.5, 0.005).word == "negligible"  # size is judged first
    # without a reference SD the size rule cannot apply
    assert claims.effect_verdict(0.001, 1e-9, claims.negligible_threshold(float("nan"))).word == "higher"
    assert claims.NEGLIGIBLE_SD == 0.1 and claims.CORRECTION in stats.CORRECTIONS


def _per_sentence(n=200, seed=0):
    """Layer 0: every sentence moves by -0.0014 (+ tiny noise): p tiny, effect negligible; layer 1: a
    large shift; layer 2: nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for layer, shift in enumerate([-0.0014, 0.25, 0.0]):
        base = rng.normal(0.3, 0.05, n)
        for state, delta in (("pretrained", 0.0), ("finetuned", shift)):
            v = base + delta + rng.normal(0, 0.0002 if layer == 0 else 0.05, n) * (state == "finetuned")
            rows += [("m", state, layer, i, "token_cosine", v[i]) for i in range(n)]
    return pd.DataFrame(rows, columns=["model", "state", "layer", "sentence", "metric", "value"])


def test_verdicts_from_the_tidy_tables_and_one_family():
    tidy = stats.adjust_family(comparisons.compare_states_per_sentence(_per_sentence(), n_boot=200))
    assert claims.family_size(tidy) == 3
    v = {x.detail["layer"]: x for x in claims.state_change_verdicts(tidy, "token_cosine")}
    assert v[0].detail["p"] < 1e-20 and v[0].word == "negligible"
    assert v[1].word == "higher" and v[1].detail["low"] > 0.2
    assert v[2].word in ("negligible", "not significant")
    assert all(x.n == 200 and not x.rows.empty for x in v.values())
    s = prose.significance_sentence(tidy, "token_cosine", "the token cosine")
    assert "Holm-adjusted over all 3 tests" in s and "higher at layer 1 (+0.2" in s
    assert re.search(r"negligible at layers? 0 \(-0\.0014, 95% CI -0\.001\d to -0\.001\d\)", s), s
    assert "lower" not in s


def test_one_family_covers_every_test_of_the_tidy_tables():
    ps = _per_sentence()
    tidy = comparisons.compare_states_per_sentence(ps, n_boot=100)
    extra = pd.DataFrame([dict(model="m", state="finetuned", layer=-1, metric="spearman_convergence_probe_p",
                               value=0.01, ci_low=np.nan, ci_high=np.nan, n=7)])
    both = stats.adjust_family(pd.concat([tidy, extra], ignore_index=True))
    raw = both[both.metric.isin(["test_p_token_cosine", "spearman_convergence_probe_p"])]
    adj = both[both.metric.isin(["test_p_holm_token_cosine", "spearman_convergence_probe_p_holm"])]
    assert len(raw) == len(adj) == 4
    np.testing.assert_allclose(adj.value.to_numpy(), stats.holm(raw.value.to_numpy()))
    pd.testing.assert_frame_equal(stats.adjust_family(both), both)  # idempotent


def test_methods_states_the_threshold_and_the_family():
    text = " ".join((ROOT / "chapters" / "methods.qmd").read_text().split())
    assert f"{claims.NEGLIGIBLE_SD:g} times the between-sentence standard deviation" in text
    assert "Every p-value in the result tables" in text and "Holm" in text


def _probe_rows(value: float, null_value: float, null_high: float, layer: int = 3) -> pd.DataFrame:
    row = dict(model="m", state="finetuned", layer=layer, n=180)
    return pd.DataFrame([
        {**row, "metric": "probe_acc_cls", "value": value, "ci_low": value - 0.1, "ci_high": value + 0.1},
        {**row, "metric": "probe_chance_acc_cls", "value": null_value, "ci_low": 2 * null_value - null_high,
         "ci_high": null_high},
    ])


def test_probe_chance_verdict_known_answers():
    # the demo's layer 6: 0.726 (CI from 0.627) against permuted labels 0.49 up to 0.631 -> above chance
    above = claims.probe_chance_verdict(_probe_rows(0.726, 0.49, 0.631), "probe_acc_cls", 3)
    assert above.word == "above chance" and above.detail["null_upper"] == pytest.approx(0.631)
    assert above.n == 180 and above.word in claims.WORDS
    # an accuracy inside the permuted-label range is at chance, even if its own CI reaches higher
    assert claims.probe_chance_verdict(_probe_rows(0.60, 0.50, 0.63), "probe_acc_cls", 3).word == "at chance"
    # a missing null or another layer: not measured
    assert claims.probe_chance_verdict(_probe_rows(0.9, 0.5, 0.6), "probe_acc_cls", 4).word == "not measured"
    only = _probe_rows(0.9, 0.5, 0.6).iloc[:1]
    assert claims.probe_chance_verdict(only, "probe_acc_cls", 3).word == "not measured"


def test_scalar_threshold_is_the_per_sentence_rule_from_the_interval():
    # a mean over n = 100 sentences with SD 0.5 has the half-width 1.96 x 0.05 = 0.098: delta = 0.1 x 0.5
    ref = pd.DataFrame([{"value": 0.30, "ci_low": 0.30 - 0.098, "ci_high": 0.30 + 0.098, "n": 100}])
    assert claims.scalar_threshold(ref) == pytest.approx(0.05, rel=1e-3)
    # no interval: half a unit of the last printed digit
    assert claims.scalar_threshold(ref.assign(ci_low=np.nan)) == pytest.approx(0.005)
    assert claims.scalar_threshold(ref.assign(ci_low=np.nan), digits=1) == pytest.approx(0.05)
    assert np.isnan(claims.scalar_threshold(ref.iloc[0:0]))


def test_tiny_consistent_scalar_change_is_negligible_not_changed():
    # the demo's adjusted cosine at layer 0: three seeds move by ~+0.00005, all the same way: the seed
    # rule alone would say "changed"; with an interval (+-0.01 over 180 sentences) or without one
    # (printed at 2 digits) the change is negligible
    rows = [{"model": "m", "state": "pretrained", "layer": 0, "metric": "token_cosine_adjusted", "value": 0.10,
             "ci_low": 0.09, "ci_high": 0.11, "n": 180, "seed": None}]
    for seed, d in ((42, 4e-5), (43, 5e-5), (44, 6e-5)):
        rows.append({"model": "m", "state": "finetuned", "layer": 0, "metric": "token_cosine_adjusted",
                     "value": 0.10 + d, "ci_low": 0.09 + d, "ci_high": 0.11 + d, "n": 180, "seed": seed})
    tidy = pd.DataFrame(rows)
    for table in (tidy, tidy.assign(ci_low=np.nan, ci_high=np.nan)):
        (v,) = prose.seed_floor_verdicts(table, "token_cosine_adjusted")
        assert v.detail["delta"] > 1e-3 and v.word != "changed"
        big = table.copy()
        big.loc[big["state"] == "finetuned", "value"] += 0.2
        (w,) = prose.seed_floor_verdicts(big, "token_cosine_adjusted")
        assert w.word == "changed"
