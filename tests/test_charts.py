"""Charts: every chart builds from the tidy tables, embeds few rows, and renders offline (HTML + SVG)."""

from __future__ import annotations

import json
import re

import altair as alt
import numpy as np
import pandas as pd
import pytest

from layerwise.book import charts, render
from layerwise.core import schema
from layerwise.core.errors import LayerwiseError
from layerwise.words import claims, prose_outcomes
from report_fakes import fake_study

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|googleapis|<script[^>]+src=|<link[^>]+href=[\"']?https?:", re.I)


@pytest.fixture(scope="module")
def study():
    return fake_study()


def _all_charts(s):
    t = s.tidy
    return {
        "token_cosine_boxes": charts.token_cosine_boxes(t),
        "token_cosine_boxes_content": charts.token_cosine_boxes(t, "_content"),
        "per_sentence_boxes": charts.per_sentence_boxes(s.per_sentence, "cov_trace"),
        "cov_trace_lines": charts.layer_lines(t, {"cov_trace": "raw", "cov_trace_scaled": "scaled"}, title="trace"),
        "norms": charts.layer_lines(t, "norm_mean", title="norms"),
        "erank": charts.layer_lines(t, {"erank": "c", "erank_uncentred": "u"}, title="erank", dash="metric"),
        "isoscore": charts.layer_lines(t, "isoscore", title="iso"),
        "rogue_share": charts.layer_lines(t, "rogue_top3_share", title="rogue"),
        "standardised": charts.layer_lines(t, {"token_cosine_mean": "raw", "token_cosine_mean_std": "std"},
                                           title="std", dash="metric"),
        "anisotropy": charts.layer_lines(t, ["anisotropy_baseline", "token_cosine_adjusted"], title="aniso"),
        "cka": charts.cka_heatmap(s.cka, "cls"),
        "probe": charts.probe_lines(t, "cls", baseline=0.5),
        "grid": charts.original_grid(t, [1, 2, 3]),
        "cones": charts.class_cones(s.cones),
        "centroid_scatter": charts.centroid_scatter(s.cones),
        "rogue_dims": charts.rogue_dims(s.rogue),
        "histograms": charts.cosine_histograms(s.cosine_sample),
        "effects": charts.effect_heatmap(t, "finetuned", marks=prose_outcomes.effect_marks(t, "finetuned")[0], key="k"),
        "finetune": charts.finetune_curves(s.finetune["history"]),
        "comparison": charts.layer_lines(t, "token_cosine_q50", title="cmp", color="model", column="state",
                                         relative_depth=True),
        "comparison_probe": charts.probe_lines(t, color="model", column="state", relative_depth=True),
    }


@pytest.fixture(scope="module")
def bundles(study):
    render.reset_library()
    built = _all_charts(study)
    return built, {k: render.mimebundle(c) for k, c in built.items()}


def test_every_chart_builds_small_and_renders_offline(bundles):
    built, out = bundles
    for name, chart in built.items():
        assert isinstance(chart, alt.TopLevelMixin), name
        assert 0 < render.chart_rows(chart) < 5000, name
        b = out[name]
        assert set(b) >= {"text/html", "image/svg+xml"}, name
        assert b["image/svg+xml"].lstrip().startswith("<svg"), name
        assert "vegaEmbed(el, spec" in b["text/html"], name
        assert not CDN.search(b["text/html"]), f"{name}: CDN reference in the HTML"


def test_libraries_inlined_once_and_ids_unique(bundles):
    _, out = bundles
    htmls = [b["text/html"] for b in out.values()]
    assert sum("data-lw-library" in h for h in htmls) == 1
    assert "data-lw-library" in htmls[0] and "window.vegaEmbed" in htmls[0]
    ids = [re.search(r'id="(lw-chart-[^"]+)"', h).group(1) for h in htmls]
    assert len(set(ids)) == len(ids)
    # the library is wrapped: its top-level names cannot clash with another script on the page
    assert "if (!window.vegaEmbed) { (function () {" in render.javascript_bundle()
    assert "</script" not in render.javascript_bundle()


def test_box_plot_uses_quantiles_not_raw_rows(study):
    chart = charts.token_cosine_boxes(study.tidy)
    spec = chart.to_dict()
    (rows,) = spec["datasets"].values()
    assert len(rows) == 3 * 4  # one row per state and layer
    assert set(schema.QUANTILES) <= set(rows[0])
    marks = [lay["mark"]["type"] if isinstance(lay["mark"], dict) else lay["mark"] for lay in spec["layer"]]
    assert marks == ["rule", "bar", "tick"]


def test_quantiles_and_histogram_known_answers():
    df = pd.DataFrame({"model": "m", "state": "pretrained", "layer": 0, "value": np.arange(101, dtype=float)})
    q = charts.quantiles_from_values(df)
    assert q.loc[0, list(schema.QUANTILES)].tolist() == [5, 25, 50, 75, 95]
    assert q.loc[0, "n"] == 101 and q.loc[0, "mean"] == 50
    h = charts.histogram(df, bins=10, range_=(0, 100))
    assert np.isclose(np.sum(h["density"] * (h["bin_end"] - h["bin_start"])), 1.0)
    assert h["density"].iloc[-1] * 10 == pytest.approx(11 / 101)  # last bin holds 90..100 (11 values)


def test_add_depth_maps_last_layer_to_one():
    df = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 5, "layer": [0, 1, 2, 0, 1, 2, 3, 4]})
    d = charts.add_depth(df)
    assert d["depth"].tolist() == [0, 0.5, 1, 0, 0.25, 0.5, 0.75, 1]


def test_state_order_is_canonical():
    assert schema.state_order(["random", "x", "pretrained", "finetuned"]) == ["pretrained", "finetuned", "random", "x"]
    assert charts.state_order is schema.state_order      # one order for charts, tables and prose


def test_missing_metric_or_column_is_a_layerwise_error(study):
    with pytest.raises(LayerwiseError, match="no rows for metric"):
        charts.layer_lines(study.tidy, "no_such_metric", title="x")
    with pytest.raises(LayerwiseError, match="lacks column"):
        charts.cka_heatmap(study.tidy)
    with pytest.raises(LayerwiseError, match="history is empty"):
        charts.finetune_curves([])


def test_too_many_rows_are_refused():
    spec = {"data": {"values": [{"x": i} for i in range(6000)]}, "mark": "point",
            "encoding": {"x": {"field": "x", "type": "quantitative"}}}
    with pytest.raises(LayerwiseError, match="6000 data rows"):
        render.mimebundle(spec)


def test_renderer_gives_the_bundle(study):
    charts.enable()                                      # what the chapters call (delegates to render.enable)
    try:
        bundle = charts.layer_lines(study.tidy, "isoscore", title="iso")._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert {"text/html", "image/svg+xml"} <= set(data)
    finally:
        alt.renderers.enable("default")


def test_spec_is_deterministic(study):
    """Same tables, same chart spec (data names are content hashes; no random ids in the spec)."""
    a = charts.original_grid(study.tidy, [1, 2, 3]).to_dict()
    b = charts.original_grid(fake_study().tidy, [1, 2, 3]).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)



def test_point_charts_are_bounded_whatever_the_test_size():
    n = 4000
    states, layers = ["pretrained", "finetuned", "random"], [0, 3, 6]
    cones = pd.DataFrame([{"model": "m", "state": st, "layer": ly, "sentence": i, "label": i % 2, "cos_ref": 0.5 + i / 1e4,
                           "cos_own_centroid": 0.8, "cos_other_centroid": 0.2}
                          for st in states for ly in layers for i in range(n)])
    assert charts.bounded(cones)["state"].value_counts().tolist() == [1500] * 3
    for chart in (charts.class_cones(cones), charts.centroid_scatter(cones)):
        assert render.chart_rows(chart) <= render.MAX_ROWS      # 9 panels of 4000 sentences: an equal subset each
        assert render.mimebundle(chart)


# --------------------------------------------------------------------------------------------------
# every chart a reader sees fits the text column, with whole labels
# --------------------------------------------------------------------------------------------------

def _chapter_charts(study):
    """Every chart the chapter notebooks draw (each ``#| label: fig-...`` cell), built on ``study``."""
    import ast
    from pathlib import Path

    import nbformat

    from layerwise.book import charts_beyond
    from layerwise.words import beyond, findings, prose_outcomes
    from layerwise.study.study import combine, grid_pooling, original_layers_of, shared_pooling

    out = {}
    for name in ("geometry", "probing", "beyond", "comparison"):
        nb = nbformat.read(Path(__file__).parents[1] / "chapters" / f"{name}.ipynb", 4)
        env = {"charts": charts, "claims": claims, "findings": findings, "prose_outcomes": prose_outcomes, "schema": schema,
               "study": study,
               "studies": [study],
               "tidy": combine([study]) if name == "comparison" else study.tidy, "original_layers_of": original_layers_of,
               "P": study.poolings, "pool": shared_pooling([study]), "grid_pooling": grid_pooling,
               "charts_beyond": charts_beyond, "beyond": beyond, "B": study.beyond}
        for cell in nb.cells:
            if cell.cell_type == "code" and "#| label: fig-" in cell.source:
                *pre, last = ast.parse(cell.source).body
                exec(compile(ast.Module(pre, []), name, "exec"), env)
                out[re.search(r"label: (fig-\S+)", cell.source).group(1)] = (
                    eval(compile(ast.Expression(last.value), name, "eval"), env), cell.source)
    return out


def _svg_width(svg: str) -> float:
    return float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg).group(1))


def test_every_chapter_chart_fits_the_text_column_with_whole_labels():
    """Drawn the way ``render`` draws them for the PDF (SVG): at most ``TEXT_WIDTH`` px wide and no label
    cut short (vega ends a truncated label with an ellipsis); also on a deeper model (more panels' ticks)."""
    for study in (fake_study(), fake_study(n_layers=12)):
        built = _chapter_charts(study)
        assert len(built) >= 30
        for label, (chart, _) in built.items():
            svg = render.to_svg(chart)
            assert _svg_width(svg) <= charts.TEXT_WIDTH, (label, _svg_width(svg))
            assert "\u2026" not in svg, (label, re.findall(r">([^<]*\u2026)<", svg))


def test_panel_width_rule():
    for columns in (1, 2, 3, 4, 6):
        for own_y in (False, True):
            w = charts.panel_width(columns, axis_each=own_y)
            used = charts.PAD_PX + charts.AXIS_PX + columns * w + (columns - 1) * (charts.GAP_PX + own_y * charts.AXIS_PX)
            assert charts.TEXT_WIDTH - columns <= used <= charts.TEXT_WIDTH
    # four panels of different metrics with their own y axes: the layer_lines rule, measured
    t = fake_study().tidy
    ch = charts.layer_lines(t, ["norm_mean", "erank", "isoscore", "cov_trace"], title="four")
    assert _svg_width(render.to_svg(ch)) <= charts.TEXT_WIDTH


def test_effect_heatmap_rows_are_readable_names(study):
    rows = set(charts.effect_heatmap(study.tidy, "finetuned", marks=prose_outcomes.effect_marks(study.tidy, "finetuned")[0], key="k").data["label"])
    assert rows and not any("_" in r for r in rows)                           # no raw metric ids
    assert schema.label("cov_trace_scaled_content") in rows or schema.label("cov_trace_scaled") in rows
    assert schema.label("token_cosine_var_content") == "variance of token cosines (content tokens)"
    assert all(m.label and len(m.label) <= 40 for m in schema.REGISTRY)      # every metric has a short name


def test_cka_heatmap_leaves_out_undefined_layers_and_keeps_the_state_order():
    rows = [{"model": "m", "pooling": "cls", "state_a": a, "state_b": b, "layer_a": i, "layer_b": j,
             "value": np.nan if 0 in (i, j) else 1 / (1 + abs(i - j))}
            for a, b in (("finetuned", "random"), ("pretrained", "random"), ("pretrained", "finetuned"))
            for i in range(4) for j in range(4)]
    spec = charts.cka_heatmap(pd.DataFrame(rows)).to_dict()
    assert spec["facet"]["column"]["sort"] == ["pretrained vs finetuned", "pretrained vs random", "finetuned vs random"]
    data = pd.DataFrame(spec["datasets"][next(iter(spec["datasets"]))])
    assert data["value"].notna().all() and 0 not in set(data["layer_a"]) | set(data["layer_b"])
    enc = spec["spec"]["layer"][0]["encoding"]
    assert enc["x"]["scale"]["domain"] == [1, 2, 3] and enc["y"]["scale"]["domain"] == [3, 2, 1]   # same axes everywhere
    assert "layer 0 left out" in spec["title"]["subtitle"]


def test_cones_are_drawn_at_the_first_middle_and_last_layers(study):
    assert sorted(study.cones["layer"].unique()) == [1, 2, 3]          # L = 3: first, middle, last transformer layers
    for chart in (charts.class_cones(study.cones), charts.centroid_scatter(study.cones)):
        spec = chart.to_dict()
        assert spec["facet"]["column"]["field"] == "layer" and spec["facet"]["row"]["field"] == "state"
        assert "layers 1–3" in spec["title"]["text"]
    assert "layer 3" in charts.class_cones(study.cones, 3).to_dict()["title"]["text"]
    with pytest.raises(LayerwiseError, match="layer"):
        charts.class_cones(study.cones, [0])


def test_captions_agree_with_the_charts():
    """Each figure caption names what its chart draws: the probe chart's rules and lines, the cones' layers."""
    built = _chapter_charts(fake_study())
    cap = {k: re.search(r'fig-cap: "(.*)"', src).group(1) for k, (_, src) in built.items()}
    probe = json.dumps(built["fig-probe-primary"][0].to_dict())
    for words in ("linear probe", "control task", "chance (permuted labels)", "MLP probe", "majority class",
                  "lexical baseline"):
        assert words in cap["fig-probe-primary"] and words in probe, words
    assert "dashed" in cap["fig-probe-primary"] and "[6, 3]" in probe.replace("[6,3]", "[6, 3]")     # the majority rule
    assert "dotted" in cap["fig-probe-primary"] and "[2, 2]" in probe.replace("[2,2]", "[2, 2]")     # chance: a rule
    for fig in ("fig-cones", "fig-class-geometry"):                  # flat layers left out, and the subtitle says so
        assert "flat" in cap[fig] and "subtitle" in cap[fig]
    for fig in ("fig-memorisation", "fig-memorisation-probe"):      # dashed/solid said in the caption: one panel each
        spec = built[fig][0].to_dict()
        assert "facet" not in spec or "dashed" not in cap[fig], fig


# --------------------------------------------------------------------------------------------------
# every fine-tuning seed in view
# --------------------------------------------------------------------------------------------------

def _seeded_tidy(seeds=(42, 43, 44)):
    """Aggregate and per-seed rows of a probe accuracy and a similarity floor (4 layers)."""
    rows = []
    for layer in range(4):
        for i, s in enumerate(seeds):
            rows += [{"state": "finetuned", "layer": layer, "metric": "probe_acc_cls", "value": 0.6 + 0.01 * i, "seed": s},
                     {"state": "finetuned", "layer": layer, "metric": "cka_cls_vs_pretrained", "value": 0.9 - 0.01 * i,
                      "seed": s}]
        for a, b in zip(seeds, seeds[1:]):
            rows.append({"state": "finetuned", "layer": layer, "metric": "cka_cls_between_seeds", "value": 0.8 + 0.001 * b,
                         "seed": a})
        rows += [{"state": st, "layer": layer, "metric": m, "value": 0.5, "seed": pd.NA}
                 for st in ("pretrained", "finetuned") for m in ("probe_acc_cls",)]
        rows += [{"state": "finetuned", "layer": layer, "metric": m, "value": 0.1, "seed": pd.NA}
                 for m in ("cka_cls_vs_pretrained", "cka_null_mean_cls_vs_pretrained", "cka_null_q95_cls_vs_pretrained")]
    df = pd.DataFrame(rows).assign(model="m", ci_low=np.nan, ci_high=np.nan, n=20)
    return df.astype({"seed": "Int64"})


def _marks(spec) -> list[str]:
    layers = spec["spec"]["layer"] if "spec" in spec else spec["layer"]
    return [lay["mark"]["type"] if isinstance(lay["mark"], dict) else lay["mark"] for lay in layers]


def test_with_few_seeds_each_seed_is_a_point_not_a_band():
    assert charts.MIN_SEEDS_FOR_BAND == 5
    few, many = _seeded_tidy(), _seeded_tidy(tuple(range(10, 16)))
    spec = charts.seed_band(few, "probe_acc_cls").to_dict()
    assert _marks(spec) == ["line", "point"] and "each seed a point" in spec["title"]
    points = [d for d in spec["datasets"].values() if "seed" in d[0]]
    assert sorted({r["seed"] for r in points[0]}) == ["42", "43", "44"] and len(points[0]) == 3 * 4
    assert _marks(charts.seed_band(many, "probe_acc_cls").to_dict()) == ["area", "line"]    # five or more: the band
    floors = charts.similarity_floors(few, measures=("cka",)).to_dict()
    assert _marks(floors) == ["area", "point", "line"]                   # null band, each pair of seeds, line
    assert "pair" in json.dumps(floors["spec"]["layer"][1])
    assert _marks(charts.similarity_floors(many, measures=("cka",)).to_dict()) == ["area", "area", "line"]


def test_training_curves_draw_every_seed():
    hist = [{"step": 10, "loss": 0.7}, {"step": 20, "loss": 0.5, "eval_loss": 0.6, "eval_accuracy": 0.7}]
    finetune = {"history": hist, "cache_key": "a",
                "seeds": {s: {"cache_key": k, "history": hist} for s, k in (("42", "a"), ("43", "b"), ("44", "c"))}}
    assert list(charts.seed_histories(finetune)) == ["seed 42", "seed 43", "seed 44"]
    spec = charts.seed_curves(finetune).to_dict()
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert sorted(data["seed"].unique()) == ["seed 42", "seed 43", "seed 44"]
    enc = spec["spec"]["layer"][0]["encoding"]
    assert enc["color"]["field"] == "seed" and len(set(enc["color"]["scale"]["range"])) == 3
    assert "subtitle" not in spec["title"] and _svg_width(render.to_svg(charts.seed_curves(finetune))) <= charts.TEXT_WIDTH
    # a study written before the seeds kept their history: the first seed's, and the subtitle says so
    old = {**finetune, "seeds": {s: {k: v for k, v in m.items() if k != "history"} for s, m in finetune["seeds"].items()}}
    assert list(charts.seed_histories(old)) == ["seed 42"]
    assert "seed 42 only, the first of 3" in charts.seed_curves(old).to_dict()["title"]["subtitle"]


def test_first_seed_charts_say_which_seed(study):
    for chart in (charts.cosine_histograms(study.cosine_sample, seeds=[44, 42, 43]),
                  charts.rogue_dims(study.rogue, seeds=[44, 42, 43])):
        sub = chart.to_dict()["title"]["subtitle"]
        assert "seed 42 only, the first of 3" in sub[0], sub
        assert _svg_width(render.to_svg(chart)) <= charts.TEXT_WIDTH
    assert "subtitle" not in charts.rogue_dims(study.rogue, seeds=[42]).to_dict()["title"]
