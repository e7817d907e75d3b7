"""Figures and tables of the preview: Quarto's cell options read from the chapter notebooks, figure
and table numbers per chapter, captions under the charts, and ``@fig-...``/``@tbl-...`` references
turned into links, as Quarto does for the book (where the numbers come from Quarto itself).

A code cell with ``#| label: fig-<name>`` (or ``tbl-<name>``) and visible output is numbered in the
order of its chapter: "Figure 1", "Figure 2", ... and, separately, "Table 1", ...; its ``fig-cap``
(``tbl-cap``) is shown as "Figure N: <caption>" under the chart (above a table, Quarto's default).
A reference to a label of any preview page links to it; an unknown one is shown as ``?@fig-x``, the
way Quarto shows it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .render import CHART_CLASS, html_branch

KINDS = {"fig": "Figure", "tbl": "Table"}
_OPTION_RE = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")
#: ``@fig-x`` (not an e-mail address, not inside a word); Quarto's ``[-@fig-x]`` form is not used here
_REF_RE = re.compile(r"(?<![\w@./-])@((?:fig|tbl)-[\w-]*[A-Za-z0-9_])")
_CODE_SPAN_RE = re.compile(r"(`+[^`]*`+)")
_LIBRARY_TAG_RE = re.compile(r'<script[^>]*data-lw-library="vega"[^>]*>(?:.*?</script>)?', re.S)


@dataclass(frozen=True)
class Ref:
    """A numbered figure or table: its label, kind ("Figure"/"Table"), number, caption and page."""

    label: str
    kind: str
    number: int
    caption: str | None
    page: str

    @property
    def name(self) -> str:
        """"Figure 3", "Table 1"."""
        return f"{self.kind} {self.number}"


def cell_options(source: str) -> dict:
    """The ``#| key: value`` options at the top of a code cell (values parsed as YAML)."""
    import yaml

    options = {}
    for line in source.splitlines():
        m = _OPTION_RE.match(line)
        if not m:
            break
        try:
            options[m.group(1)] = yaml.safe_load(m.group(2))
        except yaml.YAMLError:
            options[m.group(1)] = m.group(2)
    return options


def _visible(cell) -> bool:
    """Whether a code cell shows output (display data or a result)."""
    return any(o.get("output_type") in ("display_data", "execute_result") for o in cell.get("outputs") or [])


def number_figures(nb, page: str) -> dict[str, Ref]:
    """The numbered figures and tables of one chapter notebook, by label."""
    counts = dict.fromkeys(KINDS, 0)
    refs: dict[str, Ref] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or not _visible(cell):
            continue
        opts = cell_options(cell.source)
        label = opts.get("label")
        prefix = label.split("-", 1)[0] if isinstance(label, str) and "-" in label else None
        if prefix not in KINDS or label in refs:
            continue
        counts[prefix] += 1
        cap = opts.get(f"{prefix}-cap")
        refs[label] = Ref(label, KINDS[prefix], counts[prefix], None if cap is None else str(cap), page)
    return refs


def link_refs(text: str, refs: dict[str, Ref], page: str) -> str:
    """Markdown with every ``@fig-x``/``@tbl-x`` outside code spans replaced by a link "Figure N"
    (to the same page's anchor, or to another page's); an unknown label becomes ``?@fig-x``."""
    def one(m: re.Match) -> str:
        ref = refs.get(m.group(1))
        if ref is None:
            return f"?@{m.group(1)}"
        target = f"#{ref.label}" if ref.page == page else f"{ref.page}#{ref.label}"
        return f"[{ref.name}]({target})"

    parts = _CODE_SPAN_RE.split(text)
    return "".join(p if i % 2 else _REF_RE.sub(one, p) for i, p in enumerate(parts))


def caption_html(ref: Ref | None, caption: str | None) -> str:
    """"Figure N: caption" as inline HTML (the caption's Markdown rendered); "Figure N" alone when
    there is no caption; the bare caption for an unlabelled cell."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    text = ""
    if caption:
        text = markdown2html_mistune(caption).strip()
        text = re.sub(r"\A<p>(.*)</p>\Z", r"\1", text, flags=re.S)
    if ref is None:
        return text
    name = f"<strong>{html.escape(ref.name)}</strong>"
    return f"{name}: {text}" if text else name


def chart_outputs_as_html(cell) -> int:
    """nbconvert reads neither Quarto's ``:::`` divs nor ``{=html}`` blocks: a chart's Markdown output
    becomes its HTML branch (:func:`layerwise.book.render.html_branch`; the non-HTML branch, the SVG for
    the PDF, is dropped) without the Vega bundle's ``<script src>`` (each preview page loads its own
    copy once, in its head). Returns the number of chart outputs converted."""
    n = 0
    for out in cell.get("outputs", []) or []:
        md = (out.get("data") or {}).get("text/markdown")
        raw = html_branch(md) if isinstance(md, str) else None
        if raw is None:
            continue
        out["data"] = {"text/html": _LIBRARY_TAG_RE.sub("", raw).strip()}
        n += 1
    return n


def add_caption(cell, ref: Ref | None) -> tuple[list[str], list[str]]:
    """Put a numbered figure's caption under its chart (the chart output wrapped in a ``<figure>``
    whose id is the label); returns the HTML of the cells to add before and after the cell when the
    caption cannot go inside an output (a table's caption goes above it, Quarto's default)."""
    opts = cell_options(cell.source)
    kind = ref.label.split("-", 1)[0] if ref else next((k for k in KINDS if f"{k}-cap" in opts), None)
    caption = opts.get(f"{kind}-cap") if kind else None
    if kind is None or (ref is None and caption is None) or not _visible(cell):
        return [], []
    cap = caption_html(ref, None if caption is None else str(caption))
    anchor = f' id="{html.escape(ref.label, quote=True)}"' if ref else ""
    if kind == "tbl":
        return [f'<p class="lw-caption lw-table-caption"{anchor}>{cap}</p>'], []
    charts = [o for o in cell.get("outputs") or [] if f'class="{CHART_CLASS}"' in (o.get("data") or {}).get("text/html", "")]
    if not charts:
        return [], [f'<p class="lw-caption"{anchor}>{cap}</p>']
    last = charts[-1]["data"]
    last["text/html"] = (f'<figure class="lw-figure"{anchor}>\n{last["text/html"]}\n'
                         f'<figcaption class="lw-caption">{cap}</figcaption>\n</figure>')
    return [], []
