"""The words and charts of the analyses beyond the end points on a synthetic ``beyond`` table
(``report_fakes.fake_beyond``: the top layer moves early and its swap costs 20 points in every seed, the lower
layers never move and cost exactly nothing; the word probe loses 15 points at the top; two domains)."""

from __future__ import annotations

import pandas as pd
import pytest
from report_fakes import fake_study

from layerwise.book import charts_beyond
from layerwise.book.chart_kit import BOOK_COLUMN
from layerwise.study.study import read_study, write_study
from layerwise.words import beyond, claims

N_LAYERS = 4


@pytest.fixture(scope="module")
def study():
    return fake_study(n_layers=N_LAYERS)


def test_swap_outcomes_per_layer(study):
    v = beyond.swap_verdicts(study)
    for kind in ("single", "cumulative"):
        assert v[kind][N_LAYERS].word == claims.CHANGED and v[kind][N_LAYERS].detail["mean"] < -0.2
        assert all(v[kind][layer].word == claims.NO_CHANGE for layer in range(N_LAYERS))
    table = beyond.swap_table(study)
    assert list(table["layer"]) == [str(layer) for layer in range(N_LAYERS + 1)]
    assert table.iloc[-1]["swap this layer (points)"].startswith("changed (-22.0")
    text = " ".join(beyond.swap_sentences(study))
    assert "layer 4 back to pretrained costs more than δ = 3 points" in text


def test_erased_names_the_lost_property_only(study):
    assert beyond.lost(study) == {"length": [], "word": [N_LAYERS], "bigram_shift": []}
    text = beyond.erased_sentences(study)
    assert text[1].startswith("A word's presence: the largest change is at layer 4, -17.0 points")
    assert text[0] == "Sentence length: no change beyond δ at layers 0–4."


def test_half_way_and_the_late_seed(study):
    hw = beyond.half_way(study).set_index(["seed", "layer"])["fraction"]
    assert hw[(1, N_LAYERS)] == 0.25 and hw[(3, N_LAYERS)] == 0.5
    assert pd.isna(hw[(1, 0)])                          # a layer that never moved has no half-way point


def test_motion_in_two_sentences(study):
    first, second = beyond.motion_sentences(study)
    assert beyond.moving_layers(study) == [N_LAYERS]
    assert first == ("Layer 4 moved in every run (similarity to the start 0.40 to 0.40 at the end); half of that "
                     "change was made at layer 4 by 25% of training (median over seeds).")
    assert second.startswith("Seed 3 moved latest: the first checkpoint past half of the final change comes at 50%")


def test_domains_state_their_n(study):
    table = beyond.domain_table(study)
    assert list(table["domain"]) == ["books", "films"] and list(table["n"]) == [20, 20]
    first, _ = beyond.domain_sentences(study)
    assert first == ("At layer 4, the similarity to the pretrained model is 0.60 on films (n = 20) and 0.90 on books "
                     "(n = 20).")


def test_page_lines_one_per_analysis(study):
    lines = beyond.page_lines(study)
    assert [line.split("**")[1] for line in lines] == ["How the layers moved.", "Which changes the task needs.",
                                                      "What fine-tuning erased.", "Domains."]
    assert "a word's presence at layer 4" in lines[2]


def test_a_study_without_the_analyses_says_so(study):
    empty = fake_study(n_layers=N_LAYERS)
    empty.beyond = empty.beyond.iloc[0:0]
    assert not any(beyond.has(empty, a) for a in ("trajectory", "swap", "auxiliary", "domain"))
    assert beyond.page_lines(empty) == [] and beyond.swap_table(empty).empty
    from layerwise.core.errors import LayerwiseError

    with pytest.raises(LayerwiseError, match="no trajectory rows"):
        charts_beyond.trajectory_chart(empty.beyond)


def test_the_table_round_trips_through_the_study_directory(study, tmp_path):
    back = read_study(write_study(study, tmp_path / "s"))
    pd.testing.assert_frame_equal(back.beyond.reset_index(drop=True), study.beyond.reset_index(drop=True))


@pytest.mark.parametrize("name", ["trajectory", "probe", "swap", "auxiliary", "domain"])
def test_charts_fit_the_book_column(study, name):
    b = study.beyond
    draw = {"trajectory": lambda: charts_beyond.trajectory_chart(b),
            "probe": lambda: charts_beyond.trajectory_chart(b, "probe_acc"),
            "swap": lambda: charts_beyond.swap_chart(b, beyond.ACCURACY_DELTA),
            "auxiliary": lambda: charts_beyond.auxiliary_chart(b), "domain": lambda: charts_beyond.domain_chart(b)}
    chart = draw[name]()
    from layerwise.book.render import to_svg

    svg = to_svg(chart)
    width = float(svg.split('width="', 1)[1].split('"', 1)[0])
    assert width <= BOOK_COLUMN, f"{name}: {width}px"


def test_a_probe_that_reads_nothing_before_fine_tuning_is_named():
    """The pretrained probe against its permuted-label control (claims.null_verdict): at chance at every layer is
    said before the outcomes; above chance says nothing extra."""
    s = fake_study(n_layers=N_LAYERS)
    b = s.beyond.copy()
    ctrl = (b["analysis"] == "auxiliary") & (b["state"] == "pretrained") & (b["metric"] == "control_acc")
    b.loc[ctrl & (b["group"] == "bigram_shift"), ["ci_low", "ci_high"]] = (0.7, 0.85)   # probe 0.8: within
    b.loc[ctrl & (b["group"] == "length"), ["ci_low", "ci_high"]] = (0.4, 0.6)          # probe 0.8: beyond
    s.beyond = b
    assert set(beyond.readable(s, "bigram_shift").values()) == {"at chance"}
    assert set(beyond.readable(s, "length").values()) == {"above chance"}
    text = dict(zip(("length", "word", "bigram_shift"), beyond.erased_sentences(s)))
    assert "at chance at every layer" in text["bigram_shift"] and "chance" not in text["length"]
