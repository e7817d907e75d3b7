"""The original study's published figures, as data, beside ours.

The study this project grows from (a student research project of INSA Rennes with the IRISA lab; its
README is the project's seed, summarised in ``shared/docs/seed-study.md``) fine-tuned CamemBERT
(``camembert-base``) and FlauBERT (``flaubert/flaubert_base_cased``) for 1 epoch on FLUE CLS (French
Amazon reviews of books, DVDs and music, binary sentiment) and published:

* a table of probe test accuracies on the first token ([CLS] / ``<s>``), per model, state (pre-trained,
  fine-tuned 1 epoch) and layer (5, 7, 9, 11, 12): :data:`PROBE_TABLE`, exactly as published;
* the median pairwise token cosine of CamemBERT, per layer, in box plots; its text gives "about" values
  at a few layers, read off those plots: :data:`COSINE_POINTS`, approximate, only at the layers the text
  states (no point is interpolated).

:func:`comparison` puts them beside a study's own rows (``probe_acc_cls``, ``token_cosine_q50``) when
its params name the original model (``original_study: camembert`` or ``flaubert``), with the difference
ours minus published. The data differ (FLUE CLS there, the params' dataset here), so the comparison is
approximate and carries no verdict. :func:`section` shows it in a chapter, and nothing when the params
name no original study.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from .chart_kit import HEIGHT, STATE_COLORS, WIDTH
from ..words.prose_format import fmt, fmt_ci, fmt_signed
from ..words.markdown import markdown_table
from ..core.schema import STATES, label, state_order

#: where a published value comes from
PUBLISHED_TABLE = "published table"
READ_OFF_PLOT = "read off a plot, approximate"
#: the original study's data and fine-tuning length (for the captions)
ORIGINAL_DATA = "FLUE CLS (French Amazon reviews of books, DVDs and music)"
ORIGINAL_EPOCHS = 1
#: the published models, as the params field ``original_study`` names them
MODEL_NAMES = {"camembert": "CamemBERT (camembert-base)", "flaubert": "FlauBERT (flaubert/flaubert_base_cased)"}

#: layers of the published probe table (0 = embedding output)
PROBE_LAYERS = (5, 7, 9, 11, 12)
#: probe test accuracy on the first token, FLUE CLS test set, as published: {(model, state): per layer}
PROBE_TABLE: dict[tuple[str, str], tuple[float, ...]] = {
    ("flaubert", "pretrained"): (0.690, 0.711, 0.722, 0.726, 0.730),
    ("flaubert", "finetuned"): (0.772, 0.854, 0.918, 0.930, 0.929),
    ("camembert", "pretrained"): (0.730, 0.813, 0.897, 0.844, 0.896),
    ("camembert", "finetuned"): (0.778, 0.866, 0.934, 0.946, 0.945),
}
#: median pairwise token cosine, read off the original study's box plots (its text's "about" values):
#: {(model, state): ((layers, value, the text's words), ...)}; a range of layers is one stated value
COSINE_POINTS: dict[tuple[str, str], tuple[tuple[tuple[int, ...], float, str], ...]] = {
    ("camembert", "pretrained"): (((0,), 0.0, "about 0 at the embedding layer"),
                                  ((5, 6, 7, 8), 0.25, "about 0.25 around layers 5 to 8"),
                                  ((11,), 0.15, "dips to about 0.15 at layer 11"),
                                  ((12,), 0.37, "jumps to about 0.37 at layer 12")),
    ("camembert", "finetuned"): (((11,), 0.46, "about 0.46 at layer 11"),
                                 ((12,), 0.90, "about 0.90 at layer 12")),
}
#: each compared statistic, our tidy metric -> its registry short name (:func:`layerwise.core.schema.label`: the
#: chart's axis, the prose; the long description is the Methods')
STATISTICS = {m: label(m) for m in ("probe_acc_cls", "token_cosine_q50")}
PART_METRIC = {"probing": "probe_acc_cls", "geometry": "token_cosine_q50"}
HEADING = "## The original study beside ours"
COLUMNS = ["model", "original", "metric", "state", "layer", "published", "source", "note", "ours", "ci_low",
           "ci_high", "n", "difference"]


def published(model: str | None = None) -> pd.DataFrame:
    """The published figures as a tidy frame: original (model key), metric, state, layer, published,
    source (:data:`PUBLISHED_TABLE` or :data:`READ_OFF_PLOT`), note; one model or all."""
    rows: list[dict[str, Any]] = []
    for (name, state), values in PROBE_TABLE.items():
        rows += [{"original": name, "metric": "probe_acc_cls", "state": state, "layer": layer, "published": v,
                  "source": PUBLISHED_TABLE, "note": f"{MODEL_NAMES[name]}, FLUE CLS"}
                 for layer, v in zip(PROBE_LAYERS, values)]
    for (name, state), points in COSINE_POINTS.items():
        rows += [{"original": name, "metric": "token_cosine_q50", "state": state, "layer": layer, "published": v,
                  "source": READ_OFF_PLOT, "note": words} for layers, v, words in points for layer in layers]
    df = pd.DataFrame(rows)
    return (df if model is None else df[df["original"] == model]).reset_index(drop=True)


def comparison(study) -> pd.DataFrame:
    """The published figures of the model ``study.params.original_study`` names beside the study's own
    rows at the same metric, state and layer (columns :data:`COLUMNS`; ``difference`` = ours minus
    published). Layers or states the study lacks are left out; no original study: an empty frame."""
    name = study.params.original_study
    if name is None:
        return pd.DataFrame(columns=COLUMNS)
    pub = published(name)
    tidy = study.tidy[study.tidy["metric"].isin(list(STATISTICS))]
    ours = tidy[["metric", "state", "layer", "value", "ci_low", "ci_high", "n"]].rename(columns={"value": "ours"})
    out = pub.merge(ours.drop_duplicates(["metric", "state", "layer"]), on=["metric", "state", "layer"], how="inner")
    out["model"] = study.name
    out["difference"] = out["ours"] - out["published"]
    return out[COLUMNS].sort_values(["metric", "state", "layer"], key=_state_key).reset_index(drop=True)


def _state_key(col: pd.Series) -> pd.Series:
    """Sort key: states in the canonical order, other columns as they are."""
    return col.map(lambda s: STATES.index(s) if s in STATES else len(STATES)) if col.name == "state" else col


def table(comp: pd.DataFrame, metric: str, digits: int = 3) -> pd.DataFrame:
    """The comparison of one statistic for the page: state, layer, the original study's value, its
    source, ours (95% CI where it has one), ours minus published."""
    df = comp[comp["metric"] == metric]
    return pd.DataFrame({
        "state": df["state"], "layer": df["layer"].astype(int),
        "original study": [fmt(v, digits) for v in df["published"]],
        "source": df["source"],
        "this study (95% CI)": [fmt_ci(v, lo, hi, digits) for v, lo, hi in zip(df["ours"], df["ci_low"], df["ci_high"])],
        "difference (this study - original)": [fmt_signed(v, digits) for v in df["difference"]],
    }).reset_index(drop=True)


def chart(study, comp: pd.DataFrame, metric: str, *, title: str | None = None) -> alt.LayerChart:
    """Our values of ``metric`` over every layer (lines, 95% CI band where the table has one) and the
    original study's published values (points, shaped by their source), coloured by state: the states
    the original study published."""
    states = state_order(comp.loc[comp["metric"] == metric, "state"])
    tidy = study.tidy
    ours = tidy[(tidy["metric"] == metric) & tidy["state"].isin(states) & (tidy["layer"] >= 0)]
    ours = ours[["state", "layer", "value", "ci_low", "ci_high"]].assign(series="this study").reset_index(drop=True)
    pub = comp[comp["metric"] == metric][["state", "layer", "published", "source"]].rename(
        columns={"published": "value"}).assign(series=lambda d: "original study, " + d["source"]).reset_index(drop=True)
    palette = dict(zip(STATES, STATE_COLORS))
    color = alt.Color("state:N", title="state", sort=states, legend=alt.Legend(symbolOpacity=1, symbolType="circle"),
                      scale=alt.Scale(domain=states, range=[palette[s] for s in states]))
    x = alt.X("layer:Q", title="layer (0 = embeddings)", axis=alt.Axis(tickMinStep=1, format="d"))
    y_title = STATISTICS[metric]
    line = alt.Chart(ours).mark_line().encode(
        x=x, y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)), color=color,
        strokeDash=alt.StrokeDash("series:N", title=None, legend=alt.Legend(symbolType="stroke",
                                                                            symbolStrokeColor="black")),
        tooltip=["series:N", "state:N", "layer:O", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f")])
    layers = [line]
    if ours[["ci_low", "ci_high"]].notna().all(axis=1).any():
        layers.insert(0, alt.Chart(ours).mark_area(opacity=0.18).encode(x=x, y="ci_low:Q", y2="ci_high:Q",
                                                                         color=color))
    points = alt.Chart(pub).mark_point(filled=True, size=90, opacity=1, stroke="black", strokeWidth=0.6).encode(
        x=x, y="value:Q", color=color,
        shape=alt.Shape("series:N", title=None, scale=alt.Scale(range=["diamond", "triangle-up"])),
        tooltip=["series:N", "state:N", "layer:O", alt.Tooltip("value:Q", format=".3f")])
    name = MODEL_NAMES[str(comp["original"].iloc[0])] if len(comp) else ""
    return alt.layer(*layers, points).resolve_scale(strokeDash="independent", shape="independent").properties(
        width=WIDTH, height=HEIGHT, title=title or f"{y_title.capitalize()}: this study and the original "
                                                    f"study's {name}")


def data_name(params) -> str:
    """The params' dataset in words (for the captions)."""
    ds = params.dataset
    if ds.kind == "embedded":
        return "the embedded French demo corpus"
    if ds.source == "tblard/allocine":
        return "Allociné film reviews (tblard/allocine)"
    return ds.source if ds.source else "local files (" + ", ".join(sorted(ds.data_files or {})) + ")"


def caption(study, comp: pd.DataFrame, metric: str) -> str:
    """What the reader must know to read the comparison: it is approximate, the data and the fine-tuning
    length differ, and which values were read off a plot."""
    df = comp[comp["metric"] == metric]
    how = ("values read off its plots, approximate: the \"about\" figures of its text, only at the layers it "
           "states" if set(df["source"]) == {READ_OFF_PLOT} else "values from its published table")
    return (f"Approximate comparison, no verdict. Original study: {MODEL_NAMES[df['original'].iloc[0]]}, "
            f"{_epochs(ORIGINAL_EPOCHS)} of fine-tuning on {ORIGINAL_DATA}; {how}. This study: "
            f"{study.params.display_name}, {_epochs(study.params.finetune.epochs)} of fine-tuning on "
            f"{data_name(study.params)}. Different data and settings. Lines: this study (95% CI band where the "
            f"statistic has one); points: the original study.")


def _epochs(n: float) -> str:
    """``1 epoch``, ``3 epochs``, ``0.5 epochs``."""
    text = fmt(n, 0 if float(n).is_integer() else 2)
    return f"{text} epoch" + ("" if float(n) == 1 else "s")


def left_out_sentence(study, metric: str, comp: pd.DataFrame) -> str:
    """One line naming the layers at which the original study reports ``metric`` that this model lacks
    (empty when it has them all)."""
    pub = published(study.params.original_study)
    layers = sorted(set(pub.loc[pub["metric"] == metric, "layer"]))
    left = [v for v in layers if v not in set(comp.loc[comp["metric"] == metric, "layer"])]
    if not left:
        return ""
    have = study.tidy.loc[study.tidy["metric"] == metric, "layer"]
    top = int(have.max()) if len(have) else -1
    if len(left) == len(layers):
        return (f"None of the layers at which the original study reports {STATISTICS[metric]} "
                f"({', '.join(map(str, layers))}) is in this model (layers 0 to {top}): nothing to set beside it.")
    return (f"The original study's layers {', '.join(map(str, left))} are not in this model (layers 0 to {top}) "
            "and are left out.")


def section_outputs(study, part: str) -> list:
    """What :func:`section` shows for a chapter (``part``: ``probing`` or ``geometry``): the heading and
    an introduction, then the chart, the table and the caption, or one line when nothing can be set
    beside this model's layers; an empty list when the params name no original study (the demo)."""
    from IPython.display import Markdown

    name = study.params.original_study
    if name is None:
        return []
    metric = PART_METRIC[part]
    comp = comparison(study)
    comp = comp[comp["metric"] == metric]
    what, model = STATISTICS[metric], MODEL_NAMES[name]
    pub = published(name)
    if not (pub["metric"] == metric).any():
        return [Markdown(f"{HEADING}\n\nThe original study reports nothing for {model} on this measure: {what}.")]
    intro = (f"The original study's values of {what} for {model}, as data beside this study's, with the difference "
             "(this study minus the original study).")
    left = left_out_sentence(study, metric, comp)
    if comp.empty:
        return [Markdown(f"{HEADING}\n\n{intro} {left}")]
    digits = 3 if metric == "probe_acc_cls" else 2
    return [Markdown(f"{HEADING}\n\n{intro} {left}".rstrip()), chart(study, comp, metric),
            Markdown(markdown_table(table(comp, metric, digits))), Markdown(f"*{caption(study, comp, metric)}*")]


def section(study, part: str) -> None:
    """Show the section "The original study beside ours" in a chapter (:func:`section_outputs`); shows
    nothing at all when the params name no original study."""
    from IPython.display import display

    outputs = section_outputs(study, part)
    if outputs:
        display(*outputs)
