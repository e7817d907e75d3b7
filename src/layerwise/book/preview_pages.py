"""The pages of the preview that are not notebooks (the index, Methods, Reproduce) and what every page
shares: navigation at the top and bottom, a contents list of the page's ``##`` sections, no "¶" anchor
glyphs.

The Methods and Reproduce pages are the book's Quarto Markdown (``chapters/*.qmd``) rendered with
nbconvert's Markdown renderer (mistune), after the Quarto-only syntax is resolved:
``{{< include path >}}`` and the project's ``{{< lw-include path >}}`` (generated files, read from the
report folder being previewed), ``:::`` divs (HTML-only
content kept, content for other formats dropped, callouts as note boxes), ``@fig-...`` references and
links to ``.qmd``/``.ipynb`` pages (to their preview pages). Math stays TeX source (the preview adds
no math library): display math in a block, inline math as code.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..core.repro import PROJECT_ROOT

#: The static pages of the book, as the preview shows them: (page, source under the project root).
APPENDICES = (("methods.html", "chapters/methods.qmd"), ("reproduce.html", "chapters/reproduce.qmd"))
INTRO = "chapters/index.qmd"

_ANCHOR_RE = re.compile(r'<a class="anchor-link" href="[^"]*">.*?</a>', re.S)
_H2_RE = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', re.S)
TOC_SLOT = '<div class="lw-toc-slot"></div>'
_DIV_OPEN_RE = re.compile(r"^(:{3,})\s*\{([^}]*)\}\s*$")
_DIV_CLOSE_RE = re.compile(r"^(:{3,})\s*$")
#: ``include`` (path relative to the page) and ``lw-include`` (the project's shortcode for generated files,
#: path relative to the project: ``_extensions/lw-include``)
_INCLUDE_RE = re.compile(r"\{\{<\s*(lw-include|include)\s+(\S+)\s*>\}\}")
#: a heading's Quarto attributes (``## Title {.unnumbered}``), which the preview drops
_HEADING_ATTRS_RE = re.compile(r"^(#{1,6} [^\n{]*?)\s*\{[^}\n]*\}[ \t]*$", re.M)
_SHORTCODE_RE = re.compile(r"\{\{<.*?>\}\}")
_LINK_RE = re.compile(r"\[([^\]]+)\]\(([^)\s#]+\.(?:qmd|ipynb))(#[^)\s]*)?\)")
_URL_RE = re.compile(r"(?<![<(\"])(https?://[^\s)<>]+?)([.,;]?)(\s|\)|$)")
_DISPLAY_MATH_RE = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH_RE = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])")
_CODE_RE = re.compile(r"(```.*?```|`+[^`\n]*`+)", re.S)

CSS = """
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  .lw-page { max-width: 900px; margin: 2em auto; line-height: 1.5; padding: 0 1em; }
  .lw-page table { border-collapse: collapse; } .lw-page td, .lw-page th { border: 1px solid #ccc; padding: 0.2em 0.5em; }
  .lw-page pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
  .lw-nav { font-family: system-ui, sans-serif; padding: 0.6em 0; margin: 1em 0; display: flex; gap: 1.5em;
            border-top: 1px solid #ddd; border-bottom: 1px solid #ddd; }
  .lw-nav .lw-next { margin-left: auto; }
  .lw-toc { background: #f7f7f9; border: 1px solid #e3e3e8; padding: 0.5em 1.2em; margin: 1em 0; }
  .lw-toc ol { margin: 0.3em 0; }
  .lw-note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1em; margin: 1em 0; }
  .lw-caption { color: #333; margin: 0.3em 0 1.4em 0; }
  .lw-figure { margin: 0; } .lw-chart { max-width: 100%; overflow-x: auto; }
  .lw-math { background: #f6f6f6; padding: 0.4em 0.6em; white-space: pre-wrap; }
  code.lw-math { padding: 0 0.2em; }
  a.anchor-link { display: none; }
"""


def nav_html(pages: list[dict], i: int, where: str = "top") -> str:
    """Previous / Contents / next links of page ``i`` of ``pages`` (dicts with "page" and "title")."""
    links = []
    if i > 0:
        prev = pages[i - 1]
        links.append(f'<a class="lw-prev" href="{html.escape(prev["page"], quote=True)}">&larr; '
                     f'{html.escape(prev["title"])}</a>')
    if "index.html" not in {pages[i]["page"], pages[i - 1]["page"] if i > 0 else ""}:
        links.append('<a class="lw-contents" href="index.html">Contents</a>')
    if i + 1 < len(pages):
        nxt = pages[i + 1]
        links.append(f'<a class="lw-next" href="{html.escape(nxt["page"], quote=True)}">'
                     f'{html.escape(nxt["title"])} &rarr;</a>')
    return f'<nav class="lw-nav lw-nav-{where}">{"".join(links)}</nav>'


def finish_html(text: str) -> str:
    """A page's final HTML: the "¶" anchor links dropped, the contents slot filled with the page's
    ``##`` sections (or removed when it has none)."""
    text = _ANCHOR_RE.sub("", text)
    items = []
    for hid, inner in _H2_RE.findall(text):
        label = html.unescape(re.sub(r"<[^>]+>", "", inner)).strip()
        if label:
            items.append(f'<li><a href="#{hid}">{html.escape(label)}</a></li>')
    toc = (f'<nav class="lw-toc"><strong>On this page</strong><ol>{"".join(items)}</ol></nav>'
           if items else "")
    return text.replace(TOC_SLOT, toc, 1).replace(TOC_SLOT, "")


def _fenced_divs(text: str) -> str:
    """Quarto's ``:::`` divs: content for other formats than HTML dropped, HTML-only content kept,
    callouts as note boxes, other divs as plain ``<div>`` with their classes."""
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # (closing HTML, content dropped)
    for line in text.split("\n"):
        opening, closing = _DIV_OPEN_RE.match(line), _DIV_CLOSE_RE.match(line)
        dropped = any(d for _, d in stack)
        if opening:
            attrs = opening.group(2)
            drop = "unless-format=\"html\"" in attrs or re.search(r'when-format="(?!html")', attrs) is not None
            classes = [c for c in re.findall(r"\.([\w-]+)", attrs) if c != "content-visible"]
            if drop or not classes:
                stack.append(("", drop))
                continue
            cls = "lw-note" if any(c.startswith("callout") for c in classes) else " ".join(classes)
            stack.append(("\n</div>\n", False))
            if not dropped:
                out.append(f'\n<div class="{html.escape(cls, quote=True)}">\n')
        elif closing and stack:
            end, _ = stack.pop()
            if not dropped and end:
                out.append(end)
        elif not dropped:
            out.append(line)
    return "\n".join(out)


def _includes(text: str, source: Path, report_dir: Path) -> str:
    """``{{< include path >}}`` (relative to ``source``) and ``{{< lw-include path >}}`` (relative to the
    project) replaced by the file's text (a path into the project's ``report/`` is read from
    ``report_dir``, the report being previewed); other shortcodes dropped."""
    def one(m: re.Match) -> str:
        kind, name = m.groups()
        path = ((PROJECT_ROOT if kind == "lw-include" else source.parent) / name).resolve()
        try:
            path = Path(report_dir) / path.relative_to((PROJECT_ROOT / "report").resolve())
        except ValueError:
            pass
        if not path.is_file():
            return f"*(`{name}` is written by `layerwise run`; it is not there yet.)*"
        return path.read_text(encoding="utf-8")

    return _SHORTCODE_RE.sub("", _INCLUDE_RE.sub(one, text))


def _links(text: str, link_map: dict[str, str]) -> str:
    """Links to ``.qmd``/``.ipynb`` pages pointed at their preview pages (by the end of their path),
    links to pages the preview does not have reduced to their text."""
    def one(m: re.Match) -> str:
        target = m.group(2).lstrip("./")
        page = next((p for src, p in link_map.items() if src.endswith(target) or target.endswith(src)), None)
        return f"[{m.group(1)}]({page}{m.group(3) or ''})" if page else m.group(1)

    return _LINK_RE.sub(one, text)


def _math(text: str) -> tuple[str, dict[str, str]]:
    """TeX math replaced by placeholders (restored after the Markdown is rendered, so that its
    underscores and stars stay TeX): display math as a block, inline math as code; bare URLs linked
    (outside code)."""
    saved: dict[str, str] = {}

    def keep(snippet: str) -> str:
        key = f"LWMATH{len(saved)}X"
        saved[key] = snippet
        return key

    def outside_code(part: str) -> str:
        part = _DISPLAY_MATH_RE.sub(lambda m: "\n\n" + keep(
            f'<pre class="lw-math" title="TeX">{html.escape(m.group(1).strip())}</pre>') + "\n\n", part)
        part = _INLINE_MATH_RE.sub(lambda m: keep(
            f"<var>{m.group(1)}</var>" if re.fullmatch(r"[A-Za-z]", m.group(1)) else
            f'<code class="lw-math" title="TeX">{html.escape(m.group(1))}</code>'), part)
        return _URL_RE.sub(r"<\1>\2\3", part)

    parts = _CODE_RE.split(text)
    return "".join(p if i % 2 else outside_code(p) for i, p in enumerate(parts)), saved


def markdown_html(text: str, *, source: Path | None = None, report_dir: Path | None = None,
                  link_map: dict[str, str] | None = None, refs: dict | None = None, page: str = "") -> str:
    """Quarto Markdown (a ``.qmd`` page or a fragment) as preview HTML: front matter dropped, Quarto
    syntax resolved (see the module doc), bare URLs linked, then nbconvert's Markdown renderer."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from .preview_figures import link_refs

    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    if source is not None:
        text = _includes(text, source, report_dir or PROJECT_ROOT / "report")
    text = _HEADING_ATTRS_RE.sub(r"\1", text)
    text = _links(_fenced_divs(text), link_map or {})
    text = link_refs(text, refs or {}, page)
    text, saved = _math(text)
    out = markdown2html_mistune(text)
    for key, snippet in saved.items():
        out = out.replace(f"<p>{key}</p>", snippet).replace(key, snippet)
    return out


def page_title(path: Path, default: str) -> str:
    """The ``title:`` of a ``.qmd`` file's front matter, else ``default``."""
    import yaml

    m = re.match(r"\A---\n(.*?)\n---\n", path.read_text(encoding="utf-8"), flags=re.S) if path.is_file() else None
    try:
        data = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError:
        data = None
    return str(data.get("title")) if isinstance(data, dict) and data.get("title") else default


def page_html(title: str, body: str, *, head: str = "") -> str:
    """A standalone preview page (index, Methods, Reproduce) with the shared style."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
{head}
<style type="text/css">{CSS}</style>
</head>
<body>
<main class="lw-page">
{body}
</main>
</body>
</html>
"""


def demote_headings(text: str) -> str:
    """Markdown headings one level down (``##`` becomes ``###``), outside fenced code."""
    parts = re.split(r"(```.*?```)", text, flags=re.S)
    return "".join(p if i % 2 else re.sub(r"^(#{1,5}) ", r"#\1 ", p, flags=re.M) for i, p in enumerate(parts))
