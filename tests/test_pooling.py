"""Known answers for each pooling (layerwise.measure.pooling) on hand-made batches, left and right padding,
and the pooling declarations (core.tables, core.schema, inputs.config) kept equal."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch

from layerwise.core import schema, tables
from layerwise.core.errors import LayerwiseError
from layerwise.inputs.config import AnalysisSpec, PoolingName
from layerwise.measure import pooling
from layerwise.model.models import study_poolings

#: three sentences of 1, 3 and 2 tokens, token k of sentence s is the vector (s, k, 10 s + k)
LENGTHS = (1, 3, 2)
T = 4


def _sentence(s: int, n: int) -> np.ndarray:
    return np.array([[s, k, 10 * s + k] for k in range(n)], dtype=np.float32)


def _batch(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentences padded to T on ``side``; padding rows hold 99 (never read by a pooling)."""
    h = np.full((len(LENGTHS), T, 3), 99.0, np.float32)
    valid = np.zeros((len(LENGTHS), T), bool)
    for s, n in enumerate(LENGTHS):
        at = slice(0, n) if side == "right" else slice(T - n, T)
        h[s, at] = _sentence(s, n)
        valid[s, at] = True
    return torch.from_numpy(h), torch.from_numpy(valid)


@pytest.mark.parametrize("side", ["right", "left"])
def test_each_pooling_has_its_known_answer(side):
    h, valid = _batch(side)
    first = pooling.pool(h, valid, "first").numpy()
    last = pooling.pool(h, valid, "last").numpy()
    mean = pooling.pool(h, valid, "mean").numpy()
    for s, n in enumerate(LENGTHS):
        rows = _sentence(s, n)
        np.testing.assert_array_equal(first[s], rows[0])
        np.testing.assert_array_equal(last[s], rows[-1])
        np.testing.assert_allclose(mean[s], rows.mean(0), rtol=1e-6)
    assert not np.any(np.stack([first, last, mean]) == 99.0)  # no padding row read


def test_left_and_right_padding_pool_alike_and_positions_are_the_mask_ends():
    (hr, vr), (hl, vl) = _batch("right"), _batch("left")
    assert pooling.first_positions(vr).tolist() == [0, 0, 0]
    assert pooling.last_positions(vr).tolist() == [0, 2, 1]
    assert pooling.first_positions(vl).tolist() == [3, 1, 2]
    assert pooling.last_positions(vl).tolist() == [3, 3, 3]
    a = pooling.pooled_layers([hr, 2 * hr], vr, ["last", "cls", "mean"])
    b = pooling.pooled_layers([hl, 2 * hl], vl, ["last", "cls", "mean"])
    assert list(a) == ["last", "cls", "mean"]
    for name in a:
        assert a[name].shape == (3, 2, 3) and a[name].dtype == np.float16
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_allclose(a[name][:, 1].astype(float), 2 * a[name][:, 0].astype(float), rtol=1e-3)


def test_one_token_sentence_pools_to_that_token_whatever_the_pooling():
    h, valid = _batch("left")
    got = {how: pooling.pool(h, valid, how)[0].numpy() for how in ("first", "last", "mean")}
    for v in got.values():
        np.testing.assert_array_equal(v, _sentence(0, 1)[0])


def test_unknown_or_repeated_poolings_are_refused():
    h, valid = _batch("right")
    with pytest.raises(LayerwiseError, match="unknown"):
        pooling.pooled_layers([h], valid, ["first"])
    with pytest.raises(LayerwiseError):
        pooling.pooled_layers([h], valid, ["mean", "mean"])
    with pytest.raises(LayerwiseError):
        pooling.pool(h, valid, "max")


def test_each_pooling_is_declared_once_with_its_words_and_setting():
    assert tables.POOLINGS == tuple(tables.POOLING_SPECS) == ("cls", "mean", "last")
    assert {p.how for p in tables.POOLING_SPECS.values()} == {"first", "mean", "last"}
    assert set(schema.POOLING_WORDS) == set(tables.POOLINGS)
    assert set(typing.get_args(PoolingName)) == set(tables.POOLINGS)
    for p in tables.POOLINGS:
        assert schema.label(f"probe_acc_{p}") == f"linear probe ({schema.pooling_noun(p)})"
        assert schema.lookup(f"cka_debiased_{p}_vs_pretrained").name == "cka_debiased"
        assert schema.lookup(f"cka_{p}_vs_pretrained").family == "similarity"
        assert tables.value_range(f"probe_acc_{p}") == (0.0, 1.0)
        assert tables.pooling_of(f"silhouette_{p}") == p


def test_default_poolings_put_the_models_own_first():
    mean_declared = {"mode": "mean", "modes": ["mean"], "source": "1_Pooling/config.json"}
    assert study_poolings(None, "bert", mean_declared) == ["mean", "cls"]          # the embedded MiniLM
    assert study_poolings(None, "bert", None) == ["cls", "mean"]
    assert study_poolings(None, "gpt2", None) == ["last", "mean"]
    assert study_poolings(None, "bert", {"modes": ["last"]}) == ["last", "cls", "mean"]
    assert study_poolings(None, "bert", {"modes": ["max"]}) == ["cls", "mean"]        # not a study pooling
    assert study_poolings(["mean"], "gpt2", None) == ["mean"]


def test_the_poolings_setting_is_validated_and_out_of_the_key_when_unset():
    assert "poolings" not in AnalysisSpec().geometry_payload()
    assert AnalysisSpec(poolings=["last", "mean"]).geometry_payload()["poolings"] == ["last", "mean"]
    with pytest.raises(Exception, match="once"):
        AnalysisSpec(poolings=["mean", "mean"])
    with pytest.raises(Exception):
        AnalysisSpec(poolings=["first"])
