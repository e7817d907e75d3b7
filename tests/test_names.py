"""One short name per measure (issue 24): the charts of the executed tiny-model chapters name every measure
by its registry short name (axes, legends, facet headers, legend entries), no old alias survives, and no
panel has more than 4 legend groups. The chapters run once, on the fake study of ``tests/test_report.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chart_specs import NON_MEASURE_TITLES, OLD_NAMES, chart_specs, legend_groups, short_names, titles
from layerwise.book import report
from report_fakes import load_fake_study, write_params
from test_report import _InDir

MAX_LEGEND_GROUPS = 4


@pytest.fixture(scope="module")
def chapters(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("names")
    params = write_params(root / "params", "alpha", "Alpha model")
    with _InDir(root):
        report.run([params], out_dir=Path("report"), load_study=load_fake_study, preview=False, progress=False)
    return [root / "report/alpha/geometry.ipynb", root / "report/alpha/probing.ipynb"]


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
