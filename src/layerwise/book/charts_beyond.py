"""Charts of the analyses beyond the two end points (the ``beyond`` table, :mod:`layerwise.study.beyond`): the
layers during training, the layer swaps, the auxiliary probes and the domains. They draw; the verdicts are in
:mod:`layerwise.words.beyond`."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..core.errors import LayerwiseError
from ..core.schema import STATES
from ..core.schema import label as schema_label
from .chart_kit import GAP_PX, HEIGHT, STATE_COLORS, TEXT_WIDTH, WIDTH, layer_axis, panel_width, seed_colors

WHERE = "charts_beyond"
#: panels per row of the checkpoint chart (one per layer)
LAYER_PANELS = 7
#: each measure's registry short name (the axes name a measure by it) and what the chart's title says it is here
MEASURES = {"cka_debiased": schema_label("cka_debiased"), "probe_acc": schema_label("probe_acc")}
TITLES = {"cka_debiased": "Similarity to the start of training", "probe_acc": "Probe accuracy"}
TASKS = {"length": "sentence length", "word": "word present", "bigram_shift": "adjacent words swapped"}


def _rows(beyond: pd.DataFrame, analysis: str, metrics) -> pd.DataFrame:
    if beyond is None or beyond.empty or "analysis" not in beyond:
        raise LayerwiseError(f"the study has no {analysis} rows", WHERE,
                             "run `layerwise run` with finetune.checkpoints and analysis.beyond on (the default)")
    df = beyond[(beyond["analysis"] == analysis) & beyond["metric"].isin(list(metrics))].copy()
    if df.empty:
        raise LayerwiseError(f"the study has no {analysis} rows of {list(metrics)}", WHERE,
                             "run `layerwise run` with finetune.checkpoints and analysis.beyond on (the default)")
    return df


def trajectory_chart(beyond: pd.DataFrame, metric: str = "cka_debiased", *, title: str | None = None) -> alt.Chart:
    """One panel per layer: ``metric`` (similarity to the start of training, or probe accuracy) at each checkpoint
    (fraction of the training steps), one line per fine-tuning seed."""
    df = _rows(beyond, "trajectory", [metric])[["seed", "layer", "checkpoint", "value"]]
    df["seed"] = df["seed"].astype(int).astype(str)
    seeds = sorted(df["seed"].unique(), key=int)
    layers = sorted(df["layer"].unique())
    columns = min(len(layers), LAYER_PANELS)
    width = max(40, panel_width(columns) - 6)
    base = alt.Chart(df).encode(
        x=alt.X("checkpoint:Q", title=None, scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(values=[0, 0.5, 1], format="~%")),
        y=alt.Y("value:Q", title=MEASURES.get(metric, metric), scale=alt.Scale(zero=False)),
        color=alt.Color("seed:N", title="seed", sort=seeds,
                        scale=alt.Scale(domain=seeds, range=seed_colors(len(seeds)))),
        tooltip=["layer:Q", "seed:N", alt.Tooltip("checkpoint:Q", format=".0%"), alt.Tooltip("value:Q", format=".3f")])
    chart = (base.mark_line(strokeWidth=1.5) + base.mark_point(size=18, filled=True)).properties(
        width=width, height=120)
    return chart.facet(facet=alt.Facet("layer:O", title="layer"), columns=columns, spacing=GAP_PX // 2).properties(
        title=alt.TitleParams(
            title or f"{TITLES.get(metric, metric)} during fine-tuning, per layer ({MEASURES.get(metric, metric)})",
            subtitle="x: fraction of the training steps (0 = the pretrained model, 100% = the fine-tuned one)"))


def swap_chart(beyond: pd.DataFrame, delta: float, *, title: str | None = None) -> alt.Chart:
    """Accuracy change (points) when layer l alone, or layers 0..l, are set back to their pretrained weights: one
    point per seed, the line through the seeds' mean, the margin ±δ as dashed rules."""
    df = _rows(beyond, "swap", ["accuracy_change"])
    df = df[df["seed"].notna()][["group", "seed", "layer", "value"]]
    df["points"] = 100 * df["value"]
    df["swap"] = df["group"].map({"single": "layer l alone", "cumulative": "layers 0 to l"})
    mean = df.groupby(["swap", "layer"], as_index=False)["points"].mean()
    color = alt.Color("swap:N", title="set back to pretrained", scale=alt.Scale(
        domain=["layer l alone", "layers 0 to l"], range=[STATE_COLORS[1], "#54a24b"]))
    x = layer_axis(False)
    points = alt.Chart(df).mark_point(size=22, opacity=0.6).encode(
        x=x, y=alt.Y("points:Q", title="accuracy change (points)"), color=color,
        tooltip=["swap:N", "layer:Q", alt.Tooltip("seed:Q", format="d"), alt.Tooltip("points:Q", format=".1f")])
    line = alt.Chart(mean).mark_line(strokeWidth=2).encode(x=x, y="points:Q", color=color)
    rules = alt.Chart(pd.DataFrame({"y": [-100 * delta, 100 * delta]})).mark_rule(
        strokeDash=[4, 3], color="#777").encode(y="y:Q")
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#bbb").encode(y="y:Q")
    return (zero + rules + line + points).properties(
        width=WIDTH, height=HEIGHT, title=title or "Task accuracy with layers set back to their pretrained weights")


def auxiliary_chart(beyond: pd.DataFrame, *, title: str | None = None) -> alt.Chart:
    """One panel per auxiliary task: probe accuracy per layer, pretrained and fine-tuned (mean over seeds), and the
    permuted-label control (dashed)."""
    df = _rows(beyond, "auxiliary", ["probe_acc", "control_acc"])
    df = df.groupby(["group", "state", "metric", "layer"], as_index=False)["value"].mean()
    df["line"] = df["state"].where(df["metric"] == "probe_acc", "control")
    df = df[df["line"].isin(["pretrained", "finetuned", "control"])].drop_duplicates(["group", "line", "layer"])
    df = df.drop(columns="metric")
    df["task"] = df["group"].map(lambda t: TASKS.get(t, t))
    tasks = [TASKS.get(t, t) for t in dict.fromkeys(df["group"])]
    domain = [s for s in STATES[:2] if s in set(df["line"])] + ["control"]
    colors = dict(zip(STATES, STATE_COLORS)) | {"control": "#9d9d9d"}
    chart = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=14)).encode(
        x=layer_axis(False), y=alt.Y("value:Q", title=MEASURES["probe_acc"], scale=alt.Scale(zero=False)),
        color=alt.Color("line:N", title="state", scale=alt.Scale(domain=domain, range=[colors[d] for d in domain])),
        strokeDash=alt.StrokeDash("line:N", title="state", scale=alt.Scale(
            domain=domain, range=[[4, 3] if d == "control" else [1, 0] for d in domain])),
        tooltip=["task:N", "line:N", "layer:Q", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=panel_width(len(tasks)), height=180)
    return chart.facet(column=alt.Column("task:N", title=None, sort=tasks)).properties(
        title=title or "Probes for properties of the sentence itself, before and after fine-tuning")


def domain_chart(beyond: pd.DataFrame, *, title: str | None = None) -> alt.Chart:
    """Per domain (colour), over the layers: the similarity to the pretrained model and the probe accuracy change
    (points), each the mean over seeds."""
    df = _rows(beyond, "domain", ["cka_debiased", "probe_acc_change"])
    df = df[df["seed"].notna()].groupby(["group", "metric", "layer"], as_index=False)["value"].mean()
    df.loc[df["metric"] == "probe_acc_change", "value"] *= 100
    names = {"cka_debiased": MEASURES["cka_debiased"], "probe_acc_change": MEASURES["probe_acc"]}
    df["measure"] = df["metric"].map(names)
    df = df.drop(columns="metric")
    width = (TEXT_WIDTH - 2 * 72 - GAP_PX - 20) // 2
    chart = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=14)).encode(
        x=layer_axis(False), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("group:N", title="domain", scale=alt.Scale(scheme="dark2")),
        tooltip=["group:N", "measure:N", "layer:Q", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=width, height=180)
    return chart.facet(column=alt.Column("measure:N", title=None, sort=list(names.values()))).resolve_scale(
        y="independent").properties(title=title or ["Per domain of the test sentences: similarity to the pretrained "
                                                    "model,", "and the probe's accuracy change (points)"])
