"""Sentence poolings of a padded batch: what each pooling of :data:`layerwise.core.tables.POOLING_SPECS` takes
from the hidden states, under left or right padding alike.

``first``: the first non-padding token; ``last``: the last non-padding token; ``mean``: the mean over the
non-padding tokens (special tokens included), summed in float32 as the engine's token sums
(:func:`layerwise.measure.kernels.token_sums`). Positions come from the attention mask only, so a batch padded
on the left (decoders' usual side) and one padded on the right pool to the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import LayerwiseError
from ..core.tables import POOLING_SPECS
from . import kernels


def first_positions(valid) -> Any:
    """The position of the first non-padding token of each row of ``valid`` (``[B, T]`` bool), ``[B]``."""
    import torch

    return torch.argmax(valid.to(torch.int8), dim=1)


def last_positions(valid) -> Any:
    """The position of the last non-padding token of each row of ``valid`` (``[B, T]`` bool), ``[B]``."""
    import torch

    return valid.shape[1] - 1 - torch.argmax(valid.flip(1).to(torch.int8), dim=1)


def pool(h, valid, how: str) -> Any:
    """One pooling of one layer ``h`` (``[B, T, d]``, float32) under the attention mask ``valid`` (``[B, T]``):
    ``how`` is ``"first"``, ``"last"`` or ``"mean"``; ``[B, d]``."""
    import torch

    rows = torch.arange(h.shape[0], device=h.device)
    if how == "first":
        return h[rows, first_positions(valid)]
    if how == "last":
        return h[rows, last_positions(valid)]
    if how == "mean":
        weights = valid.to(h.dtype).unsqueeze(1)                               # [B, 1, T]
        return kernels.token_sums(weights, h)[:, 0] / weights.sum(-1).clamp_min(1)
    raise LayerwiseError(f"unknown pooling method {how!r}", "pooling.pool", "use first, last or mean")


def check_poolings(poolings: Sequence[str]) -> list[str]:
    """``poolings`` as a list, each a declared pooling (:data:`POOLING_SPECS`), none twice; else a
    :class:`LayerwiseError` naming the choices."""
    names = list(poolings)
    bad = [p for p in names if p not in POOLING_SPECS]
    if bad or not names or len(set(names)) != len(names):
        raise LayerwiseError(f"poolings {names} (unknown: {bad})" if bad else f"poolings {names}", "pooling",
                             f"name one or more of {list(POOLING_SPECS)}, each once")
    return names


def pooled_layers(hidden: Sequence[Any], valid, poolings: Sequence[str]) -> dict[str, np.ndarray]:
    """Every requested pooling of every layer of one batch, float16 ``[B, L+1, d]`` per pooling name."""
    import torch

    out = {}
    for name in check_poolings(poolings):
        how = POOLING_SPECS[name].how
        out[name] = torch.stack([pool(h.float(), valid, how) for h in hidden], 1).cpu().numpy().astype(np.float16)
    return out
