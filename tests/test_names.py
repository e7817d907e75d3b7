"""One short name per measure (issue 24): the charts of the executed tiny-model chapters name every measure
by its registry short name (axes, legends, facet headers, legend entries), no old alias survives, and no
panel has more than 4 legend groups; the tables' row labels that name a measure (the Findings tables' and
page 1's) are registry short names, and no table carries a registry long description (the Methods'). The
chapters run once, on the fake study of ``tests/test_report.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from chart_specs import NON_MEASURE_TITLES, OLD_NAMES, chart_specs, legend_groups, short_names, titles
from layerwise.book import report
from layerwise.core import schema
from layerwise.words import claims, findings
from report_fakes import load_fake_study, write_params
from layerwise.book.render import HTML_BRANCH
from test_report import _InDir

MAX_LEGEND_GROUPS = 4


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("names")
    params = write_params(root / "params", "alpha", "Alpha model")
    with _InDir(root):
        report.run([params], out_dir=Path("report"), load_study=load_fake_study, preview=False, progress=False)
    return root


@pytest.fixture(scope="module")
def chapters(run_root) -> list[Path]:
    return [run_root / "report/alpha/geometry.ipynb", run_root / "report/alpha/probing.ipynb",
            run_root / "report/alpha/beyond.ipynb"]


_RULE = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


def pipe_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown pipe table of ``text``: (header cells, rows of cells)."""
    def cells(line: str) -> list[str]:
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    lines, out = text.splitlines(), []
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and _RULE.match(lines[i + 1].strip()):
            body = []
            for line in lines[i + 2:]:
                if not line.startswith("|"):
                    break
                body.append(cells(line))
            out.append((cells(lines[i]), body))
    return out


def _markdown_texts(notebook: Path) -> list[str]:
    """The Markdown a reader sees in an executed chapter: its Markdown cells and Markdown outputs (charts out)."""
    out = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        out += [cell.source] if cell.cell_type == "markdown" else []
        out += [md for o in cell.get("outputs", []) if (md := o.get("data", {}).get("text/markdown", ""))
                and HTML_BRANCH not in md]
    return out


def _tables(run_root, chapters) -> list[tuple[str, list[str], list[list[str]]]]:
    """(where, header, rows) of every pipe table of the executed chapters and of page 1 (summary.md)."""
    texts = [(nb.name, t) for nb in chapters for t in _markdown_texts(nb)]
    texts.append(("summary.md", (run_root / "report/_layerwise/summary.md").read_text(encoding="utf-8")))
    return [(where, head, rows) for where, t in texts for head, rows in pipe_tables(t)]


def _findings_table(head: list[str]) -> bool:
    """A Findings table (:meth:`Findings.table`) or its table of the statistics without a change (one column per
    outcome)."""
    return head == list(findings.TABLE_COLUMNS) or (
        head[:1] == ["statistic"] and len(head) > 1 and all(h.startswith(claims.OUTCOMES) for h in head[1:]))


def _specs(chapters):
    return [(nb.name, i, spec) for nb in chapters for i, spec in chart_specs(nb)]


def test_every_title_is_a_short_name_or_not_a_measure(chapters):
    allowed, specs = short_names() | NON_MEASURE_TITLES, _specs(chapters)
    assert len(specs) >= 20
    bad = [(nb, i, t) for nb, i, spec in specs for t in titles(spec) if t not in allowed]
    assert bad == [], "axis/legend titles that are neither a registry short name nor declared non-measures"


def test_legend_entries_of_measures_are_short_names(chapters):
    names = short_names()
    for nb, i, spec in _specs(chapters):
        for rows in spec.get("datasets", {}).values():
            for key in ("metric", "measure"):
                values = {r[key] for r in rows if r.get(key) is not None}
                assert values <= names, (nb, i, values - names)


def test_no_old_alias_in_any_chart(chapters):
    for nb, i, spec in _specs(chapters):
        text = json.dumps(spec)
        assert [o for o in OLD_NAMES if o in text] == [], (nb, i)


def test_at_most_four_legend_groups_per_panel(chapters):
    for nb, i, spec in _specs(chapters):
        assert legend_groups(spec) <= MAX_LEGEND_GROUPS, (nb, i)


def test_table_rows_naming_a_measure_are_short_names(run_root, chapters):
    """The ``statistic`` column of every Findings table and the clearest change of page 1's summary across the
    models name each measure by its registry short name."""
    names, tables = short_names(), _tables(run_root, chapters)
    found = [(where, rows) for where, head, rows in tables if _findings_table(head)]
    assert {w for w, _ in found} == {"geometry.ipynb", "probing.ipynb"} and len(found) >= 4
    bad = [(where, r[0]) for where, rows in found for r in rows if r[0] not in names]
    assert bad == [], "Findings rows that are not registry short names"
    summary = [rows for where, head, rows in tables if where == "summary.md" and "clearest change" in head]
    assert len(summary) == 1 and summary[0]
    column = next(h for _, h, _ in tables if "clearest change" in h).index("clearest change")
    for row in summary[0]:
        assert row[column] == "none" or row[column].split(": ")[0] in names, row


def test_no_long_description_in_any_table(run_root, chapters):
    """The registry's long descriptions belong to the Methods: no cell of any table of the chapters or page 1
    carries one."""
    descriptions = {m.description for m in schema.REGISTRY}
    tables = _tables(run_root, chapters)
    assert len(tables) >= 8
    bad = [(where, d) for where, head, rows in tables for cell in [*head, *(c for r in rows for c in r)]
           for d in descriptions if d in cell]
    assert bad == []
