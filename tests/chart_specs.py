"""What the executed chapters' charts say, read from their Vega-Lite specs (the HTML branch of each chart
output): the axis, legend and header titles, the legend entries, and the legend groups of each panel.
``tests/test_names.py`` checks them against the metric registry's short names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat

from layerwise.book.render import HTML_BRANCH, html_branch
from layerwise.core import schema

_SPEC = re.compile(r"var spec = (\{.*?\});\n", re.S)
#: titles that name no measure: the axes of layers, counts, units, and the charts' own scales
NON_MEASURE_TITLES = {
    "layer", "layer (0 = embeddings)", "relative depth (layer / last layer)", "layer (first state)",
    "layer (second state)", "state", "model", "seed", "class", "measure", "series", "value", "density",
    "optimisation step", "the seed's test accuracy", "dimension (by rank)", "share of the expected cosine",
    "cosine to reference", "cosine to own centroid", "cosine to other centroid", "test accuracy",
    "effect / max |effect| of the row", "fraction of training", "accuracy change (points)", "set back to pretrained",
    "domain", *{m.unit for m in schema.REGISTRY},
}
#: the old long names and aliases of measures that no chart may show any more
OLD_NAMES = ("within-sentence cosine", "baseline (random pairs)", "adjusted (cosine - baseline)", "raw trace",
             "scale-free trace", "uncentred (original study)", "mean L2 norm", "IsoScore (0 to 1)",
             "trace of the token covariance", "variance of the cosines", "pairwise cosine", "top-3 share",
             "compression (uniform code / online code)", "unseen (probe pool)", "adjusted (minus baseline)",
             "CKA with pretrained", "cosine, raw", "baseline, standardised", "\"permuted labels\"",
             "\"probe accuracy\"", "median cosine", "cosine - baseline")


def short_names() -> set[str]:
    """Every registry short name, with and without the words of each of its suffixes."""
    names = set()
    for m in schema.REGISTRY:
        names.add(m.label)
        names |= {schema.label(m.name + s) for s in m.suffixes}
    names |= {schema.label(m) for m in schema.PER_SENTENCE_SPECS} | {schema.label(m + "_content") for m in schema.PER_SENTENCE_SPECS}
    return names


def chart_specs(notebook: Path) -> Iterator[tuple[int, dict]]:
    """(cell index, Vega-Lite spec) of every chart output of an executed chapter."""
    nb = nbformat.read(notebook, as_version=4)
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            md = o.get("data", {}).get("text/markdown", "")
            if HTML_BRANCH in md:
                yield i, json.loads(_SPEC.search(html_branch(md)).group(1))


def _walk(node) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


LEGEND_CHANNELS = ("color", "fill", "stroke", "strokeDash", "shape", "opacity", "size")


def titles(spec: dict) -> list[str]:
    """The titles of every encoding channel (axes, legends, facet headers) that has one."""
    out = []
    for node in _walk(spec):
        for ch in ("x", "y", "row", "column", "facet", *LEGEND_CHANNELS):
            enc = node.get(ch) if "field" not in node else None
            if isinstance(enc, dict) and isinstance(enc.get("title"), str) and "field" in enc:
                out.append(enc["title"])
    return out


def legend_groups(spec: dict) -> int:
    """The most legend entries one panel shows: per faceted panel, the distinct values of every field with a
    legend (a field that several channels share counts once); a ``seed`` field counts as one group."""
    fields = set()
    for node in _walk(spec):
        for ch in LEGEND_CHANNELS:
            enc = node.get(ch)
            if isinstance(enc, dict) and "field" in enc and enc.get("legend", {}) is not None \
                    and enc.get("type") == "nominal":
                fields.add(enc["field"])
    facet = [spec.get("facet", {}).get(k, {}).get("field") for k in ("row", "column")] if "row" in spec.get("facet", {}) \
        or "column" in spec.get("facet", {}) else [spec.get("facet", {}).get("field")]
    facet = [f for f in facet if f]
    most = 0
    for rows in spec.get("datasets", {}).values():
        panels: dict[tuple, dict[str, set]] = {}
        for r in rows:
            key = tuple(r.get(f) for f in facet)
            for f in fields:
                if r.get(f) is not None and f in r:
                    panels.setdefault(key, {}).setdefault(f, set()).add("seed" if f == "seed" else r[f])
        most = max([most, *[sum(len(v) for v in p.values()) for p in panels.values()]])
    return most
