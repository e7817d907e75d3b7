"""Dropout masks drawn in bulk (layerwise.model.dropout): known answers for the mask's law, the
dropout's expectation and gradient, the attention's limit at p -> 0 against torch's SDPA, and the
install/restore of a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from layerwise.model import dropout as D


def test_keep_mask_rate_and_lanes():
    """Each of the four 16-bit lanes of a 64-bit word drops at rate round(p * 2^16) / 2^16 (a biased
    top lane, e.g. from a 63-bit draw, fails this by a wide margin)."""
    torch.manual_seed(0)
    n = 4 * 250_000
    for p in (0.1, 0.5, 0.02):
        keep = D.keep_mask((n,), p)
        assert keep.dtype == torch.bool and keep.shape == (n,)
        drop = round(p * D.LEVELS) / D.LEVELS
        per_lane = (~keep).view(-1, 4).float().mean(0).numpy()
        sd = np.sqrt(drop * (1 - drop) / (n / 4))
        assert np.all(np.abs(per_lane - drop) < 5 * sd), (p, per_lane)
    assert bool(D.keep_mask((3, 5), 0.0).all())
    with pytest.raises(ValueError):
        D.keep_mask((4,), 1.0)


def test_keep_mask_is_seeded_and_independent_of_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(7)
        a = D.keep_mask((1000, 37), 0.1)
        torch.set_num_threads(2)
        torch.manual_seed(7)
        b = D.keep_mask((1000, 37), 0.1)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)
    assert not torch.equal(a, D.keep_mask((1000, 37), 0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bulk_dropout_expectation_and_gradient(dtype):
    """E[dropout(x)] = x (inverted scaling); the gradient is the mask times 1 / (1 - p)."""
    torch.manual_seed(1)
    p = 0.25
    x = torch.full((200_000,), 2.0, dtype=dtype, requires_grad=True)
    y = D.bulk_dropout(x, p, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    assert torch.allclose(y[kept].float(), torch.tensor(2.0 / (1 - p)), rtol=1e-2)
    assert abs(y.float().mean().item() - 2.0) < 0.02
    y.sum().backward()
    expect = kept.to(dtype) / (1 - p)
    assert torch.allclose(x.grad.float(), expect.float(), rtol=1e-2)


def test_bulk_dropout_is_identity_when_off():
    x = torch.randn(5, 3)
    assert D.bulk_dropout(x, 0.1, training=False) is x
    assert D.bulk_dropout(x, 0.0, training=True) is x


class _Module(torch.nn.Module):
    is_causal = False


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_attention_at_p_to_zero_is_sdpa(mask_kind):
    """With a drop probability that rounds to 0 the explicit path is softmax(q k^T / sqrt(d) + mask) v,
    as torch's scaled_dot_product_attention computes it (known answer to float precision)."""
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    module = _Module()
    mask, kwargs = None, {}
    if mask_kind == "bool":
        mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6], dtype=torch.bool)[:, None, None, :].expand(2, 1, 6, 6)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    elif mask_kind == "float":
        mask = torch.randn(2, 1, 6, 6)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    elif mask_kind == "causal":
        module.is_causal = True
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    out, weights = D.attention(module, q, k, v, mask, dropout=1e-9, **kwargs)
    assert weights is None and out.shape == (2, 6, 3, 8)
    assert torch.allclose(out, ref.transpose(1, 2), atol=1e-5)
    # dropout 0 (evaluation) goes to transformers' sdpa unchanged
    out0, _ = D.attention(module, q, k, v, mask, dropout=0.0)
    assert torch.allclose(out0, ref.transpose(1, 2), atol=1e-5)


def test_attention_drops_probabilities():
    """With p = 0.5 about half the attention weights are dropped: the output differs from SDPA's and
    is reproducible under a seed."""
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 16, 4) for _ in range(3))
    torch.manual_seed(4)
    a, _ = D.attention(_Module(), q, k, v, None, dropout=0.5)
    torch.manual_seed(4)
    b, _ = D.attention(_Module(), q, k, v, None, dropout=0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    assert torch.equal(a, b) and not torch.allclose(a, ref, atol=1e-3)


def test_install_swaps_and_restores(minilm_dir, tmp_path):
    """Inside ``install`` every dropout draws in bulk and attention runs the explicit path; evaluation
    outputs are unchanged (padding masked as before); outside, the model and its saved config are as
    they were."""
    from layerwise.model.models import load_model

    model, tok = load_model(str(minilm_dir), 2)
    batch = tok(["un film magnifique, long et lent", "nul"], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**batch).logits
    n_dropout = sum(type(m) is torch.nn.Dropout for m in model.modules())
    with D.install(model) as swapped:
        assert swapped == n_dropout > 0
        assert model.config._attn_implementation == D.ATTENTION_NAME
        with torch.no_grad():
            inside = model(**batch).logits
        model.train()
        torch.manual_seed(5)
        t1 = model(**batch).logits
        torch.manual_seed(5)
        t2 = model(**batch).logits
        model.eval()
        model.save_pretrained(tmp_path)
    assert torch.allclose(before, inside, atol=1e-5)
    assert torch.equal(t1, t2) and not torch.allclose(t1, before, atol=1e-4)
    assert model.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, D._module_class()) for m in model.modules())
    assert sum(type(m) is torch.nn.Dropout for m in model.modules()) == n_dropout
    assert "attn" not in " ".join(json.loads((tmp_path / "config.json").read_text()))
    with D.install(model, enabled=False) as swapped:
        assert swapped == 0 and model.config._attn_implementation == "sdpa"

