"""Layer swaps without retraining: how much of the fine-tuned task each layer's fine-tuning carries.

Zhang, Bengio & Singer (2019), "Are all layers created equal?": put back the weights of one layer as they
were before training (here: the pretrained weights) and measure the task again, with no retraining. A
layer whose swap leaves the accuracy unchanged is one whose fine-tuning the task does not need (a
"robust" layer); a layer whose swap breaks it is "critical". The cumulative swap (layers 0..l all set
back to pretrained) is the no-retraining analogue of freezing the first layers during fine-tuning
(Merchant et al. 2020, "What happens to BERT embeddings during fine-tuning?"): the fine-tuned layers
above l and the head then read the pretrained representations of layer l.

:func:`layer_groups` finds the layers generically; :func:`swap_correct` measures the per-sentence
correctness of the fine-tuned classifier, unswapped, with each single swap and with each cumulative swap.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import LayerwiseError
from ..core.precision import autocast, model_device, resolve as resolve_precision
from ..inputs.tokens import effective_max_length, encode
from ..measure.extract import padded_batches

#: the values of the ``kind`` column of :func:`swap_correct`
SWAP_KINDS = ("none", "single", "cumulative")
_WHERE = "model.swaps"


def _num_layers(model) -> int:
    """``config.num_hidden_layers`` (FlauBERT/XLM and GPT-2 map it to ``n_layers`` / ``n_layer``)."""
    config = getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        raise LayerwiseError(f"{type(model).__name__} has no config.num_hidden_layers", f"{_WHERE}.layer_groups",
                             "pass a transformers model (AutoModel or AutoModelForSequenceClassification)")
    return n


def _base(model) -> tuple[Any, str]:
    """The base model (``model.base_model``, the model itself for a bare ``AutoModel``) and its name in
    ``model`` (``""`` when it is the model itself)."""
    base = getattr(model, "base_model", model)
    for name, module in model.named_modules():
        if module is base:
            return base, name
    return model, ""


def _block_lists(base, n_layers: int) -> list[str]:
    """Names (in ``base``) of the outermost ``ModuleList``s of ``n_layers`` entries: the transformer blocks."""
    import torch

    lists = [name for name, m in base.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    return [n for n in lists if not any(n != o and n.startswith(o + ".") for o in lists)]


def _tensors(module) -> dict[str, Any]:
    """Parameters and persistent floating-point buffers (learned statistics; not index constants such as
    ``position_ids``) of ``module`` by name."""
    out = dict(module.named_parameters())
    persistent = set(module.state_dict(keep_vars=True))
    out.update({n: b for n, b in module.named_buffers() if n in persistent and b.is_floating_point() and n not in out})
    return out


def _layer_of(rel: str, lists: list[str], base) -> int | None:
    """The layer (0 = embeddings, i + 1 = block i) of the base-model tensor ``rel``, None for the head."""
    import torch

    for name in lists:
        if rel.startswith(name + "."):
            return int(rel[len(name) + 1:].split(".", 1)[0]) + 1
    owner = base.get_submodule(rel.rpartition(".")[0]) if "." in rel else base
    return 0 if isinstance(owner, torch.nn.Embedding) or "emb" in rel else None


def layer_groups(model) -> list[list[str]]:
    """The tensor names (as in ``model.named_parameters()``, plus persistent floating-point buffers) of
    layer 0 (the embeddings) and of each transformer block 1..L, found generically.

    The rule: the blocks are the entries of the base model's outermost ``ModuleList``s whose length is
    ``config.num_hidden_layers`` (BERT/RoBERTa/CamemBERT ``encoder.layer.i``, GPT-2 ``h.i``; FlauBERT/XLM
    keep SEVERAL parallel lists, ``attentions.i``, ``layer_norm1.i``, ``ffns.i``, ``layer_norm2.i``, and
    every entry of index i belongs to block i + 1). Layer 0 is every base-model tensor outside those lists
    that belongs to an ``nn.Embedding`` or whose name contains ``"emb"`` (``embeddings.*``, ``wte``, ``wpe``,
    ``position_embeddings``, ``layer_norm_emb``). Everything else (pooler, final layer norm, classifier
    head) is the head: no group holds it, so a swap keeps it fine-tuned. Returns L + 1 lists.
    """
    n_layers = _num_layers(model)
    base, prefix = _base(model)
    lists = _block_lists(base, n_layers)
    if not lists:
        raise LayerwiseError(
            f"cannot find the transformer blocks of {type(model).__name__}: its base model has no ModuleList "
            f"of num_hidden_layers = {n_layers} entries", f"{_WHERE}.layer_groups",
            "use a BERT-like encoder or a GPT-2-class decoder from transformers (their blocks are a ModuleList)")
    groups: list[list[str]] = [[] for _ in range(n_layers + 1)]
    for rel in _tensors(base):
        layer = _layer_of(rel, lists, base)
        if layer is not None:
            groups[layer].append(f"{prefix}.{rel}" if prefix else rel)
    empty = [i for i, g in enumerate(groups) if not g]
    if empty:
        raise LayerwiseError(f"layer(s) {empty} of {type(model).__name__} hold no weights (blocks found in "
                             f"{lists})", f"{_WHERE}.layer_groups",
                             "check that the model's embeddings are named '*emb*' or are nn.Embedding modules")
    return groups


def _pretrained_key(name: str, rel: str, keys: Sequence[str]) -> str:
    """The key of ``pretrained_state`` for the fine-tuned tensor ``name`` (``rel``: its name in the base
    model): the same name, the base-model name, or the one key ending with ``"." + rel`` (another prefix)."""
    for k in (name, rel):
        if k in keys:
            return k
    found = [k for k in keys if k.endswith("." + rel)]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found[:3])})"
        raise LayerwiseError(f"the pretrained state has {what} tensor(s) for {name!r}", f"{_WHERE}.swap_correct",
                             "pass the state_dict of the pretrained model of the same architecture "
                             "(AutoModel or AutoModelForSequenceClassification)")
    return found[0]


def _sources(model, groups: list[list[str]], pretrained_state: dict, tensors: dict) -> dict[str, Any]:
    """Each swapped tensor's pretrained value, on the model's device and in its dtype (no copy when already)."""
    _, prefix = _base(model)
    keys = pretrained_state.keys()
    out = {}
    for name in (n for g in groups for n in g):
        rel = name[len(prefix) + 1:] if prefix else name
        value = pretrained_state[_pretrained_key(name, rel, keys)]
        own = tensors[name]
        if tuple(value.shape) != tuple(own.shape):
            raise LayerwiseError(f"{name!r} has shape {tuple(own.shape)} but its pretrained tensor "
                                 f"{tuple(value.shape)}", f"{_WHERE}.swap_correct",
                                 "pass the pretrained state of the model the fine-tuning started from")
        out[name] = value.detach().to(device=own.device, dtype=own.dtype)
    return out


def _load(tensors: dict, names: list[str], values: dict) -> None:
    """Copy ``values[name]`` into the model's tensor ``name`` in place, for every name."""
    import torch

    with torch.no_grad():
        for name in names:
            tensors[name].copy_(values[name])


#: model types whose base model runs ``embeddings`` then the blocks of ``encoder.layer`` (a ModuleList), one after
#: the other: a swap there starts at the first changed block, from the hidden states the blocks below produce
#: (:func:`_from_block`); ``tests/test_swaps.py`` checks that it predicts exactly what the full forward pass does
SKIPPABLE = ("bert", "roberta", "camembert", "xlm-roberta")


def _skippable(model) -> Any:
    """The base model when :func:`_from_block` applies to ``model`` (a :data:`SKIPPABLE` model type with
    ``embeddings`` and ``encoder.layer`` of ``num_hidden_layers`` blocks), else None."""
    import torch

    base = getattr(model, "base_model", None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if (getattr(model.config, "model_type", None) in SKIPPABLE and hasattr(base, "embeddings")
            and isinstance(layers, torch.nn.ModuleList) and len(layers) == _num_layers(model)):
        return base
    return None


@contextlib.contextmanager
def _from_block(base, k: int, hidden):
    """Within the context, the base model's forward pass starts at block ``k`` (0-based) with ``hidden`` as that
    block's input: the embeddings return ``hidden`` and the encoder runs blocks ``k..L-1`` only (the same block
    objects; the attention mask, the pooler and the head run as always). Restored on exit."""
    import torch

    layers = base.encoder.layer
    base.encoder.layer = torch.nn.ModuleList(list(layers)[k:])
    base.embeddings.forward = lambda *args, **kwargs: hidden
    try:
        yield
    finally:
        base.encoder.layer = layers
        del base.embeddings.forward


def _logits_argmax(model, inputs: dict, hidden_states: bool = False):
    """``(predictions, hidden states or None)`` of one batch (the caller holds inference mode and autocast)."""
    out = model(**inputs, output_hidden_states=hidden_states)
    return out.logits.float().argmax(-1).cpu().numpy(), (out.hidden_states if hidden_states else None)


def _check_texts(texts, labels) -> tuple[list[str], np.ndarray]:
    if isinstance(texts, str) or not len(texts):
        raise LayerwiseError("texts must be a non-empty list of strings", f"{_WHERE}.swap_correct",
                             "pass the test sentences as a list")
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(texts),):
        raise LayerwiseError(f"{len(texts)} texts but labels of shape {y.shape}", f"{_WHERE}.swap_correct",
                             "give one integer label per text")
    return list(texts), y


def swap_correct(finetuned, pretrained_state: dict, tokenizer, texts: Sequence[str], labels, *,
                 batch_size: int = 32, max_length: int = 128, device=None, precision: str = "fp32",
                 progress: bool = False) -> pd.DataFrame:
    """Per-sentence task correctness of the fine-tuned classifier (argmax of its logits) with layers set
    back to their pretrained weights, no retraining.

    Rows (columns ``kind``, ``layer``, ``sentence``, ``correct``): ``kind="none"``, ``layer=-1``: the model
    as fine-tuned; ``"single"``, layer l in 0..L: layer l alone pretrained (:func:`layer_groups`);
    ``"cumulative"``, layer l: layers 0..l all pretrained (cumulative 0 is single 0, computed once). The head
    always stays fine-tuned. ``pretrained_state``: the pretrained model's ``state_dict`` (same architecture;
    names matched by suffix, so an ``AutoModel``'s names without the base-model prefix match). The weights are
    swapped in place and restored exactly (bit for bit) afterwards, even on an error. The texts are tokenized and
    padded once (dynamic padding) and every configuration of a batch runs before the next batch (memory: one
    batch's hidden states), in eval and inference mode, under the autocast of ``precision``. Accuracy of a
    configuration = mean of ``correct`` over its sentences. ``progress``: a bar over the batches.

    For BERT-family encoders (:data:`SKIPPABLE`) a configuration starts at its first changed block
    (:func:`_from_block`): a single swap of layer l >= 1 from the fine-tuned model's layer l - 1, a cumulative swap
    of layers 0..l from the pretrained model's layer l (both from the batch's own forward passes with hidden
    states); the blocks below would compute the same values. About half the block evaluations of 2L + 2 full
    passes; the predictions are the full passes' (a test checks it). Other architectures run every pass in full.
    """
    import torch
    from tqdm.auto import tqdm

    texts, y = _check_texts(texts, labels)
    groups = layer_groups(finetuned)
    n_groups = len(groups)
    dev = model_device(finetuned, device)
    tensors = _tensors(finetuned)
    sources = _sources(finetuned, groups, pretrained_state, tensors)
    encoded = encode(tokenizer, texts, effective_max_length(tokenizer, max_length, finetuned.config))
    batches = padded_batches(tokenizer, encoded, batch_size)
    backup = {name: tensors[name].detach().clone() for g in groups for name in g}
    every = [name for g in groups for name in g]
    base = _skippable(finetuned)
    precision = resolve_precision(precision, dev, purpose="analysis")
    pred = {("none", -1): np.empty(len(y), np.int64),
            **{(kind, layer): np.empty(len(y), np.int64) for kind in ("single", "cumulative")
               for layer in range(1 if kind == "cumulative" else 0, n_groups)}}
    was_training = finetuned.training
    finetuned.eval()
    try:
        with torch.inference_mode(), autocast(precision, dev):
            for idx, inputs in tqdm(batches, desc="layer swaps", unit="batch", disable=not progress, leave=False):
                inputs = {k: v.to(dev) for k, v in inputs.items()}
                pred["none", -1][idx], own = _logits_argmax(finetuned, inputs, hidden_states=base is not None)
                _load(tensors, every, sources)                  # every layer pretrained: cumulative L
                pred["cumulative", n_groups - 1][idx], before = _logits_argmax(finetuned, inputs,
                                                                                hidden_states=base is not None)
                _load(tensors, every, backup)
                for layer, names in enumerate(groups):
                    _load(tensors, names, sources)
                    if base is None or layer == 0:
                        pred["single", layer][idx] = _logits_argmax(finetuned, inputs)[0]
                    else:
                        with _from_block(base, layer - 1, own[layer - 1]):
                            pred["single", layer][idx] = _logits_argmax(finetuned, inputs)[0]
                    _load(tensors, names, backup)
                for layer in range(1, n_groups - 1):
                    if base is None:
                        _load(tensors, [n for g in groups[:layer + 1] for n in g], sources)
                        pred["cumulative", layer][idx] = _logits_argmax(finetuned, inputs)[0]
                        _load(tensors, [n for g in groups[:layer + 1] for n in g], backup)
                    else:
                        with _from_block(base, layer, before[layer]):
                            pred["cumulative", layer][idx] = _logits_argmax(finetuned, inputs)[0]
                del own, before
    finally:
        _load(tensors, every, backup)
        finetuned.train(was_training)
    rows = [("none", -1), *(("single", layer) for layer in range(n_groups)), ("cumulative", 0),
            *(("cumulative", layer) for layer in range(1, n_groups))]
    n = len(y)
    return pd.DataFrame({"kind": np.repeat([k for k, _ in rows], n),
                         "layer": np.repeat([layer for _, layer in rows], n).astype(np.int64),
                         "sentence": np.tile(np.arange(n, dtype=np.int64), len(rows)),
                         "correct": np.concatenate([pred[("single", 0) if r == ("cumulative", 0) else r] == y
                                                    for r in rows]).astype(bool)})
