"""Dropout with masks drawn in bulk, for fine-tuning on CPU.

On CPU, torch draws a dropout mask one element at a time (``aten::bernoulli_``); on the demo's bf16
fine-tuning step that took 19% of the step (``bench/RESULTS-roofline.md``). Here a mask is cut from
64-bit random words (``Tensor.random_`` over the full 64-bit range, four 16-bit lanes per word, a
quarter of the generator calls) and compared with a threshold:

    keep_i = [u_i >= round(p * 2^16)],   u_i uniform on {0, ..., 2^16 - 1},
    dropout(x)_i = keep_i * x_i / (1 - p)

so an element is dropped with probability ``round(p * 65536) / 65536`` (0.1000061 for p = 0.1, within
1e-5 of p) and the expected output equals the input, as in Srivastava et al. (2014, JMLR 15, "Dropout:
a simple way to prevent neural networks from overfitting"). The backward pass multiplies by the same
mask, kept as one byte per element. The masks come from the process's default generator, which the
Trainer seeds, so a run is reproducible; the draws depend neither on the thread count nor on the CPU's
instruction set (the generator is a serial Mersenne twister).

:func:`install` puts it in a model for the length of a ``with`` block: every ``torch.nn.Dropout``
module, and the attention-probability dropout of models that use transformers' attention interface
with ``sdpa`` (BERT, RoBERTa/CamemBERT, GPT-2...), where a dropout probability above 0 sends torch's
scaled-dot-product attention down its unfused path anyway. Off CPU, or with dropout 0 (evaluation),
everything runs as before.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Iterator

#: Resolution of the drop probability: it is rounded to a multiple of 1 / LEVELS.
LEVELS = 1 << 16
#: The name under which :func:`attention` is registered in transformers' ``AttentionInterface``.
ATTENTION_NAME = "layerwise_bulk_dropout_sdpa"


def keep_mask(shape, p: float, device=None, generator=None):
    """A boolean mask of ``shape``: True (keep) with probability ``1 - round(p * 2^16) / 2^16``, each
    element independent, drawn as 16-bit lanes of full-range 64-bit random words."""
    import torch

    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must lie in [0, 1) (got {p})")
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None, generator=generator)  # from int64's minimum, no bound: all 64 bits
    lanes = words.view(torch.int16)[:n].view(shape)      # int16 in [-2^15, 2^15): u - 2^15
    return lanes >= (round(p * LEVELS) - (LEVELS >> 1))


@functools.cache
def _function():
    import torch

    class BulkDropout(torch.autograd.Function):
        """``x * keep / (1 - p)``; the backward pass reuses ``keep``."""

        @staticmethod
        def forward(ctx, x, p):
            keep = keep_mask(x.shape, p, x.device)
            scale = 1.0 / (1.0 - p)
            ctx.save_for_backward(keep)
            ctx.scale = scale
            return x * keep * scale

        @staticmethod
        def backward(ctx, grad):
            (keep,) = ctx.saved_tensors
            return grad * keep * ctx.scale, None

    return BulkDropout


def bulk_dropout(x, p: float, training: bool = True):
    """Dropout of ``x`` with probability ``p`` (masks drawn in bulk on CPU; ``torch.nn.functional.dropout``
    elsewhere); ``x`` itself when not training or ``p == 0``."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        import torch

        return torch.nn.functional.dropout(x, p, True)
    return _function().apply(x, p)


@functools.cache
def _module_class():
    import torch

    class BulkDropoutModule(torch.nn.Dropout):
        """A ``torch.nn.Dropout`` whose masks are drawn in bulk (:func:`bulk_dropout`)."""

        def forward(self, x):
            if self.inplace:  # never in the models we fine-tune; keep torch's semantics if it happens
                return super().forward(x)
            return bulk_dropout(x, self.p, self.training)

    return BulkDropoutModule


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    """transformers' ``sdpa`` attention, except that on CPU with ``dropout > 0`` the attention
    probabilities are computed explicitly, ``softmax((q * scaling) k^T + mask)`` (Vaswani et al. 2017),
    and dropped with :func:`bulk_dropout`. Cases it does not cover (grouped key-value heads, a position
    bias, soft-capping) go to ``sdpa`` unchanged. Returns ``(output (batch, tokens, heads, dim), None)``."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (dropout == 0 or query.device.type != "cpu" or getattr(module, "num_key_value_groups", 1) > 1
             or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None)
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    q_len, k_len = query.shape[2], key.shape[2]
    if attention_mask is None and causal and q_len > 1:
        attention_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    # the scale goes on the queries (tokens x dim, not tokens x tokens); the mask becomes an additive bias
    # of one row per sentence, broadcast over the heads; the softmax stays in the scores' dtype
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:
        attention_mask = attention_mask[..., :k_len]
        if attention_mask.dtype == torch.bool:
            bias = torch.zeros(attention_mask.shape, dtype=scores.dtype, device=scores.device)
            attention_mask = bias.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
        scores = scores + attention_mask.to(scores.dtype)
    probs = bulk_dropout(torch.softmax(scores, dim=-1), dropout, True)
    out = torch.matmul(probs.to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, attention)
    # the padding mask is built as for sdpa (without this, transformers builds none for an unknown name)
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


@contextlib.contextmanager
def install(model, enabled: bool = True) -> Iterator[int]:
    """Inside the block, ``model``'s ``torch.nn.Dropout`` modules draw their masks in bulk and, where
    the model runs transformers' ``sdpa`` attention, so does its attention dropout; the block yields
    the number of dropout modules changed. Everything is put back on exit (the saved model and its
    config are as without it)."""
    import torch

    if not enabled:
        yield 0
        return
    cls = _module_class()
    swapped = [m for m in model.modules() if type(m) is torch.nn.Dropout and not m.inplace]
    for m in swapped:
        m.__class__ = cls
    config = getattr(model, "config", None)
    attn_before = getattr(config, "_attn_implementation", None)
    switch = attn_before == "sdpa" and hasattr(model, "set_attn_implementation")
    if switch:
        _register()
        model.set_attn_implementation(ATTENTION_NAME)
    try:
        yield len(swapped)
    finally:
        for m in swapped:
            m.__class__ = torch.nn.Dropout
        if switch:
            model.set_attn_implementation(attn_before)
