"""The probe comparisons of layerwise.words.probe_comparisons and the audited template sentences: known answers
on small synthetic tables (the fine-tuned classifier against the lexical baseline, the pretrained model's best
probe against it, pooling, the control task's coverage, MDL below 1), and no sentence about the data that the
tables do not compute (the biased CKA's null is quoted from the table, never asserted)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from layerwise.words import claims, probe_comparisons as pc, prose_similarity

ROOT = Path(__file__).resolve().parents[1]


def _row(state, metric, layer, value, low=np.nan, high=np.nan, n=180):
    return dict(model="m", state=state, layer=layer, metric=metric, value=value, ci_low=low, ci_high=high, n=n)


def _study(tidy_rows, correct=None, finetune=None):
    tidy = pd.DataFrame(tidy_rows)
    correct = pd.DataFrame(correct or [], columns=["model", "state", "metric", "layer", "sentence", "correct"])
    return SimpleNamespace(tidy=tidy, probe_correct=correct, finetune=finetune or {})


def _lexical(value=0.72, low=0.65, high=0.79):
    return [_row(s, "lexical_probe_acc", -1, value, low, high) for s in ("pretrained", "finetuned")]


def _seed(acc, half):
    return {"accuracy": acc, "accuracy_ci": [acc - half, acc + half], "label_names": ["0", "1"]}


# --- the fine-tuned classifier against the lexical baseline (unpaired: the intervals decide) -----------------

def test_finetuned_close_to_lexical_with_wide_intervals_is_tied():
    seeds = {42: _seed(0.75, 0.07), 43: _seed(0.79, 0.06), 44: _seed(0.71, 0.07)}
    text = pc.finetuned_vs_lexical(_study(_lexical(), finetune={"accuracy": 0.75, "seeds": seeds}))
    assert "scores 0.750 on the test sentences, the mean over 3 fine-tuning seeds (seed 42: 0.750" in text
    assert "It is tied with the lexical baseline, 0.720 (95% CI 0.650 to 0.790) on the same 180 test sentences" in text
    assert "difference +0.03, 95% CI -0.11 to +0.17." in text and "not stored, so the difference's interval over seeds and sentences decides, unpaired" in text


def test_finetuned_clearly_above_lexical_is_higher():
    seeds = {42: _seed(0.92, 0.03), 43: _seed(0.93, 0.03), 44: _seed(0.925, 0.03)}
    text = pc.finetuned_vs_lexical(_study(_lexical(0.70, 0.66, 0.74), finetune={"accuracy": 0.92, "seeds": seeds}))
    assert "is higher than the lexical baseline" in text
    one = pc.finetuned_vs_lexical(_study(_lexical(0.70, 0.66, 0.74), finetune=_seed(0.92, 0.03)))
    assert "one run" in one and "the difference's sentence interval decides" in one and "is higher than" in one
    assert pc.finetuned_vs_lexical(_study(_lexical(), finetune={})) == ""


def test_interval_versus_rule():
    assert claims.interval_versus([0.2, 0.21, 0.19], [0.02] * 3).word == "higher"
    assert claims.interval_versus([-0.2, -0.21, -0.19], [0.02] * 3).word == "lower"
    v = claims.interval_versus([0.03, 0.08, -0.02], [0.05] * 3)
    assert v.word == "tied" and v.detail["paired"] is False and v.n == 3


# --- probes against the lexical baseline and against each other (paired on the same sentences) -------------

def _correct(state, metric, layer, hits, n=60):
    return [dict(model="m", state=state, metric=metric, layer=layer, sentence=i, correct=float(i < hits))
            for i in range(n)]


def _probe_study(best_hits, lexical_hits, mean_hits=None):
    rows, correct = _lexical(lexical_hits / 60, lexical_hits / 60 - 0.1, lexical_hits / 60 + 0.1), []
    for layer in (0, 1, 2):
        hits = best_hits if layer == 2 else 20
        rows.append(_row("pretrained", "probe_acc_cls", layer, hits / 60, hits / 60 - 0.1, hits / 60 + 0.1, n=60))
        correct += _correct("pretrained", "probe_acc_cls", layer, hits)
        if mean_hits is not None:
            rows.append(_row("pretrained", "probe_acc_mean", layer, mean_hits / 60, n=60))
            correct += _correct("pretrained", "probe_acc_mean", layer, mean_hits)
    correct += _correct("pretrained", "lexical_probe_acc", -1, lexical_hits)
    return _study(rows, correct)


def test_best_pretrained_against_lexical_known_answers():
    higher = pc.best_pretrained_vs_lexical(_probe_study(55, 30))
    assert higher.startswith("The pretrained model's best first-token probe is at layer 2: 0.92, 95% CI 0.82 to 1.02.")
    assert "is higher than the lexical baseline (0.500), paired on the same 60 test sentences" in higher
    lower = pc.best_pretrained_vs_lexical(_probe_study(40, 58))
    assert "is lower than the lexical baseline" in lower
    tied = pc.best_pretrained_vs_lexical(_probe_study(40, 41))
    assert "is tied with the lexical baseline" in tied


def test_pooling_sentence_names_layers_and_words():
    # mean pooling right on 50 of 60 sentences at every layer; first token on 20 (layers 0, 1), 55 (layer 2):
    # the 5 sentences only the first token gets right all move the same way, a paired CI below 0
    text = pc.pooling_sentence(_probe_study(55, 30, mean_hits=50))
    assert text.startswith("Mean-pooled against first-token probes at the same layer, paired")
    assert "\n| state | higher | lower | tied |\n" in text                     # one table row per state
    assert "| pretrained | layers 0, 1; largest at layer 0: +0.50, 95% CI +0.37 to +0.63 | layer 2: -0.08, 95% CI " \
           "-0.15 to -0.02 | - |" in text
    tied = pc.pooling_sentence(_probe_study(55, 30, mean_hits=54))             # one sentence apart: not separated
    assert tied.rstrip().endswith("| - | layer 2 |")


# --- the control task's coverage and MDL below 1 ---------------------------------------------------------------

def test_control_coverage_flag_below_threshold():
    need = pc.min_control_sentences()
    assert need == 97                                                       # (1.96 x 0.5 / 0.10)^2 = 96.04
    thin = pc.control_coverage_sentence(_study([_row("finetuned", "control_coverage", -1, 41 / 180)]))
    assert "covers 41 of the 180 test sentences" in thin and f"fewer than the {need} sentences" in thin
    assert "Every selectivity rests on these sentences." in thin and "thin measurements" in thin
    wide = pc.control_coverage_sentence(_study([_row("finetuned", "control_coverage", -1, 150 / 180)]))
    assert "covers 150 of the 180" in wide and "fewer than" not in wide and f"at least the {need}" in wide


def test_mdl_below_one_names_the_layers():
    rows = [_row("pretrained", "mdl_compression_cls", layer, v, lo, hi, n=144) for layer, v, lo, hi in
            ((0, 0.96, 0.92, 0.98), (1, 0.99, 0.95, 1.01), (2, 1.05, 1.01, 1.09))]
    rows += [_row("finetuned", "mdl_compression_cls", layer, 1.1, 1.05, 1.15, n=144) for layer in (0, 1, 2)]
    text = pc.mdl_below_one_sentence(_study(rows, finetune={"label_names": ["a", "b"]}))
    assert "144 labels at log2 2 = 1.00 bits each" in text and "longer than the uniform one" in text and "(see Methods)" in text
    assert "below 1 on the first-token embeddings at these layers:" in text
    assert "| pretrained | layers 0, 1 | 0.960 at layer 0 | layer 0 |" in text    # interval wholly below 1 at 0
    assert "finetuned" not in text.split("On these sentences")[1]
    above = pc.mdl_below_one_sentence(_study(rows[3:]))
    assert "at least 1 at every layer of every state" in above


def test_probe_comparison_sentences_drop_what_is_missing():
    out = pc.probe_comparison_sentences(_study([_row("finetuned", "control_coverage", -1, 41 / 180)]))
    assert len(out) == 1 and out[0].startswith("The control task")


# --- the audit: no hand-typed claim about the data; the biased CKA's null quoted from the table -------------

def _templates() -> list[Path]:
    src = ROOT / "src" / "layerwise"
    return [*sorted((src / "words").glob("*.py")), *sorted((src / "book").glob("*.py")),
            *sorted((ROOT / "chapters").glob("*.ipynb")), ROOT / "chapters" / "methods.qmd"]


def test_no_template_says_high_even():
    for path in _templates():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"high\s+even", text), path


def _cka_table(null_q95):
    rows = [_row("finetuned", "cka_cls_vs_pretrained", layer, v) for layer, v in ((1, 0.99), (2, 0.6), (3, 0.08))]
    rows += [_row("finetuned", "cka_null_q95_cls_vs_pretrained", layer, q, n=200) for layer, q in zip((1, 2, 3), null_q95)]
    return pd.DataFrame(rows)


def test_biased_cka_sentence_quotes_the_null_from_the_table():
    low = prose_similarity.cka_diagonal_sentence(_cka_table([0.05, 0.07, 0.12]), "cls")
    assert "95th percentile is 0.05–0.12" in low
    assert "above chance at layers 1, 2 and at chance at layer 3" in low        # 0.08 < 0.12
    high = prose_similarity.cka_diagonal_sentence(_cka_table([0.30, 0.65, 0.70]), "cls")         # 0.6 < 0.65
    assert "95th percentile is 0.30–0.70" in high and "at chance at layers 2, 3" in high
    assert "0.05" not in high and "high even" not in low + high


def test_methods_states_the_coverage_rule():
    methods = (ROOT / "chapters" / "methods.qmd").read_text(encoding="utf-8")
    assert f"that is {pc.min_control_sentences()}" in methods
    assert f"\\pm {pc.CONTROL_MAX_HALF_WIDTH:.2f}" in methods


def test_mdl_paragraph_gives_the_outcomes_as_a_table():
    rows = [_row(s, "mdl_compression_cls", layer, v, v - 0.1, v + 0.1, n=144) for s, values in
            (("pretrained", (1.0, 1.2, 1.5)), ("finetuned", (1.0, 1.6, 2.5))) for layer, v in enumerate(values)]
    text = pc.mdl_paragraph(_study(rows))
    assert text.startswith("Fine-tuned against pretrained, the compression by the answer model with "
                           + claims.SEED_VARIATION_NOT_MEASURED + ":\n\n| outcome | layers | largest difference | note |")
    assert "\n| changed | 1, 2 | layer 2: +1.00, 96.7% CI +0.85 to +1.15 | - |\n" in text  # BH: 2 of 3 found
    assert text.endswith("Layer 0 → 2: pretrained 1.00 → 1.50; finetuned 1.00 → 2.50.")
    assert pc.mdl_paragraph(_study(rows[:3])).startswith("Through the layers, the compression")   # no finetuned rows
