"""The verdict rules of the report, in one place.

Every sentence or table of the report that says "higher", "lower", "changed", "no change beyond δ",
"not established", "best", "significant", "negligible", "stands apart" (or that a floor was not measured)
takes its verdict from a function of this module. A verdict is a :class:`Verdict`: the word, the tidy rows
it rests on and their ``n``, so a reader (and a test) can trace each claim to its data. The prose module
turns verdicts into sentences; it never decides a verdict itself.

Modules (each added by the issue that defines its rules), every public name re-exported here:

* the answer model of a difference (issue 22): changed / changed, size unclear / no change beyond δ /
  not established with k seeds (:func:`difference_outcome`), against the similarity between seeds for a
  similarity (:func:`seed_similarity_change`), leave-one-seed-out sensitivity, the seed that stands apart
  (:func:`seed_apart`); chance judged apart (permutation nulls);
* effect size before significance, a description of the checkpoints at hand (issue #11), best layers by
  paired comparison (held-out probing issue);
* the shape of a statistic through the layers: rises, falls, peaks, dips, flat (issue #15).
"""


from .verdict import SEED_VARIATION_NOT_MEASURED, WORDS, Verdict, at_layer, seeds_in
from .outcomes import (CHANGED, EQUIVALENCE_LEVEL, NO_CHANGE, NOT_ESTABLISHED, OUTCOMES, SIZE_UNCLEAR,
                       difference_outcome, difference_rows, interval_versus, outcome_label, seed_apart, seed_change,
                       seed_similarity_change)
from .chance import (chance_verdict, chance_verdicts, correlation_verdict, null_verdict, null_verdicts,
                     probe_chance_verdict)
from .effects import (ALPHA, NEGLIGIBLE_SD, effect_verdict, effect_words, family_size, negligible_threshold,
                      state_change_verdicts)
from .layers import best_layers, layer_trend, state_versus, versus
from .families import (PRIMARY_CORRECTION, PRIMARY_MEASURES, PRIMARY_METRICS, PROBE_METRICS, SECONDARY_CORRECTION,
                       adjust, layer_verdicts, paired_probe_se, per_layer_differences, primary_family,
                       seed_apart_verdict, seed_floor_verdicts, similarity_outcomes)

__all__ = [
    "SEED_VARIATION_NOT_MEASURED", "WORDS", "Verdict", "at_layer", "seeds_in",
    "CHANGED", "EQUIVALENCE_LEVEL", "NO_CHANGE", "NOT_ESTABLISHED", "OUTCOMES", "SIZE_UNCLEAR", "difference_outcome",
    "difference_rows", "interval_versus", "outcome_label", "seed_apart", "seed_change", "seed_similarity_change",
    "chance_verdict", "chance_verdicts", "correlation_verdict", "null_verdict", "null_verdicts", "probe_chance_verdict",
    "ALPHA", "NEGLIGIBLE_SD", "effect_verdict", "effect_words", "family_size", "negligible_threshold",
    "state_change_verdicts", "best_layers", "layer_trend", "state_versus", "versus",
    "PRIMARY_CORRECTION", "PRIMARY_MEASURES", "PRIMARY_METRICS", "PROBE_METRICS", "SECONDARY_CORRECTION", "adjust",
    "layer_verdicts", "paired_probe_se", "per_layer_differences", "primary_family", "seed_apart_verdict",
    "seed_floor_verdicts", "similarity_outcomes",
]
