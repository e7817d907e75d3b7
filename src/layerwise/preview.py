"""A pip-only HTML preview of the executed chapters (nbconvert), readable offline.

``build_preview(report_dir)`` writes ``<report_dir>/preview/``: one self-contained HTML file per
executed chapter and an ``index.html`` linking them (with the book's introduction and the reproduce
information). nbconvert's ``lab`` template loads require.js, MathJax and mermaid from a CDN; the
template used here removes those three blocks (the charts bring their own libraries, inlined once per
page by :mod:`layerwise.charts`), hides the code (the notebooks in ``report/`` keep it) and adds a tiny
script that records script errors and ``console.error`` calls into the page
(``<html data-lw-errors="[...]">``), which the browser test reads.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import LayerwiseError
from .repro import PROJECT_ROOT, atomic_write_text

PREVIEW_DIR = "preview"
TEMPLATE_NAME = "layerwise_preview.html.j2"

#: Records uncaught errors (scripts, failed resource loads), unhandled rejections and console.error
#: into the ``data-lw-errors`` attribute of <html>, as a JSON list.
ERROR_RECORDER = """<script type="text/javascript">
(function () {
  var errors = [];
  function record(kind, message) {
    errors.push(kind + ": " + message);
    document.documentElement.setAttribute("data-lw-errors", JSON.stringify(errors));
  }
  document.documentElement.setAttribute("data-lw-errors", "[]");
  window.addEventListener("error", function (e) {
    var target = e.target && e.target !== window ? (e.target.src || e.target.href || e.target.tagName) : "";
    record("error", (e.message || "resource failed to load") + (target ? " [" + target + "]" : ""));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { record("unhandledrejection", String(e.reason)); });
  var original = console.error;
  console.error = function () {
    record("console.error", Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
})();
</script>"""

TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
""" + ERROR_RECORDER + """
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}
<style type="text/css">
  body { max-width: 1100px; margin: 0 auto; }
  .lw-nav { font-family: sans-serif; padding: 0.6em 0; border-bottom: 1px solid #ddd; margin-bottom: 1em; }
  .lw-nav a { margin-right: 1.5em; }
  .lw-caption { font-style: italic; color: #444; margin: 0.2em 0 1.2em 0; }
  .lw-chart { max-width: 100%; overflow-x: auto; }
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


_OPT_RE = re.compile(r"^#\|\s*(fig-cap|tbl-cap)\s*:\s*(.*)$", re.M)


def _caption(source: str) -> str | None:
    """The Quarto figure/table caption of a code cell (``#| fig-cap:``), as preview text."""
    import yaml

    m = _OPT_RE.search(source)
    if not m:
        return None
    try:
        value = yaml.safe_load(m.group(2))
    except yaml.YAMLError:
        value = m.group(2)
    kind = "Figure" if m.group(1) == "fig-cap" else "Table"
    return f"{kind}: {value}"


def prepare_for_preview(nb, *, title: str, nav: str):
    """The executed notebook as the preview shows it: the front matter becomes a title heading, a
    navigation line comes first, and each figure/table gets its Quarto caption below it."""
    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    if nb.cells and nb.cells[0].cell_type == "raw":
        nb.cells.pop(0)
    cells = [nbformat.v4.new_markdown_cell(nav), nbformat.v4.new_markdown_cell(f"# {title}")]
    for cell in nb.cells:
        _chart_outputs_as_html(cell)
        cells.append(cell)
        if cell.cell_type == "code" and cell.get("outputs"):
            cap = _caption(cell.source)
            if cap:
                cells.append(nbformat.v4.new_markdown_cell(f'<p class="lw-caption">{html.escape(cap)}</p>'))
    nb.cells = cells
    nb.metadata["title"] = title
    return nb


def _chart_outputs_as_html(cell) -> None:
    """nbconvert reads neither Quarto's ``:::`` divs nor ``{=html}`` blocks: a chart's Markdown output
    becomes its HTML branch (:func:`layerwise.render.html_branch`), with the Vega bundle inlined in
    place of its ``<script src>`` so that every preview page stands alone."""
    from .render import html_branch, library_html

    for out in cell.get("outputs", []) or []:
        md = (out.get("data") or {}).get("text/markdown")
        raw = html_branch(md) if isinstance(md, str) else None
        if raw is None:
            continue
        raw = re.sub(r'<script[^>]*data-lw-library="vega"[^>]*></script>', lambda m: library_html(), raw)
        out["data"] = {"text/html": raw}


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


def _markdown_text(text: str) -> str:
    """Markdown as HTML (code spans and links formatted, not shown as backticks)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(re.sub(r"(https?://[^\s)]+?)([.,;]?)(\s|\)|$)", r"<\1>\2\3", text))


def _markdown_page(path: Path) -> str:
    """A .qmd/.md page as HTML for the preview index (front matter, Quarto shortcodes and div fences
    dropped)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"\{\{<.*?>\}\}", "", text)
    text = re.sub(r"^:::.*$", "", text, flags=re.M)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\.qmd\)", r"\1", text)  # links to book pages
    return markdown2html_mistune(text)


def build_preview(report_dir: str | Path = "report") -> Path:
    """Convert every executed chapter under ``report_dir`` to one self-contained HTML file in
    ``report_dir/preview/`` and write ``index.html`` linking them; returns the index path."""
    import nbformat

    report_dir = Path(report_dir)
    items = _chapters(report_dir)
    if not items:
        raise LayerwiseError("no executed chapters to preview", str(report_dir),
                             "run `layerwise run` (or `make report`) first")
    out = report_dir / PREVIEW_DIR
    out.mkdir(parents=True, exist_ok=True)
    exporter = _exporter()
    pages = []
    for i, item in enumerate(items):
        name = (f"{item['model']}-{item['chapter']}" if item["model"] else item["chapter"]) + ".html"
        item["page"] = name
        pages.append(item)
    for i, item in enumerate(pages):
        nb = nbformat.read(report_dir / item["path"], as_version=4)
        title = _front_matter(nb).get("title") or item["title"]
        links = ['<a href="index.html">Contents</a>']
        if i > 0:
            links.append(f'<a href="{pages[i - 1]["page"]}">&larr; {html.escape(pages[i - 1]["title"])}</a>')
        if i + 1 < len(pages):
            links.append(f'<a href="{pages[i + 1]["page"]}">{html.escape(pages[i + 1]["title"])} &rarr;</a>')
        nav = f'<div class="lw-nav">{" ".join(links)}</div>'
        body, _ = exporter.from_notebook_node(prepare_for_preview(nb, title=title, nav=nav))
        atomic_write_text(out / item["page"], body)
    index = out / "index.html"
    atomic_write_text(index, _index_html(report_dir, pages))
    return index


def _index_html(report_dir: Path, pages: list[dict[str, Any]]) -> str:
    """The preview's index page: chapter links by model, the book's introduction, the reproduce data."""
    groups: list[tuple[str | None, list[dict[str, Any]]]] = []
    for p in pages:
        if not groups or groups[-1][0] != p["model_title"]:
            groups.append((p["model_title"], []))
        groups[-1][1].append(p)
    toc = []
    for model, items in groups:
        lis = "".join(f'<li><a href="{html.escape(p["page"])}">{html.escape(p["title"])}</a></li>' for p in items)
        toc.append((f"<h3>{html.escape(model)}</h3>" if model else "") + f"<ul>{lis}</ul>")
    intro = _markdown_page(PROJECT_ROOT / "chapters" / "index.qmd")
    findings = _markdown_page(report_dir / "_layerwise" / "summary.md")
    note = _markdown_text("This is the pip-only preview of the executed chapters (nbconvert, code hidden; the "
                          "notebooks with their code are in `report/`). " + QUARTO_HINT)
    reproduce = _markdown_page(report_dir / "_layerwise" / "reproduce.md")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>layerwise report (preview)</title>
{ERROR_RECORDER}
<style type="text/css">
  body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 2em auto; line-height: 1.5; padding: 0 1em; }}
  table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; }}
  pre {{ background: #f6f6f6; padding: 0.6em; overflow-x: auto; }}
  .lw-note {{ background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1em; }}
</style>
</head>
<body>
<h1>layerwise report: preview</h1>
<div class="lw-note">{note}</div>
<h2>Chapters</h2>
{''.join(toc)}
{findings}
<h2>About this report</h2>
{intro}
<h2>Reproduce</h2>
{reproduce}
</body>
</html>
"""
