"""Offline rendering of Altair charts: one Jupyter output bundle per chart, with no network.

In an executed chapter (``layerwise run`` sets :data:`FIGURE_DIR_ENV`, :data:`LIBRARY_URL_ENV` and
:data:`FIGURE_STEM_ENV` for the kernel) a chart's output is ONE ``text/markdown`` bundle, never
``text/html`` (Quarto treats any ``text/html`` output as a widget and loads require.js and jQuery from a
CDN): a ``::: {.content-visible when-format="html"}`` div with the chart as a raw ```` ```{=html} ````
block (a ``<script src>`` of the Vega bundle file written by :func:`write_library`, never inlined, then
the chart's div and script), and a ``::: {.content-visible unless-format="html"}`` div with
``![](<stem>-<id>.svg)``, the SVG written next to the notebook (the PDF's figure). Tables are
Markdown (:func:`markdown_table`). Outside a run (interactive Jupyter) the older bundle is used:

* ``text/html``: a ``<div>`` with a unique id and a small script calling ``vegaEmbed`` on it. The
  Vega, Vega-Lite and vega-embed libraries are not loaded from a CDN: they come from the bundle shipped
  inside ``vl-convert-python`` (``vl_convert.javascript_bundle``) and are inlined ONCE per kernel (that
  is, once per executed notebook / chapter page), in the output of the first chart shown;
* ``image/svg+xml``: the same chart drawn by ``vl_convert.vegalite_to_svg`` (no browser, no network),
  which is what Quarto's typst/PDF output and any non-HTML viewer use;
* ``text/plain``: the chart's title.

:func:`enable` registers this as Altair's ``layerwise`` renderer (the chapters call it through
``charts.enable()``), so that a chart left as a cell's last expression is shown by :func:`mimebundle`.
The chart grammar itself is in :mod:`layerwise.book.charts`.
"""

from __future__ import annotations

import html as html_lib
import itertools
import json
import os
import re

import altair as alt

from pathlib import Path

from ..core.errors import LayerwiseError
from ..words.markdown import markdown_table

#: Altair refuses to embed more rows than this (``MaxRowsError``); our charts stay well below.
MAX_ROWS = 5000

HTML_MIME = "text/html"
MARKDOWN_MIME = "text/markdown"
#: set by :func:`layerwise.book.notebooks.execute` for the kernel: the folder the executed notebook goes to
#: (the SVGs are written there), the URL of the Vega bundle file relative to it, the SVG file-name stem
FIGURE_DIR_ENV = "LAYERWISE_FIGURE_DIR"
LIBRARY_URL_ENV = "LAYERWISE_VEGA_URL"
FIGURE_STEM_ENV = "LAYERWISE_FIGURE_STEM"
#: the Vega + Vega-Lite + vega-embed bundle, one file per report (``report/_layerwise/vega/``)
LIBRARY_FILE = "vega-bundle.js"
#: the markers of the two branches of a chart's Markdown output
HTML_BRANCH = '::: {.content-visible when-format="html"}'
OTHER_BRANCH = '::: {.content-visible unless-format="html"}'
SVG_MIME = "image/svg+xml"
CHART_CLASS = "lw-chart"

# Per-kernel state: whether the libraries were already inlined, the chart counter (unique element ids)
# and the cached JavaScript bundle.
_LIBRARY_EMITTED = False
_COUNTER = itertools.count(1)
_BUNDLE_CACHE: dict[str, str] = {}


def _vl_version() -> str | None:
    """The Vega-Lite version Altair targets, as vl-convert names it (``"6.4"``), or None (latest)."""
    import vl_convert as vlc

    m = re.match(r"v?(\d+)\.(\d+)", alt.SCHEMA_VERSION)
    if not m:
        return None
    want = f"{m.group(1)}.{m.group(2)}"
    return want if want in vlc.get_vegalite_versions() else None


def javascript_bundle() -> str:
    """Vega + Vega-Lite + vega-embed as one script (from ``vl_convert.javascript_bundle``, no network),
    wrapped in a function so that its top-level names cannot clash with other scripts on the page, and
    guarded so that a second copy does nothing."""
    if "js" not in _BUNDLE_CACHE:
        import vl_convert as vlc

        js = vlc.javascript_bundle(vl_version=_vl_version())
        js = js.replace("</script", "<\\/script").replace("<!--", "<\\!--")
        _BUNDLE_CACHE["js"] = "if (!window.vegaEmbed) { (function () {\n" + js + "\n})(); }"
    return _BUNDLE_CACHE["js"]


def library_html() -> str:
    """The ``<script>`` element that defines ``window.vegaEmbed`` offline."""
    return f'<script type="text/javascript" data-lw-library="vega">\n{javascript_bundle()}\n</script>'


def write_library(directory: str | Path) -> Path:
    """Write the Vega bundle (:func:`javascript_bundle`) to ``directory/vega-bundle.js`` unless it is
    already there with the same text; the book lists it under ``resources:`` and every chapter page
    loads it with ``<script src>``."""
    from .files import write_if_changed

    path = Path(directory) / LIBRARY_FILE
    write_if_changed(path, javascript_bundle())
    return path


def library_tag(url: str) -> str:
    """The ``<script src>`` element that loads the Vega bundle file (relative ``url``)."""
    return f'<script type="text/javascript" src="{html_lib.escape(url, quote=True)}" data-lw-library="vega"></script>'


def markdown_output(spec: dict, element_id: str, *, figure_dir: str | Path, library_url: str, stem: str,
                    include_library: bool) -> dict[str, str]:
    """The chart as one ``text/markdown`` output with an HTML branch (raw HTML block: the library's
    ``<script src>`` when asked, the chart's div and script) and a non-HTML branch (the SVG, written to
    ``figure_dir/<stem>-<element_id>.svg``)."""
    name = f"{stem}-{element_id}.svg"
    Path(figure_dir).mkdir(parents=True, exist_ok=True)
    (Path(figure_dir) / name).write_text(to_svg(spec), encoding="utf-8")
    body = (library_tag(library_url) + "\n" if include_library else "") + chart_html(spec, element_id,
                                                                                     include_library=False)
    md = (f"{HTML_BRANCH}\n\n```{{=html}}\n{body}\n```\n\n:::\n\n"
          f"{OTHER_BRANCH}\n\n![]({name})\n\n:::\n")
    return {MARKDOWN_MIME: md}


def html_branch(markdown: str) -> str | None:
    """The raw HTML of a chart's Markdown output (its HTML branch), or None when it is not one."""
    m = re.search(re.escape(HTML_BRANCH) + r"\s*```\{=html\}\n(.*?)\n```\s*:::", markdown, flags=re.S)
    return m.group(1) if m else None


def reset_library() -> None:
    """Forget that the libraries were emitted (the next chart output inlines them again)."""
    global _LIBRARY_EMITTED
    _LIBRARY_EMITTED = False


def _spec(chart: alt.TopLevelMixin | dict) -> dict:
    """The Vega-Lite spec (dict) of a chart, validated by Altair (which enforces its row limit), with
    legends below the plot and never cut (``labelLimit`` 0), so that a chart fits the text column."""
    spec = chart if isinstance(chart, dict) else chart.to_dict()
    legend = spec.setdefault("config", {}).setdefault("legend", {})
    legend.setdefault("orient", "bottom")
    legend.setdefault("labelLimit", 0)
    legend.setdefault("direction", "vertical")
    return spec


def chart_rows(chart: alt.TopLevelMixin | dict) -> int:
    """Total number of data rows embedded in a chart's spec (inline datasets and values)."""
    spec = _spec(chart)
    total = sum(len(v) for v in spec.get("datasets", {}).values())

    def walk(node):
        """Count the rows of inline ``data.values`` anywhere in the spec."""
        nonlocal total
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and isinstance(data.get("values"), list):
                total += len(data["values"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in spec.items() if k != "datasets"})
    return total


def to_svg(chart: alt.TopLevelMixin | dict) -> str:
    """The chart as a static SVG (vl-convert; no browser, no network)."""
    import vl_convert as vlc

    try:
        return vlc.vegalite_to_svg(_spec(chart), vl_version=_vl_version())
    except Exception as exc:  # vl-convert raises ValueError with the Vega error
        raise LayerwiseError(f"could not draw the chart as SVG: {exc}", "render.to_svg",
                             "check the chart's data and encodings") from None


def chart_html(spec: dict, element_id: str, *, include_library: bool) -> str:
    """The offline HTML of one chart: a div with a unique id, a script that calls ``vegaEmbed`` on it
    (SVG renderer, no editor/CDN actions) and, when asked, the inlined libraries before it. A failure
    is recorded on the div (``data-lw-error``) and reported with ``console.error``."""
    payload = json.dumps(spec, separators=(",", ":"), sort_keys=True, default=str)
    payload = payload.replace("</", "<\\/").replace("<!--", "<\\!--")
    title = spec.get("title")
    label = title.get("text") if isinstance(title, dict) else title
    aria = html_lib.escape(str(label or "chart"), quote=True)
    script = f"""<script type="text/javascript">
(function () {{
  var el = document.getElementById("{element_id}");
  var spec = {payload};
  function fail(err) {{
    el.setAttribute("data-lw-error", String(err));
    el.appendChild(document.createTextNode("This chart could not be drawn: " + err));
    console.error("layerwise chart {element_id}: " + err);
  }}
  function draw() {{
    if (!window.vegaEmbed) {{ fail("the Vega libraries are not loaded on this page"); return; }}
    window.vegaEmbed(el, spec, {{renderer: "svg", actions: false}}).then(function () {{
      el.setAttribute("data-lw-rendered", "true");
    }}).catch(fail);
  }}
  if (window.vegaEmbed || document.readyState === "complete") {{ draw(); }}
  else {{ window.addEventListener("load", draw); }}
}})();
</script>"""
    div = f'<div class="{CHART_CLASS}" id="{element_id}" role="img" aria-label="{aria}"></div>'
    return (library_html() + "\n" if include_library else "") + div + "\n" + script


def mimebundle(chart: alt.TopLevelMixin | dict, *, include_library: bool | None = None,
               element_id: str | None = None) -> dict[str, str]:
    """The output bundle of one chart: ``text/html`` (offline, libraries inlined on the first chart
    of the kernel unless ``include_library`` says otherwise), ``image/svg+xml`` and ``text/plain``."""
    global _LIBRARY_EMITTED
    from ..core.repro import content_hash

    spec = _spec(chart)
    rows = chart_rows(spec)
    if rows > MAX_ROWS:
        raise LayerwiseError(f"the chart embeds {rows} data rows (more than {MAX_ROWS})", "render.mimebundle",
                             "aggregate first (quantiles, bins, means) or sample")
    if include_library is None:
        include_library = not _LIBRARY_EMITTED
    element_id = element_id or f"lw-chart-{content_hash(spec, 10)}-{next(_COUNTER)}"
    title = spec.get("title")
    plain = f"<chart: {title.get('text') if isinstance(title, dict) else title or 'untitled'}>"
    if os.environ.get(FIGURE_DIR_ENV):
        bundle = markdown_output(spec, element_id, figure_dir=os.environ[FIGURE_DIR_ENV],
                                 library_url=os.environ.get(LIBRARY_URL_ENV, LIBRARY_FILE),
                                 stem=os.environ.get(FIGURE_STEM_ENV, "chart"), include_library=include_library)
        _LIBRARY_EMITTED = _LIBRARY_EMITTED or include_library
        return {**bundle, "text/plain": plain}
    bundle = {HTML_MIME: chart_html(spec, element_id, include_library=include_library),
              SVG_MIME: to_svg(spec)}
    bundle["text/plain"] = plain
    if include_library:
        _LIBRARY_EMITTED = True
    return bundle


def _renderer(spec: dict, **metadata) -> dict[str, str]:
    """The Altair renderer function behind :func:`enable`."""
    return mimebundle(spec)


def enable() -> None:
    """Register and enable the ``layerwise`` Altair renderer, so that a chart left as a cell's last
    expression is displayed by :func:`mimebundle` (offline HTML + SVG)."""
    alt.renderers.register("layerwise", _renderer)
    alt.renderers.enable("layerwise")
    _markdown_tables()


def _markdown_tables() -> None:
    """In an IPython kernel, show DataFrames as Markdown tables only (no ``text/html`` output)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    import pandas as pd

    ip = get_ipython()
    if ip is None:
        return
    formatters = ip.display_formatter.formatters
    formatters[HTML_MIME].for_type(pd.DataFrame, lambda df: None)
    formatters[MARKDOWN_MIME].for_type(pd.DataFrame, markdown_table)
