"""A pip-only HTML preview of the executed chapters (nbconvert), readable offline.

``build_preview(report_dir)`` writes ``<report_dir>/preview/``: one HTML file per executed chapter, the
book's Methods and Reproduce appendices (:mod:`layerwise.book.preview_pages`), an ``index.html`` (the
findings summary, the chapter list, the book's introduction) and ``vega-bundle.js`` (the Vega
libraries, loaded by every chapter page with ``<script src>``: the preview folder stands alone, and no
page requests anything outside it). Each page has navigation (previous / contents / next) at its top
and bottom and a contents list of its sections; figures and tables are numbered per chapter, with
their captions, and ``@fig-...`` references are links (:mod:`layerwise.book.preview_figures`).

nbconvert's ``lab`` template loads require.js, MathJax and mermaid from a CDN; the template used here
removes those three blocks, hides the code (the notebooks in ``report/`` keep it) and adds a tiny
script that records script errors and ``console.error`` calls into the page
(``<html data-lw-errors="[...]">``) and the URL of every network request of the page
(``data-lw-resources``), which the browser test reads.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

from ..core.errors import LayerwiseError
from .files import write_if_changed
from .preview_figures import add_caption, cell_options, chart_outputs_as_html, link_refs, number_figures
from .preview_pages import (APPENDICES, CSS, INTRO, TOC_SLOT, demote_headings, finish_html, markdown_html, nav_html,
                            page_html, page_title)
from .render import LIBRARY_FILE, write_library
from ..core.repro import PROJECT_ROOT, atomic_write_text

PREVIEW_DIR = "preview"
TEMPLATE_NAME = "layerwise_preview.html.j2"

#: Records uncaught errors (scripts, failed resource loads), unhandled rejections and console.error
#: into the ``data-lw-errors`` attribute of <html>, as a JSON list, and the URL of every network
#: resource the page requested, failed ones included, into ``data-lw-resources`` (Chromium's resource
#: timing lists no ``file://`` loads: the browser test checks those in the DOM's attributes), and the
#: tables and charts wider than their text column into ``data-lw-overflow``. One file
#: (``resources/error-recorder.html``): the preview carries it, and the Quarto book's test profile
#: (``_quarto-test.yml``) adds it to the book's pages; the published book does not.
ERROR_RECORDER = (Path(__file__).parents[1] / "resources" / "error-recorder.html").read_text(encoding="utf-8").strip()

TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
""" + ERROR_RECORDER + f"""
<script type="text/javascript" src="{LIBRARY_FILE}" data-lw-library="vega"></script>
""" + """
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}
<style type="text/css">
  body { max-width: 1100px; margin: 0 auto; }
""" + CSS + """
</style>
{% endblock extra_css %}
"""

QUARTO_HINT = (
    "The full book (HTML and a typst PDF, with figure numbers and cross-references) needs Quarto >= 1.9: "
    "install it from https://quarto.org/docs/get-started/ (a .deb/.rpm/.pkg/.msi, or the tarball), "
    "then run `quarto render` (demo) or `quarto render --profile flue` in the project directory; its "
    "pre-render step runs `layerwise run` for the profile's params files.")


def quarto_hint() -> str:
    """How to get the full book (printed after the preview)."""
    return ("layerwise: " + QUARTO_HINT) if shutil.which("quarto") is None else (
        "layerwise: Quarto is installed: `quarto render` builds the book into _book/.")


def _exporter():
    """nbconvert's HTML exporter with the CDN-free template, code hidden, images embedded."""
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({TEMPLATE_NAME: TEMPLATE})],
                        template_file=TEMPLATE_NAME, exclude_input=True, exclude_input_prompt=True,
                        exclude_output_prompt=True, embed_images=True)


def _front_matter(nb) -> dict[str, Any]:
    """The YAML front matter of a notebook's first raw cell (empty when none)."""
    import yaml

    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.lstrip().startswith("---"):
        try:
            return yaml.safe_load(nb.cells[0].source.strip().strip("-").strip()) or {}
        except yaml.YAMLError:
            return {}
    return {}


def prepare_for_preview(nb, *, title: str, nav: tuple[str, str], refs: dict | None = None, page: str = ""):
    """The executed notebook as the preview shows it: the front matter becomes a title heading, the
    navigation comes first and last, a contents slot follows the title, every chart output becomes
    its HTML branch, numbered figures/tables get their "Figure N: ..." captions and ``@fig-...``
    references become links (:mod:`layerwise.book.preview_figures`)."""
    import nbformat

    refs = refs or {}
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    if nb.cells and nb.cells[0].cell_type == "raw":
        nb.cells.pop(0)
    md = nbformat.v4.new_markdown_cell
    cells = [md(nav[0]), md(f"# {title}"), md(TOC_SLOT)]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = link_refs(_appendix_links(cell.source), refs, page)
        if cell.cell_type == "code":
            chart_outputs_as_html(cell)
            _link_output_refs(cell, refs, page)
            label = cell_options(cell.source).get("label")
            before, after = add_caption(cell, refs.get(label) if isinstance(label, str) else None)
        else:
            before, after = [], []
        cells += [md(b) for b in before] + [cell] + [md(a) for a in after]
    nb.cells = cells + [md(nav[1])]
    nb.metadata["title"] = title
    return nb


def _link_output_refs(cell, refs: dict, page: str) -> None:
    """``@fig-...`` references in a cell's Markdown outputs (computed prose) as links."""
    for out in cell.get("outputs", []) or []:
        data = out.get("data") or {}
        if isinstance(data.get("text/markdown"), str):
            data["text/markdown"] = link_refs(data["text/markdown"], refs, page)


def _appendix_links(text: str) -> str:
    """"the Methods appendix" / "the Reproduce appendix" in a chapter's prose linked to its page."""
    return re.sub(r"(?<![\[\w])(Methods|Reproduce)( appendix)(?![\]\w])",
                  lambda m: f"[{m.group(1)}{m.group(2)}]({m.group(1).lower()}.html)", text)


def _chapters(report_dir: Path) -> list[dict[str, Any]]:
    """The chapters to preview, in book order: from ``_layerwise/report.json`` when present, else
    every ``<model>/<chapter>.ipynb`` and ``comparison.ipynb``."""
    manifest = report_dir / "_layerwise" / "report.json"
    items: list[dict[str, Any]] = []
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for m in data.get("models", []):
            for c in m.get("chapters", []):
                items.append({"model": m["name"], "model_title": m.get("title", m["name"]), **c})
        if data.get("comparison"):
            items.append({"model": None, "model_title": None, **data["comparison"]})
    else:
        for nb in sorted(report_dir.glob("*/*.ipynb")):
            if nb.parent.name.startswith(("_", ".")) or nb.parent.name == PREVIEW_DIR:
                continue
            items.append({"model": nb.parent.name, "model_title": nb.parent.name, "chapter": nb.stem,
                          "title": f"{nb.stem} ({nb.parent.name})", "path": f"{nb.parent.name}/{nb.name}"})
        if (report_dir / "comparison.ipynb").is_file():
            items.append({"model": None, "model_title": None, "chapter": "comparison", "title": "Comparison",
                          "path": "comparison.ipynb"})
    return [i for i in items if (report_dir / i["path"]).is_file()]


def _pages(report_dir: Path) -> list[dict[str, Any]]:
    """Every page of the preview in reading order: the index, the chapters, the appendices (dicts
    with "page", "title", "kind" and, for chapters, the notebook's "path")."""
    pages: list[dict[str, Any]] = [{"page": "index.html", "title": "Contents", "kind": "index"}]
    for item in _chapters(report_dir):
        name = (f"{item['model']}-{item['chapter']}" if item["model"] else item["chapter"]) + ".html"
        pages.append({**item, "page": name, "kind": "chapter"})
    for name, source in APPENDICES:
        path = PROJECT_ROOT / source
        if path.is_file():
            pages.append({"page": name, "title": page_title(path, Path(source).stem.title()), "kind": "appendix",
                          "source": path})
    return pages


def chapter_pages(report_dir: str | Path = "report") -> dict[str, Path]:
    """The chapter pages the preview of ``report_dir`` has, with the executed notebook of each."""
    return {p["page"]: Path(report_dir) / p["path"] for p in _pages(Path(report_dir)) if p["kind"] == "chapter"}


def source_pages() -> list[Path]:
    """The project files the preview reads besides the report folder (the book's static pages)."""
    return [PROJECT_ROOT / INTRO] + [PROJECT_ROOT / source for _, source in APPENDICES]


def build_preview(report_dir: str | Path = "report") -> Path:
    """Convert every executed chapter under ``report_dir`` to an HTML file in ``report_dir/preview/``,
    with the appendices and ``index.html`` linking them all; returns the index path."""
    import nbformat

    report_dir = Path(report_dir)
    pages = _pages(report_dir)
    if not any(p["kind"] == "chapter" for p in pages):
        raise LayerwiseError("no executed chapters to preview", str(report_dir),
                             "run `layerwise run` (or `make report`) first")
    out = report_dir / PREVIEW_DIR
    out.mkdir(parents=True, exist_ok=True)
    write_library(out)
    for stale in set(out.glob("*.html")) - {out / p["page"] for p in pages}:
        stale.unlink()  # a page of an earlier run (a model or chapter no longer in the report)
    notebooks = {p["page"]: nbformat.read(report_dir / p["path"], as_version=4)
                 for p in pages if p["kind"] == "chapter"}
    numbered = {page: number_figures(nb, page) for page, nb in notebooks.items()}
    refs = {label: ref for page_refs in numbered.values() for label, ref in page_refs.items()}
    links = {p["path"]: p["page"] for p in pages if "path" in p}
    links.update({source: name for name, source in APPENDICES})
    links["index.qmd"] = "index.html"
    exporter = _exporter()
    for i, p in enumerate(pages):
        nav = (nav_html(pages, i, "top"), nav_html(pages, i, "bottom"))
        if p["kind"] == "chapter":
            nb = notebooks[p["page"]]
            title = _front_matter(nb).get("title") or p["title"]
            own = {**refs, **numbered[p["page"]]}  # a label used on two pages means this page's own
            body, _ = exporter.from_notebook_node(prepare_for_preview(nb, title=title, nav=nav, refs=own,
                                                                      page=p["page"]))
        elif p["kind"] == "appendix":
            body = _appendix_html(p, nav, report_dir=report_dir, links=links, refs=refs)
        else:
            body = _index_html(report_dir, pages, nav, links=links)
        atomic_write_text(out / p["page"], finish_html(body))
    return out / "index.html"


def _copy_figures(src: Path, dest: Path) -> None:
    """Page 1's figures into the preview (a self-contained folder), those of earlier runs removed."""
    wanted = {f.name: f for f in src.glob("*.svg")} if src.is_dir() else {}
    for old in (set(dest.glob("*.svg")) if dest.is_dir() else set()) - {dest / n for n in wanted}:
        old.unlink()
    for name, f in wanted.items():
        write_if_changed(dest / name, f.read_text(encoding="utf-8"))


def _appendix_html(p: dict[str, Any], nav: tuple[str, str], *, report_dir: Path, links: dict[str, str],
                   refs: dict) -> str:
    """The Methods or Reproduce page (its ``.qmd`` as HTML)."""
    source: Path = p["source"]
    body = markdown_html(source.read_text(encoding="utf-8"), source=source, report_dir=report_dir, link_map=links,
                         refs=refs, page=p["page"])
    note = ""
    if 'class="lw-math"' in body:
        note = ('<div class="lw-note">The formulas are shown as TeX source in this preview; the Quarto book '
                'typesets them.</div>')
    return page_html(p["title"], f"{nav[0]}<h1>{html.escape(p['title'])}</h1>{note}{TOC_SLOT}{body}{nav[1]}",
                     head=ERROR_RECORDER)


def _index_html(report_dir: Path, pages: list[dict[str, Any]], nav: tuple[str, str], *,
                links: dict[str, str]) -> str:
    """The preview's index page: the findings summary, the page list (chapters by model,
    appendices), the book's introduction and the Quarto notice (a note box)."""
    toc, model = [], object()
    for p in pages[1:]:
        group = p.get("model_title") if p["kind"] == "chapter" else "Appendices"
        if group != model:
            toc.append(("</ul>" if toc else "") + (f"<h3>{html.escape(group)}</h3>" if group else "") + "<ul>")
            model = group
        toc.append(f'<li><a href="{html.escape(p["page"], quote=True)}">{html.escape(p["title"])}</a></li>')
    toc.append("</ul>")
    note = markdown_html("This is the pip-only preview of the executed chapters (nbconvert, code hidden; the "
                         "notebooks with their code are in `report/`). " + QUARTO_HINT)
    summary = report_dir / "_layerwise" / "summary.md"
    # page 1's figures are linked from the project (<report>/_layerwise/figures/...): copied into the preview
    text = re.sub(r"\]\([^)\s]*?/_layerwise/figures/", "](figures/",
                  summary.read_text(encoding="utf-8")) if summary.is_file() else ""
    _copy_figures(report_dir / "_layerwise" / "figures", report_dir / PREVIEW_DIR / "figures")
    findings = markdown_html(text, link_map=links) if text else ""
    intro_path = PROJECT_ROOT / INTRO
    intro = (markdown_html(demote_headings(intro_path.read_text(encoding="utf-8")), source=intro_path,
                           report_dir=report_dir, link_map=links) if intro_path.is_file() else "")
    body = (f'{nav[0]}<h1>layerwise report: preview</h1>\n{findings}\n'
            f'<h2 id="lw-pages">Chapters</h2>\n{"".join(toc)}\n'
            f'<h2 id="lw-about">About this report</h2>\n{intro}\n'
            f'<h2 id="lw-preview">This preview</h2>\n<div class="lw-note lw-quarto-notice">{note}</div>\n{nav[1]}')
    return page_html("layerwise report (preview)", body, head=ERROR_RECORDER)
