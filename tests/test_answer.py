"""Known answers for page 1 (layerwise.words.answer, layerwise.book.summary): one row per layer, the outcome of
each question from the answer model, the sentences on what stayed and what changed in each statistic's own
units, the lexical baseline in the readability sentence, the seed that stands apart named with its accuracy and
training loss."""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pandas as pd

from layerwise.core import schema
from layerwise.words import answer, claims

SEEDS = (1, 2, 3)
LAYERS = (0, 1, 2, 3)


def _r(metric, value, layer, state="finetuned", seed=pd.NA, lo=np.nan, hi=np.nan, n=60):
    return {"model": "m", "state": state, "layer": layer, "metric": metric, "value": float(value), "ci_low": lo,
            "ci_high": hi, "n": n, "seed": seed}


def _correct(rng, acc: float, state: str, layer: int, n: int = 60) -> list[dict]:
    k = int(round(acc * n))
    right = np.r_[np.ones(k), np.zeros(n - k)]
    return [{"model": "m", "state": state, "metric": "probe_acc_cls" if layer >= 0 else "lexical_probe_acc",
             "layer": layer, "sentence": i, "correct": float(c)} for i, c in enumerate(right)]


def synthetic_study(apart: bool = False):
    """Layers 0-1 untouched by fine-tuning, layers 2-3 rewritten: CKA with pretrained 0.3/0.1 against 0.95
    between seeds, tokens converge (+0.4), classes apart (+0.3), the probe rises from 0.6 to 0.9. ``apart``:
    seed 3 moves much less at layers 2-3."""
    rows, correct = [], []
    rng = np.random.default_rng(0)
    for layer in LAYERS:
        moved = layer >= 2
        for state, base in (("pretrained", 0.2), ("random", 0.25)):
            rows += [_r("token_cosine_sentence_mean", base, layer, state, lo=base - 0.01, hi=base + 0.01),
                     _r("silhouette_cls", 0.01, layer, state), _r("probe_acc_cls", 0.6, layer, state)]
            correct += _correct(rng, 0.6, state, layer)
        for s in SEEDS:
            weak = apart and s == 3 and moved
            eff = (0.1 if weak else 0.4 + 0.01 * s) if moved else 0.001 * s
            rows += [_r("effect_token_cosine", eff, layer, seed=s, lo=eff - 0.01, hi=eff + 0.01),
                     _r("silhouette_cls", 0.01 + ((0.1 if weak else 0.3) if moved else 0.0005 * s), layer, seed=s),
                     _r("probe_acc_cls", 0.9 if moved else 0.6, layer, seed=s),
                     _r("cka_debiased_cls_vs_pretrained", (0.8 if weak else 0.3 - 0.1 * (layer - 2) + 0.01 * s)
                        if moved else 0.99, layer, seed=s, lo=np.nan, hi=np.nan)]
        for a, b in combinations(SEEDS, 2):
            rows.append(_r("cka_debiased_cls_between_seeds", 0.95 if moved else 0.99, layer, seed=a))
        agg = float(np.mean([0.9 if moved else 0.6 for _ in SEEDS]))
        rows += [_r("token_cosine_sentence_mean", 0.6 if moved else 0.2, layer), _r("probe_acc_cls", agg, layer),
                 _r("silhouette_cls", 0.31 if moved else 0.01, layer)]
        correct += _correct(rng, agg, "finetuned", layer)
    rows += [_r("lexical_probe_acc", 0.7, -1, state) for state in ("pretrained", "finetuned", "random")]
    correct += [{**c, "state": s} for s in ("pretrained", "finetuned", "random") for c in _correct(rng, 0.7, s, -1)]
    tidy_all = pd.DataFrame(rows)
    tidy_all["seed"] = tidy_all["seed"].astype("Int64")
    tidy = tidy_all[tidy_all["seed"].isna()].drop(columns="seed").reset_index(drop=True)
    finetune = {"seeds": {str(s): {"accuracy": 0.8 + 0.01 * s, "train_loss": 0.3 + 0.1 * s} for s in SEEDS}}
    return SimpleNamespace(tidy=tidy, tidy_all=tidy_all, probe_correct=pd.DataFrame(correct), finetune=finetune,
                           params=SimpleNamespace(name="m", display_name="Model M"), manifest={})


def test_one_row_per_layer_and_one_outcome_word_per_cell():
    a = answer.model_answer(synthetic_study())
    assert list(a.table["layer"]) == [str(x) for x in LAYERS]
    for column, *_ in answer.QUESTIONS:
        for cell in a.table[column]:
            word = cell.split(" (")[0]
            assert word in claims.WORDS, cell
    # layers 0-1 untouched, layers 2-3 rewritten: similarity "changed" (CKA 0.3 against 0.95 between seeds)
    assert a.table.loc[3, "similar to pretrained"].startswith(claims.CHANGED)
    assert a.table.loc[0, "tokens converge"].startswith(claims.NO_CHANGE)
    assert a.table.loc[2, "label readable"] == f"{claims.CHANGED} (0.900)"


def test_sentences_say_what_stayed_and_what_changed_in_its_own_units():
    a = answer.model_answer(synthetic_study())
    stayed, changed = a.sentences[0], a.sentences[1]
    assert stayed.startswith("Stayed the same: layers 0, 1")
    assert changed.startswith("Changed:") and "0.200 pretrained, 0.600 fine-tuned" in changed
    assert "debiased CKA" in changed and "0.95 between seeds" in changed
    assert "largest change" not in " ".join(a.sentences).lower()


def test_each_measure_goes_by_its_registry_short_name():
    """Issue 24: the sentences and the legend name each question's measure by its registry short name, never by
    the registry's long description (the Methods')."""
    a = answer.model_answer(synthetic_study())
    text = " ".join(a.sentences) + " " + a.legend()
    for _, metric, _, _ in answer.QUESTIONS:
        values = answer.VALUE_METRICS.get(metric, metric)
        assert schema.label(values) in text, metric
        assert schema.lookup(values if values != "token_cosine" else "token_cosine_sentence_mean").description \
            not in text
    assert "token cosine at layers 2, 3: most at layer 2, 0.200 pretrained, 0.600 fine-tuned." in a.sentences[1]
    assert "debiased CKA (first token) with pretrained at layers 2, 3" in a.sentences[1]
    assert a.sentences[0].endswith("; debiased CKA (first token) with the pretrained model: 0.99 at layer 0, "
                                   "0.99 at layer 1.")
    assert "best read by the linear probe (first token) of the fine-tuned model" in a.sentences[-1]


def test_readability_is_compared_with_the_lexical_baseline():
    text = answer.readable_sentence(synthetic_study())
    assert "fine-tuned model: 0.900 at layer" in text
    assert "Against the bag-of-words probe, it is higher: paired difference +0.200" in text
    assert "bag-of-words probe (TF-IDF, the lexical baseline) scores 0.700" in text
    # the pretrained probe (0.6) is below the lexical baseline (0.7) on the same 60 sentences
    assert "For the pretrained model, the best linear probe (first token): 0.600" in text
    assert "Against the bag-of-words probe, it is lower: paired difference -0.100" in text


def test_the_seed_apart_is_named_with_its_accuracy_and_training_loss():
    note = answer.seed_note(synthetic_study(apart=True))
    assert note.startswith("Seed 3 stands apart") and "layers 2, 3" in note
    assert "| 3 (apart) | 0.830 | 0.600 |" in note and "| 1 | 0.810 | 0.400 |" in note
    assert answer.seed_note(synthetic_study()).startswith("No fine-tuning seed stands apart")


def test_one_seed_says_so_in_the_legend():
    study = synthetic_study()
    study.tidy_all = study.tidy_all[study.tidy_all["seed"].isna() | (study.tidy_all["seed"] == 1)]
    a = answer.model_answer(study)
    assert "seed variation not measured" in a.legend()
    assert len(a.table) == len(LAYERS)
