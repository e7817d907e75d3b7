"""Tiny random-initialised test models: offline loading, hidden states, tokenizers, caching, determinism."""

import json
import time

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from layerwise.model import testing
from layerwise.core.errors import LayerwiseError
from layerwise.core.repro import file_hash
from layerwise.model.testing import learn_bpe, tiny_dataset, tiny_labels, tiny_model_dir, tiny_texts

SHORT = "Ce film est une réussite."
LONG = "Franchement, ce livre ne vaut pas son prix et je le déconseille vivement à tout le monde !"
SPECIALS = {"bert": ("[CLS]", "[SEP]"), "camembert": ("<s>", "</s>"), "flaubert": ("<s>", "</s>")}


def load(path):
    return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_forward_pass_hidden_states_and_padding(tiny_model):
    arch, path = tiny_model
    model, tok = load(path)
    assert model.config.model_type == arch and model.config.num_labels == 2
    enc = tok([SHORT, LONG], padding=True, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    assert mask[1].all() and not mask[0].all(), "the short sentence must be padded"
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    hs = out.hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1 == 3
    assert all(h.shape == (2, enc["input_ids"].shape[1], 32) for h in hs)
    assert out.logits.shape == (2, 2)
    pads = [h[0][~mask[0]] for h in hs]
    if arch == "flaubert":  # FlauBERT multiplies every hidden state by the padding mask
        assert all(torch.equal(p, torch.zeros_like(p)) for p in pads)
    else:
        assert all(p.abs().sum(-1).gt(0).all() for p in pads)
    assert all(h[0][mask[0]].abs().sum(-1).gt(0).all() for h in hs)


def test_tokenizers_add_their_special_tokens(tiny_dirs):
    for arch, path in tiny_dirs.items():
        tok = AutoTokenizer.from_pretrained(path)
        ids = tok(SHORT)["input_ids"]
        first, last = SPECIALS[arch]
        assert tok.convert_ids_to_tokens([ids[0], ids[-1]]) == [first, last], arch
        assert tok.unk_token_id not in ids, arch
        assert tok.model_max_length == 128
        assert len(tok(" ".join([LONG] * 20), truncation=True)["input_ids"]) == 128
    assert type(AutoTokenizer.from_pretrained(tiny_dirs["camembert"])).__name__ == "CamembertTokenizer"
    assert type(AutoTokenizer.from_pretrained(tiny_dirs["flaubert"])).__name__ == "FlaubertTokenizer"


def test_special_token_ids_match_the_published_models(tiny_dirs):
    cam = AutoTokenizer.from_pretrained(tiny_dirs["camembert"])
    assert [cam.pad_token_id, cam.unk_token_id, cam.bos_token_id, cam.eos_token_id] == [1, 3, 5, 6]
    fl = AutoTokenizer.from_pretrained(tiny_dirs["flaubert"])
    assert [fl.bos_token_id, fl.sep_token_id, fl.pad_token_id, fl.unk_token_id] == [0, 1, 2, 3]
    bert = AutoTokenizer.from_pretrained(tiny_dirs["bert"])
    assert [bert.pad_token_id, bert.unk_token_id, bert.cls_token_id, bert.sep_token_id] == [0, 1, 2, 3]
    for arch, path in tiny_dirs.items():
        cfg = json.loads((path / "config.json").read_text())
        assert cfg.get("pad_token_id", cfg.get("pad_index")) == AutoTokenizer.from_pretrained(path).pad_token_id


def test_camembert_tokenizer_agrees_with_its_sentencepiece_model(tiny_dirs):
    import sentencepiece as spm

    path = tiny_dirs["camembert"]
    tok = AutoTokenizer.from_pretrained(path)
    sp = spm.SentencePieceProcessor(model_file=str(path / "sentencepiece.bpe.model"))
    for text in tiny_texts(60, seed=7) + [LONG, "Un mot inconnu : xylophone"]:
        assert tok.tokenize(text) == sp.encode(text, out_type=str), text


def test_bert_keeps_accents_and_splits_rare_words(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["bert"])
    assert tok.tokenize("À") == ["à"]  # lower-cased, accent kept (BERT's default would strip it)
    assert "".join(p.removeprefix("##") for p in tok.tokenize("Déconseillé")) == "déconseillé"
    pieces = tok.tokenize("xylophone")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


def test_second_call_comes_from_the_cache(tiny_dirs):
    for arch, path in tiny_dirs.items():
        stamp = (path / "model.safetensors").stat().st_mtime_ns
        start = time.perf_counter()
        again = tiny_model_dir(arch)
        assert time.perf_counter() - start < 1.0
        assert again == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
        assert path.name == f"{arch}-v1" and (path / "DONE.json").is_file()


def test_build_is_deterministic(tiny_dirs, tmp_path):
    for arch, cached in tiny_dirs.items():
        fresh = tiny_model_dir(arch, tmp_path)
        assert fresh == tmp_path / f"{arch}-v1"
        for f in cached.iterdir():
            if f.name != "DONE.json":
                assert file_hash(fresh / f.name) == file_hash(f), (arch, f.name)


def test_rebuilds_when_incomplete_or_when_training_texts_change(tmp_path, monkeypatch):
    path = tiny_model_dir("camembert", tmp_path)
    vocab = AutoTokenizer.from_pretrained(path).get_vocab()
    (path / "DONE.json").unlink()
    assert tiny_model_dir("camembert", tmp_path) == path and (path / "DONE.json").is_file()
    other = tiny_texts(300, seed=11)[::2]
    monkeypatch.setattr(testing, "training_texts", lambda: (other, "test"))
    rebuilt = tiny_model_dir("camembert", tmp_path)
    assert json.loads((rebuilt / testing.MANIFEST).read_text())["texts_source"] == "test"
    assert AutoTokenizer.from_pretrained(rebuilt).get_vocab() != vocab
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_unknown_arch_is_a_clear_error(tmp_path):
    with pytest.raises(LayerwiseError, match="roberta.*bert, camembert, flaubert"):
        tiny_model_dir("roberta", tmp_path)


def test_tiny_dataset_is_deterministic_balanced_and_labelled():
    texts, labels = tiny_dataset(40, seed=0)
    assert (texts, labels) == tiny_dataset(40, seed=0)
    assert texts == tiny_texts(40) and labels == tiny_labels(40)
    assert tiny_texts(40, seed=1) != texts
    assert len(set(texts)) == 40 and sorted(labels) == [0] * 20 + [1] * 20
    assert tiny_labels(7).count(1) == 4
    for text, label in zip(texts, labels):
        assert any(p in text for p in testing._PREDICATES[label])
        assert not any(p in text for p in testing._PREDICATES[1 - label])
    with pytest.raises(LayerwiseError):
        tiny_dataset(10**6)


def test_learn_bpe_known_merges():
    # Sennrich et al. (2016)'s toy vocabulary, with </w> on the last character of each word:
    # (e, s) and (s, t</w>) both occur 6 + 3 = 9 times; the tie goes to the smaller pair ('e', 's').
    counts = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    merges = learn_bpe(counts, num_merges=4)
    assert merges == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w")]
    # then (ew, est</w>) and (n, ewest</w>) occur 6 times; (lo, w</w>) only 5: below min_count=6
    assert learn_bpe(counts, num_merges=100, min_count=6) == merges + [("ew", "est</w>"), ("n", "ewest</w>")]


def test_learned_bpe_is_what_the_flaubert_tokenizer_applies(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["flaubert"])
    merges = (tiny_dirs["flaubert"] / "merges.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert merges and all(len(m.split(" ")) == 2 for m in merges)
    assert tok.tokenize("livre") == ["livre</w>"]  # a frequent word is one symbol
    assert "".join(tok.tokenize("xylophone")).replace("</w>", "") == "xylophone"
