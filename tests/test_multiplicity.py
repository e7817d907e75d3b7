"""Known answers for the family-adjusted levels (measure.multiplicity) and the primary family (claims.families)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from layerwise.measure import stats
from layerwise.measure.multiplicity import deciding_alphas, interval_p_value
from layerwise.words import claims


def test_interval_p_value_is_the_t_test_without_a_sentence_term():
    d = np.array([0.3, 0.5, 0.1, 0.4])
    assert interval_p_value(d) == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue, rel=1e-8)


def test_interval_p_value_with_one_seed_is_the_normal_test():
    assert interval_p_value([0.2], [0.1]) == pytest.approx(2 * sps.norm.sf(2.0), rel=1e-8)


def test_interval_p_value_inverts_the_seed_and_sentence_interval():
    d, se = np.array([0.30, 0.25, 0.05]), np.array([0.04, 0.05, 0.03])
    p = interval_p_value(d, se)
    at = stats.seed_sentence_interval(d, se, 1 - p)
    assert min(abs(at.low), abs(at.high)) == pytest.approx(0.0, abs=1e-9)    # the (1 - p) interval touches 0
    assert stats.seed_sentence_interval(d, se, 1 - 1.01 * p).low > 0         # a little narrower: excludes 0


def test_interval_p_value_edge_cases():
    assert interval_p_value([0.2, 0.2, 0.2]) == 0.0      # zero width, mean not 0: defined, no error
    assert interval_p_value([0.0, 0.0]) == 1.0
    assert math.isnan(interval_p_value([np.nan]))


@pytest.mark.parametrize("method, adjust", [("holm", stats.holm), ("bh", stats.benjamini_hochberg)])
def test_deciding_alphas_reject_exactly_what_the_adjusted_p_values_reject(method, adjust):
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = np.concatenate([rng.uniform(0, 0.02, rng.integers(0, 6)), rng.uniform(0, 1, rng.integers(1, 20))])
        rejected, alphas = deciding_alphas(p, method)
        assert np.array_equal(rejected, adjust(p) <= 0.05)
        assert np.array_equal(rejected, p <= alphas)          # the deciding level agrees with the procedure
        assert np.all(alphas <= 0.05 + 1e-12)


def test_deciding_alphas_known_answers():
    rejected, alphas = deciding_alphas([0.001, 0.02, 0.04, 0.5], "holm")
    assert rejected.tolist() == [True, False, False, False]
    assert alphas.tolist() == pytest.approx([0.05 / 4, 0.05 / 3, 0.05 / 3, 0.05 / 3])
    rejected, alphas = deciding_alphas([0.001, 0.02, 0.04, 0.5], "bh")
    assert rejected.tolist() == [True, True, False, False]    # 0.02 <= 2 x 0.05 / 4
    assert alphas.tolist() == pytest.approx([0.025] * 4)
    rejected, alphas = deciding_alphas([np.nan, 0.3], "holm")
    assert math.isnan(alphas[0]) and alphas[1] == pytest.approx(0.05) and not rejected.any()


def _tidy(diffs_by_layer: dict[int, list[float]], metric: str = "probe_acc_cls", half: float = 0.0) -> pd.DataFrame:
    rows = []
    for layer, diffs in diffs_by_layer.items():
        rows.append(dict(model="m", state="pretrained", layer=layer, metric=metric, value=0.5, ci_low=np.nan,
                         ci_high=np.nan, n=100, seed=pd.NA))
        for seed, d in zip((42, 43, 44), diffs):
            rows.append(dict(model="m", state="finetuned", layer=layer, metric=metric, value=0.5 + d,
                             ci_low=0.5 + d - half, ci_high=0.5 + d + half, n=100, seed=seed))
    t = pd.DataFrame(rows)
    t["seed"] = t["seed"].astype("Int64")
    return t


def test_the_primary_family_is_holm_over_every_layer_and_its_interval_decides():
    # layer 0: a clear change; layers 1-5: noise. Alone at 95 % layer 3 would be "changed, size unclear".
    diffs = {0: [0.20, 0.21, 0.19], 1: [0.01, -0.02, 0.00], 2: [0.0, 0.01, -0.01], 3: [0.05, 0.06, 0.055],
             4: [0.02, -0.03, 0.01], 5: [-0.01, 0.0, 0.02]}
    t = _tidy(diffs)
    alone = claims.seed_change(claims.per_layer_differences(t, "probe_acc_cls", "pretrained", "finetuned")[3][0],
                               0.03)
    assert alone.word == claims.CHANGED                      # layer 3 alone, unadjusted 95 %
    verdicts = {v.detail["layer"]: v for v in claims.seed_floor_verdicts(t, "probe_acc_cls")}
    assert {v.detail["family"] for v in verdicts.values()} == {"primary"}
    assert verdicts[0].detail["family_size"] == 6 and verdicts[0].detail["correction"] == "holm"
    assert verdicts[0].word == claims.CHANGED
    for v in verdicts.values():                              # no printed interval contradicts its word
        d = v.detail
        if v.word in (claims.CHANGED, claims.SIZE_UNCLEAR):
            assert d["low"] > 0 or d["high"] < 0
            assert d["deciding_level"] > 0.95
        elif v.word == claims.NOT_ESTABLISHED:
            assert d["low"] <= 0 <= d["high"]


def test_a_secondary_statistic_is_its_own_benjamini_hochberg_family():
    t = _tidy({0: [0.2, 0.21, 0.19], 1: [0.01, -0.02, 0.0]}, metric="erank", half=0.0)
    verdicts = claims.seed_floor_verdicts(t, "erank")
    assert [v.detail["family"] for v in verdicts] == ["secondary: erank"] * 2
    assert verdicts[0].detail["correction"] == "bh" and verdicts[0].detail["deciding_level"] == pytest.approx(0.975)


def test_only_claims_constructs_a_verdict():
    """Every verdict comes from claims: no module outside words/claims calls Verdict(...)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "layerwise"
    offenders = []
    for path in root.rglob("*.py"):
        if "claims" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "Verdict":
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, f"Verdict constructed outside claims: {offenders}"


def test_page_one_says_how_the_primary_family_is_judged():
    from layerwise.words import answer

    diffs = {layer: [0.0, 0.01, -0.01] for layer in range(4)}
    verdicts = {"probe_acc_cls": {v.detail["layer"]: v for v in claims.seed_floor_verdicts(_tidy(diffs), "probe_acc_cls")}}
    text = answer.family_sentence(verdicts)
    assert "4 tests, Holm's method" in text and "98.75% interval" in text and "with 3 seeds, none does" in text
    assert answer.family_sentence({}) == ""
