"""Layer swaps without retraining (model.swaps): the layer groups of every tiny architecture, identity swaps,
a swap to a different encoder, exact restoration."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from layerwise.core.errors import LayerwiseError
from layerwise.inputs.tokens import encode
from layerwise.measure import extract
from layerwise.model.models import load_model
from layerwise.model.swaps import layer_groups, swap_correct
from layerwise.model.testing import NUM_LAYERS, tiny_dataset, tiny_model_dir

#: the tensors outside every group (the head), per architecture
HEADS = {"bert": {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"},
         "camembert": {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                       "classifier.out_proj.bias"},
         "flaubert": {"sequence_summary.summary.weight", "sequence_summary.summary.bias"},
         "gpt2": {"transformer.ln_f.weight", "transformer.ln_f.bias", "score.weight"}}
#: a name found in each block group, per architecture (FlauBERT: its four parallel lists)
BLOCK_PARTS = {"bert": ["bert.encoder.layer.{i}."], "camembert": ["roberta.encoder.layer.{i}."],
               "flaubert": ["transformer.attentions.{i}.", "transformer.layer_norm1.{i}.", "transformer.ffns.{i}.",
                            "transformer.layer_norm2.{i}."],
               "gpt2": ["transformer.h.{i}."]}
TEXTS, LABELS = tiny_dataset(40, seed=3)


@pytest.fixture(scope="module")
def models():
    return {arch: load_model(str(tiny_model_dir(arch)), 2) for arch in HEADS}


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(model, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("arch", list(HEADS))
def test_groups_cover_every_encoder_tensor_once(models, arch):
    model, _ = models[arch]
    groups = layer_groups(model)
    assert len(groups) == NUM_LAYERS + 1 == model.config.num_hidden_layers + 1
    flat = [n for g in groups for n in g]
    assert len(flat) == len(set(flat))
    assert set(flat) | HEADS[arch] == {n for n, _ in model.named_parameters()}
    assert not set(flat) & HEADS[arch]
    assert all("emb" in n or ".wte." in n or ".wpe." in n for n in groups[0])
    for i, group in enumerate(groups[1:]):
        parts = [p.format(i=i) for p in BLOCK_PARTS[arch]]
        assert all(any(n.startswith(p) for p in parts) for n in group)
        assert all(any(n.startswith(p) for n in group) for p in parts), "every parallel list is in the block"


def test_groups_of_a_bare_encoder_have_no_prefix(models):
    bare = AutoModel.from_pretrained(tiny_model_dir("bert"))
    groups = layer_groups(bare)
    assert groups[1][0].startswith("encoder.layer.0.") and groups[0][0].startswith("embeddings.")


def test_no_blocks_is_an_error_a_person_can_act_on():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    net.config = SimpleNamespace(num_hidden_layers=3)
    with pytest.raises(LayerwiseError, match="cannot find the transformer blocks"):
        layer_groups(net)
    net.config = SimpleNamespace()
    with pytest.raises(LayerwiseError, match="num_hidden_layers"):
        layer_groups(net)


@pytest.mark.parametrize("arch", list(HEADS))
def test_a_swap_with_its_own_weights_changes_nothing(models, arch):
    model, tok = models[arch]
    before = snapshot(model)
    own = AutoModel.from_pretrained(tiny_model_dir(arch)).state_dict()  # names without the prefix: by suffix
    df = swap_correct(model, own, tok, TEXTS, LABELS, batch_size=16)
    assert list(df.columns) == ["kind", "layer", "sentence", "correct"]
    assert df.correct.dtype == bool and len(df) == len(TEXTS) * (1 + 2 * (NUM_LAYERS + 1))
    counts = df.groupby(["kind", "layer"]).size()
    assert set(counts.index) == {("none", -1)} | {(k, l) for k in ("single", "cumulative")
                                                  for l in range(NUM_LAYERS + 1)}
    none = df[df.kind == "none"].sort_values("sentence").correct.to_numpy()
    for _, part in df.groupby(["kind", "layer"]):
        assert np.array_equal(part.sort_values("sentence").correct.to_numpy(), none)
    assert_identical(model, before)


def finetuned_bert(arch: str = "bert"):
    """The tiny BERT (or another tiny ``arch``) fine-tuned on TEXTS (every weight, 25 full-batch Adam steps:
    training accuracy 1), so that its head reads an encoder different from the pretrained one."""
    torch.manual_seed(0)
    model, tok = load_model(str(tiny_model_dir(arch)), 2)
    inputs = tok(TEXTS, padding=True, return_tensors="pt")
    y = torch.tensor(LABELS)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(**inputs).logits, y).backward()
        opt.step()
    return model, tok


def test_a_swap_to_the_pretrained_encoder_changes_predictions_and_is_undone():
    model, tok = finetuned_bert()
    pretrained = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir("bert")).state_dict()
    before = snapshot(model)
    df = swap_correct(model, pretrained, tok, TEXTS, LABELS, batch_size=8)
    acc = df.groupby(["kind", "layer"]).correct.mean()
    assert acc[("none", -1)] >= 0.9, "the model was fine-tuned on these sentences"
    assert acc[("cumulative", NUM_LAYERS)] < acc[("none", -1)] - 0.2
    single0 = df[(df.kind == "single") & (df.layer == 0)].correct.to_numpy()
    assert np.array_equal(df[(df.kind == "cumulative") & (df.layer == 0)].correct.to_numpy(), single0)
    assert_identical(model, before)
    same = swap_correct(model, before, tok, TEXTS, LABELS, batch_size=8)
    assert (same.groupby(["kind", "layer"]).correct.mean() == acc[("none", -1)]).all()
    assert_identical(model, before)


def test_a_pretrained_state_that_lacks_a_layer_is_refused_and_nothing_moves(models):
    model, tok = models["bert"]
    before = snapshot(model)
    state = {k: v for k, v in before.items() if ".layer.1." not in k}
    with pytest.raises(LayerwiseError, match="no tensor"):
        swap_correct(model, state, tok, TEXTS, LABELS)
    bad = dict(before, **{"bert.embeddings.word_embeddings.weight": torch.zeros(3, 3)})
    with pytest.raises(LayerwiseError, match="shape"):
        swap_correct(model, bad, tok, TEXTS, LABELS)
    assert_identical(model, before)


def test_padded_batches_cover_every_text_once_as_the_tokenizer_pads(models):
    _, tok = models["camembert"]
    enc = encode(tok, TEXTS[:7], 64)
    batches = extract.padded_batches(tok, enc, 3)
    assert sorted(i for idx, _ in batches for i in idx) == list(range(7))
    idx, inputs = batches[0]
    ref = tok([TEXTS[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert all(torch.equal(inputs[k], ref[k]) for k in inputs)


@pytest.mark.parametrize("arch", ["bert", "camembert"])
def test_starting_at_the_first_changed_block_predicts_what_the_full_passes_do(arch, monkeypatch):
    """The BERT-family path (each configuration from its first changed block, on the hidden states of the batch's
    own passes) against a full forward pass per configuration: the same correctness, sentence by sentence."""
    from layerwise.model import swaps

    model, tok = finetuned_bert(arch)
    pretrained = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir(arch)).state_dict()
    assert swaps._skippable(model) is not None
    fast = swap_correct(model, pretrained, tok, TEXTS, LABELS, batch_size=8)
    monkeypatch.setattr(swaps, "_skippable", lambda m: None)
    full = swap_correct(model, pretrained, tok, TEXTS, LABELS, batch_size=8)
    pd.testing.assert_frame_equal(fast, full)
    acc = fast.groupby(["kind", "layer"]).correct.mean()
    assert acc.nunique() > 1, "the swaps changed some predictions (the comparison is not vacuous)"
