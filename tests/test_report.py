"""The report: papermill execution of the chapters, skipping, failures, Quarto configuration."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from layerwise import report
from layerwise.errors import LayerwiseError
from layerwise.repro import PROJECT_ROOT
from report_fakes import write_params

TESTS = Path(__file__).resolve().parent
FAKE = "report_fakes:load_fake_study_outside_kernels"
CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|<script[^>]+src=[\"']?https?:", re.I)


class _InDir:
    """chdir + PYTHONPATH (the kernel imports report_fakes) for a module-scoped fixture."""

    def __init__(self, path: Path):
        self.path, self.old_cwd, self.old_pp = path, None, None

    def __enter__(self):
        self.old_cwd, self.old_pp = os.getcwd(), os.environ.get("PYTHONPATH")
        os.chdir(self.path)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), self.old_pp]))
        return self

    def __exit__(self, *exc):
        os.chdir(self.old_cwd)
        if self.old_pp is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = self.old_pp


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One executed run on the synthetic study: model 'alpha' (geometry, probing) + comparison."""
    root = tmp_path_factory.mktemp("project")
    params = write_params(root / "params", "alpha", "Alpha model")
    with _InDir(root):
        summary = report.run([params], out_dir=Path("report"), loader=FAKE, preview=False, progress=False)
        yield root, params, summary


def _notebooks(root: Path) -> list[Path]:
    return [root / "report/alpha/geometry.ipynb", root / "report/alpha/probing.ipynb", root / "report/comparison.ipynb"]


def test_run_executes_every_chapter(project):
    root, _, summary = project
    assert sorted(summary.executed) == sorted(_notebooks(root)) and summary.skipped == []
    for nb_path in _notebooks(root):
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        assert report.error_outputs(nb) == [], nb_path
        assert nb.metadata["layerwise"]["input_hash"]
        stderr = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
        assert stderr == [], f"{nb_path}: stderr output {stderr[:1]}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "params/alpha.yml" in injected[0].source
    assert not list((root / "report").rglob(".lw-run-*")), "temporary files left behind"


def test_chart_outputs_have_html_and_svg_and_one_library(project):
    root, _, _ = project
    for nb_path in _notebooks(root):
        nb = nbformat.read(nb_path, as_version=4)
        charts_out = [o for c in nb.cells for o in c.get("outputs", [])
                      if "text/html" in o.get("data", {}) and "lw-chart" in o["data"]["text/html"]]
        assert len(charts_out) >= 5, nb_path
        for o in charts_out:
            assert o["data"]["image/svg+xml"].lstrip().startswith("<svg")
            assert not CDN.search(o["data"]["text/html"])
        assert sum("data-lw-library" in o["data"]["text/html"] for o in charts_out) == 1, nb_path


def test_front_matter_labels_and_prose(project):
    root, _, _ = project
    nb = nbformat.read(root / "report/alpha/geometry.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "raw"
    assert yaml.safe_load(nb.cells[0].source.strip("-\n"))["title"] == "Geometry: Alpha model"
    assert "#| label: fig-alpha-token-cosine\n" in "".join(c.source + "\n" for c in nb.cells)
    md = [o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
          if "text/markdown" in o.get("data", {})]
    assert any("the median token cosine rises" in m for m in md)
    assert all("n/a" not in m and "nan" not in m for m in md), md


def test_quarto_files_written(project):
    root, _, summary = project
    book = yaml.safe_load(summary.chapters_yml.read_text())["book"]["chapters"]
    assert book == [{"part": "Alpha model", "chapters": ["report/alpha/geometry.ipynb", "report/alpha/probing.ipynb"]},
                    "report/comparison.ipynb"]
    assert "params/alpha.yml" in summary.reproduce_md.read_text()
    manifest = json.loads(summary.manifest.read_text())
    assert [c["path"] for c in manifest["models"][0]["chapters"]] == ["alpha/geometry.ipynb", "alpha/probing.ipynb"]


def test_unchanged_inputs_are_skipped_and_a_missing_notebook_is_rebuilt(project):
    root, params, _ = project
    probing = root / "report/alpha/probing.ipynb"
    probing.unlink()
    with _InDir(root):
        summary = report.run([params], out_dir=Path("report"), loader=FAKE, preview=False, progress=False)
    assert summary.executed == [probing]
    assert len(summary.skipped) == 2


def test_input_hash_follows_template_params_and_results(project, tmp_path):
    root, params, _ = project
    p = __import__("layerwise.config", fromlist=["load_params"]).load_params(params)
    base = dict(loader=FAKE, chapters=("geometry",), comparison=False, chapters_dir=report.CHAPTERS_DIR, cwd=root)
    h0 = report.plan([p], {"alpha": "k1"}, root / "report", **base)[0].input_hash
    assert report.plan([p], {"alpha": "k1"}, root / "report", **base)[0].input_hash == h0
    assert report.plan([p], {"alpha": "k2"}, root / "report", **base)[0].input_hash != h0  # results changed
    copy = tmp_path / "chapters"
    shutil.copytree(report.CHAPTERS_DIR, copy)
    (copy / "geometry.ipynb").write_text((copy / "geometry.ipynb").read_text().replace("Token cosines", "Cosines"))
    assert report.plan([p], {"alpha": "k1"}, root / "report", **{**base, "chapters_dir": copy})[0].input_hash != h0
    edited = tmp_path / "alpha.yml"
    edited.write_text(Path(params).read_text() + "# a comment\n")
    p2 = __import__("layerwise.config", fromlist=["load_params"]).load_params(edited)
    assert report.plan([p2], {"alpha": "k1"}, root / "report", **base)[0].input_hash != h0


def test_failing_cell_names_model_chapter_and_cell(tmp_path):
    params = write_params(tmp_path / "params", "beta")
    with _InDir(tmp_path):
        with pytest.raises(LayerwiseError) as err:
            report.run([params], out_dir=Path("report"), loader="report_fakes:load_broken_study",
                       chapters=("geometry",), comparison=False, preview=False, progress=False)
    msg = str(err.value)
    assert "model beta" in msg and "chapter geometry" in msg
    assert re.search(r"cell \d+ \(execution count \d+\) `charts\.token_cosine_boxes\(tidy\)`", msg), msg
    assert "token_cosine_q05" in msg
    assert not (tmp_path / "report/beta/geometry.ipynb").exists()  # nothing half-failed where Quarto reads
    failed = tmp_path / "report/_layerwise/failed/beta-geometry.ipynb"
    assert failed.exists() and report.error_outputs(nbformat.read(failed, as_version=4))
    assert not (tmp_path / "report/_layerwise/chapters.yml").exists()


def test_prepare_template_relabels_and_titles(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_raw_cell("---\ntitle: x\ntoc: true\n---"),
                nbformat.v4.new_markdown_cell("See @fig-a and email@fig-b."),
                nbformat.v4.new_code_cell("#| label: fig-a\n#| fig-cap: A\nx = 1")]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    out = report.prepare_template(path, title="New: title", label_prefix="m1")
    assert yaml.safe_load(out.cells[0].source.strip("-\n")) == {"title": "New: title", "toc": True}
    assert out.cells[1].source == "See @fig-m1-a and email@fig-b."
    assert out.cells[2].source.startswith("#| label: fig-m1-a\n")


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

    name = report.kernel_name()
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


@pytest.mark.quarto
@pytest.mark.skipif(shutil.which("quarto") is None, reason="quarto is not on PATH (it cannot be installed here; "
                    "the book is rendered where Quarto is available)")
def test_quarto_renders_the_book(tmp_path):
    """The whole book (HTML and typst PDF) on the synthetic study, through Quarto's own pre-render."""
    proj = tmp_path / "book"
    proj.mkdir()
    for f in ("_quarto.yml", "index.qmd"):
        shutil.copy(PROJECT_ROOT / f, proj / f)
    shutil.copytree(PROJECT_ROOT / "chapters", proj / "chapters")
    write_params(proj / "params", "alpha", "Alpha model")
    (proj / "_quarto-demo.yml").write_text("layerwise:\n  params:\n    - params/alpha.yml\n")
    (proj / "_quarto-flue.yml").write_text("layerwise:\n  params: []\n")
    env = {**os.environ, "LAYERWISE_LOADER": FAKE,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    for fmt, out in (("html", "_book/index.html"), ("typst", None)):
        res = subprocess.run(["quarto", "render", "--to", fmt], cwd=proj, env=env, capture_output=True, text=True,
                             timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    html = (proj / "_book/report/alpha/geometry.html").read_text()
    assert "lw-chart" in html and not CDN.search(html)
    assert list((proj / "_book").glob("*.pdf")), "no PDF written"
