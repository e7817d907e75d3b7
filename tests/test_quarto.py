"""The Quarto book, rendered by a real ``quarto render`` as a user runs it (skipped where Quarto is not on
PATH: it cannot be installed from the package registries, so CI has none).

The project's files (what git tracks or would track) are copied into a fresh git repository, as a clone
would be, and rendered once with the test profile (``_quarto-test.yml``: a tiny random-initialised BERT
on the embedded demo corpus, pages carrying the error/layout recorder). That single ``quarto render``
(no ``--to``) runs the pipeline in its pre-render step and writes both formats. Then:

- both formats are there, the log has no warning, and ``git status`` is clean after the render;
- every HTML page, served on 127.0.0.1 and opened in headless Chromium with the network blocked, makes
  no request that leaves the book, logs no console error, draws the charts its notebook holds, and has no
  table or chart wider than the text column;
- no CSS or HTML file of the book imports or references an http(s) or protocol-relative URL;
- sections are numbered alike in the HTML and the PDF (the index is unnumbered in both);
- ``--profile flue`` offline with an empty Hub cache stops in pre-render with the project's own
  one-line error, never with Quarto's include error.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from layerwise.core.repro import PROJECT_ROOT

pytestmark = pytest.mark.quarto

if shutil.which("quarto") is None:
    pytest.skip("quarto is not on PATH (it cannot be installed from the registries; the book is rendered "
                "where Quarto is available)", allow_module_level=True)

#: a stylesheet or page reaching outside the book: an http(s) or protocol-relative @import or url()
OUTSIDE_CSS = re.compile(r"""(@import\s+(url\()?\s*['"]?|url\(\s*['"]?)\s*(https?:)?//""", re.I)


def _copy_project(dest: Path) -> None:
    """The project's files as a fresh clone has them (tracked, or untracked and not ignored), committed
    in a new git repository."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        src = PROJECT_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=dest, check=True)


def _env(cache: Path, **extra) -> dict:
    """Quarto's environment: the project's Python first on PATH (pre-render runs ``layerwise``), offline."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "LAYERWISE_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **extra}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):   # no line per request on stderr
        pass


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """(project copy, the render's completed process): ``quarto render --profile test`` on a fresh copy."""
    from layerwise.model.testing import tiny_model_dir

    proj = tmp_path_factory.mktemp("quarto") / "project"
    proj.mkdir()
    _copy_project(proj)
    cache = proj / ".cache" / "layerwise-tests"   # where tests/book/tiny.yml finds the tiny BERT
    tiny_model_dir("bert", root=cache / "tiny")
    res = subprocess.run(["quarto", "render", "--profile", "test"], cwd=proj, env=_env(cache), capture_output=True,
                         text=True, timeout=1500)
    log = res.stdout + res.stderr
    (PROJECT_ROOT / "artifacts").mkdir(exist_ok=True)
    (PROJECT_ROOT / "artifacts" / "quarto-render.log").write_text(log, encoding="utf-8")
    assert res.returncode == 0, log[-4000:]
    return proj, res


def test_one_render_writes_both_formats_without_warnings_and_leaves_the_clone_clean(book):
    proj, res = book
    log = res.stdout + res.stderr
    assert not re.search(r"\bWARN(ING)?\b", log), [ln for ln in log.splitlines() if "WARN" in ln]
    out = proj / "_book"
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert {"index.html", "report/tiny/geometry.html", "report/tiny/probing.html", "chapters/methods.html",
            "chapters/reproduce.html"} <= pages, pages
    assert len(list(out.glob("*.pdf"))) == 1, "one PDF"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=proj, capture_output=True, text=True).stdout
    assert status == "", f"the render changed tracked files or left untracked ones:\n{status}"
    # the generated text reached the pages (through the lw-include shortcode, after pre-render)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "tiny BERT" in index and "lw-include" not in index
    reproduce = (out / "chapters" / "reproduce.html").read_text(encoding="utf-8")
    assert "tests/book/tiny.yml" in reproduce


def test_book_pages_served_locally_render_offline(book, tmp_path):
    from test_browser import check_page, expected_charts

    proj, _ = book
    out = proj / "_book"
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        shots = PROJECT_ROOT / "artifacts" / "screenshots" / "book"
        for page in sorted(out.rglob("*.html")):
            notebook = proj / page.relative_to(out).with_suffix(".ipynb")
            charts = expected_charts(notebook) if notebook.is_file() else 0
            if notebook.is_file():
                assert charts >= 5, f"{page.name}: its notebook should hold the chapter's charts"
            check_page(page, out, tmp_path / "chrome", charts, shots=shots, origin=origin)
    finally:
        server.shutdown()


def test_nothing_in_the_book_reaches_outside(book):
    proj, _ = book
    bad = []
    for path in (proj / "_book").rglob("*"):
        if path.suffix in (".css", ".html") and path.is_file():
            bad += [f"{path.name}: {m.group(0)}" for m in OUTSIDE_CSS.finditer(path.read_text(encoding="utf-8"))]
    assert bad == []


def test_numbering_agrees_between_the_formats(book):
    """The index is unnumbered in both formats; the chapters are numbered 1, 2 in both; the appendix's
    equations are numbered (A.1), ... in the PDF."""
    proj, _ = book
    out = proj / "_book"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "header-section-number" not in index.split('id="quarto-document-content"', 1)[-1]
    geometry = (out / "report" / "tiny" / "geometry.html").read_text(encoding="utf-8")
    assert re.search(r'class="chapter-number">1</span>', geometry)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian poppler-utils) is not installed: the PDF's numbering is not read")
    [pdf] = (out).glob("*.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"^[ \t]*\d+(\.\d+)*[ \t]+The question\b", text, re.M), "the index's sections are numbered in the PDF"
    assert re.search(r"^\s*1\.1\s+\S", text, re.M), "chapter 1's sections should be numbered 1.x in the PDF"
    # the Methods appendix's equations carry its letter (the chapters have none)
    assert "(A.1)" in text and "(1.1)" not in text


def test_flue_offline_stops_in_prerender_with_the_projects_error(tmp_path):
    """``--profile flue`` with the Hub unreachable and an empty cache: past Quarto's input listing, the
    pre-render step stops with the project's one-line offline error naming what to download."""
    proj = tmp_path / "project"
    proj.mkdir()
    _copy_project(proj)
    env = _env(tmp_path / "cache", HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    res = subprocess.run(["quarto", "render", "--profile", "flue"], cwd=proj, env=env, capture_output=True,
                         text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Include directive failed" not in log
    errors = [ln for ln in log.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Fix:" in errors[0], log[-3000:]
    # the first Hub download the study needs (its data, then its model), named
    assert re.search(r"(tblard/allocine|camembert-base).*Hub", errors[0]), errors[0]
    assert "Traceback" not in log
