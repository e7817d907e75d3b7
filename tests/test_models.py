"""One loader for every model kind and state: tiny BERT/CamemBERT/FlauBERT and the embedded MiniLM."""

import pytest
import torch

from layerwise.inputs.config import parse_params
from layerwise.core.errors import LayerwiseError
from layerwise.model.models import check_model_available, load_model, model_source, pick_device, resolve_model, weights_key


def num_hidden_states(model) -> int:
    """L + 1: the embedding output and every layer."""
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None)
    return int(layers) + 1


def hidden_states(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc, output_hidden_states=True).hidden_states


def test_tiny_architectures_load_through_the_same_loader(tiny_model):
    arch, path = tiny_model
    model, tok = load_model(str(path), 2)
    assert not model.training
    hs = hidden_states(model, tok, ["un avis court", "un avis nettement plus long que le premier"])
    assert len(hs) == num_hidden_states(model) == 3
    assert all(h.shape[-1] == 32 for h in hs)


def test_random_state_keeps_architecture_changes_weights(tiny_model):
    arch, path = tiny_model
    pre, _ = load_model(str(path), 2)
    rnd, _ = load_model(str(path), 2, state="random", seed=1)
    rnd2, _ = load_model(str(path), 2, state="random", seed=1)
    assert type(pre) is type(rnd)
    p = dict(pre.named_parameters())
    r = dict(rnd.named_parameters())
    name = next(n for n in p if n.endswith("weight") and p[n].dim() == 2 and "embed" not in n)
    assert not torch.allclose(p[name], r[name])
    assert torch.equal(r[name], dict(rnd2.named_parameters())[name]), "random state must be seeded"


def test_embedded_minilm(minilm_dir):
    spec = parse_params({"name": "d", "model": {"id": "embedded:minilm"}, "dataset": {"source": "embedded:demo-fr"}})
    assert resolve_model(spec.model) == str(minilm_dir)
    model, tok = load_model(resolve_model(spec.model), 2)
    hs = hidden_states(model, tok, ["Un très bon livre.", "Je ne le recommande pas du tout."])
    assert len(hs) == 7 and hs[0].shape[-1] == 384
    assert check_model_available(spec) == str(minilm_dir)


def test_unknown_model_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LayerwiseError) as exc:
        load_model("someone/no-such-model-xyz", 2)
    msg = str(exc.value)
    assert "no-such-model-xyz" in msg and "embedded:minilm" in msg and "\n" not in msg


def test_device_pick(monkeypatch):
    monkeypatch.setenv("LAYERWISE_DEVICE", "cpu")
    assert pick_device().type == "cpu"


def test_device_pick_with_a_mocked_device_list(monkeypatch):
    """cuda when torch sees a GPU, else mps, else cpu; LAYERWISE_DEVICE wins over all of them."""
    import torch

    monkeypatch.delenv("LAYERWISE_DEVICE", raising=False)
    mps = getattr(torch.backends, "mps", None)
    for cuda, apple, expected in ((True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        if mps is not None:
            monkeypatch.setattr(mps, "is_available", lambda apple=apple: apple)
        elif apple:
            continue
        assert pick_device().type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LAYERWISE_DEVICE", "cuda:1")
    assert pick_device() == torch.device("cuda:1")


def test_model_source_resolves_once_what_the_caches_key(tiny_dirs, tmp_path):
    params = parse_params({"name": "d", "model": {"id": str(tiny_dirs["bert"])}, "dataset": {"source": "x.jsonl"}})
    src = model_source(params)
    assert src.path == resolve_model(params.model, params) and src.key == weights_key(params, src.path)
    ckpt = model_source(params, str(tiny_dirs["camembert"]))
    assert ckpt.path == str(tiny_dirs["camembert"]) and ckpt.revision is None and "checkpoint_files" in ckpt.key
    assert model_source(params, "camembert-base").key == {"checkpoint": "camembert-base"}
    with pytest.raises(LayerwiseError, match="does not exist"):
        model_source(params, str(tmp_path / "missing"))
    with pytest.raises(LayerwiseError, match="no config.json"):
        model_source(params, str(tmp_path))
