"""Auxiliary probe tasks (measure.auxiliary): known answers for the labels and a planted property for the probes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from layerwise.core.errors import LayerwiseError
from layerwise.measure import auxiliary as aux
from layerwise.model.testing import tiny_texts


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_the_tasks_have_labels_and_descriptions():
    assert aux.TASKS == ("length", "word", "bigram_shift")
    assert aux.TASK_LABELS == {"length": "sentence length (3 bins)", "word": "word present",
                               "bigram_shift": "adjacent words swapped"}
    assert set(aux.TASK_DESCRIPTIONS) == set(aux.TASKS)


def test_length_tertiles_and_bins_on_known_counts():
    texts = [words(n) for n in range(1, 10)]                  # 1..9 words
    labels, edges = aux.length_labels(texts)
    assert edges == pytest.approx([1 + 8 / 3, 1 + 16 / 3])      # np.quantile, linear: 3.667, 6.333
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    test, same = aux.length_labels([words(3), words(4), words(6), words(7), "", words(30)], edges)
    assert test.tolist() == [0, 1, 1, 2, 0, 2] and np.array_equal(same, edges)
    on_edge, _ = aux.length_labels([words(2), words(3), words(4)], [2, 3])
    assert on_edge.tolist() == [0, 1, 2]                      # a count equal to an edge falls in the lower bin
    with pytest.raises(LayerwiseError, match="increasing"):
        aux.length_labels(texts, [5, 2])


def test_the_word_task_picks_the_word_in_half_of_the_texts():
    texts = ["Le chat dort.", "Un chat joue !", "le chien aboie", "Le CHAT mange", "la pluie tombe", "le vent",
             "Le soleil brille", "un oiseau chante"]
    # "chat" is in 3 of the 8 texts, every other word of 3+ letters in 1 ("le", "un": too short)
    assert aux.word_task(texts) == "chat"
    half = ["alpha beta", "alpha gamma", "delta beta", "delta gamma"]   # 4 words each in exactly half: alphabetical
    assert aux.word_task(half) == "alpha"
    assert aux.word_labels(["Chat !", "chaton", "un chat-noir", "achat", "CHAT"], "chat").tolist() == [1, 0, 1, 0, 1]
    assert aux.word_task(["abc1 123", "xyz"]) == "xyz"                                # digits never count
    assert aux.word_task(["été chaud", "pluie"]) == "chaud"                           # all at 1/2: alphabetical
    assert aux.word_labels(["été chaud", "Été", "étés"], "été").tolist() == [1, 1, 0]
    with pytest.raises(LayerwiseError, match="no word"):
        aux.word_task(["a b", "12 34"])


def test_bigram_shift_is_deterministic_flips_half_and_keeps_the_words():
    texts = tiny_texts(400, seed=2) + ["seul", "", "encore encore"]
    new, labels = aux.bigram_shift(texts, seed=5)
    again, labels2 = aux.bigram_shift(texts, seed=5)
    assert new == again and np.array_equal(labels, labels2)
    assert not np.array_equal(labels, aux.bigram_shift(texts, seed=6)[1])
    assert 0.43 < labels[:400].mean() < 0.57
    assert labels[-3:].tolist() == [0, 0, 0] and new[-3:] == texts[-3:]
    for old, text, y in zip(texts, new, labels):
        if y:
            assert text != old and Counter(text.split()) == Counter(old.split())
            a, b = old.split(), text.split()
            diff = [i for i in range(len(a)) if a[i] != b[i]]
            assert len(diff) == 2 and diff[1] == diff[0] + 1
        else:
            assert text == old


def test_task_data_builds_labels_from_the_training_texts():
    train, test = tiny_texts(60, seed=1), tiny_texts(30, seed=9)
    tr, ytr, te, yte = aux.task_data("length", train, test)
    assert tr == train and te == test and set(ytr) == {0, 1, 2}
    tr, ytr, te, yte = aux.task_data("bigram_shift", train, test, seed=3)
    assert np.array_equal(ytr, aux.bigram_shift(train, 3)[1]) and np.array_equal(yte, aux.bigram_shift(test, 4)[1])
    with pytest.raises(LayerwiseError, match="unknown auxiliary task"):
        aux.task_data("depth", train, test)


def planted(n: int, classes: int, rng: np.random.Generator, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Features [n, 3, d] of noise, except layer 1 whose first dimension is 4 * label (the planted property)."""
    y = rng.integers(0, classes, n)
    X = rng.normal(size=(n, 3, d))
    X[:, 1, 0] += 4.0 * y
    return X, y


@pytest.mark.parametrize("classes", [2, 3])
def test_a_planted_property_is_found_at_its_layer_only(classes):
    rng = np.random.default_rng(0)
    (Xtr, ytr), (Xte, yte) = planted(200, classes, rng), planted(300, classes, rng)
    out = aux.aux_probe_correct(Xtr, ytr, Xte, yte, seeds=3, seed=1)
    acc, ctl = out["correct"].mean(axis=1), out["control_correct"].mean(axis=1)
    assert out["correct"].shape == out["control_correct"].shape == (3, 300)
    chance = 1 / classes
    assert acc[1] > 0.9
    assert abs(acc[0] - chance) < 0.1 and abs(acc[2] - chance) < 0.1
    assert np.all(np.abs(ctl - chance) < 0.1)
    counts = np.bincount(ytr, minlength=classes)
    assert out["majority"] == pytest.approx(np.mean(yte == np.argmax(counts)))
    again = aux.aux_probe_correct(Xtr, ytr, Xte, yte, seeds=3, seed=1)
    assert np.array_equal(again["correct"], out["correct"])


def test_bad_features_are_refused():
    X, y = planted(20, 2, np.random.default_rng(1))
    with pytest.raises(LayerwiseError, match="shapes"):
        aux.aux_probe_correct(X[:, 0], y, X[:, 0], y)
    with pytest.raises(LayerwiseError, match="single class"):
        aux.aux_probe_correct(X, np.zeros(20, int), X, y)
