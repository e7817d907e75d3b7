"""The original study's published figures beside ours (layerwise.book.original): the data are the published
ones, the comparison computes the right differences, layers a model lacks are left out, the params field
validates and feeds no cache key, and the chapters show the section only when the params name an
original study (a tiny CamemBERT-class model, end to end)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from IPython.display import Markdown

from layerwise.inputs import config
from layerwise.book import original, render
from layerwise.inputs.config import parse_params
from layerwise.core import schema
from layerwise.core.errors import LayerwiseError
from layerwise.core.repro import PROJECT_ROOT
from chart_specs import titles
from report_fakes import fake_study

#: where the seed study's summary lives: beside the repository (CI clones it next to shared/)
SEED_STUDY = [p / "docs" / "seed-study.md" for p in (PROJECT_ROOT.parent / "shared", Path("/work/shared"))]
ROW_NAMES = {"FlauBERT": "flaubert", "CamemBERT": "camembert"}


def _params(name: str = "cam", original_study: str | None = "camembert", **extra):
    spec = {"name": name, "model": {"id": "embedded:minilm", "label": "Cam"},
            "dataset": {"source": "embedded:demo-fr"}, **extra}
    if original_study is not None:
        spec["original_study"] = original_study
    return parse_params(spec)


def _seed_text() -> str:
    found = [p for p in SEED_STUDY if p.is_file()]
    if not found:
        pytest.skip("shared/docs/seed-study.md is not beside the repository (only this check needs it)")
    return found[0].read_text(encoding="utf-8")


def test_published_probe_table_is_the_seed_study_table():
    text = _seed_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = next(ln for ln in lines if "probe test accuracy" in ln)
    layers = tuple(int(v) for v in re.findall(r"layer (\d+)", header))
    parsed = {}
    for ln in lines:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        m = re.match(r"(FlauBERT|CamemBERT) (pre-trained|fine-tuned \(1 epoch\))$", cells[0])
        if m:
            state = "pretrained" if m.group(2) == "pre-trained" else "finetuned"
            parsed[(ROW_NAMES[m.group(1)], state)] = tuple(float(c) for c in cells[1:])
    assert layers == original.PROBE_LAYERS
    assert parsed == original.PROBE_TABLE and len(parsed) == 4


def test_cosines_read_off_plots_are_the_texts_words():
    """Each cosine point carries the seed study's own words, and its value and layers are those words'."""
    text = " ".join(_seed_text().split())
    for (model, state), points in original.COSINE_POINTS.items():
        assert model == "camembert"
        for layers, value, words in points:
            assert words in text, words
            assert float(re.search(r"about ([\d.]+)", words).group(1)) == value
            m = re.search(r"layers? (\d+)(?: to (\d+))?", words)  # no number: "the embedding layer", 0
            first, last = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
            assert list(layers) == list(range(first, last + 1)), words


def test_published_frame_labels_every_value_with_its_source():
    pub = original.published()
    probes, cosines = pub[pub.metric == "probe_acc_cls"], pub[pub.metric == "token_cosine_q50"]
    assert len(probes) == 20 and set(probes.source) == {original.PUBLISHED_TABLE}
    assert set(cosines.source) == {original.READ_OFF_PLOT} and set(cosines.original) == {"camembert"}
    assert sorted(cosines[cosines.state == "finetuned"].layer) == [11, 12]  # only the layers the text states
    assert sorted(cosines[cosines.state == "pretrained"].layer) == [0, 5, 6, 7, 8, 11, 12]
    assert set(original.MODEL_NAMES) == set(config.ORIGINAL_STUDIES) == {m for m, _ in original.PROBE_TABLE}


def _known_study(offset: float = -0.01, n_layers: int = 13):
    """A fake study whose probe and median-cosine rows are the published value + offset x layer."""
    study = fake_study(_params(), n_layers=n_layers)
    pub = original.published("camembert").set_index(["metric", "state", "layer"])["published"]
    tidy = study.tidy.copy()
    for i, row in tidy.iterrows():
        key = (row.metric, row.state, row.layer)
        if key in pub.index:
            v = pub[key] + offset * row.layer
            tidy.loc[i, ["value", "ci_low", "ci_high"]] = [v, v - 0.02, v + 0.02]
    study.tidy = tidy
    return study


def test_comparison_on_known_values_gives_the_differences():
    comp = original.comparison(_known_study())
    assert list(comp.columns) == original.COLUMNS and len(comp) == 10 + 9
    np.testing.assert_allclose(comp["difference"], -0.01 * comp["layer"], atol=1e-12)
    np.testing.assert_allclose(comp["ours"] - comp["published"], comp["difference"])
    assert set(comp.state) == {"pretrained", "finetuned"} and set(comp.model) == {"cam"}
    probes = comp[comp.metric == "probe_acc_cls"]
    assert list(probes.state[:5]) == ["pretrained"] * 5 and list(probes.layer[:5]) == [5, 7, 9, 11, 12]
    table = original.table(comp, "probe_acc_cls")
    row = table[(table.state == "finetuned") & (table.layer == 9)].iloc[0]
    assert row["original study"] == "0.934" and row["difference (this study - original)"] == "-0.090"
    assert row["this study (95% CI)"] == "0.844 (95% CI 0.824 to 0.864)"
    flaubert = _known_study()
    flaubert.params = _params(original_study="flaubert")
    comp = original.comparison(flaubert)
    assert set(comp.metric) == {"probe_acc_cls"} and comp.loc[comp.layer == 12, "published"].tolist() == [0.730, 0.929]


def test_no_original_study_gives_nothing():
    study = fake_study(_params(original_study=None), n_layers=13)
    assert original.comparison(study).empty and list(original.comparison(study).columns) == original.COLUMNS
    assert original.section_outputs(study, "probing") == [] and original.section_outputs(study, "geometry") == []


def test_layers_the_model_lacks_are_left_out():
    """A 2-layer model: no probe layer of the original study exists, only the embedding layer's cosine."""
    study = _known_study(n_layers=3)
    comp = original.comparison(study)
    assert comp[["metric", "state", "layer"]].values.tolist() == [["token_cosine_q50", "pretrained", 0]]
    probing = original.section_outputs(study, "probing")
    assert len(probing) == 1 and probing[0].data.startswith(original.HEADING)
    assert "(5, 7, 9, 11, 12)" in probing[0].data and "layers 0 to 2" in probing[0].data
    geometry = original.section_outputs(study, "geometry")
    assert len(geometry) == 4 and "| pretrained | 0 |" in geometry[2].data
    render.to_svg(geometry[1])  # the chart draws
    seven = original.section_outputs(_known_study(n_layers=7), "probing")  # layers 0 to 6: only layer 5
    assert "layers 7, 9, 11, 12 are not in this model (layers 0 to 6)" in seven[0].data
    assert "| finetuned | 5 |" in seven[2].data and "| finetuned | 7 |" not in seven[2].data
    assert "are not in this model" not in original.section_outputs(_known_study(), "probing")[0].data


def test_chart_table_and_caption():
    study = _known_study()
    comp = original.comparison(study)
    spec = render._spec(original.chart(study, comp, "probe_acc_cls"))
    assert spec["width"] <= 700 and spec["config"]["legend"]["orient"] == "bottom"
    names = {row["series"] for data in spec["datasets"].values() for row in data}
    assert names == {"this study", "original study, published table"}
    outputs = original.section_outputs(study, "geometry")
    cap = outputs[-1].data
    assert "Approximate" in cap and "read off its plots" in cap and "FLUE CLS" in cap
    assert "embedded French demo corpus" in cap and "1 epoch" in cap
    cap = original.section_outputs(study, "probing")[-1].data
    assert "published table" in cap and "read off" not in cap
    text = " ".join(o.data for o in outputs if isinstance(o, Markdown)).lower()
    for word in ("agree", "consistent", "higher", "lower", "matches", "replicat"):  # no verdict
        assert word not in text
    allocine = parse_params({"name": "c", "model": {"id": "camembert-base"},
                             "dataset": {"source": "tblard/allocine"}, "original_study": "camembert"})
    assert "Allociné" in original.data_name(allocine)
    flaubert = fake_study(_params(original_study="flaubert"), n_layers=13)
    [line] = original.section_outputs(flaubert, "geometry")
    assert f"reports nothing for {original.MODEL_NAMES['flaubert']} on this measure: {schema.label('token_cosine_q50')}." \
        in line.data


def test_the_measure_goes_by_its_registry_short_name():
    """Issue 24: the section names each compared measure by its registry short name (the chart's y axis, the
    introduction); its long registry description appears in none of the section's text or tables."""
    study = _known_study()
    for part, metric in original.PART_METRIC.items():
        name = schema.label(metric)
        assert original.STATISTICS[metric] == name
        outputs = original.section_outputs(study, part)
        assert name in outputs[0].data
        spec = render._spec(outputs[1])
        assert name in titles(spec)
        text = " ".join(o.data for o in outputs if isinstance(o, Markdown))
        assert schema.lookup(metric).description not in text


def test_params_field_validates():
    assert _params(original_study=None).original_study is None
    assert _params(original_study="flaubert").original_study == "flaubert"
    with pytest.raises(LayerwiseError, match=r"original_study.*allowed: camembert, flaubert") as err:
        _params(original_study="bert")
    assert "'bert'" in str(err.value)
    with pytest.raises(LayerwiseError, match="original_study"):
        _params(original_study="CamemBERT")
    names = {p: config.load_params(PROJECT_ROOT / "params" / f"{p}.yml").original_study
             for p in ("camembert", "flaubert", "demo")}
    assert names == {"camembert": "camembert", "flaubert": "flaubert", "demo": None}


def test_the_field_feeds_no_cache_key():
    """The fine-tuning key reads ``finetune``, the data selection ``data_payload``, the engine and the
    probes ``AnalysisSpec``'s payloads: the field is in none of them."""
    with_it, without = _params(), _params(original_study=None)
    assert "original_study" not in config.AnalysisSpec.model_fields
    assert with_it.finetune.model_dump() == without.finetune.model_dump()
    assert with_it.data_payload() == without.data_payload()
    assert with_it.analysis.geometry_payload() == without.analysis.geometry_payload()
    assert with_it.analysis.probe_payload() == without.analysis.probe_payload()


# The end-to-end check (a tiny CamemBERT-class model with `original_study: camembert`, the real pipeline and
# the real chapters, beside a tiny FlauBERT study without the field) reuses the studies and the executed
# chapters of tests/test_pipeline.py::test_real_chapters_execute_on_real_studies, which calls this:


def check_executed_chapters(chapter_dir: Path, shown: bool) -> None:
    """The executed geometry and probing chapters of one model: the section "The original study beside
    ours" is there once (``shown``), or its cell has no output at all, no heading and ``echo: false``."""
    for chapter in ("geometry", "probing"):
        nb = nbformat.read(chapter_dir / f"{chapter}.ipynb", as_version=4)
        [cell] = [c for c in nb.cells if "original.section" in c.source]
        md = [o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
              if "text/markdown" in o.get("data", {})]
        headings = [m for m in md if m.startswith(original.HEADING)]
        if not shown:
            assert cell.outputs == [] and "#| echo: false" in cell.source and headings == [], chapter
            assert not any("original study beside" in m.lower() for m in md), chapter
            continue
        assert len(headings) == 1 and cell.outputs, chapter
        text = "\n".join(md)
        if chapter == "geometry":  # a 2-layer model: the embedding layer's cosine only, with its chart
            assert "| pretrained | 0 | 0.00 | read off a plot, approximate |" in text
            assert render.HTML_BRANCH in "".join(o["data"].get("text/markdown", "") for o in cell.outputs)
            assert "Approximate comparison" in text
        else:  # none of the published probe layers (5 to 12) exists
            assert "is in this model (layers 0 to 2)" in text
