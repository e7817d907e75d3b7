"""Offline rendering of Altair charts: one Jupyter output bundle per chart, with no network.

* ``text/html``: a ``<div>`` with a unique id and a small script calling ``vegaEmbed`` on it. The
  Vega, Vega-Lite and vega-embed libraries are not loaded from a CDN: they come from the bundle shipped
  inside ``vl-convert-python`` (``vl_convert.javascript_bundle``) and are inlined ONCE per kernel (that
  is, once per executed notebook / chapter page), in the output of the first chart shown;
* ``image/svg+xml``: the same chart drawn by ``vl_convert.vegalite_to_svg`` (no browser, no network),
  which is what Quarto's typst/PDF output and any non-HTML viewer use;
* ``text/plain``: the chart's title.

:func:`enable` registers this as Altair's ``layerwise`` renderer (the chapters call it through
``charts.enable()``), so that a chart left as a cell's last expression is shown by :func:`mimebundle`.
The chart grammar itself is in :mod:`layerwise.charts`.
"""

from __future__ import annotations

import html as html_lib
import itertools
import json
import re

import altair as alt

from .errors import LayerwiseError

#: Altair refuses to embed more rows than this (``MaxRowsError``); our charts stay well below.
MAX_ROWS = 5000

HTML_MIME = "text/html"
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


def reset_library() -> None:
    """Forget that the libraries were emitted (the next chart output inlines them again)."""
    global _LIBRARY_EMITTED
    _LIBRARY_EMITTED = False


def _spec(chart: alt.TopLevelMixin | dict) -> dict:
    """The Vega-Lite spec (dict) of a chart, validated by Altair (which enforces its row limit)."""
    return chart if isinstance(chart, dict) else chart.to_dict()


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
    from .repro import content_hash

    spec = _spec(chart)
    rows = chart_rows(spec)
    if rows > MAX_ROWS:
        raise LayerwiseError(f"the chart embeds {rows} data rows (more than {MAX_ROWS})", "render.mimebundle",
                             "aggregate first (quantiles, bins, means) or sample")
    if include_library is None:
        include_library = not _LIBRARY_EMITTED
    element_id = element_id or f"lw-chart-{content_hash(spec, 10)}-{next(_COUNTER)}"
    bundle = {HTML_MIME: chart_html(spec, element_id, include_library=include_library),
              SVG_MIME: to_svg(spec)}
    title = spec.get("title")
    bundle["text/plain"] = f"<chart: {title.get('text') if isinstance(title, dict) else title or 'untitled'}>"
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
