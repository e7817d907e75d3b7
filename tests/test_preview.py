"""The pip-only preview without a browser (tests/test_browser.py loads it in Chromium): figure and
table numbers, captions and references, the contents list and navigation of every page, the Methods
and Reproduce pages from the book's Quarto Markdown, no "¶" anchors, the Quarto notice as formatted
text. Built from a hand-made executed chapter (fast); known answers throughout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from layerwise.book.preview import build_preview, chapter_pages
from layerwise.book.preview_figures import cell_options, link_refs, number_figures
from layerwise.book.preview_pages import markdown_html
from layerwise.book.render import HTML_BRANCH, OTHER_BRANCH, chart_html, library_tag

SPEC = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "data": {"values": [{"x": 1}]},
        "mark": "point", "encoding": {"x": {"field": "x", "type": "quantitative"}}}


def chart_output(element_id: str) -> dict:
    """A chart's Markdown output as an executed chapter holds it (both branches)."""
    body = library_tag("../_layerwise/vega/vega-bundle.js") + "\n" + chart_html(SPEC, element_id, include_library=False)
    md = (f"{HTML_BRANCH}\n\n```{{=html}}\n{body}\n```\n\n:::\n\n{OTHER_BRANCH}\n\n![]({element_id}.svg)\n\n:::\n")
    return nbformat.v4.new_output("display_data", data={"text/markdown": md, "text/plain": "<chart>"})


def md_output(text: str) -> dict:
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})


def chapter(prefix: str) -> nbformat.NotebookNode:
    """An executed chapter: two numbered charts, a numbered table, prose with references."""
    code = nbformat.v4.new_code_cell
    cells = [nbformat.v4.new_raw_cell(f"---\ntitle: Chapter {prefix}\n---"),
             nbformat.v4.new_markdown_cell(f"## Section A\n\nSee @fig-{prefix}-x, @tbl-{prefix}-t and "
                                           f"@fig-{prefix}-missing; details in the Methods appendix."),
             code(f'#| label: fig-{prefix}-x\n#| fig-cap: "Cap *one*."\ncharts.x()', outputs=[chart_output(f"{prefix}c1")]),
             code(f'#| label: tbl-{prefix}-t\n#| tbl-cap: "Table cap."\nprose.t()',
                  outputs=[md_output("| a | b |\n|---|---|\n| 1 | 2 |\n")]),
             nbformat.v4.new_markdown_cell("## Section B: more"),
             code(f'#| label: fig-{prefix}-y\n#| fig-cap: "Cap two."\ncharts.y()', outputs=[chart_output(f"{prefix}c2")]),
             code("prose.say()", outputs=[md_output(f"As @fig-{prefix}-y shows, and not `@fig-{prefix}-x`.")]),
             code("#| label: fig-silent\nx = 1", outputs=[])]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    report = tmp_path_factory.mktemp("preview") / "report"
    meta = report / "_layerwise"
    meta.mkdir(parents=True)
    chapters = []
    for prefix in ("a", "b"):
        (report / "m").mkdir(exist_ok=True)
        nbformat.write(chapter(prefix), report / "m" / f"{prefix}.ipynb")
        chapters.append({"chapter": prefix, "path": f"m/{prefix}.ipynb", "title": f"Chapter {prefix}"})
    (meta / "report.json").write_text(json.dumps({"models": [{"name": "m", "title": "Model M", "chapters": chapters}],
                                                  "comparison": None}))
    (meta / "reproduce.md").write_text("## Commands\n\nREPRODUCE-MARKER `layerwise run`\n")
    (meta / "summary.md").write_text("## Findings across the models\n\nSUMMARY-MARKER\n")
    (report / "preview").mkdir()
    (report / "preview" / "comparison.html").write_text("a page of an earlier run")
    index = build_preview(report)
    return index.parent, {p.name: p.read_text(encoding="utf-8") for p in index.parent.glob("*.html")}


def test_pages_and_their_order(built):
    out, pages = built
    assert set(pages) == {"index.html", "m-a.html", "m-b.html", "methods.html", "reproduce.html"}  # stale one gone
    assert (out / "vega-bundle.js").stat().st_size > 100_000
    assert set(chapter_pages(out.parent)) == {"m-a.html", "m-b.html"}
    order = ["index.html", "m-a.html", "m-b.html", "methods.html", "reproduce.html"]
    for i, name in enumerate(order):
        navs = re.findall(r'<nav class="lw-nav lw-nav-(top|bottom)">(.*?)</nav>', pages[name], re.S)
        assert [w for w, _ in navs] == ["top", "bottom"], name
        assert navs[0][1] == navs[1][1], name
        hrefs = re.findall(r'href="([^"]+)"', navs[0][1])
        expected = ([order[i - 1]] if i else []) + (["index.html"] if i > 1 else []) + (
            [order[i + 1]] if i + 1 < len(order) else [])
        assert hrefs == expected, name
    assert pages["index.html"].index("Chapters") > pages["index.html"].index("SUMMARY-MARKER")


def test_figures_are_numbered_per_chapter_with_captions_under_the_charts(built):
    _, pages = built
    for prefix in ("a", "b"):
        page = pages[f"m-{prefix}.html"]
        fig1 = page.index(f'<figure class="lw-figure" id="fig-{prefix}-x">')
        assert fig1 < page.index(f'id="{prefix}c1"') < page.index("<strong>Figure 1</strong>: Cap <em>one</em>.")
        assert page.index(f'id="{prefix}c2"') < page.index("<strong>Figure 2</strong>: Cap two.")
        cap = page.index(f'<p class="lw-caption lw-table-caption" id="tbl-{prefix}-t"><strong>Table 1</strong>: Table cap.')
        assert cap < page.index("<table")  # above the table, as Quarto does
        assert f'<a href="#fig-{prefix}-x">Figure 1</a>' in page
        assert f'<a href="#tbl-{prefix}-t">Table 1</a>' in page
        assert f'<a href="#fig-{prefix}-y">Figure 2</a>' in page  # in a computed (output) paragraph
        assert f"?@fig-{prefix}-missing" in page
        assert f"<code>@fig-{prefix}-x</code>" in page  # code spans are left alone
        assert "Figure 3" not in page  # the cell without output is not numbered
        assert '<a href="methods.html">Methods appendix</a>' in page


def test_charts_keep_only_their_html_branch_and_load_the_local_bundle(built):
    _, pages = built
    page = pages["m-a.html"]
    assert page.count('class="lw-chart"') == 2
    assert ":::" not in page and ".svg" not in page and "{=html}" not in page
    assert page.count('src="vega-bundle.js"') == 1 and "_layerwise" not in page
    assert page.index('src="vega-bundle.js"') < page.index("</head>")


def test_contents_list_and_no_anchor_glyphs(built):
    _, pages = built
    page = pages["m-a.html"]
    toc = re.search(r'<nav class="lw-toc">(.*?)</nav>', page, re.S).group(1)
    targets = re.findall(r'href="#([^"]+)"', toc)
    assert [re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<li>(.*?)</li>", toc)] == ["Section A", "Section B: more"]
    for target in targets:
        assert f'id="{target}"' in page
    assert page.index('class="lw-toc"') < page.index("Section A</h2>")
    for name, text in pages.items():
        assert "¶" not in text and "&#182;" not in text and "anchor-link\"" not in text.replace(
            "a.anchor-link", ""), name
        assert "{{<" not in text and "lw-toc-slot" not in text, name


def test_methods_and_reproduce_pages(built):
    _, pages = built
    methods, reproduce = pages["methods.html"], pages["reproduce.html"]
    assert "<h1>Methods</h1>" in methods and "<h1>Reproduce</h1>" in reproduce
    assert methods.count('<pre class="lw-math"') >= 5 and "$$" not in methods
    assert "\\mathrm{IntraSim}" in methods
    assert len(re.findall(r'<nav class="lw-toc">.*?</nav>', methods, re.S)) == 1
    assert "REPRODUCE-MARKER <code>layerwise run</code>" in reproduce  # the include, from the report folder


def test_quarto_notice_is_formatted(built):
    _, pages = built
    notice = re.search(r'<div class="lw-note lw-quarto-notice">(.*?)</div>', pages["index.html"], re.S).group(1)
    assert "<code>quarto render</code>" in notice and "`" not in notice
    assert '<a href="https://quarto.org/docs/get-started/">' in notice
    assert '<a href="methods.html">Methods</a>' in pages["index.html"]


def test_markdown_html_known_answers():
    text = ("---\ntitle: T\n---\n"
            "::: {.content-visible unless-format=\"html\"}\nPDF ONLY\n:::\n"
            "::: {.content-visible when-format=\"html\"}\nHTML ONLY\n:::\n"
            "::: {.callout-note}\nA *note*.\n:::\n"
            "Inline $x_i$ and $X$, `$HOME` stays, [M](chapters/methods.qmd), [gone](other.qmd).\n\n"
            "$$a_1 < b$$\n")
    out = markdown_html(text, link_map={"chapters/methods.qmd": "methods.html"})
    assert "PDF ONLY" not in out and "HTML ONLY" in out and "title: T" not in out
    assert re.search(r'<div class="lw-note">\s*<p>A <em>note</em>.</p>', out)
    assert '<code class="lw-math" title="TeX">x_i</code>' in out and "<var>X</var>" in out
    assert "<code>$HOME</code>" in out
    assert '<a href="methods.html">M</a>' in out and "gone" in out and "other.qmd" not in out
    assert '<pre class="lw-math" title="TeX">a_1 &lt; b</pre>' in out


def test_numbering_and_references_known_answers():
    nb = chapter("z")
    refs = number_figures(nb, "z.html")
    assert {k: r.name for k, r in refs.items()} == {"fig-z-x": "Figure 1", "tbl-z-t": "Table 1", "fig-z-y": "Figure 2"}
    assert refs["fig-z-x"].caption == "Cap *one*."
    assert link_refs("@fig-z-y and me@fig-z-y.com", refs, "other.html") == "[Figure 2](z.html#fig-z-y) and me@fig-z-y.com"
    assert cell_options('#| label: fig-a\n#| fig-cap: "A: b"\nx = 1\n#| not: this') == {"label": "fig-a", "fig-cap": "A: b"}
