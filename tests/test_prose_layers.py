"""Claim-first paragraphs (layerwise.words.prose_layers) and the layer-shape rule (claims.layer_trend): known
answers on small tables, each assertion one that a wrong rule would fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layerwise.words import claims, findings, prose_layers, prose_probes, prose_similarity
from layerwise.words.prose_format import layer_span


def _rows(state, metric, values, seed=None, ci=0.0):
    return [dict(model="m", state=state, layer=layer, metric=metric, value=v, ci_low=v - ci if ci else np.nan,
                 ci_high=v + ci if ci else np.nan, n=100, seed=seed) for layer, v in enumerate(values)]


def _frame(rows):
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype("Int64")
    return df


@pytest.mark.parametrize("values, word", [
    ([0.36, 0.361, 0.359, 0.362], "flat"),           # all print as 0.36: flat
    ([0.03, 0.1, 0.2, 0.57], "rises"),
    ([0.9, 0.5, 0.4, 0.2], "falls"),
    ([0.1, 0.5, 0.3, 0.1], "peaks"),
    ([0.5, 0.2, 0.1, 0.5], "dips"),
])
def test_layer_trend_known_shapes(values, word):
    v = claims.layer_trend(pd.DataFrame(_rows("pretrained", "x", values)), 0.005)
    assert v.word == word and v.n == len(values)
    assert claims.layer_trend(pd.DataFrame(_rows("pretrained", "x", values)).iloc[0:0], 0.005).word == "not measured"


def test_layer_span():
    assert layer_span([6]) == "layer 6"
    assert layer_span([2, 4, 5, 6]) == "layers 2 and 4–6"
    assert layer_span([0, 1]) == "layers 0, 1" and layer_span([0, 2, 3, 4, 6]) == "layers 0, 2–4 and 6"


def test_layers_sentence_groups_states_and_says_flat():
    t = _frame(_rows("pretrained", "x", [0.03, 0.1, 0.24, 0.23]) + _rows("finetuned", "x", [0.03, 0.2, 0.4, 0.57])
               + _rows("random", "x", [0.361, 0.358, 0.36, 0.362]))
    s = prose_layers.layers_sentence(t, "x", "the cosine")
    assert s == ("Through the layers, the cosine rises in pretrained and finetuned and is flat in random. "
                 "Layer 0 → 3: pretrained 0.03 → 0.23, peak 0.24 at layer 2; finetuned 0.03 → 0.57; "
                 "random flat at 0.36.")


def _tested(effects, seeds=None, sd=0.1):
    """Per-sentence metric ``x``: aggregate paired effects per layer (p tiny), reference SD ``sd``
    (negligible below 0.01), and optionally per-seed effects ``seeds[seed] = [effect per layer]``."""
    rows = []
    for layer, e in enumerate(effects):
        for metric, value in ((f"effect_x", e), ("test_p_x", 1e-9), ("test_p_holm_x", 1e-8), ("reference_sd_x", sd)):
            ci = 0.001 if metric == "effect_x" else 0.0
            rows += [r | {"layer": layer} for r in _rows("finetuned", metric, [value], ci=ci)]
    for seed, per_layer in (seeds or {}).items():
        for layer, e in enumerate(per_layer):
            rows += [r | {"layer": layer} for r in _rows("finetuned", "effect_x", [e], seed=seed, ci=0.001)]
    return _frame(rows)


def test_change_claim_large_and_negligible():
    t = _tested([0.0005, 0.3])                                             # delta = 0.1 x 0.1 = 0.01
    s = prose_layers.change_claim(t, "x", "the score", verdict_metric="x")
    assert "higher at layer 1 and negligible at layer 0. Largest at layer 1: +0.3000, 95% CI +0.2990 to +0.3010" in s
    assert claims.SEED_VARIATION_NOT_MEASURED in s.lower()                   # one run: no seed floor
    none = prose_layers.change_claim(_tested([0.0005, -0.002]), "x", "the score", verdict_metric="x")
    assert "negligible at layers 0, 1" in none and "does not change" not in none   # description, not a verdict
    assert "higher" not in none and "lower" not in none


def test_a_change_within_the_seed_floor_is_not_called_a_change():
    agree = _tested([0.0, 0.3], seeds={42: [0.0, 0.29], 43: [0.0, 0.30], 44: [0.0, 0.31]})
    s = prose_layers.change_claim(agree[agree["seed"].isna()], "x", "the score", tidy_all=agree, verdict_metric="x")
    assert "Across 3 fine-tuning seeds: changed, size unclear at layer 1" in s   # "x" declares no margin
    spread = _tested([0.0, 0.3], seeds={42: [0.0, -0.2], 43: [0.0, 0.3], 44: [0.0, 0.8]})
    s = prose_layers.change_claim(spread[spread["seed"].isna()], "x", "the score", tidy_all=spread, verdict_metric="x")
    assert "not established with 3 seeds at layers 0, 1" in s and "changed" not in s.split("seeds:")[1]


def test_scalar_statistic_is_judged_only_against_its_seed_floor():
    base = _rows("pretrained", "y", [1.0, 2.0, 3.0])
    one = _frame(base + _rows("finetuned", "y", [1.0, 2.0, 4.0]))
    s = prose_layers.metric_paragraph(one, "y", "the rank", digits=1)
    assert s.startswith("Whether fine-tuning changed the rank is not judged: " + claims.SEED_VARIATION_NOT_MEASURED)
    assert "rises in pretrained and finetuned" in s
    seeds = [_rows("finetuned", "y", [1.0, 2.0, 3.0 + d], seed=s) for s, d in ((42, 0.9), (43, 1.0), (44, 1.1))]
    agg = _rows("finetuned", "y", [1.0, 2.0, 4.0])
    t = _frame(base + agg + [r for rs in seeds for r in rs])
    s = prose_layers.change_claim(t[t["seed"].isna()], "y", "the rank", tidy_all=t)
    # "y" declares no margin; its 3 layers are one secondary family (Benjamini-Hochberg, 1 rejection: 1 - 0.05/3)
    assert "changed, size unclear at layer 2: +1.0, 98.3% CI +0.6 to +1.4" in s
    tiny = [_rows("finetuned", "y", [1.0, 2.0 + d, 3.0], seed=s) for s, d in ((42, 1.9e-4), (43, 2e-4), (44, 2.1e-4))]
    t_tiny = _frame(base + agg + [r for rs in tiny for r in rs])
    layer1 = [v for v in claims.seed_floor_verdicts(t_tiny, "y") if v.detail["layer"] == 1]
    assert layer1[0].word == claims.SIZE_UNCLEAR  # +0.0002 in every seed, no margin declared for "y"
    noisy = [_rows("finetuned", "y", [1.0, 2.0, 3.0 + d], seed=s) for s, d in ((42, -1.0), (43, 1.0), (44, 3.0))]
    t = _frame(base + agg + [r for rs in noisy for r in rs])
    assert "not established with 3 seeds at layers 0–2" in prose_layers.change_claim(
        t[t["seed"].isna()], "y", "the rank", tidy_all=t)


def _probe_study(gain_layer=2, n=200, layers=3):
    """Per-sentence correctness: pretrained and random right on the same 60% of sentences at every layer;
    fine-tuned right on 30% more sentences at ``gain_layer``."""
    rng = np.random.default_rng(0)
    base = rng.random(n) < 0.6
    correct, tidy = [], []
    for state in ("pretrained", "finetuned", "random"):
        for layer in range(layers):
            hit = base.copy()
            if state == "finetuned" and layer == gain_layer:
                hit[~base & (rng.random(n) < 0.75)] = True
            correct += [dict(model="m", state=state, metric="probe_acc_cls", layer=layer, sentence=i, correct=float(h))
                        for i, h in enumerate(hit)]
            tidy += [r | {"layer": layer} for r in _rows(state, "probe_acc_cls", [float(hit.mean())], ci=0.05)]
    return _frame(tidy), pd.DataFrame(correct)


def test_probe_paragraph_names_the_changed_layer_and_the_best_layers():
    tidy, correct = _probe_study()
    s = prose_probes.probe_paragraph(tidy, correct, "cls")
    assert s.startswith("Against pretrained on the same 200 test sentences, the fine-tuned first-token probe is "
                        "higher at layer 2 (")
    assert "tied at layers 0, 1" in s and claims.SEED_VARIATION_NOT_MEASURED in s.lower()
    assert "\n| changed | 2 | layer 2: +0.34, 98.3% CI +0.26 to +0.42 | - |\n" in s   # primary family: Holm, 3 tests
    assert "finetuned layer 2: " in s.lower()                                    # the one best layer, paired
    assert "pretrained layers 0–2, tied" in s.lower()                   # identical layers: a tied set, no argmax
    random = s.split("Random weights against pretrained on the same probe, one random draw:\n\n")[1]
    assert "\n| no change beyond δ = 0.03 | 0–2 | layer 0: 0.000, 90% CI 0.000 to 0.000 | - |" in random


def _findings_study(seed_rows=None):
    from types import SimpleNamespace

    t = _tested([0.3, 0.0005], seeds=seed_rows)
    t = pd.concat([t, _tested([0.0005, 0.0002]).assign(metric=lambda d: d.metric.str.replace("_x", "_cov_trace"))])
    t["metric"] = t["metric"].str.replace(r"_x$", "_token_cosine", regex=True)
    agg = t[t["seed"].isna()]
    params = SimpleNamespace(name="m", display_name="M")
    return SimpleNamespace(tidy=agg, tidy_all=t, probe_correct=None, params=params)


def test_conclusion_lists_the_change_and_what_did_not_change():
    f = findings.model_findings(_findings_study())
    c = f.conclusion(probes=False)
    assert c.startswith(f"Fine-tuning changed 1 of these 2 statistics; the clearest is "
                        f"{findings._describe('token_cosine')}, changed at layer 0: +0.3000, 97.5% CI")  # BH over 2 layers, 1 found
    assert c.endswith("The other statistic shows no change beyond δ or is not established at every layer.")
    assert f.unchanged_table().to_dict("records") == [{"statistic": findings._describe("cov_trace"),
                                                       "not established with one seed": "0, 1"}]
    assert f.markdown().startswith(c)                                   # the conclusion opens the Findings
    assert 2 <= c.count(". ") + 1 <= 4
    assert findings.RANKING in f.markdown()
    spread = findings.model_findings(_findings_study({42: [-0.2, 0.0], 43: [0.3, 0.0], 44: [0.8, 0.0]}))
    c = spread.conclusion(probes=False)
    assert "changed none of these statistics" in c
    assert {"statistic": findings._describe("token_cosine"), "no change beyond δ": "1",
            "not established with 3 seeds": "0"} in spread.unchanged_table().to_dict("records")


def test_metric_summary_claims_in_words_numbers_in_a_table():
    """The outcome by layer in one sentence (no numbers), the shape in a second, every number in the
    per-layer table: the states' values, the paired test's word, the outcome with δ and its deciding interval."""
    base = _rows("pretrained", "y", [1.0, 2.0, 3.0])
    seeds = [_rows("finetuned", "y", [1.0, 2.0, 3.0 + d], seed=s, ci=0.01) for s, d in ((42, 0.9), (43, 1.0), (44, 1.1))]
    t = _frame(base + _rows("finetuned", "y", [1.0, 2.0, 4.0], ci=0.01) + [r for rs in seeds for r in rs])
    s = prose_layers.metric_summary(t[t["seed"].isna()], "y", "the rank", tidy_all=t, digits=1)
    text, table, *notes = s.split("\n\n")
    assert all(line.startswith("- Layer ") for n in notes for line in n.splitlines())   # notes under the table
    assert text.startswith("The rank after fine-tuning, over 3 seeds: changed, size unclear at layer 2")
    assert text.endswith("Through the layers, the rank rises in pretrained and finetuned.")
    assert not any(ch.isdigit() for ch in text.replace("3 seeds", "").replace("layer 2", "").replace("layers 0, 1", ""))
    rows = [r.strip("| ").split(" | ") for r in table.splitlines()]
    assert rows[0][:4] == ["layer", "pretrained", "finetuned", "over 3 seeds: difference"]
    assert rows[4][:4] == ["2", "3.0", "4.0", "changed, size unclear: +1.0, 98.3% CI +0.6 to +1.4"]
    assert len(rows[0]) <= 6                                             # MAX_TABLE_COLUMNS
    one = _frame(base + _rows("finetuned", "y", [1.0, 2.0, 4.0]))
    s = prose_layers.metric_summary(one, "y", "the rank", digits=1)
    assert s.startswith("Whether fine-tuning changed the rank is not judged: " + claims.SEED_VARIATION_NOT_MEASURED)
    assert "over" not in s.split("\n\n")[1].splitlines()[0]              # no outcome column without seeds
    tested = _tested([0.0005, 0.3], seeds={42: [0.0, 0.29], 43: [0.0, 0.30], 44: [0.0, 0.31]})
    s = prose_layers.metric_summary(tested[tested["seed"].isna()], "effect_x", "the effect", tidy_all=tested,
                             verdict_metric="x", tested="the score")
    assert s.startswith("The score after fine-tuning, over 3 seeds: ")
    header, _, *layer_rows = s.split("\n\n")[1].splitlines()
    assert "paired test" in header and [r.split(" | ")[2] for r in layer_rows] == ["negligible", "higher"]
    single = prose_layers.metric_summary(_tested([0.0005, 0.3]), "effect_x", "the effect", verdict_metric="x",
                                         tested="the score")
    assert single.startswith(f"The score after fine-tuning, {claims.SEED_VARIATION_NOT_MEASURED}: ")


def test_similarity_summary_chance_then_the_seed_floor_by_layer():
    """Debiased CKA with pretrained: above its permutation null at both layers, as similar as the seeds are
    to each other at layer 0 (no change beyond δ) and far below it at layer 1 (changed)."""
    rows = []
    for layer, (agg, per_seed) in enumerate(((0.95, (0.95, 0.94, 0.96)), (0.60, (0.60, 0.62, 0.58)))):
        at = {"layer": layer}
        rows += [r | at for r in _rows("finetuned", "cka_debiased_cls_vs_pretrained", [agg])]
        rows += [r | at for r in _rows("finetuned", "cka_debiased_null_q95_cls_vs_pretrained", [0.02])]
        for seed, value in zip((42, 43, 44), per_seed):
            rows += [r | at for r in _rows("finetuned", "cka_debiased_cls_vs_pretrained", [value], seed=seed)]
        for (a, b), value in zip(((42, 43), (42, 44), (43, 44)), (0.95, 0.96, 0.94)):
            rows += [r | at | {"seed_b": b} for r in _rows("finetuned", "cka_debiased_cls_between_seeds", [value], seed=a)]
    s = prose_similarity.similarity_summary(_frame(rows), "cls")
    text, table, *_ = s.split("\n\n")
    assert text == ("The first-token debiased CKA of finetuned with pretrained is above chance at layers 0, 1 (null 95th "
                    "percentile 0.020). Against the similarity between seeds, over 3 seeds: changed at layer 1; "
                    "no change beyond δ at layer 0.")
    rows = [r.strip("| ").split(" | ") for r in table.splitlines()]
    assert rows[0][:3] == ["layer", "finetuned", "over 3 seeds, no sentence interval: pretrained minus seeds"]
    assert rows[2][2].startswith("no change beyond δ = 0.05: ") and rows[3][2].startswith("changed: ")
    assert rows[2][:2] == ["0", "0.950"] and rows[3][:2] == ["1", "0.600"]
