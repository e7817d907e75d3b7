"""The HTML preview in a real browser (headless Debian Chromium) with the network blocked: every chart
is drawn, no chapter shows an error output, no script or console error. Screenshots of each page are
written to artifacts/screenshots/ (test artefacts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from layerwise import report
from layerwise.repro import PROJECT_ROOT
from report_fakes import load_fake_study, write_params

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
#: Chromium with every network request failing (name resolution mapped to nothing) and nothing running
#: in the background.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000", "--hide-scrollbars"]

if CHROMIUM is None and os.environ.get("CI", "").lower() == "true":
    raise RuntimeError("chromium is missing in CI (CI=true): the browser test is never skipped there; "
                       "install it in the CI image (.ci/run)")
if CHROMIUM is None:
    pytest.skip("chromium is not installed (Debian: apt-get install chromium; CI installs it in .ci/run)",
                allow_module_level=True)


def browse(page: Path, profile: Path, screenshot: Path | None = None, height: int = 4000) -> str:
    """Load ``page`` offline, let its scripts run (virtual time), return the resulting DOM."""
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}", "--dump-dom"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.append(f"--screenshot={screenshot}")
    res = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "<html" in res.stdout, res.stderr[-2000:]
    return res.stdout


class Dom(HTMLParser):
    """The chart containers (with the svg/canvas elements inside each), the recorded errors and the
    error outputs of a dumped DOM."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, text: str):
        super().__init__()
        self.depth = 0
        self.open: list[tuple[str, int]] = []
        self.charts: dict[str, dict] = {}
        self.errors: list[str] | None = None
        self.error_outputs = 0
        self.svg_stack = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html" and "data-lw-errors" in a:
            self.errors = json.loads(a["data-lw-errors"])
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
    assert {p.name for p in pages} == {"index.html", "alpha-geometry.html", "alpha-probing.html"}  # one model: no comparison
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "https://cdn" not in html and "cdnjs" not in html and "require.js" not in html, page.name
        dom = Dom(browse(page, profile, SCREENSHOTS / f"{page.stem}.png"))
        assert dom.errors == [], f"{page.name}: {dom.errors}"
        assert dom.error_outputs == 0, f"{page.name}: error/stderr outputs shown"
        if page.name != "index.html":
            assert len(dom.charts) >= 5, page.name
        for cid, chart in dom.charts.items():
            assert chart["drawn"] >= 1, f"{page.name}: chart {cid} has no svg/canvas"
            assert chart["attrs"].get("data-lw-rendered") == "true", f"{page.name}: {cid} not rendered"
            assert "data-lw-error" not in chart["attrs"], f"{page.name}: {chart['attrs']['data-lw-error']}"
        assert (SCREENSHOTS / f"{page.stem}.png").stat().st_size > 10_000


def test_the_harness_sees_blocked_requests_and_console_errors(tmp_path, preview):
    """Known answer for the checks above: a page that loads a script from a CDN and logs an error."""
    from layerwise.preview import ERROR_RECORDER

    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head>{ERROR_RECORDER}"
                    '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body>'
                    '<div class="lw-chart" id="c1"></div>'
                    '<script>console.error("boom"); vegaEmbed("#c1", {});</script></body></html>')
    dom = Dom(browse(page, tmp_path / "profile"))
    kinds = " | ".join(dom.errors)
    assert "cdn.jsdelivr.net" in kinds  # the blocked network request
    assert "console.error: boom" in kinds
    assert "vegaEmbed is not defined" in kinds
    assert dom.charts["c1"]["drawn"] == 0
