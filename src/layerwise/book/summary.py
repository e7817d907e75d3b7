"""Page 1 of the report (``_layerwise/summary.md``, included by the index; issue 23): for each model, what
fine-tuning changed layer by layer (:func:`layerwise.words.answer.model_answer`: three computed sentences, the
seed that stands apart, the layer x question table), the summary figure (:func:`layerwise.book.charts_answer.
summary_figure`, an SVG beside the page), the computed caveats that explain the results
(:func:`layerwise.words.caveats.caveat_list`), then the findings across the models and the limitations.

Every sentence is computed from the study on disk; nothing is typed by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import write_if_changed

#: where the page's figures are written, under the report's ``_layerwise`` folder
FIGURES = "figures"


def answer_figure(study, meta: Path, link_base: str) -> str:
    """Write the summary figure of ``study`` as ``<meta>/figures/<model>-answer.svg`` and return its Markdown
    image (path from ``link_base``, the report folder as the book's pages see it); "" when the study has
    nothing to draw."""
    from .charts_answer import summary_figure
    from .render import to_svg

    chart = summary_figure(study)
    if chart is None:
        return ""
    name = f"{study.params.name}-answer.svg"
    write_if_changed(meta / FIGURES / name, to_svg(chart))
    return (f"![{study.params.display_name}: similarity to the pretrained model and probe accuracy per layer]"
            f"({link_base}/{meta.name}/{FIGURES}/{name})")


def model_section(study, meta: Path, link_base: str, heading: bool) -> list[str]:
    """One model's part of page 1: the answer's sentences, the figure, the layer table with its legend and the
    caveats."""
    from ..words.answer import TABLE_WIDTHS, model_answer
    from ..words.beyond import page_lines as beyond_lines
    from ..words.caveats import caveats_markdown
    from ..words.markdown import markdown_table

    a = model_answer(study)
    lines = [f"### {a.title}", ""] if heading else []
    lines += [*(f"{s}\n" for s in a.sentences), *([a.seed_note, ""] if a.seed_note else [])]
    figure = answer_figure(study, meta, link_base)
    lines += [figure, ""] if figure else []
    lines += [markdown_table(a.table, widths=TABLE_WIDTHS), "", a.legend(), ""]
    further = beyond_lines(study)  # the analyses beyond the end points, one line each
    if further:
        lines += ["Beyond the two end points (the chapter *Beyond before and after*):", "",
                  *(f"- {line}" for line in further), ""]
    caveats = caveats_markdown(study)
    return lines + ([caveats] if caveats else [])


def summary_page(studies: Sequence, meta: Path, manifests: Mapping[str, Mapping[str, Any]], *,
                 link_base: str = "report") -> str:
    """``_layerwise/summary.md``: what fine-tuning changed, per model (:func:`model_section`); the findings across
    the models (:func:`layerwise.words.findings.summary_markdown`); the limitations (model, data sizes, what is
    not measured). ``studies``: the run's studies (:class:`layerwise.study.study.Study`); ``meta``: the report's
    ``_layerwise`` folder (the figures go to its ``figures/``); ``link_base``: the report folder relative to
    the project (the book's pages)."""
    from ..words.findings import model_findings
    from ..words.findings import summary_markdown as table

    lines = ["## What fine-tuning changed, layer by layer", ""]
    for s in studies:
        lines += model_section(s, meta, link_base, heading=len(studies) > 1)
    found = [model_findings(s) for s in studies]
    lines += ["## Findings across the models", "",
              "The most clearly measured change fine-tuning made in each model, in the answer model of the Methods "
              "(the order says how clearly a statistic changed, not how much; the chapters' Findings sections list "
              "every statistic):", "", table(found), "## Limitations", ""]
    for params, f in zip((s.params for s in studies), found):
        sel = (manifests.get(params.name) or {}).get("selection") or {}
        sizes = ", ".join(f"{len(sel[k])} {k.split('_')[0]}" for k in ("train_index", "probe_index", "test_index")
                          if isinstance(sel.get(k), list))
        seeds = f"{f.seeds} fine-tuning seeds" if f.seeds > 1 else \
            "one fine-tuning seed, so seed variation is not measured"
        k = len(params.analysis.draws)
        draws = "" if "random" not in params.analysis.states else \
            f"; the random-weights state is {'one random draw' if k == 1 else f'the mean of {k} random draws'}"
        lines.append(f"- {params.display_name} (`{params.model.id}`): {sizes or 'sizes in the Reproduce appendix'} "
                     f"sentences; {seeds}{draws}.")
    lines += ["- Not measured: other tasks, other languages' models, other fine-tuning settings; intervals cover the "
              "test sentences (and probe retrainings), not the choice of corpus.", ""]
    return "\n".join(lines)
