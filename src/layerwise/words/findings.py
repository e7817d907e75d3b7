"""The findings of one model's study, in the answer model of :mod:`layerwise.words.claims` (issue 22): for each
judged statistic, the outcome of fine-tuned against pretrained at every layer ("changed", "changed, size
unclear", "no change beyond δ", "not established with k seeds", :func:`layerwise.words.claims.difference_outcome`),
the estimate with its deciding interval, random weights against pretrained (over the random draws) and chance,
judged apart. Each chapter opens with them and the index carries a one-table summary across the models of
the run (:func:`summary_markdown`).

The judged statistics: the per-sentence statistics (per-seed paired effects), the probes (per-seed
accuracy differences, the sentence term paired on the test sentences), the statistics with one value per
layer (:data:`SCALARS`) and the similarity to pretrained (debiased CKA against the similarity between
seeds). Order: statistics with a change first, by |difference| over the half-width of its deciding interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from . import claims
from .caveats import EXPLAIN_RANDOM, caveat_sentences
from ..core.errors import LayerwiseError
from .claims import seed_floor_verdicts, similarity_outcomes
from ..core.schema import FIRST_TOKEN, MEAN_TOKENS, PER_SENTENCE_METRICS, POOLINGS, label
from .prose_outcomes import outcome_clause
from .prose_probes import best_layers_clause
from .prose_similarity import seed_apart_sentence
from .prose_format import fmt, fmt_signed, layer_span

#: the tidy metric holding the per-sentence mean (with its CI) of each per-sentence statistic
MEAN_METRIC = {"token_cosine": "token_cosine_sentence_mean", "token_cosine_var": "token_cosine_var_mean"}
#: the token statistics with one value per layer, judged on their per-seed differences
TOKEN_SCALARS = ("token_cosine_adjusted", "anisotropy_baseline", "self_similarity", "self_similarity_adjusted",
                 "rogue_top3_share", "norm_mean", "erank", "isoscore")
#: the class statistics judged on the primary pooling only (base names, suffixed ``_<pooling>``)
PRIMARY_SCALARS = ("silhouette", "centroid_angle", "mdl_compression")
#: the statistics the probing chapter's Findings and conclusion speak of (base names; the others: the
#: geometry chapter's)
PROBING_BASES = ("probe_acc", *PRIMARY_SCALARS)


def probes(poolings: Sequence[str]) -> tuple[str, ...]:
    """The probes whose change fine-tuning makes, one per pooling of the study."""
    return tuple(f"probe_acc_{p}" for p in poolings)


def scalars(primary: str) -> tuple[str, ...]:
    """Statistics with one value per layer, judged on their per-seed differences: the token statistics and
    the class statistics of the study's primary pooling."""
    return TOKEN_SCALARS + tuple(f"{m}_{primary}" for m in PRIMARY_SCALARS)


def similarities(poolings: Sequence[str]) -> dict[str, str]:
    """The similarity to pretrained, per pooling (pooling -> tidy metric; its row is named by the metric's label)."""
    return {p: f"cka_debiased_{p}_vs_pretrained" for p in poolings}


def is_probing(metric: str) -> bool:
    """Whether the probing chapter speaks of ``metric`` (:data:`PROBING_BASES` with a pooling suffix)."""
    return any(metric == f"{b}_{p}" for b in PROBING_BASES for p in POOLINGS)


#: the first-token and mean versions (a study's own: :func:`probes`, :func:`scalars`, :func:`similarities` of
#: ``Study.poolings``)
PROBES = probes((FIRST_TOKEN, MEAN_TOKENS))
SCALARS = scalars(FIRST_TOKEN)
SIMILARITIES = similarities((FIRST_TOKEN, MEAN_TOKENS))
#: what the order of the findings means (printed above the table)
RANKING = ("Each statistic's outcome at every layer follows the answer model of the Methods: fine-tuned minus "
           "pretrained over the fine-tuning seeds, with an interval that combines seeds and sentences, against the "
           "statistic's declared margin δ. The printed interval is the one that decides: 90% for no change beyond "
           "δ, else the level of the test's family. Holm's method judges the similarity to pretrained and the probes "
           "together; Benjamini-Hochberg judges each other statistic over its layers. Statistics with a change come first, ordered "
           "by difference over the half-width of that interval: the order says how clearly it changed, not how "
           "much. Chance is a separate judgement.")
COLUMNS = ("statistic", "metric", "outcomes", "largest at layer", "finetuned", "pretrained", "difference", "n",
           "verdict", "size / floor", "random vs pretrained", "chance", "sensitivity")
#: the table of the findings as the report prints it (:meth:`Findings.table`): six columns, with relative
#: widths, so that it fits the HTML text column and an A4 page
TABLE_COLUMNS = ("statistic", "outcome by layer", "finetuned vs pretrained", "difference (deciding interval)",
                 "random vs pretrained", "chance")
TABLE_WIDTHS = (16, 24, 16, 20, 14, 10)
#: the index's table across the models (:func:`summary_markdown`): the clearest change gets the room
SUMMARY_WIDTHS = (16, 48, 12, 14, 10)


@dataclass
class Findings:
    """One model's findings: ``changed`` (statistics with a "changed" or "changed, size unclear" layer) and
    ``unchanged`` (the others: no change beyond δ or not established at every layer), tidy rows of
    :data:`COLUMNS`, ordered by ``size / floor``; ``observations`` (sentences); ``seeds`` (fine-tuning seeds)."""

    model: str
    title: str
    changed: pd.DataFrame
    unchanged: pd.DataFrame
    observations: list[str] = field(default_factory=list)
    seeds: int = 1
    #: where the label is best read (``claims.best_layers`` of the primary pooling's probe, fine-tuned then
    #: pretrained), as clauses of :func:`layerwise.words.prose_probes.best_layers_clause`
    best_layers: list[str] = field(default_factory=list)
    #: which fine-tuning seed stands apart, by the declared rule (:func:`layerwise.words.claims.seed_apart`)
    seed_notes: list[str] = field(default_factory=list)

    def _rows(self, probes: bool | None = None) -> pd.DataFrame:
        both = pd.concat([self.changed, self.unchanged], ignore_index=True)
        return both if probes is None else both[both["metric"].map(is_probing) == probes]

    def table(self, probes: bool | None = None) -> pd.DataFrame:
        """The findings as the report prints them (:data:`TABLE_COLUMNS`, six columns): the outcome at every
        layer, the two states' values and the difference with its deciding interval at the largest layer,
        random weights against pretrained and chance there. ``probes``: only the probing chapter's
        statistics (True), only the geometry chapter's (False), or all (None)."""
        rows = [dict(zip(TABLE_COLUMNS, (r["statistic"], r["outcomes"],
                                         f"layer {r['largest at layer']}: {r['finetuned']} vs {r['pretrained']}",
                                         r["difference"], r["random vs pretrained"], r["chance"])))
                for r in self._rows(probes).to_dict("records")]
        return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

    def sentences(self, probes: bool | None = None) -> list[str]:
        """The findings as paragraphs, clearest change first: one sentence per changed statistic (its
        largest layer with the deciding interval), then the statistics without a change as a small table
        (:meth:`unchanged_table`), the seeds that stand apart and (probes) the observations."""
        rows = self._rows(probes)
        changed = rows[rows["statistic"].isin(self.changed["statistic"])]
        out = [f"**{r.statistic[0].upper() + r.statistic[1:]}**: {r.verdict} at layer {r._3}: "
               f"{r.difference}{r.sensitivity}." for r in changed.itertuples(index=False)]
        if self.seeds < 2:
            out.append(f"Each outcome is against one fine-tuning run: {claims.SEED_VARIATION_NOT_MEASURED}.")
        rest = self.unchanged_table(probes)
        if not rest.empty:
            from .markdown import markdown_table

            out.append(f"Without a change at any layer, the outcome by layer:\n\n{markdown_table(rest)}")
        return out + self.seed_notes + (self.observations if probes is not False else [])

    def unchanged_table(self, probes: bool | None = None) -> pd.DataFrame:
        """The statistics without a change at any layer: one row each, one column per outcome with its
        layers (:func:`outcomes_text`'s groups)."""
        rows = self._rows(probes)
        rest = rows[~rows["statistic"].isin(self.changed["statistic"])]
        cells = [dict(part.rsplit(": ", 1) for part in str(r.outcomes).split("; ")) for r in rest.itertuples(index=False)]
        columns = list(dict.fromkeys(k for c in cells for k in c))
        return pd.DataFrame([{"statistic": r.statistic, **{k: c.get(k, "-") for k in columns}}
                             for r, c in zip(rest.itertuples(index=False), cells)], columns=["statistic", *columns])

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def view(self, probes: bool | None = None):
        """One chapter's Findings for a notebook cell (``IPython.display.Markdown`` of :meth:`markdown`):
        the probing chapter's statistics (``probes=True``) or the geometry chapter's (False)."""
        from IPython.display import Markdown

        return Markdown(self.markdown(probes))

    def conclusion(self, probes: bool) -> str:
        """A chapter's conclusion in 2-3 sentences: (probes) where the label is best read; how many
        statistics fine-tuning changed, the clearest with its deciding interval; how many it did not change
        at any layer. Every outcome word from :func:`layerwise.words.claims.difference_outcome`."""
        rows = self._rows(probes)
        mine = rows[rows["statistic"].isin(self.changed["statistic"])]
        out = []
        if probes and self.best_layers:  # one sentence per state: a reader's sentence stays short
            out.append(f"By paired comparison on the test sentences, the label is best read at {self.best_layers[0]}.")
            out += [f"It is best read at {b}." for b in self.best_layers[1:]]
        if mine.empty:
            out.append("Fine-tuning changed none of these statistics at any layer by the answer model.")
        else:
            top = mine.iloc[0]
            out.append(f"Fine-tuning changed {len(mine)} of these {len(rows)} statistics; the clearest is "
                       f"{top['statistic']}, {top['verdict']} at layer {top['largest at layer']}: {top['difference']}.")
        if len(rows) > len(mine):
            rest = len(rows) - len(mine)
            out.append(f"{f'The other {rest} show' if rest > 1 else 'The other statistic shows'} no change beyond δ "
                       f"or {'are' if rest > 1 else 'is'} not established at every layer.")
        return " ".join(out)

    def markdown(self, probes: bool | None = None) -> str:
        """The Findings section body: the sentences, then the table with one line on its order."""
        from .markdown import markdown_table

        text = "\n\n".join([self.conclusion(probes), *self.sentences(probes)])
        table = self.table(probes)
        if not table.empty:
            text += "\n\n" + RANKING + "\n\n" + markdown_table(table, widths=TABLE_WIDTHS)
        return text


def _describe(metric: str) -> str:
    """A statistic's name in the table and the prose: THE short name of the metric registry
    (:func:`layerwise.core.schema.label`, with the pooling's words: the Findings mix poolings); the long
    description is the Methods'."""
    return label(MEAN_METRIC.get(metric, metric))


def _value(tidy: pd.DataFrame, metric: str, state: str, layer: int, digits: int = 3) -> str:
    """A state's value of ``metric`` at ``layer``, for the table."""
    r = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] == layer)]
    if r.empty and metric in MEAN_METRIC.values():  # a study without the per-sentence mean: the pair mean
        r = tidy[(tidy["metric"] == metric.replace("_sentence_mean", "_mean").replace("_var_mean", "_sd"))
                 & (tidy["state"] == state) & (tidy["layer"] == layer)]
    return "not measured" if r.empty else fmt(r["value"].iloc[0], digits)


def _layers(layers) -> str:
    """``2, 4–6``: the layers, consecutive ones as a range."""
    return layer_span(list(layers)).split(" ", 1)[1]


def _signed(ci_text: str) -> str:
    """The value of a difference text with its sign: ``+0.163`` from ``+0.163 (95% CI ...)``."""
    value = str(ci_text).split(" (")[0]
    return value if value.startswith(("-", "+")) else "+" + value


def _size(v: claims.Verdict) -> float:
    """|difference| over the half-width of its deciding interval (inf for a zero-width interval)."""
    half = (v.detail["high"] - v.detail["low"]) / 2
    return abs(v.detail["mean"]) / half if half > 0 else math.inf


def _outcome_groups(verdicts: list[claims.Verdict], unit: str) -> list[tuple[str, list[int]]]:
    """The outcome's printed label and its layers, in :data:`layerwise.words.claims.OUTCOMES` order."""
    groups: dict[str, list[claims.Verdict]] = {}
    for v in verdicts:
        groups.setdefault(v.word, []).append(v)
    return [(claims.outcome_label(groups[w][0], unit).split(" = ")[0], [v.detail["layer"] for v in groups[w]])
            for w in claims.OUTCOMES if w in groups]


def outcomes_text(verdicts: list[claims.Verdict], unit: str = "seed") -> str:
    """The outcome at every layer, grouped in :data:`layerwise.words.claims.OUTCOMES` order: "changed: 6;
    changed, size unclear: 2, 4, 5; no change beyond δ: 0, 1; not established with 3 seeds: 3"."""
    return "; ".join(f"{word}: {_layers(layers)}" for word, layers in _outcome_groups(verdicts, unit))


def outcomes_clause(verdicts: list[claims.Verdict], unit: str = "seed") -> str:
    """:func:`outcomes_text` for a sentence, each layer group named as layers: "changed, size unclear at layer
    6; no change beyond δ at layer 0; not established with one random draw at layers 1–5"."""
    return "; ".join(f"{word} at {layer_span(layers)}" for word, layers in _outcome_groups(verdicts, unit))


def _outcome_row(tidy: pd.DataFrame, name: str, metric: str, values: str, verdicts: list[claims.Verdict], *,
                 random: str = "-", chance=None, digits: int = 3) -> dict:
    """One row of :data:`COLUMNS` from one statistic's per-layer outcomes: the largest layer is the changed
    one with the clearest difference (else the largest |difference|); ``chance(layer)`` its chance text."""
    moved = [v for v in verdicts if v.word == claims.CHANGED] or \
        [v for v in verdicts if v.word == claims.SIZE_UNCLEAR]
    top = max(moved or verdicts, key=lambda v: abs(v.detail["mean"]))
    layer = top.detail["layer"]
    return {"statistic": name, "metric": metric, "outcomes": outcomes_text(verdicts), "largest at layer": layer,
            "finetuned": _value(tidy, values, "finetuned", layer, digits),
            "pretrained": _value(tidy, values, "pretrained", layer, digits),
            "difference": outcome_clause(top, digits).split(" (", 1)[1].rstrip(")").split(";")[0],
            "n": top.n, "verdict": claims.outcome_label(top), "size / floor": _size(top) if moved else -1.0,
            "random vs pretrained": random, "chance": chance(layer) if chance else "-", "_changed": bool(moved),
            "sensitivity": "".join(f"; {p}" for p in outcome_clause(top, digits).rstrip(")").split("; ")
                                   if "leave-one-seed-out" in p)}


def _random_text(tidy_all: pd.DataFrame, metric: str, correct, layers: list[int]) -> dict[int, str]:
    """Random weights against pretrained per layer (the answer model over the random draws), as table text."""
    out = {}
    for v in seed_floor_verdicts(tidy_all, metric, state="random", correct=correct):
        if v.word != "not measured":
            out[v.detail["layer"]] = f"{claims.outcome_label(v, 'random draw')} ({fmt_signed(v.detail['mean'], 3)})"
    return out


def _chance_probe(tidy: pd.DataFrame, metric: str):
    def text(layer: int) -> str:
        v = claims.probe_chance_verdict(tidy, metric, layer)
        return v.word if v.word == "not measured" else f"{v.word} (permuted labels up to {fmt(v.detail['null_upper'], 2)})"
    return text


def _chance_null(tidy: pd.DataFrame, metric: str, null_metric: str):
    def text(layer: int) -> str:
        at = tidy[(tidy["state"] == "finetuned") & (tidy["layer"] == layer)]
        v = claims.null_verdict(at[at["metric"] == metric], at[at["metric"] == null_metric])
        return v.word if v.word == "not measured" else f"{v.word} (permuted labels up to {fmt(v.detail['null_upper'], 3)})"
    return text


def _chance_similarity(tidy: pd.DataFrame, pooling: str):
    def text(layer: int) -> str:
        for v in claims.chance_verdicts(tidy, "cka_debiased", pooling):
            if int(v.rows["layer"].iloc[0]) == layer:
                return v.word if v.word == "not measured" else f"{v.word} (null 95th percentile {fmt(v.detail['null_q95'], 3)})"
        return "not measured"
    return text


def statistic_rows(tidy: pd.DataFrame, tidy_all: pd.DataFrame, correct: pd.DataFrame | None,
                   poolings: Sequence[str] = (FIRST_TOKEN, MEAN_TOKENS)) -> list[dict]:
    """One row per judged statistic (:data:`COLUMNS`): per-sentence statistics, the probes of every pooling,
    :func:`scalars` of the primary pooling (the first of ``poolings``) and the similarity to pretrained of
    every pooling; a statistic without a judged layer is left out."""
    specs = [(m, _describe(m), MEAN_METRIC.get(m, m), None) for m in PER_SENTENCE_METRICS]
    specs += [(m, _describe(m), m, _chance_probe(tidy, m)) for m in probes(poolings)]
    specs += [(m, _describe(m), m, _chance_null(tidy, m, m.replace("silhouette", "silhouette_perm"))
               if m.startswith("silhouette") else None) for m in scalars(poolings[0])]
    rows = []
    for metric, name, values, chance in specs:
        verdicts = [v for v in seed_floor_verdicts(tidy_all, metric, correct=correct) if v.word != "not measured"]
        if verdicts:
            random = _random_text(tidy_all, metric, correct, [])
            rows.append(_outcome_row(tidy, name, metric, values, verdicts, chance=chance))
            rows[-1]["random vs pretrained"] = random.get(rows[-1]["largest at layer"], "-")
    for pooling, metric in similarities(poolings).items():
        verdicts = similarity_outcomes(tidy_all, pooling, correct=correct)
        if verdicts:
            rows.append(_outcome_row(tidy, _describe(metric), metric, metric, verdicts, chance=_chance_similarity(tidy, pooling),
                                     digits=2))
            top = next(v for v in verdicts if v.detail["layer"] == rows[-1]["largest at layer"])
            rows[-1]["pretrained"] = f"{fmt(top.detail['seed_pairs_mean'], 2)} between seeds"
            rows[-1]["random vs pretrained"] = _value(tidy, metric, "random", rows[-1]["largest at layer"], 2)
    return rows


def random_observations(tidy: pd.DataFrame, correct: pd.DataFrame | None, metric: str = PROBES[0],
                        tidy_all: pd.DataFrame | None = None) -> list[str]:
    """Random weights against the pretrained model on the probe: the answer model per layer (over the random
    draws, the sentence term paired on the test sentences)."""
    if correct is None or correct.empty or "random" not in set(correct["state"]):
        return []
    verdicts = [v for v in seed_floor_verdicts(tidy if tidy_all is None else tidy_all, metric, state="random",
                                               correct=correct) if v.word != "not measured"]
    if not verdicts:
        return []
    outcomes = outcomes_clause(verdicts, "random draw")
    k = max(v.n for v in verdicts)
    draws = "one random draw" if k == 1 else f"{k} random draws"
    return [f"Observation: random weights ({draws}) against the pretrained model, on the {_describe(metric)}. "
            f"{outcomes[:1].upper() + outcomes[1:]}."]


def model_findings(study) -> Findings:
    """The findings of one model's study (:class:`layerwise.study.study.Study`)."""
    tidy = study.tidy
    tidy_all = study.tidy_all if hasattr(study, "tidy_all") else tidy
    correct = getattr(study, "probe_correct", None)
    poolings = list(getattr(study, "poolings", None) or (FIRST_TOKEN, MEAN_TOKENS))
    primary = f"probe_acc_{poolings[0]}"
    rows = statistic_rows(tidy, tidy_all, correct, poolings)
    rows.sort(key=lambda r: (not r["_changed"], -r["size / floor"]))
    for r in rows:
        r["size / floor"] = ("unbounded (zero-width interval)" if math.isinf(r["size / floor"]) else
                             "-" if r["size / floor"] < 0 else fmt(r["size / floor"], 1))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "_changed"])
    changed = frame[frame["_changed"].astype(bool)].drop(columns="_changed").reset_index(drop=True)
    unchanged = frame[~frame["_changed"].astype(bool)].drop(columns="_changed").reset_index(drop=True)
    seeds = max(1, int(tidy_all.loc[tidy_all["state"] == "finetuned", "seed"].nunique())) \
        if "seed" in tidy_all.columns else 1
    best = [] if correct is None or correct.empty else \
        [b for b in (best_layers_clause(tidy, correct, primary, s, digits=3).replace(f"{s} ", f"the {s} "
                                                                                              f"model's ", 1)
                     for s in ("finetuned", "pretrained")) if b]
    apart = [t for t in (seed_apart_sentence(tidy_all, pooling) for pooling in poolings) if t]
    rule = " A seed stands apart"
    apart = [t.split(rule)[0] if i < len(apart) - 1 else t for i, t in enumerate(apart)]  # the rule once
    observations = random_observations(tidy, correct, primary, tidy_all=tidy_all)
    explain = caveat_sentences(study)
    explain = [explain[t] for t in EXPLAIN_RANDOM if t in explain]
    if observations and explain:  # the caveats that explain it, beside it
        observations = [f"{o} What bears on it: {' '.join(explain)}" for o in observations]
    return Findings(study.params.name, study.params.display_name, changed, unchanged, observations, seeds, best, apart)


def summary_markdown(findings: list[Findings]) -> str:
    """The index's one-table summary across the models of the run: per model the clearest change (the
    answer model's outcome with its deciding interval), how many statistics changed and how many did not
    at any layer, the seeds, and the observations."""
    from .markdown import markdown_table

    rows = []
    for f in findings:
        top = f.changed.iloc[0] if not f.changed.empty else None
        rows.append({"model": f.title, "clearest change": (f"{top['statistic']}: {top['verdict']} at layer "
                                                          f"{top['largest at layer']} ({top['difference']})"
                                                          if top is not None else "none"),
                     "changed": len(f.changed), "without a change": len(f.unchanged),
                     "seeds": f"{f.seeds}" if f.seeds > 1 else "1 (seed variation not measured)"})
    notes = [o for f in findings for o in f.observations]
    text = markdown_table(pd.DataFrame(rows), widths=SUMMARY_WIDTHS)
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
