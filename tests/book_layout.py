"""The layout limits of an executed chapter, read from the notebook papermill wrote (no Quarto needed):

- every chart's SVG (the PDF's figure, written next to the notebook; the HTML draws the same spec) is at
  most :data:`layerwise.book.charts.BOOK_COLUMN` px wide: the book's HTML text column at a 1280 px viewport;
- every Markdown pipe table the PDF shows (in a Markdown cell, or in a ``text/markdown`` output outside
  its HTML-only branch) has at most :data:`layerwise.words.markdown.MAX_TABLE_COLUMNS` columns: wider tables do
  not fit A4.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from layerwise.book.charts import BOOK_COLUMN
from layerwise.book.render import HTML_BRANCH, OTHER_BRANCH
from layerwise.words.markdown import MAX_TABLE_COLUMNS

_SVG_RE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.svg)\)")
_WIDTH_RE = re.compile(r'<svg[^>]*\swidth="([\d.]+)')
_RULE_RE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def pdf_markdown(markdown: str) -> str:
    """The part of a chart-or-table Markdown output the PDF shows: everything but its HTML-only branch."""
    if HTML_BRANCH not in markdown:
        return markdown
    before, rest = markdown.split(HTML_BRANCH, 1)
    return before + (OTHER_BRANCH + rest.split(OTHER_BRANCH, 1)[1] if OTHER_BRANCH in rest else "")


def table_widths(markdown: str) -> list[int]:
    """The number of columns of every pipe table in ``markdown`` (read from its separator row)."""
    return [len(line.strip().strip("|").split("|")) for line in markdown.splitlines()
            if _RULE_RE.match(line.strip()) and "|" in line]


def svg_width(path: Path) -> float:
    return float(_WIDTH_RE.search(path.read_text(encoding="utf-8")).group(1))


def layout_problems(notebook: Path) -> tuple[list[str], int, int]:
    """(problems, charts checked, tables checked) of one executed chapter."""
    nb = nbformat.read(notebook, as_version=4)
    problems, charts, tables = [], 0, 0
    for i, cell in enumerate(nb.cells):
        texts = [cell.source] if cell.cell_type == "markdown" else [
            _text(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", [])]
        for text in texts:
            shown = pdf_markdown(text)
            for n in table_widths(shown):
                tables += 1
                if n > MAX_TABLE_COLUMNS:
                    problems.append(f"{notebook.name} cell {i}: a table of {n} columns (at most {MAX_TABLE_COLUMNS})")
            for name in _SVG_RE.findall(shown):
                charts += 1
                width = svg_width(notebook.parent / name)
                if width > BOOK_COLUMN:
                    problems.append(f"{notebook.name} cell {i}: chart {name} is {width:.0f} px wide "
                                    f"(the column: {BOOK_COLUMN} px)")
    return problems, charts, tables


#: what an executed chapter may not print: a claim of no change that is not the answer model's equivalence
#: outcome "no change beyond δ" (issue 22: a failed test is not evidence of no change)
NO_CHANGE_RE = re.compile(r"\b(did not change|does not change|do not change|not changed|unchanged|no change"
                          r"(?! beyond δ))", re.I)


def no_change_problems(notebook: Path) -> list[str]:
    """Every place an executed chapter (Markdown cells and Markdown outputs) says "no change", "did not
    change", "unchanged" ... for anything but the equivalence outcome."""
    nb = nbformat.read(notebook, as_version=4)
    out = []
    for i, cell in enumerate(nb.cells):
        texts = [cell.source] if cell.cell_type == "markdown" else [
            _text(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", [])]
        for text in texts:
            out += [f"{notebook.name} cell {i}: {m.group(0)!r} in {text[max(0, m.start() - 80):m.end() + 40]!r}"
                    for m in NO_CHANGE_RE.finditer(text)]
    return out
