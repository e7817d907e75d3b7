"""Sentences and tables that state results (layerwise.words.prose): known answers on small tables and on the
synthetic study."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layerwise.words import prose, prose_format, prose_geometry, prose_probes, prose_training
from layerwise.core import schema
from layerwise.inputs.config import AnalysisSpec
from report_fakes import fake_study



def _tidy(rows):
    return pd.DataFrame([dict(model="m", state=s, layer=l, metric=m, value=v, ci_low=np.nan, ci_high=np.nan, n=10)
                         for s, l, m, v in rows])


def test_formatting_and_original_layers():
    assert prose_format.fmt(0.12345) == "0.12" and prose_format.fmt(float("nan")) == "n/a" and prose_format.fmt(12345.6) == "12,346"
    assert prose_format.fmt(-0.0004) == "0.00" and prose_format.fmt(-0.0004, 4) == "-0.0004"
    assert prose_format.fmt_ci(0.5, 0.4, 0.6) == "0.50 (95% CI 0.40 to 0.60)"
    assert prose_format.fmt_p(0.0001) == "p < 0.001" and prose_format.fmt_p(0.0312) == "p = 0.031"
    # the grid layers the chapters pass to grid_table (prose.seed_layers is gone: schema computes them)
    assert not hasattr(prose, "seed_layers")
    assert schema.grid_layers(schema.ORIGINAL_LAYERS, 13) == [5, 7, 9, 11, 12]
    assert schema.grid_layers(schema.ORIGINAL_LAYERS, 7) == [2, 4, 5, 6]
    assert schema.grid_layers(AnalysisSpec(seed_layers=[1, 2]).original_layers, 4) == [1, 2, 3]


def test_prose_on_the_synthetic_study():
    s = fake_study()
    assert "reaches a test accuracy of 0.850 (95% CI 0.710 to 0.930)" in prose_training.finetune_sentence(s.finetune)
    assert "significantly above the majority-class baseline of 0.500" in prose_training.finetune_sentence(s.finetune)
    assert "finetuned: highest at layer 3 with 0.900" in prose_probes.probe_sentence(s.tidy)     # no paired test: no "best"
    text = prose_probes.probe_sentence(s.tidy, correct=s.probe_correct)     # 12 test sentences: layers not separated
    assert "finetuned: best layers" in text and "chance baseline (permuted labels) 0.500" in text
    assert "on the 12 covered test sentences" in text
    assert "scores 0.800 (95% CI 0.700 to 0.880)" in prose_probes.lexical_sentence(s.tidy, correct=s.probe_correct)
    assert "on fine-tuning sentences" in prose_probes.memorisation_sentence(s.tidy)
    table = prose_training.split_table(s)
    assert table["sentences"].tolist() == [60, 48, 40]
    assert "12 covered" in table.loc["test", "used for"]
    grid = prose_probes.grid_table(s.tidy, [1, 2, 3])
    assert list(grid.index) == list(schema.STATES) and grid.loc["finetuned", "layer 3"] == 0.9
    assert "rho = 0.80" in prose_geometry.convergence_paragraph(s.tidy)


def test_prose_takes_the_state_order_from_the_schema_not_the_charts():
    import ast
    import inspect

    imported = {(n.module or "").rpartition(".")[2] for n in ast.walk(ast.parse(inspect.getsource(prose_format)))
                if isinstance(n, ast.ImportFrom)}
    assert "charts" not in imported and "schema" in imported


def test_finetune_table_mean_row_is_the_mean_of_the_seeds():
    """Known answer (the reviewer's build): seeds trained in 393, 423 and 254 s; the "mean over seeds"
    row shows their mean, 357 s, not their sum (1,070 s); a seed that recorded no time is left out."""
    def run(acc, seconds):
        return {"accuracy": acc, "accuracy_ci": [acc - 0.05, acc + 0.05], "macro_f1": acc,
                "macro_f1_ci": [acc - 0.05, acc + 0.05], "majority_baseline": 0.5, "binomial_p": 1e-4,
                "n_test": 180, "train_seconds": seconds}
    seeds = {"42": run(0.80, 393.0), "43": run(0.82, 423.0), "44": run(0.78, 254.0)}
    table = prose_training.finetune_table({"seeds": seeds, **seeds["42"]})
    assert table.loc["mean over seeds", "training time (s)"] == "357"
    assert table.loc["seed 43", "training time (s)"] == "423"
    seeds["44"]["train_seconds"] = None
    table = prose_training.finetune_table({"seeds": seeds, **seeds["42"]})
    assert table.loc["mean over seeds", "training time (s)"] == "408"
