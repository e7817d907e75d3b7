"""The verdict rules of layerwise.words.claims, section "size before significance": known answers, the one
correction family, and that chapters/methods.qmd states the negligible-effect threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layerwise.words import claims, prose_outcomes, prose_similarity
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
    assert claims.NEGLIGIBLE_SD == 0.1 and claims.PRIMARY_CORRECTION == "holm" and claims.SECONDARY_CORRECTION == "bh"


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


# ------------------------------------------------------------------ the answer model (issue 22)
def test_answer_model_known_answers_one_case_per_outcome():
    """Each outcome from a case built for it (Lakens et al. 2018's grid; delta = 0.05)."""
    # equivalent: three seeds near 0, tight sentence intervals -> the 90% interval lies within +-0.05
    eq = claims.difference_outcome([0.004, -0.003, 0.001], 0.005, 0.05)
    assert eq.word == claims.NO_CHANGE and claims.outcome_label(eq) == "no change beyond δ = 0.05"
    assert eq.detail["deciding_level"] == 0.90 and -0.05 < eq.detail["low"] < eq.detail["high"] < 0.05
    # the reviewer's layer-6 token cosine: every seed moved up, one weakly -> not established, direction kept
    weak = claims.difference_outcome([0.383, 0.346, 0.080], 0.01, 0.05)
    assert weak.word == claims.NOT_ESTABLISHED and claims.outcome_label(weak) == "not established with 3 seeds"
    assert weak.detail["direction"] == "up" and weak.detail["per_seed"] == pytest.approx([0.383, 0.346, 0.080])
    s = np.std([0.383, 0.346, 0.080], ddof=1)
    assert weak.detail["mde"] == pytest.approx((4.302653 + 1.060660) * s / np.sqrt(3), rel=1e-5)
    # a large clear change: the 95% interval wholly beyond +0.05
    big = claims.difference_outcome([0.30, 0.32, 0.29], 0.01, 0.05)
    assert big.word == claims.CHANGED and big.detail["low"] > 0.05 and big.detail["deciding_level"] == 0.95
    # small but certain: excludes 0, overlaps +0.05
    small = claims.difference_outcome([0.051, 0.049, 0.050], 0.002, 0.05)
    assert small.word == claims.SIZE_UNCLEAR and small.detail["low"] > 0 and small.detail["low"] < 0.05
    # zero-width interval (identical seeds, no sentence term): a defined outcome, no error
    assert claims.difference_outcome([0.2, 0.2, 0.2], 0.0, 0.05).word == claims.CHANGED
    assert claims.difference_outcome([0.01, 0.01, 0.01], 0.0, 0.05).word == claims.NO_CHANGE
    assert claims.difference_outcome([0.0, 0.0, 0.0], 0.0, float("nan")).word == claims.NOT_ESTABLISHED
    # no margin declared: size is never judged
    assert claims.difference_outcome([0.30, 0.32, 0.29], 0.01).word == claims.SIZE_UNCLEAR
    # seeds that disagree in sign: not established, no direction
    mixed = claims.difference_outcome([0.30, -0.02, 0.25], 0.0, 0.05)
    assert mixed.word == claims.NOT_ESTABLISHED and mixed.detail["direction"] is None


def test_answer_model_says_when_no_change_is_out_of_reach():
    # 180 test sentences, a paired accuracy difference with SE 0.026: z_.95 x 0.026 = 0.043 > delta 0.03
    v = claims.difference_outcome([0.01, 0.0, 0.02], 0.026, 0.03)
    assert v.word == claims.NOT_ESTABLISHED and not v.detail["equivalence_reachable"]
    assert "too few test sentences for no change beyond δ" in prose_outcomes.outcome_clause(v)
    assert claims.difference_outcome([0.01, 0.0, 0.02], 0.005, 0.03).detail["equivalence_reachable"]


def test_similarity_inside_its_null_is_at_chance_beside_its_outcome():
    obs = pd.DataFrame([{"model": "m", "state": "finetuned", "layer": 3, "metric": "cka_debiased_cls_vs_pretrained",
                         "value": 0.02, "ci_low": np.nan, "ci_high": np.nan, "n": 180}])
    null = obs.assign(metric="cka_debiased_null_q95_cls_vs_pretrained", value=0.04, n=200)
    v = claims.chance_verdict(obs, null)
    assert v.word == "at chance" and v.word not in claims.OUTCOMES          # chance is never an outcome


def test_every_judged_statistic_declares_its_margin_and_methods_prints_them():
    from layerwise.words import findings
    from layerwise.core import schema

    judged = [*schema.PER_SENTENCE_METRICS, *findings.PROBES, *findings.SCALARS, "cka_debiased_cls_vs_pretrained"]
    assert all(schema.margin(m) is not None for m in judged), [m for m in judged if schema.margin(m) is None]
    assert schema.margin("probe_acc_cls").value == 0.03 and schema.margin("effect_token_cosine_content").value == 0.05
    assert schema.margin("erank").delta(250.0) == pytest.approx(25.0)
    text = (ROOT / "chapters" / "methods.qmd").read_text()
    block = text.split("<!-- margins:start -->")[1].split("<!-- margins:end -->")[0].strip()
    assert block == schema.margins_markdown()


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
        (v,) = claims.seed_floor_verdicts(table, "token_cosine_adjusted")
        assert v.detail["delta"] == 0.05 and v.word != "changed"
        big = table.copy()
        big.loc[big["state"] == "finetuned", "value"] += 0.2
        (w,) = claims.seed_floor_verdicts(big, "token_cosine_adjusted")
        assert w.word == "changed"


def _profile(per_seed: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "state": "finetuned", "layer": layer, "metric": "cka_debiased_cls_vs_pretrained",
                          "value": v, "ci_low": np.nan, "ci_high": np.nan, "n": 180, "seed": s}
                         for s, values in per_seed.items() for layer, v in enumerate(values)])


def test_seed_apart_names_a_built_outlier_and_no_seed_when_exchangeable():
    rng = np.random.default_rng(0)
    base = np.array([1.0, 0.99, 0.96, 0.94, 0.70, 0.25, 0.12])
    exchangeable = {s: list(base + 0.01 * rng.standard_normal(7)) for s in (42, 43, 44)}
    v = claims.seed_apart(_profile(exchangeable), 0.05)
    assert v.word == "no seed stands apart" and max(v.detail["counts"].values()) < 2
    # the demo's seed 44: much closer to pretrained at layers 4-6
    outlier = {42: [1.0, 0.99, 0.97, 0.94, 0.65, 0.19, 0.08], 43: [1.0, 0.99, 0.98, 0.93, 0.65, 0.17, 0.08],
               44: [1.0, 0.99, 0.93, 0.96, 0.88, 0.48, 0.28]}
    v = claims.seed_apart(_profile(outlier), 0.05)
    assert v.word == "stands apart" and v.detail["seed"] == 44 and v.detail["layers"] == [4, 5, 6]
    assert "seed 44 stands apart at layers 4–6." in prose_similarity.seed_apart_sentence(_profile(outlier))
    assert "with pretrained, no seed stands apart." in prose_similarity.seed_apart_sentence(_profile(exchangeable))
    assert claims.seed_apart(_profile({42: [0.5], 43: [0.6]}), 0.05).word == "not measured"


def test_leave_one_seed_out_sensitivity():
    v = claims.difference_outcome([0.30, 0.32, 0.29, 0.31], 0.01, 0.05)
    assert v.word == claims.CHANGED and v.detail["leave_one_out"] == [claims.CHANGED] * 4
    weak = claims.difference_outcome([0.38, 0.35, 0.08], 0.01, 0.05)
    assert len(weak.detail["leave_one_out"]) == 3
    assert "leave-one-seed-out analyses" in prose_outcomes.outcome_clause(weak)
    assert "over the seeds only" in prose_outcomes.outcome_clause(claims.difference_outcome([0.38, 0.35, 0.08], 0.0, 0.05))
    assert "over the seeds only" not in prose_outcomes.outcome_clause(weak)
    assert "leave_one_out" not in claims.difference_outcome([0.3, 0.32], 0.01, 0.05).detail   # two seeds: none
