"""The report's page-1 figure (``charts_answer``): similarity to pretrained beside probe accuracy, every
fine-tuning seed its own line, the random state, the permutation null, the seed pairs (points below 5 seeds, a band
from 5), the lexical and majority rules; it fits the book's column and survives one seed, missing metrics and no random state."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from layerwise.book import charts_answer, render
from layerwise.book.chart_kit import BOOK_COLUMN, STATE_COLORS, TEXT_WIDTH
from report_fakes import fake_study

SEEDS = (42, 43, 44)
LAYERS = range(4)


def _row(state, layer, metric, value, seed=pd.NA):
    return {"model": "m", "state": state, "layer": layer, "metric": metric, "value": value, "ci_low": np.nan,
            "ci_high": np.nan, "n": 40, "seed": seed}


def synthetic_tidy(seeds=SEEDS, states=("pretrained", "finetuned", "random")) -> pd.DataFrame:
    """Aggregate and per-seed rows of the metrics the figure draws (a 3-layer model)."""
    rows = []
    for layer in LAYERS:
        cka = {s: (np.nan if layer == 0 else 1 - 0.2 * layer - 0.01 * i) for i, s in enumerate(seeds)}
        acc = {s: 0.6 + 0.05 * layer + 0.01 * i for i, s in enumerate(seeds)}
        for s in seeds:
            rows += [_row("finetuned", layer, "cka_debiased_cls_vs_pretrained", cka[s], s),
                     _row("finetuned", layer, "cka_debiased_null_q95_cls_vs_pretrained", 0.02, s),
                     _row("finetuned", layer, "probe_acc_cls", acc[s], s)]
        for a, b in zip(seeds, seeds[1:]):                       # pairs of seeds (the first seed's id)
            rows.append(_row("finetuned", layer, "cka_debiased_cls_between_seeds", 0.9 - 0.1 * layer + 0.001 * b, a))
        rows += [_row("finetuned", layer, "cka_debiased_cls_vs_pretrained", np.nanmean(list(cka.values()))
                      if layer else np.nan),
                 _row("finetuned", layer, "cka_debiased_null_q95_cls_vs_pretrained", 0.02),
                 _row("finetuned", layer, "probe_acc_cls", np.mean(list(acc.values())))]
        if "random" in states:
            rows += [_row("random", layer, "cka_debiased_cls_vs_pretrained", 0.5 if layer else np.nan),
                     _row("random", layer, "cka_debiased_null_q95_cls_vs_pretrained", 0.03),
                     _row("random", layer, "probe_acc_cls", 0.55)]
        rows.append(_row("pretrained", layer, "probe_acc_cls", 0.6 + 0.02 * layer))
    for state in states:
        rows += [_row(state, -1, "lexical_probe_acc", 0.7), _row(state, -1, "probe_majority_baseline", 0.5)]
    return pd.DataFrame(rows).astype({"seed": "Int64"})


def _data(spec: dict) -> pd.DataFrame:
    return pd.concat([pd.DataFrame(rows) for rows in spec["datasets"].values()], ignore_index=True)


def _width(chart) -> float:
    return float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', render.to_svg(chart)).group(1))


def test_the_figure_draws_every_seed_the_random_state_the_null_the_band_and_the_rules():
    chart = charts_answer.summary_figure(synthetic_tidy())
    spec = chart.to_dict()
    data = _data(spec)
    series = set(data["series"].dropna())
    assert {f"seed {s}" for s in SEEDS} | {"random", "pretrained", charts_answer.NULL, charts_answer.BETWEEN} <= series
    assert {charts_answer.LEXICAL, charts_answer.MAJORITY} <= set(data["label"].dropna())   # the rules' text labels
    left, right = spec["hconcat"]
    assert "debiased CKA, first token" in " ".join(left["title"]["text"])
    assert "Probe accuracy (first token)" in " ".join(right["title"]["text"])
    assert left["layer"][0]["mark"]["type"] == "point"            # 3 seeds: each pair of seeds a hollow point
    assert left["layer"][0]["mark"]["filled"] is False
    six = charts_answer.summary_figure(synthetic_tidy(seeds=tuple(range(10, 16)))).to_dict()
    assert six["hconcat"][0]["layer"][0]["mark"]["type"] == "area"   # from MIN_SEEDS_FOR_BAND seeds: the band
    assert '"text"' in json.dumps(right)                          # the rules are named on the chart
    colors = dict(zip(left["layer"][1]["encoding"]["color"]["scale"]["domain"],
                      left["layer"][1]["encoding"]["color"]["scale"]["range"]))
    assert colors["pretrained"] == STATE_COLORS[0] and colors["random"] == STATE_COLORS[2]
    assert len({colors[f"seed {s}"] for s in SEEDS}) == len(SEEDS)          # the seeds told apart


def test_the_frames_hold_one_line_per_seed_and_the_pairs_of_seeds():
    f = charts_answer.summary_frames(synthetic_tidy())
    assert f.seeds == [f"seed {s}" for s in SEEDS]
    sim = f.similarity
    for s in SEEDS:                                   # one line per seed, layer 0 (no value) left out
        assert sorted(sim.loc[sim["series"] == f"seed {s}", "layer"]) == [1, 2, 3]
        assert sorted(f.probe.loc[f.probe["series"] == f"seed {s}", "layer"]) == [0, 1, 2, 3]
    assert "fine-tuned" not in set(sim["series"])     # the mean over seeds is not drawn beside the seeds
    pairs = sim[sim["series"] == charts_answer.BETWEEN]
    assert set(pairs["part"]) == {"points"}                       # fewer than MIN_SEEDS_FOR_BAND seeds
    assert sorted(pairs.loc[pairs["layer"] == 1, "value"]) == pytest.approx([0.8 + 0.043, 0.8 + 0.044])
    assert "hollow points: between seeds" in f.note
    six = charts_answer.summary_frames(synthetic_tidy(seeds=tuple(range(10, 16))))
    band = six.similarity[six.similarity["series"] == charts_answer.BETWEEN].set_index("layer")
    assert set(band["part"]) == {"band"}
    assert band.loc[1, "low"] == pytest.approx(0.8 + 0.011) and band.loc[1, "high"] == pytest.approx(0.8 + 0.015)
    null = sim[sim["series"] == charts_answer.NULL].set_index("layer")["value"]
    assert null.tolist() == pytest.approx([0.03] * 4)             # the highest of the states' nulls
    assert f.rules.set_index("series")["value"].to_dict() == {"lexical baseline": 0.7, "majority class": 0.5}
    assert "3 fine-tuning seeds" in f.note


def test_the_figure_fits_the_book_column():
    for tidy in (synthetic_tidy(), synthetic_tidy(seeds=tuple(range(10, 20)))):
        width = _width(charts_answer.summary_figure(tidy))
        assert width <= TEXT_WIDTH <= BOOK_COLUMN, width


def test_one_seed_has_no_band_and_says_so():
    f = charts_answer.summary_frames(synthetic_tidy(seeds=(7,)))
    assert f.seeds == ["seed 7"] and charts_answer.BETWEEN not in set(f.similarity["series"])
    assert "seed variation not measured" in f.note
    spec = charts_answer.summary_figure(synthetic_tidy(seeds=(7,))).to_dict()
    assert "seed variation not measured" in " ".join(spec["title"]["subtitle"])


def test_missing_metrics_and_states_are_left_out():
    tidy = synthetic_tidy(states=("pretrained", "finetuned"))
    tidy = tidy[~tidy["metric"].isin(["cka_debiased_null_q95_cls_vs_pretrained", "lexical_probe_acc"])]
    tidy = tidy[~((tidy["metric"] == "probe_acc_cls") & (tidy["layer"] == 2))]
    f = charts_answer.summary_frames(tidy)
    assert "random" not in set(f.similarity["series"]) | set(f.probe["series"])
    assert charts_answer.NULL not in set(f.similarity["series"]) and list(f.rules["series"]) == ["majority class"]
    assert 2 not in set(f.probe["layer"])
    assert _width(charts_answer.summary_figure(tidy)) <= BOOK_COLUMN


def test_a_study_without_seed_rows_or_debiased_cka_still_draws():
    """The report's synthetic study: one seed (42), no per-seed rows, no debiased CKA: the probe panel is
    drawn, the fine-tuned line named after the study's seed, the majority class from the table."""
    study = fake_study()
    f = charts_answer.summary_frames(study)
    assert f.similarity.empty and f.seeds == ["seed 42"]
    assert {"pretrained", "seed 42", "random"} <= set(f.probe["series"])
    assert "majority class" in set(f.rules["series"])
    assert _width(charts_answer.summary_figure(study)) <= BOOK_COLUMN
