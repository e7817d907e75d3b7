"""The findings of one model's study, computed from the verdicts of :mod:`layerwise.words.claims`: what
fine-tuning changed (ranked by size over its floor), what it did not change, and observations (random
weights against the pretrained model on the probes). Each model part of the report opens with them and
the index carries a one-table summary across the models of the run (:func:`summary_markdown`).

Ranking: a per-sentence statistic's size is |mean paired difference| / delta (delta: the negligible
threshold of :func:`layerwise.words.claims.negligible_threshold`); a probe's is |accuracy difference| / the
half-width of its paired CI. Floors, as they exist: seed-to-seed (:func:`layerwise.words.claims.seed_change`;
with one seed "seed variation not measured"), random weights (the same comparison for the random
state), chance (the permuted-label probe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from . import claims
from ..core.errors import LayerwiseError
from .prose import _effect_digits, fmt, fmt_ci, fmt_signed
from .prose_layers import best_layers_clause, layer_span
from .prose_seeds import seed_floor_verdicts
from ..core.schema import PER_SENTENCE_METRICS, lookup

#: the tidy metric holding the per-sentence mean (with its CI) of each per-sentence statistic
MEAN_METRIC = {"token_cosine": "token_cosine_sentence_mean", "token_cosine_var": "token_cosine_var_mean"}
#: the probes whose change fine-tuning makes (first token and mean pooling)
PROBES = ("probe_acc_cls", "probe_acc_mean")
PROBE_NAMES = {"probe_acc_cls": "first-token probe accuracy", "probe_acc_mean": "mean-pooled probe accuracy"}
#: statistics with one value per layer (no per-sentence test), judged on the seed floor alone
#: (claims.seed_change with claims.scalar_threshold), listed when several fine-tuning seeds were run
SCALARS = ("token_cosine_adjusted", "anisotropy_baseline", "self_similarity", "self_similarity_adjusted",
           "rogue_top3_share", "norm_mean", "erank", "isoscore", "silhouette_cls", "mdl_compression_cls")
#: the statistics the probing chapter's conclusion speaks of (the others: the geometry chapter's)
PROBING_SCALARS = ("silhouette_cls", "mdl_compression_cls")
#: what the order of the findings means (printed above the table)
RANKING = ("Changes are ranked by *size / floor*: the difference divided by the smallest difference its test "
           "could tell from none (for a per-sentence statistic, the negligible-effect threshold; for a probe, "
           "the half-width of its paired 95% CI; for a statistic with one value per layer, the half-width of "
           "its interval over seeds and sentences). A precisely measured small difference can therefore rank "
           "above a larger but noisier one: the rank says how clearly it changed, not how much.")
COLUMNS = ("statistic", "layers", "largest at layer", "finetuned", "pretrained", "difference", "n", "verdict",
           "size / floor", "seed floor", "random vs pretrained", "chance")
#: the table of changes as the report prints it (:meth:`Findings.table`): the tidy columns above folded
#: into six, with relative widths, so that it fits the HTML text column and an A4 page
TABLE_COLUMNS = ("statistic", "changed at layers", "finetuned vs pretrained", "difference at the largest",
                 "size / floor", "floors")
TABLE_WIDTHS = (18, 13, 19, 22, 6, 22)


@dataclass
class Findings:
    """One model's findings: ``changed`` and ``unchanged`` (tidy rows, :data:`COLUMNS`), ranked by
    ``size / floor``; ``observations`` (sentences); ``seeds`` (fine-tuning seeds)."""

    model: str
    title: str
    changed: pd.DataFrame
    unchanged: pd.DataFrame
    observations: list[str] = field(default_factory=list)
    seeds: int = 1
    #: where the label is best read (``claims.best_layers`` of the first-token probe, fine-tuned then
    #: pretrained), as clauses of :func:`layerwise.words.prose_layers.best_layers_clause`
    best_layers: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """The changes as the report prints them (:data:`TABLE_COLUMNS`): the layers with the largest one,
        the two states' values there, the verdict and difference with its CI and n (or seeds), the rank,
        and the floors (seed-to-seed, random weights, chance for a probe)."""
        rows = []
        for r in self.changed.to_dict("records"):
            floors = [f"seeds: {r['seed floor']}", f"random: {r['random vs pretrained']}"]
            if r["chance"] != "-":
                floors.append(f"chance: {r['chance']}")
            rows.append(dict(zip(TABLE_COLUMNS, (
                r["statistic"], f"{r['layers']} (largest at {r['largest at layer']})",
                f"{r['finetuned']} vs {r['pretrained']}", f"{r['verdict']}: {r['difference']}; {_n(r)}",
                r["size / floor"], "; ".join(floors)))))
        return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

    def sentences(self) -> list[str]:
        """The findings as sentences, largest change first."""
        out = []
        for r in self.changed.itertuples(index=False):
            n = f"over {r.n} seeds" if r.verdict == "changed" else f"n = {r.n}"   # a scalar's floor: seeds
            out.append(f"**{r.statistic[0].upper() + r.statistic[1:]}**: {r.verdict} after fine-tuning at "
                       f"{_at(r.layers)}; largest at layer {r._2}: fine-tuned {r.finetuned} against pretrained "
                       f"{r.pretrained}, difference {r.difference}, {n}, {r._8} times its floor.")
        if not self.changed.empty and self.seeds < 2:
            out.append(f"Each change is against one fine-tuning run: {claims.SEED_VARIATION_NOT_MEASURED}.")
        if not self.unchanged.empty:
            out.append("Did not change: " + "; ".join(f"{r.statistic} ({r.verdict})"
                                                       for r in self.unchanged.itertuples(index=False)) + ".")
        return out + self.observations

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def conclusion(self, probes: bool) -> str:
        """A chapter's conclusion in 2-4 sentences: (probes) where the label is best read; what fine-tuning
        changed and where; what moved but not beyond the seed-to-seed variation, and what did not move;
        (probes) the random-weights observation. Every word from the findings' verdicts."""
        probing = [*PROBE_NAMES.values(), *(_describe(m) for m in PROBING_SCALARS)]
        mine = self.changed[self.changed["statistic"].isin(probing) == probes]
        kept = self.unchanged[self.unchanged["statistic"].isin(probing) == probes]
        out = []
        if probes and self.best_layers:
            out.append("By paired comparison on the test sentences, the label is best read at "
                       + " and at ".join(self.best_layers) + ".")
        changes = [f"{r.statistic} ({r.verdict} at {_at(r.layers)}, most at layer {r._2}: "
                   f"{_signed(r.difference)})" for r in mine.itertuples(index=False)]
        floor = (f"each largest change clears the seed-to-seed variation ({self.seeds} seeds)" if self.seeds > 1 else
                 f"each against one run: {claims.SEED_VARIATION_NOT_MEASURED}")
        out.append(f"Fine-tuning changed {_and(changes)}; {floor}." if changes else
                   "Fine-tuning changed none of these statistics beyond its floors.")
        seeds = [r.statistic for r in kept.itertuples(index=False) if "in the mean over seeds" in r.verdict]
        other: dict[str, list[str]] = {}
        for r in kept.itertuples(index=False):
            if "in the mean over seeds" not in r.verdict:
                other.setdefault(r.verdict, []).append(r.statistic)
        if seeds:
            out.append(f"{_and(seeds)[:1].upper() + _and(seeds)[1:]} moved in the mean over seeds but not beyond "
                       "the seed-to-seed variation.")
        if other:
            out.append("Not changed: " + "; ".join(f"{_and(names)} ({verdict})" for verdict, names in other.items())
                       + ".")
        if probes:
            out += [o[len("Observation: "):][:1].upper() + o[len("Observation: ") + 1:]
                    if o.startswith("Observation: ") else o for o in self.observations]
        return " ".join(out)

    def markdown(self) -> str:
        """The Findings section body: the sentences, then the table of changes with one line on its order."""
        text = "\n\n".join(self.sentences())
        if not self.changed.empty:
            from .markdown import markdown_table

            text += "\n\n" + RANKING + "\n\n" + markdown_table(self.table(), widths=TABLE_WIDTHS)
        return text


def _n(row: dict) -> str:
    """What a change is measured over: its seeds (a statistic with one value per layer, whose verdict is
    "changed") or its n."""
    return f"{row['n']} seeds" if row["verdict"] == "changed" else f"n = {row['n']}"


def _at(layers: str) -> str:
    """``layer 5`` or ``layers 2 and 4–6`` from a table's layer text."""
    return f"layer {layers}" if str(layers).isdigit() else f"layers {layers}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _describe(metric: str) -> str:
    """A reader's name of a statistic (the registry's description)."""
    try:
        return lookup(MEAN_METRIC.get(metric, metric)).description
    except KeyError:
        return metric.replace("_", " ")


def _value(tidy: pd.DataFrame, metric: str, state: str, layer: int, digits: int = 3) -> str:
    """A state's value of ``metric`` at ``layer`` with its CI, for the table."""
    r = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] == layer)]
    if r.empty and metric in MEAN_METRIC.values():  # a study without the per-sentence mean: the pair mean
        r = tidy[(tidy["metric"] == metric.replace("_sentence_mean", "_mean").replace("_var_mean", "_sd"))
                 & (tidy["state"] == state) & (tidy["layer"] == layer)]
    if r.empty:
        return "not measured"
    return fmt_ci(r["value"].iloc[0], r["ci_low"].iloc[0], r["ci_high"].iloc[0], digits)


def _layers(layers) -> str:
    """``2, 4–6``: the layers, consecutive ones as a range."""
    return layer_span(list(layers)).split(" ", 1)[1]


def _signed(ci_text: str) -> str:
    """The value of a :func:`fmt_ci` text with its sign: ``+0.163`` from ``0.163 (95% CI ...)``."""
    value = str(ci_text).split(" (")[0]
    return value if value.startswith("-") else "+" + value


def _seed_floor(tidy_all: pd.DataFrame, metric: str, layer: int) -> str:
    """The seed-to-seed floor of a change at ``layer`` (:func:`layerwise.words.claims.seed_change` through
    :func:`layerwise.words.prose_seeds.seed_floor_verdicts`: per-seed paired effects for a per-sentence
    metric, per-seed differences for a probe), as table text."""
    for v in seed_floor_verdicts(tidy_all, metric):
        if v.detail.get("layer") == layer:
            return claims.SEED_VARIATION_NOT_MEASURED if v.word == "not measured" else v.word
    return claims.SEED_VARIATION_NOT_MEASURED


def _random_text(tidy: pd.DataFrame, metric: str, layer: int) -> str:
    """The random-weights floor: the same paired comparison for the random state at that layer."""
    for v in claims.state_change_verdicts(tidy, metric, state="random"):
        if v.detail.get("layer") == layer:
            return f"{v.word} ({fmt_signed(v.detail['effect'], 3)})"
    return "not measured"


def _over_half(value: float, low: float, high: float) -> float:
    """|value| over the half-width of its interval (inf for a zero-width interval): how clearly it differs
    from none, the ``size / floor`` of probes and of statistics with one value per layer."""
    half = (high - low) / 2
    return abs(value) / half if half > 0 else math.inf


def _change_row(tidy: pd.DataFrame, name: str, moved: list, top, *, values: str, difference: str, rank: float,
                seed_floor: str, random: str, chance: str = "-") -> dict:
    """One row of the Findings table (:data:`COLUMNS` and the ``_rank`` it is sorted by): ``moved``, the
    verdicts of the changed layers; ``top``, the one ranked first; ``values``, the metric whose per-state
    values at that layer the row shows."""
    layer = top.detail["layer"]
    return {"statistic": name, "layers": _layers(v.detail["layer"] for v in moved), "largest at layer": layer,
            "finetuned": _value(tidy, values, "finetuned", layer), "pretrained": _value(tidy, values, "pretrained", layer),
            "difference": difference, "n": top.n, "verdict": top.word,
            "size / floor": fmt(rank, 1) if math.isfinite(rank) else "unbounded (zero-width interval)",
            "_rank": rank, "seed floor": seed_floor, "random vs pretrained": random, "chance": chance}


def sentence_metric_rows(tidy: pd.DataFrame, tidy_all: pd.DataFrame | None = None) -> tuple[list[dict], list[dict]]:
    """Changed and unchanged rows of the per-sentence statistics (claims.state_change_verdicts);
    ``tidy_all``: aggregate and per-seed rows (``Study.tidy_all``) for the seed floor."""
    tidy_all = tidy if tidy_all is None else tidy_all
    changed, unchanged = [], []
    for metric in PER_SENTENCE_METRICS:
        verdicts = claims.state_change_verdicts(tidy, metric)
        if not verdicts:
            continue
        moved = [v for v in verdicts if v.word in ("higher", "lower")]
        if not moved:
            words = sorted({v.word for v in verdicts})
            unchanged.append({"statistic": _describe(metric), "verdict": " or ".join(words), "n": verdicts[0].n})
            continue
        top = max(moved, key=lambda v: abs(v.detail["effect"]) / v.detail["delta"] if v.detail["delta"] > 0 else 0)
        layer = top.detail["layer"]
        changed.append(_change_row(
            tidy, _describe(metric), moved, top, values=MEAN_METRIC.get(metric, metric),
            difference=fmt_ci(top.detail["effect"], top.detail["low"], top.detail["high"], 3),
            rank=abs(top.detail["effect"]) / top.detail["delta"], seed_floor=_seed_floor(tidy_all, metric, layer),
            random=_random_text(tidy, metric, layer)))
    return changed, unchanged


def _scalar_rank(v: claims.Verdict) -> float:
    """|mean change| over the half-width of its seed-and-sentence interval (:func:`_over_half`)."""
    return _over_half(v.detail["mean"], v.detail["ci_low"], v.detail["ci_high"])


def scalar_rows(tidy: pd.DataFrame, tidy_all: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Changed and unchanged rows of the statistics with one value per layer (:data:`SCALARS`), from
    their seed floor (``claims.seed_change`` through ``prose_seeds.seed_floor_verdicts``: the interval over
    seeds and sentences excludes 0, every seed moves the same way, and the change clears
    ``claims.scalar_threshold``). Not listed with one seed: nothing can be judged."""
    changed, unchanged = [], []
    for metric in SCALARS:
        floor = [v for v in seed_floor_verdicts(tidy_all, metric) if v.word != "not measured"]
        if not floor:
            continue
        moved = [v for v in floor if v.word == "changed"]
        if not moved:
            unchanged.append({"statistic": _describe(metric), "n": floor[0].n,
                              "verdict": "not beyond the seed-to-seed variation at any layer"})
            continue
        top = max(moved, key=_scalar_rank)
        digits = max(3, _effect_digits(top.detail["mean"]))
        changed.append(_change_row(
            tidy, _describe(metric), moved, top, values=metric,
            difference=fmt_ci(top.detail["mean"], top.detail["ci_low"], top.detail["ci_high"], digits),
            rank=_scalar_rank(top), seed_floor=top.word,
            random=_value(tidy, metric, "random", top.detail["layer"])))
    return changed, unchanged


def _chance_text(tidy: pd.DataFrame, metric: str, layer: int) -> str:
    """The chance floor of a probe: the fine-tuned probe against its permuted-label probe
    (claims.probe_chance_verdict)."""
    v = claims.probe_chance_verdict(tidy, metric, layer)
    if v.word == "not measured":
        return v.word
    return f"{v.word} (permuted labels {fmt(v.detail['null_value'], 2)}, up to {fmt(v.detail['null_upper'], 2)})"


def probe_rows(tidy: pd.DataFrame, correct: pd.DataFrame | None, tidy_all: pd.DataFrame | None = None
               ) -> tuple[list[dict], list[dict]]:
    """Changed and unchanged rows of the probes: fine-tuned against pretrained at every layer
    (claims.state_versus, paired on the test sentences); the seed floor from ``tidy_all``."""
    tidy_all = tidy if tidy_all is None else tidy_all
    changed, unchanged = [], []
    if correct is None or correct.empty:
        return changed, unchanged
    for metric in PROBES:
        layers = sorted(int(v) for v in correct.loc[correct["metric"] == metric, "layer"].unique() if v >= 0)
        verdicts = [claims.state_versus(correct, tidy, metric, layer, "finetuned") for layer in layers]
        verdicts = [v for v in verdicts if v.word != "not measured"]
        if not verdicts:
            continue
        moved = [v for v in verdicts if v.word in ("higher", "lower")]
        name = PROBE_NAMES[metric]
        if not moved:
            unchanged.append({"statistic": name, "verdict": "tied at every layer", "n": verdicts[0].n})
            continue


        def size(v):
            return _over_half(v.detail["diff"], *v.detail["diff_ci"])
        top = max(moved, key=size)
        layer = top.detail["layer"]
        changed.append(_change_row(
            tidy, name, moved, top, values=metric, difference=fmt_ci(top.detail["diff"], *top.detail["diff_ci"], 3),
            rank=size(top), seed_floor=_seed_floor(tidy_all, metric, layer),
            random=_value(tidy, metric, "random", layer), chance=_chance_text(tidy, metric, layer)))
    return changed, unchanged


def random_observations(tidy: pd.DataFrame, correct: pd.DataFrame | None, metric: str = "probe_acc_cls") -> list[str]:
    """Random weights against the pretrained model on the probe (claims.state_versus per layer)."""
    if correct is None or correct.empty or "random" not in set(correct["state"]):
        return []
    layers = sorted(int(v) for v in correct.loc[correct["metric"] == metric, "layer"].unique() if v >= 0)
    verdicts = [v for v in (claims.state_versus(correct, tidy, metric, layer, "random") for layer in layers)
                if v.word != "not measured"]
    if not verdicts:
        return []
    tied = [v.detail["layer"] for v in verdicts if v.word == "tied"]
    below = [v.detail["layer"] for v in verdicts if v.word == "lower"]
    above = [v.detail["layer"] for v in verdicts if v.word == "higher"]
    what = "the first-token probe" if metric.endswith("cls") else "the mean-pooling probe"
    if len(tied) == len(verdicts):
        return [f"Observation: random weights match the pretrained model on {what}: the paired difference is tied "
                f"at every layer (n = {verdicts[0].n}), so this probe does not show what pretraining added on this "
                f"data; the label is as readable from the architecture's random features."]
    parts = [f"{word} at layer{'s' if len(ls) > 1 else ''} {_layers(ls)}" for word, ls in (("tied", tied), ("lower", below), ("higher", above)) if ls]
    return [f"Observation: on {what}, random weights against the pretrained model are " + "; ".join(parts) + "."]


def model_findings(study) -> Findings:
    """The findings of one model's study (:class:`layerwise.study.study.Study`)."""
    tidy = study.tidy
    tidy_all = study.tidy_all if hasattr(study, "tidy_all") else tidy
    changed, unchanged = sentence_metric_rows(tidy, tidy_all)
    p_changed, p_unchanged = probe_rows(tidy, getattr(study, "probe_correct", None), tidy_all)
    s_changed, s_unchanged = scalar_rows(tidy, tidy_all)
    p_unchanged = p_unchanged + s_unchanged
    changed = sorted(changed + p_changed + s_changed, key=lambda r: -r["_rank"])
    within_seeds = [r for r in changed if r["seed floor"] in ("unchanged", "negligible")]
    changed = [r for r in changed if r not in within_seeds]   # a change must clear the seed floor when measured
    unchanged += [{"statistic": r["statistic"], "n": r["n"],
                   "verdict": f"{r['verdict']} in the mean over seeds at layers {r['layers']}, but not beyond the "
                              f"seed-to-seed variation (largest at layer {r['largest at layer']}, difference "
                              f"{r['difference']})"} for r in within_seeds]
    frame = pd.DataFrame(changed, columns=[*COLUMNS, "_rank"]).drop(columns="_rank")
    un = pd.DataFrame(unchanged + p_unchanged, columns=["statistic", "verdict", "n"])
    seeds = max(1, int(tidy_all["seed"].nunique())) if "seed" in tidy_all.columns else 1
    correct = getattr(study, "probe_correct", None)
    best = [] if correct is None or correct.empty else \
        [b for b in (best_layers_clause(tidy, correct, "probe_acc_cls", s, digits=3).replace(f"{s} ", f"the {s} "
                                                                                              f"model's ", 1)
                     for s in ("finetuned", "pretrained")) if b]
    return Findings(study.params.name, study.params.display_name, frame, un,
                    random_observations(tidy, correct), seeds, best)


def summary_markdown(findings: list[Findings]) -> str:
    """The index's one-table summary across the models of the run: per model the largest change,
    how many statistics changed and did not, and the observations."""
    from .markdown import markdown_table

    rows = []
    for f in findings:
        top = f.changed.iloc[0] if not f.changed.empty else None
        rows.append({"model": f.title, "largest change": (f"{top['statistic']}: {top['verdict']} at layer "
                                                          f"{top['largest at layer']} ({top['difference']})"
                                                          if top is not None else "none"),
                     "changed": len(f.changed), "did not change": len(f.unchanged),
                     "seed variation": "measured" if f.seeds > 1 else "not measured (one seed)"})
    notes = [o for f in findings for o in f.observations]
    text = markdown_table(pd.DataFrame(rows))
    return text + ("\n" + "\n\n".join(f"{f.title}. {o}" for f in findings for o in f.observations) + "\n"
                   if notes else "")


def class_names(study) -> list[str] | None:
    """The classes' display names by id: the params' ``dataset.class_names`` when set, else the data
    selection's ``label_names`` (the study's manifest). A ``class_names`` list whose length differs from the
    number of classes is an error naming the field."""
    names = ((getattr(study, "manifest", None) or {}).get("selection") or {}).get("label_names")
    params = getattr(study, "params", None)
    given = getattr(getattr(params, "dataset", None), "class_names", None)
    if given:
        if names and len(given) != len(names):
            raise LayerwiseError(f"dataset.class_names has {len(given)} names for {len(names)} classes ({names})",
                                 where=str(getattr(params, "path", None) or "params"),
                                 fix=f"give one display name per class id, in id order ({len(names)} names)")
        return [str(n) for n in given]
    return [str(n) for n in names] if names else None
