"""The report: the study directories a run writes, papermill execution of the chapters (reading only
those directories), skipping, failures, Quarto configuration."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from layerwise.book import notebooks, report
from layerwise.core.errors import LayerwiseError
from layerwise.core.repro import PROJECT_ROOT, code_hash
from layerwise.study.study import read_study
from report_fakes import load_broken_study, load_fake_study, write_fake_study, write_params

TESTS = Path(__file__).resolve().parent
CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|<script[^>]+src=[\"']?https?:", re.I)


class _InDir:
    """chdir for a module-scoped fixture. The kernels need no test code on their path: a chapter reads
    only the study directory the run wrote."""

    def __init__(self, path: Path):
        self.path, self.old_cwd = path, None

    def __enter__(self):
        self.old_cwd = os.getcwd()
        os.chdir(self.path)
        return self

    def __exit__(self, *exc):
        os.chdir(self.old_cwd)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One executed run on the synthetic study: model 'alpha' (geometry, probing); with one model the
    comparison chapter is left out of the run and the book."""
    root = tmp_path_factory.mktemp("project")
    params = write_params(root / "params", "alpha", "Alpha model")
    with _InDir(root):
        summary = report.run([params], out_dir=Path("report"), load_study=load_fake_study, preview=False,
                             progress=False)
        yield root, params, summary


def _notebooks(root: Path) -> list[Path]:
    return [root / "report/alpha/geometry.ipynb", root / "report/alpha/probing.ipynb", root / "report/alpha/beyond.ipynb"]


def test_run_executes_every_chapter(project):
    root, _, summary = project
    assert sorted(summary.executed) == sorted(_notebooks(root)) and summary.skipped == []
    for nb_path in _notebooks(root):
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        assert notebooks.error_outputs(nb) == [], nb_path
        assert nb.metadata["layerwise"]["input_hash"]
        stderr = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
        assert stderr == [], f"{nb_path}: stderr output {stderr[:1]}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        expected = "report/_layerwise/studies/alpha"
        assert len(injected) == 1 and expected in injected[0].source and "loader" not in injected[0].source
    assert not list((root / "report").rglob(".lw-run-*")), "temporary files left behind"


def test_chapters_say_no_change_only_for_the_equivalence_outcome(project):
    from book_layout import no_change_problems

    root, _, _ = project
    assert [p for nb_path in _notebooks(root) for p in no_change_problems(nb_path)] == []
    found = [o["data"]["text/markdown"] for nb_path in _notebooks(root)
             for c in nbformat.read(nb_path, as_version=4).cells for o in c.get("outputs", [])
             if "text/markdown" in o.get("data", {})]
    assert any("## " not in m and "outcome by layer" in m for m in found)      # each chapter's Findings table


def test_chapter_prose_reads_short(project):
    """Issue 24: the executed tiny-model chapters, counted by the repository's script
    (:mod:`layerwise.book.prose_stats`): no sentence over 35 words, no parenthesis inside a parenthesis, at
    most 2,000 words of prose per chapter, and each chapter's Findings open with its conclusion."""
    from layerwise.book import prose_stats

    root, _, _ = project
    for nb_path in _notebooks(root):
        stats = prose_stats.notebook_stats(nb_path)
        notebook = json.loads(nb_path.read_text(encoding="utf-8"))
        assert stats.sentences > 10, stats
        assert stats.long_sentences == 0, (nb_path.name, prose_stats.long_sentences(notebook))
        assert stats.nested_parentheses == 0, stats
        assert stats.words <= 2000, stats
        findings = [o["data"]["text/markdown"] for c in notebook["cells"]
                    if "found.view" in "".join(c["source"]) or "beyond.findings_view" in "".join(c["source"])
                    for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
        assert findings and "".join(findings[0]).startswith(("Fine-tuning changed", "By paired comparison",
                                                             "- **How the layers moved.**")), nb_path.name


def test_page_one_answers_layer_by_layer(project):
    """Page 1 (issue 23): the answer's table has one row per layer of the study, the figure is written beside
    the page and linked from the project, and no executed chapter or page carries the false "high even"
    sentence about biased CKA."""
    from layerwise.study.study import read_study

    root, _, _ = project
    page = (root / "report/_layerwise/summary.md").read_text(encoding="utf-8")
    assert page.startswith("## What fine-tuning changed, layer by layer")
    study = read_study(root / "report/_layerwise/studies/alpha")
    layers = sorted(int(x) for x in study.tidy.loc[study.tidy["layer"] >= 0, "layer"].unique())
    header = "| layer | similar to pretrained | tokens converge | classes apart | label readable |"
    table = page.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert [row.split("|")[1].strip() for row in table] == [str(x) for x in layers]
    figure = root / "report/_layerwise/figures/alpha-answer.svg"
    assert figure.read_text(encoding="utf-8").lstrip().startswith("<svg")
    assert "](report/_layerwise/figures/alpha-answer.svg)" in page
    texts = [page] + [json.dumps(nbformat.read(nb, as_version=4).cells) for nb in _notebooks(root)]
    assert not [t for t in texts if "high even" in t]


def test_run_records_each_phase_with_its_share(project):
    """The run's phases (issue #13): each chapter executed and the study files, with ``other`` for the
    rest; non-negative seconds, shares summing to 1, written to _layerwise/phases.json."""
    root, _, summary = project
    names = [r["phase"] for r in summary.phases]
    assert {"chapter alpha/geometry", "chapter alpha/probing", "study files", "other"} <= set(names), names
    assert all(r["seconds"] >= 0 and 0 <= r["share"] <= 1 for r in summary.phases)
    assert abs(sum(r["share"] for r in summary.phases) - 1) < 1e-3
    recorded = sum(r["seconds"] for r in summary.phases)
    assert recorded == pytest.approx(summary.seconds, rel=0.01, abs=0.01)
    saved = json.loads((root / "report/_layerwise/phases.json").read_text(encoding="utf-8"))
    assert saved["phases"] == summary.phases


def test_phase_table_sums_repeats_and_never_goes_negative():
    from layerwise.core import phases

    rows = phases.table([("a", 1.0), ("b", 2.0), ("a", 1.0)], total=5.0)
    assert [(r["phase"], r["seconds"]) for r in rows] == [("a", 2.0), ("b", 2.0), ("other", 1.0)]
    assert [r["share"] for r in rows] == [0.4, 0.4, 0.2]
    parallel = phases.table([("a", 3.0), ("b", 3.0)], total=4.0)  # workers overlap: other is 0
    assert parallel[-1] == {"phase": "other", "seconds": 0.0, "share": 0.0}
    assert sum(r["share"] for r in parallel) == pytest.approx(1.0)
    assert "a 3.0 s (50 %)" in phases.line(parallel)


def test_run_writes_the_study_directory_the_chapters_read(project):
    root, params, _ = project
    written = read_study(root / "report/_layerwise/studies/alpha")
    expected = load_fake_study(params)
    for table in ("tidy", "per_sentence", "cosine_sample", "rogue", "cka", "cones"):
        pd.testing.assert_frame_equal(getattr(written, table), getattr(expected, table), check_dtype=False)
    assert written.params == expected.params and written.finetune["accuracy"] == expected.finetune["accuracy"]
    assert written.manifest["study_key"] == expected.key
    assert not [p for p in (root / "report").rglob("*") if p.suffix in (".pickle", ".pkl")]


def test_chart_outputs_have_html_and_svg_and_one_library(project):
    """Every chart is one text/markdown output with an HTML branch (raw HTML: the chart; the Vega
    bundle's <script src> on the first chart only) and a non-HTML branch (an SVG next to the notebook)."""
    from layerwise.book import render

    root, _, _ = project
    library = root / "report/_layerwise/vega" / render.LIBRARY_FILE
    assert library.is_file() and "window.vegaEmbed" in library.read_text()
    for nb_path in _notebooks(root):
        nb = nbformat.read(nb_path, as_version=4)
        charts_out = [o for c in nb.cells for o in c.get("outputs", [])
                      if render.HTML_BRANCH in o.get("data", {}).get("text/markdown", "")]
        assert len(charts_out) >= 5, nb_path
        for o in charts_out:
            md = o["data"]["text/markdown"]
            raw = render.html_branch(md)
            assert raw and "lw-chart" in raw and render.OTHER_BRANCH in md
            assert not CDN.search(md)
            svg = re.search(r"!\[\]\(([^)]+\.svg)\)", md).group(1)
            assert (nb_path.parent / svg).read_text().lstrip().startswith("<svg"), svg
        tags = [re.search(r'<script[^>]*data-lw-library[^>]*>', o["data"]["text/markdown"]) for o in charts_out]
        tags = [t.group(0) for t in tags if t]
        assert len(tags) == 1 and "src=" in tags[0], nb_path
        src = re.search(r'src="([^"]+)"', tags[0]).group(1)
        assert (nb_path.parent / src).resolve() == library.resolve()


def test_mime_rule_no_html_or_javascript_outputs(project):
    """Quarto loads require.js and jQuery from a CDN for a notebook with any text/html or
    application/javascript output: no executed chapter has one, and every cell without visible output
    carries `#| echo: false` (no empty "Code" folds)."""
    root, _, _ = project
    for nb_path in _notebooks(root):
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            for o in cell.get("outputs", []):
                bad = {"text/html", "application/javascript"} & set(o.get("data", {}))
                assert not bad, f"{nb_path} cell {i}: output of type {bad}"
            visible = [o for o in cell.get("outputs", []) if o.get("output_type") != "stream"]
            if not visible:
                assert "#| echo: false" in cell.source, f"{nb_path} cell {i} has no output and no echo: false"


def test_front_matter_labels_and_prose(project):
    root, _, _ = project
    nb = nbformat.read(root / "report/alpha/geometry.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "raw"
    assert yaml.safe_load(nb.cells[0].source.strip("-\n"))["title"] == "Geometry: Alpha model"
    assert "#| label: fig-alpha-token-cosine\n" in "".join(c.source + "\n" for c in nb.cells)
    md = [o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
          if "text/markdown" in o.get("data", {}) and "content-visible" not in o["data"]["text/markdown"]]
    assert any("the median token cosine rises" in m for m in md)
    assert all("n/a" not in m and "nan" not in m for m in md), md


def test_quarto_files_written(project):
    root, _, summary = project
    book = yaml.safe_load(summary.chapters_yml.read_text())["book"]["chapters"]
    assert book == [{"part": "Alpha model", "chapters": ["report/alpha/geometry.ipynb", "report/alpha/probing.ipynb",
                                                         "report/alpha/beyond.ipynb"]}]
    assert not (root / "report/comparison.ipynb").exists()  # one model: no comparison chapter
    summary_md = (root / "report/_layerwise/summary.md").read_text()
    assert "| model |" in summary_md and "Alpha model" in summary_md and "## Limitations" in summary_md
    # the analyses beyond the end points: a lead line, then one line each (a list of their own)
    lead = summary_md.index("Beyond the two end points")
    assert "\n\n- **How the layers moved.**" in summary_md[lead:] and "- **Domains.**" in summary_md[lead:]
    assert "params/alpha.yml" in summary.reproduce_md.read_text()
    manifest = json.loads(summary.manifest.read_text())
    assert [c["path"] for c in manifest["models"][0]["chapters"]] == ["alpha/geometry.ipynb", "alpha/probing.ipynb",
                                                                      "alpha/beyond.ipynb"]


def test_unchanged_inputs_are_skipped_and_a_missing_notebook_is_rebuilt(project):
    root, params, _ = project
    probing = root / "report/alpha/probing.ipynb"
    probing.unlink()
    with _InDir(root):
        summary = report.run([params], out_dir=Path("report"), load_study=load_fake_study, preview=False,
                             progress=False)
    assert summary.executed == [probing]
    assert len(summary.skipped) == 2      # geometry and beyond


def test_input_hash_follows_template_params_and_results(project, tmp_path):
    root, params, _ = project
    p = __import__("layerwise.inputs.config", fromlist=["load_params"]).load_params(params)
    base = dict(chapters=("geometry",), comparison=False, chapters_dir=report.CHAPTERS_DIR, cwd=root)
    h0 = report.chapter_jobs([p], {"alpha": "k1"}, root / "report", **base)[0].input_hash
    assert report.chapter_jobs([p], {"alpha": "k1"}, root / "report", **base)[0].input_hash == h0
    assert report.chapter_jobs([p], {"alpha": "k2"}, root / "report", **base)[0].input_hash != h0  # results changed
    copy = tmp_path / "chapters"
    shutil.copytree(report.CHAPTERS_DIR, copy)
    (copy / "geometry.ipynb").write_text((copy / "geometry.ipynb").read_text().replace("Token cosines", "Cosines"))
    assert report.chapter_jobs([p], {"alpha": "k1"}, root / "report", **{**base, "chapters_dir": copy})[0].input_hash != h0
    edited = tmp_path / "alpha.yml"
    edited.write_text(Path(params).read_text() + "# a comment\n")
    p2 = __import__("layerwise.inputs.config", fromlist=["load_params"]).load_params(edited)
    assert report.chapter_jobs([p2], {"alpha": "k1"}, root / "report", **base)[0].input_hash != h0


def test_failing_cell_names_model_chapter_and_cell(tmp_path):
    params = write_params(tmp_path / "params", "beta")
    with _InDir(tmp_path):
        with pytest.raises(LayerwiseError) as err:
            report.run([params], out_dir=Path("report"), load_study=load_broken_study,
                       chapters=("geometry",), comparison=False, preview=False, progress=False)
    msg = str(err.value)
    assert "model beta" in msg and "chapter geometry" in msg
    assert re.search(r"cell \d+ \(execution count \d+\) `charts\.token_cosine_boxes\(tidy\)`", msg), msg
    assert "token_cosine_q05" in msg
    assert not (tmp_path / "report/beta/geometry.ipynb").exists()  # nothing half-failed where Quarto reads
    failed = tmp_path / "report/_layerwise/failed/beta-geometry.ipynb"
    assert failed.exists() and notebooks.error_outputs(nbformat.read(failed, as_version=4))
    assert not (tmp_path / "report/_layerwise/chapters.yml").exists()


def test_prepare_template_relabels_and_titles(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_raw_cell("---\ntitle: x\ntoc: true\n---"),
                nbformat.v4.new_markdown_cell("See @fig-a and email@fig-b."),
                nbformat.v4.new_code_cell("#| label: fig-a\n#| fig-cap: A\nx = 1")]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    out = notebooks.prepare_template(path, title="New: title", label_prefix="m1")
    assert yaml.safe_load(out.cells[0].source.strip("-\n")) == {"title": "New: title", "toc": True}
    assert out.cells[1].source == "See @fig-m1-a and email@fig-b."
    assert out.cells[2].source.startswith("#| label: fig-m1-a\n")


def test_chapter_code_hash_is_derived_from_the_chapter_imports(tmp_path):
    mods = {n: notebooks.chapter_modules(report.CHAPTERS_DIR / f"{n}.ipynb")
            for n in (*report.MODEL_CHAPTERS, report.COMPARISON)}
    assert all({"book.charts", "words.prose", "study.study"} <= set(ms) for ms in mods.values())
    assert "book.report" not in {m for ms in mods.values() for m in ms}  # chapters never ask the orchestrator
    template = report.CHAPTERS_DIR / "geometry.ipynb"
    assert notebooks.chapter_code_hash(template) == code_hash(
        "book.charts", "words.findings", "book.original", "words.caveats", "words.prose", "words.prose_geometry",
        "words.prose_layers", "words.prose_outcomes", "words.prose_similarity", "study.study", "book.notebooks")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nimport layerwise.measure.stats\nfrom layerwise.measure.metrics import x"),
                nbformat.v4.new_code_cell("from layerwise.book import charts as c, not_a_module\nimport os"),
                nbformat.v4.new_markdown_cell("from layerwise.words import prose")]
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert notebooks.chapter_modules(tmp_path / "t.ipynb") == ["book.charts", "measure.metrics", "measure.stats"]


def test_a_chapter_needs_only_its_study_directory(tmp_path):
    """notebooks.execute on a study directory written beside it: the kernel reads it with one call."""
    study = write_fake_study(tmp_path / "studies" / "tiny")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_raw_cell("---\ntitle: t\n---"),
                nbformat.v4.new_code_cell('study_dir = ""', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from layerwise.study.study import read_study\n"
                                          "study = read_study(study_dir)\nprint(study.name, len(study.tidy))")]
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    nbformat.write(nb, tmp_path / "t.ipynb")
    job = notebooks.Job("t", "tiny", tmp_path / "t.ipynb", tmp_path / "out" / "t.ipynb",
                        {"study_dir": "studies/tiny"}, "T", {"x": 1})
    out = notebooks.execute(job, kernel=notebooks.kernel_name(), cwd=tmp_path, failed_dir=tmp_path / "failed")
    assert job.is_current() and not list(job.output.parent.glob(".lw-run-*"))
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert text.startswith("tiny ") and int(text.split()[1]) == len(read_study(study).tidy)


def test_reading_a_damaged_study_moves_nothing(tmp_path):
    """read_study is a reader: a damaged study is an error naming the damage, and the directory stays
    where it is (only the writer, ``layerwise run``, replaces it)."""
    study = write_fake_study(tmp_path / "studies" / "tiny")
    (study / "tidy.parquet").write_bytes(b"truncated")
    before = sorted(p.name for p in (tmp_path / "studies").iterdir())
    with pytest.raises(LayerwiseError, match="damaged"):
        read_study(study)
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == before
    assert (study / "tidy.parquet").read_bytes() == b"truncated"


def test_templates_are_thin_and_clean():
    for name in (*report.MODEL_CHAPTERS, report.COMPARISON):
        nb = nbformat.read(report.CHAPTERS_DIR / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs committed"
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
        assert nb.cells[0].cell_type == "raw" and nb.cells[0].source.startswith("---")
        for c in code:
            lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.startswith("#")]
            assert len(lines) <= 12, f"{name}: a code cell is not thin:\n{c.source}"
            if "#| label: fig-" in c.source:
                assert "#| fig-cap:" in c.source
            if "#| label: tbl-" in c.source:
                assert "#| tbl-cap:" in c.source


def test_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    name = notebooks.kernel_name()
    assert name in KernelSpecManager().find_kernel_specs()


def test_profiles_name_params_and_the_book_reads_the_generated_list(tmp_path):
    config = yaml.safe_load((PROJECT_ROOT / "_quarto.yml").read_text())
    assert config["project"]["type"] == "book" and config["project"]["pre-render"]
    assert config["book"]["chapters"] == ["index.qmd"]
    assert "report/_layerwise/chapters.yml" in config["metadata-files"]
    assert config["execute"]["enabled"] is False
    assert set(config["format"]) == {"html", "typst"}
    assert config["profile"]["default"] == "demo"
    for profile in ("demo", "flue"):
        params = report.profile_params(PROJECT_ROOT, [profile])
        assert params and all((PROJECT_ROOT / p).is_file() for p in params)
        profile_config = yaml.safe_load((PROJECT_ROOT / f"_quarto-{profile}.yml").read_text())
        assert "chapters" not in (profile_config.get("book") or {})
    assert [p.name for p in report.profile_params(PROJECT_ROOT, ["flue"])] == ["camembert.yml",
                                                                                 "flaubert.yml"]
    for page in ("index.qmd", "chapters/index.qmd", "chapters/methods.qmd", "chapters/reproduce.qmd"):
        assert (PROJECT_ROOT / page).is_file()
    with pytest.raises(LayerwiseError, match="no params files"):
        report.quarto_prerender(tmp_path, env={"QUARTO_PROFILE": "nothing"})


def test_pages_never_include_a_generated_file():
    """Quarto expands ``{{< include >}}`` while it lists the book's inputs, before pre-render: an include
    of a file that ``layerwise run`` writes fails on a fresh clone. Every include names a file of the
    repository (outside ``report/``); generated files come through ``lw-include`` (expanded when the page
    is rendered), whose targets are files the run writes into ``report/_layerwise/``."""
    import re

    written = {"summary.md", "reproduce.md"}
    pages = [p for p in PROJECT_ROOT.rglob("*.qmd") if not {".venv", "_book", ".quarto"} & set(p.parts)
             and "report" not in p.relative_to(PROJECT_ROOT).parts[:1]]
    assert len(pages) >= 4
    seen = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for name in re.findall(r"\{\{<\s*include\s+(\S+)\s*>\}\}", text):
            target = (page.parent / name).resolve()
            assert target.is_file() and "report" not in target.relative_to(PROJECT_ROOT).parts, (page.name, name)
        for name in re.findall(r"\{\{<\s*lw-include\s+(\S+)\s*>\}\}", text):
            assert name.startswith("report/_layerwise/") and name.rsplit("/", 1)[1] in written, (page.name, name)
            seen.add(name.rsplit("/", 1)[1])
    assert seen == written
    extension = PROJECT_ROOT / "_extensions" / "lw-include"
    assert "lw-include.lua" in (extension / "_extension.yml").read_text(encoding="utf-8")
    assert '["lw-include"]' in (extension / "lw-include.lua").read_text(encoding="utf-8")


def test_a_render_leaves_the_tracked_gitignore_alone():
    """Quarto appends ``**/*.quarto_ipynb`` to ``.gitignore`` when the line is missing (a dirty clone
    after every render); the line is there."""
    lines = (PROJECT_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "**/*.quarto_ipynb" in lines



def test_a_run_parses_each_params_file_once(tmp_path, monkeypatch):
    """The params YAML is read once per run (``report.run``); the study steps get the parsed params."""
    from layerwise.inputs import config

    reads, seen = [], []
    real = config._read_yaml
    monkeypatch.setattr(config, "_read_yaml", lambda path: reads.append(path) or real(path))

    def loader(params, progress=False):
        seen.append(params)
        return load_fake_study(params, progress=progress)

    params = write_params(tmp_path / "params", "gamma")
    with _InDir(tmp_path):
        report.run([params], out_dir=Path("report"), load_study=loader, chapters=(), comparison=False,
                   preview=False, progress=False)
    assert len(reads) == 1 and len(seen) == 1 and isinstance(seen[0], config.StudyParams)


def test_two_models_execute_the_comparison_chapter(tmp_path):
    """With two models the comparison chapter runs (no other test executes it): every cell without an error,
    its prose from the words modules, nothing on stderr."""
    a = write_params(tmp_path / "params", "alpha", "Alpha model")
    b = write_params(tmp_path / "params", "beta", "Beta model")
    with _InDir(tmp_path):
        summary = report.run([a, b], out_dir=Path("report"), load_study=load_fake_study, chapters=(), preview=False,
                             progress=False)
    path = tmp_path / "report" / "comparison.ipynb"
    assert path in [Path(p) if Path(p).is_absolute() else tmp_path / p for p in summary.executed]
    nb = nbformat.read(path, as_version=4)
    assert notebooks.error_outputs(nb) == []
    assert [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"] == []
    text = " ".join(o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
                    if "text/markdown" in o.get("data", {}))
    assert "Alpha model" in text and "Beta model" in text


def test_page_one_is_kept_when_its_studies_params_and_code_are_unchanged(tmp_path, monkeypatch):
    """``_write_summary`` judges every statistic again only when a study's result key, the params, the
    links or the page code changed (``summary.key``); a missing page is always written."""
    from types import SimpleNamespace

    from layerwise.book import report as R
    from layerwise.book import summary as S
    from layerwise.study import study as st

    calls = []
    monkeypatch.setattr(st, "read_study", lambda d: d)
    monkeypatch.setattr(S, "summary_page", lambda studies, meta, manifests, link_base: calls.append(1) or
                        f"page {len(calls)}")

    def params(title):
        return SimpleNamespace(name="m", display_name=title, model_dump=lambda mode=None: {"title": title})

    out = tmp_path / "report"
    page = out / R.META_DIR / "summary.md"
    R._write_summary([params("A")], out, {}, tmp_path, ["k1"])
    R._write_summary([params("A")], out, {}, tmp_path, ["k1"])
    assert len(calls) == 1 and page.read_text() == "page 1"
    R._write_summary([params("A")], out, {}, tmp_path, ["k2"])      # new results
    R._write_summary([params("B")], out, {}, tmp_path, ["k2"])      # new params (a title, class names...)
    assert len(calls) == 3
    page.unlink()
    R._write_summary([params("B")], out, {}, tmp_path, ["k2"])      # the page was removed
    assert len(calls) == 4 and page.read_text() == "page 4"
