"""The HTML preview in a real browser (headless Debian Chromium) with the network blocked: every page
(chapters, index, Methods, Reproduce; the Quarto book's pages get the same checks in test_quarto.py,
where Quarto is installed) loads nothing from outside its own folder, logs no script or console error,
shows no error output, has no table or chart wider than its text column, and draws exactly the charts
its executed notebook holds (the expected number is counted in
``report/<model>/<chapter>.ipynb``, never typed here). Screenshots of each page are written to
artifacts/screenshots/ (test artefacts, git-ignored)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from layerwise.book import report
from layerwise.book.preview import chapter_pages
from layerwise.book.render import HTML_BRANCH
from layerwise.core.repro import PROJECT_ROOT
from report_fakes import load_fake_study, write_params

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
#: (tag, attribute) pairs that make the browser request a file
REQUEST_ATTRS = {("script", "src"), ("img", "src"), ("iframe", "src"), ("embed", "src"), ("source", "src"),
                 ("audio", "src"), ("video", "src"), ("link", "href"), ("object", "data")}
#: Chromium with every network request failing (name resolution mapped to nothing, but for the test server
#: on 127.0.0.1) and nothing running
#: in the background.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=10000", "--hide-scrollbars"]

if CHROMIUM is None and os.environ.get("CI", "").lower() == "true":
    raise RuntimeError("chromium is missing in CI (CI=true): the browser test is never skipped there; "
                       "install it in the CI image (.ci/run)")
if CHROMIUM is None:
    pytest.skip("chromium is not installed (Debian: apt-get install chromium; CI installs it in .ci/run)",
                allow_module_level=True)


def browse(page: Path | str, profile: Path, screenshot: Path | None = None, height: int = 4000) -> str:
    """Load ``page`` (a file, or a URL served on 127.0.0.1) offline, let its scripts run (virtual time),
    return the resulting DOM."""
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}", "--dump-dom"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.append(f"--screenshot={screenshot}")
    url = page if isinstance(page, str) else page.resolve().as_uri()
    res = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "<html" in res.stdout, res.stderr[-2000:]
    return res.stdout


class Dom(HTMLParser):
    """The chart containers (with the svg/canvas elements inside each), the recorded errors and loaded
    resources, the request-making attributes, the links and the error outputs of a dumped DOM."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, text: str):
        super().__init__()
        self.depth = 0
        self.open: list[tuple[str, int]] = []
        self.charts: dict[str, dict] = {}
        self.errors: list[str] | None = None
        self.resources: list[str] | None = None
        self.overflow: list[str] | None = None
        self.requests: list[str] = []
        self.links: list[str] = []
        self.error_outputs = 0
        self.svg_stack = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html" and "data-lw-errors" in a:
            self.errors = json.loads(a["data-lw-errors"])
        if tag == "html" and "data-lw-resources" in a:
            self.resources = json.loads(a["data-lw-resources"])
        if tag == "html" and "data-lw-overflow" in a:
            self.overflow = json.loads(a["data-lw-overflow"])
        self.requests += [a[attr] for t, attr in REQUEST_ATTRS if t == tag and a.get(attr)]
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        cls = (a.get("class") or "").split()
        if a.get("data-mime-type") == "application/vnd.jupyter.stderr" or "jp-OutputArea-error" in cls:
            self.error_outputs += 1
        if tag == "div" and "lw-chart" in cls:
            self.charts[a["id"]] = {"drawn": 0, "attrs": a}
            self.open.append((a["id"], self.depth))
        if tag in ("svg", "canvas") and self.svg_stack == 0:
            for cid, _ in self.open:
                self.charts[cid]["drawn"] += 1
        if tag == "svg":
            self.svg_stack += 1
        if tag not in self.VOID:
            self.depth += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.depth -= 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if tag == "svg":
            self.svg_stack -= 1
        self.depth -= 1
        self.open = [(c, d) for c, d in self.open if d < self.depth]


def expected_charts(notebook: Path) -> int:
    """The charts of an executed chapter: chart divs in the HTML branch of its Markdown outputs."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    n = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown", "")
            md = "".join(md) if isinstance(md, list) else md
            if HTML_BRANCH in md:
                n += md.split(HTML_BRANCH, 1)[1].split("\n:::\n", 1)[0].count('class="lw-chart"')
    return n


def outside(urls: list[str], page: Path, root: Path, origin: str | None = None) -> list[str]:
    """The URLs (absolute, or relative to ``page``) that are not files inside ``root``; fragments and
    ``data:`` URIs are the page's own. ``origin``: the server that serves ``root`` (its URLs map to files
    under ``root``)."""
    bad = []
    for url in urls:
        if url.startswith(("data:", "#", "about:blank")):
            continue
        if origin and url == origin + "/favicon.ico":   # the browser's own request to a server, not the page's
            continue
        if origin and url.startswith(origin + "/"):
            url = (root / unquote(urlsplit(url).path).lstrip("/")).resolve().as_uri()
        if "://" in url and not url.startswith("file://"):
            bad.append(url)
            continue
        path = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else page.parent / unquote(url.split("#")[0].split("?")[0])
        if not path.resolve().is_relative_to(root.resolve()) or not path.resolve().exists():
            bad.append(url)
    return bad


def check_page(page: Path, root: Path, profile: Path, charts: int, shots: Path = SCREENSHOTS,
               origin: str | None = None) -> Dom:
    """Load ``page`` offline (from disk, or from ``origin``, a server on 127.0.0.1 that serves ``root``)
    and assert what the module doc says; ``charts``: how many it must draw. Every table and chart fits
    the page's text column."""
    url = f"{origin}/{page.relative_to(root).as_posix()}" if origin else page
    dom = Dom(browse(url, profile, shots / f"{page.stem}.png"))
    assert dom.errors == [], f"{page.name}: {dom.errors}"
    assert dom.resources is not None, f"{page.name}: the page does not record its resources"
    assert outside(dom.resources + dom.requests, page, root, origin) == [], f"{page.name}: requests outside {root}"
    assert [u for u in outside(dom.links, page, root, origin) if not u.startswith("http")] == [], \
        f"{page.name}: broken links"
    assert dom.overflow == [], f"{page.name}: wider than the text column: {dom.overflow}"
    assert dom.error_outputs == 0, f"{page.name}: error/stderr outputs shown"
    assert len(dom.charts) == charts, f"{page.name}: {len(dom.charts)} charts on the page, {charts} in its notebook"
    for cid, chart in dom.charts.items():
        assert chart["drawn"] >= 1, f"{page.name}: chart {cid} has no svg/canvas"
        assert chart["attrs"].get("data-lw-rendered") == "true", f"{page.name}: {cid} not rendered"
        assert "data-lw-error" not in chart["attrs"], f"{page.name}: {chart['attrs']['data-lw-error']}"
    assert (shots / f"{page.stem}.png").stat().st_size > 10_000
    return dom


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    """The preview of an executed report (synthetic study: one model, its chapters; with one model there is no comparison chapter)."""
    root = tmp_path_factory.mktemp("browser")
    params = write_params(root / "params", "alpha", "Alpha model")
    old_cwd = os.getcwd()
    os.chdir(root)
    try:
        summary = report.run([params], out_dir=Path("report"), load_study=load_fake_study, preview=True,
                             progress=False)
    finally:
        os.chdir(old_cwd)
    return summary.preview, root / "chrome-profile"


def test_every_page_renders_offline_without_errors(preview):
    index, profile = preview
    pages = sorted(index.parent.glob("*.html"))
    chapters = chapter_pages(index.parent.parent)
    assert {p.name for p in pages} == {"index.html", "alpha-geometry.html", "alpha-probing.html", "alpha-beyond.html",
                                       "methods.html", "reproduce.html"}  # one model: no comparison
    assert set(chapters) == {"alpha-geometry.html", "alpha-probing.html", "alpha-beyond.html"}
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "https://cdn" not in html and "cdnjs" not in html and "require.js" not in html, page.name
        expected = expected_charts(chapters[page.name]) if page.name in chapters else 0
        if page.name in chapters:
            assert expected >= 5, f"{page.name}: its notebook should hold the chapter's charts"
        check_page(page, index.parent, profile, expected)


def test_the_harness_sees_blocked_requests_and_console_errors(tmp_path, preview):
    """Known answer for the checks above: a page that loads a script from a CDN and a stylesheet from
    outside its folder, logs an error, and has a chart that is not drawn."""
    from layerwise.book.preview import ERROR_RECORDER

    site = tmp_path / "site"
    site.mkdir()
    (site / "own.css").write_text("body { color: black; }")
    (tmp_path / "outside.css").write_text("body { color: black; }")
    page = site / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head>{ERROR_RECORDER}"
                    '<link rel="stylesheet" href="own.css"><link rel="stylesheet" href="../outside.css">'
                    '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body>'
                    '<div class="lw-chart" id="c1"></div><a href="missing.html">x</a>'
                    '<script>console.error("boom"); vegaEmbed("#c1", {});</script></body></html>')
    dom = Dom(browse(page, tmp_path / "profile"))
    kinds = " | ".join(dom.errors)
    assert "cdn.jsdelivr.net" in kinds  # the blocked network request
    assert "console.error: boom" in kinds
    assert "vegaEmbed is not defined" in kinds
    assert dom.charts["c1"]["drawn"] == 0
    assert dom.resources == ["https://cdn.jsdelivr.net/npm/vega@5"]  # network requests, failed ones included
    bad = outside(dom.resources + dom.requests, page, site)
    assert "../outside.css" in bad  # a file outside the page's folder
    assert "https://cdn.jsdelivr.net/npm/vega@5" in bad
    assert not any(u.endswith("own.css") for u in bad)
    assert outside(dom.links, page, site) == ["missing.html"]
    quiet = site / "quiet.html"  # no error at all: only the stylesheet from outside its folder
    quiet.write_text(f'<!DOCTYPE html><html><head>{ERROR_RECORDER}<link rel="stylesheet" href="../outside.css">'
                     "</head><body><p>text</p></body></html>")
    with pytest.raises(AssertionError, match="requests outside"):
        check_page(quiet, site, tmp_path / "profile", 0, shots=tmp_path)
    wide = site / "wide.html"  # a table wider than the text column; a narrow one beside it
    wide.write_text(f'<!DOCTYPE html><html><head>{ERROR_RECORDER}</head><body><main style="width: 600px">'
                    '<table style="width: 900px"><tr><td>wide</td></tr></table>'
                    '<table style="width: 500px"><tr><td>narrow</td></tr></table></main></body></html>')
    dom = Dom(browse(wide, tmp_path / "profile"))
    assert dom.overflow == ["table: 900 px in 600 px"]
