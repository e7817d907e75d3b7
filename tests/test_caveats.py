"""The computed caveats (issue 23): the tokenizer's fit, the declared pooling, the corpus's provenance,
the overlap of the parts (inputs/caveats.py), the first token's constancy (measure/constancy.py), the
cached step (study/caveat_step.py) and their sentences (words/caveats.py). Fast: fake tokenizers, small
arrays, the embedded MiniLM's files and a tiny BERT; the end-to-end check is in test_pipeline.py."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from layerwise.inputs import caveats
from layerwise.measure.constancy import (CONSTANT_FIRST_TOKEN, constant_layers, first_token_constancy,
                                         mean_pairwise_cosine)
from layerwise.words.caveats import ORDER, caveat_list, caveat_sentences, pct


class PiecesTokenizer:
    """A fake tokenizer: every ``\\w+`` word is ``pieces`` tokens; the word ``zzz`` is unknown (id 0);
    with special tokens, two more per text."""

    unk_token_id = 0

    def __init__(self, pieces: int = 3):
        self.pieces = pieces

    def __call__(self, texts, add_special_tokens=True):
        ids = []
        for t in texts:
            row = [0 if w == "zzz" else 5 for w in re.findall(r"\w+", t) for _ in range(self.pieces)]
            ids.append(([1] + row + [2]) if add_special_tokens else row)
        return {"input_ids": ids}


def test_a_tokenizer_that_cuts_every_word_in_three_gives_three_subwords_per_word():
    fit = caveats.tokenizer_fit(PiecesTokenizer(3), ["Le film est très bon.", "déçu, vraiment déçu"], max_length=10)
    assert fit["subwords_per_word"] == 3.0
    assert (fit["words"], fit["distinct_words"], fit["sentences"]) == (8, 7, 2)
    assert fit["unknown_share"] == 0.0 and fit["has_unknown_token"]
    # 5 words * 3 + 2 special = 17 > 10: the first text is cut, the second (3 * 3 + 2 = 11) too
    assert (fit["truncated"], fit["truncated_share"]) == (2, 1.0)
    assert json.loads(json.dumps(fit)) == fit


def test_unknown_tokens_and_truncation_are_counted():
    fit = caveats.tokenizer_fit(PiecesTokenizer(1), ["a zzz b c", "a b"], max_length=5)
    assert fit["unknown_tokens"] == 1 and fit["unknown_share"] == pytest.approx(1 / 6)
    assert fit["truncated"] == 1 and fit["truncated_share"] == 0.5   # 4 + 2 = 6 > 5; 2 + 2 = 4


def test_a_tokenizer_without_unknown_token_reports_none():
    tok = PiecesTokenizer(1)
    tok.unk_token_id = None
    fit = caveats.tokenizer_fit(tok, ["zzz zzz"], max_length=64)
    assert fit["unknown_share"] == 0.0 and not fit["has_unknown_token"] and fit["truncated"] == 0
    assert "no unknown token" in caveat_sentences(SimpleNamespace(manifest={"caveats": {"tokenizer": fit}}))["tokenizer"]


def test_the_embedded_minilm_tokenizer_fits_the_demo_sentences(minilm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    fit = caveats.tokenizer_fit(tok, ["Un livre magnifique, je le recommande.", "word " * 200], max_length=128)
    assert 1.0 <= fit["subwords_per_word"] < 4 and fit["truncated"] == 1
    # what the tokenizer is: the English uncased WordPiece vocabulary of the MiniLM checkpoint
    assert fit["tokenizer_class"].startswith("BertTokenizer") and fit["vocab_size"] == 30522 and fit["lowercase"]


def test_the_embedded_minilm_declares_mean_pooling(minilm_dir):
    assert caveats.model_pooling(minilm_dir) == {"mode": "mean", "modes": ["mean"], "source": "1_Pooling/config.json"}


def test_a_plain_checkpoint_and_an_unknown_hub_id_declare_no_pooling(tiny_dirs, tmp_path):
    assert caveats.model_pooling(tiny_dirs["bert"]) is None
    assert caveats.model_pooling("no-such-owner/no-such-model-xyz") is None
    (tmp_path / "modules.json").write_text(json.dumps([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert caveats.model_pooling(tmp_path)["mode"] == "cls"


def test_the_demo_corpus_declares_its_provenance_and_a_hub_dataset_does_not(tmp_path):
    found = caveats.corpus_provenance("embedded:demo-fr")
    assert found["declared"] and found["text"].startswith("Written for this project")
    assert found["source"].endswith("demo_fr/DATASHEET.md")
    assert caveats.corpus_provenance("tblard/allocine") == {"dataset": "tblard/allocine", "declared": False,
                                                            "text": None, "source": None}
    (tmp_path / "DATASHEET.md").write_text("# X\n\n## How it was made\nScraped in 2020. Then cleaned. Then more.\n")
    assert caveats.corpus_provenance("reviews.csv", tmp_path)["text"] == "Scraped in 2020. Then cleaned."
    assert caveats.corpus_provenance(None) is None


def test_a_duplicated_sentence_is_reported_within_a_part_and_across_parts():
    texts = ["Très bon film, je recommande.", "très  bon film, je recommande.", "Nul.", "Un autre texte ici",
             "NUL.", "Le livre est long et ennuyeux à lire"]
    split = ["train", "train", "probe", "test", "test", "test"]
    out = caveats.split_overlap(texts, split)
    assert out["parts"] == {"train": 2, "probe": 1, "test": 3}
    assert out["within"]["train"] == {"groups": 1, "copies": 1, "examples": [[0, 1]]}
    assert out["within"]["test"]["copies"] == 0
    assert out["across"]["probe-test"] == {"shared": 1, "examples": [[2, 4]]}
    assert out["across"]["train-test"]["shared"] == 0
    sentence = caveat_sentences(SimpleNamespace(manifest={"caveats": {"overlap": out}}))["overlap"]
    assert sentence.startswith("1 sentence is repeated within the fine-tuning part and 1 sentence is shared by "
                               "the probe and test parts")


def test_the_word_ngram_overlap_of_the_test_part():
    texts = ["a b c d e f", "x y z w v u", "a b c d e q", "k l m n o p"]
    out = caveats.split_overlap(texts, ["train", "probe", "test", "test"])["ngrams"]
    # test 5-grams: (a b c d e), (b c d e q), (k l m n o), (l m n o p): one of four in train, none in probe
    assert (out["test_ngrams"], out["test_share_in_train"], out["test_share_in_probe"]) == (4, 0.25, 0.0)
    assert out["test_sentences_with_train_ngram"] == 0.5


def test_first_token_constancy_known_answers():
    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, 3, 16)), 5, axis=0) * rng.uniform(0.5, 2, size=(5, 1, 1))
    assert first_token_constancy(same)["value"].tolist() == pytest.approx([1.0] * 3)
    assert first_token_constancy({0: np.eye(4), 2: -np.eye(4)}).to_dict("list") == {"layer": [0, 2], "value": [0.0, 0.0]}
    assert mean_pairwise_cosine(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(-1.0)
    x = rng.normal(size=(20, 2, 8)) + 1.0
    pairs = [np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for i, a in enumerate(x[:, 0]) for b in x[i + 1:, 0]]
    frame = first_token_constancy(x)
    assert frame["value"][0] == pytest.approx(np.mean(pairs))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert first_token_constancy(x @ q)["value"].tolist() == pytest.approx(frame["value"].tolist())
    assert constant_layers(first_token_constancy(same)) == [0, 1, 2] and constant_layers(frame) == []
    assert CONSTANT_FIRST_TOKEN == 0.99


def test_the_stored_embeddings_give_first_token_rows_per_state(tmp_path):
    from layerwise.study.caveat_step import first_token

    rng = np.random.default_rng(1)
    split = np.array(["train", "test", "test", "test"])
    np.savez(tmp_path / "embeddings_pretrained.npz", cls=np.ones((4, 2, 3), np.float16), split=split)
    np.savez(tmp_path / "embeddings_finetuned@7.npz", cls=rng.normal(size=(4, 2, 3)).astype(np.float16), split=split)
    rows = first_token(tmp_path)
    assert set(rows) == {"pretrained", "finetuned@7"}
    assert rows["pretrained"] == [{"layer": 0, "value": 1.0}, {"layer": 1, "value": 1.0}]
    assert json.loads(json.dumps(rows)) == rows


def _manifest() -> dict:
    first = {"pretrained": [{"layer": i, "value": v} for i, v in enumerate([1.0, 0.995, 0.991, 0.8])],
             "finetuned@1": [{"layer": i, "value": v} for i, v in enumerate([1.0, 0.995, 0.5, 0.2])],
             "finetuned@2": [{"layer": i, "value": v} for i, v in enumerate([1.0, 0.995, 0.5, 0.2])],
             "random": [{"layer": i, "value": 0.5} for i in range(4)]}
    return {"caveats": {
        "tokenizer": {"sentences": 630, "words": 1000, "subwords_per_word": 2.0412, "has_unknown_token": True,
                      "unknown_tokens": 3, "unknown_share": 0.001, "max_length": 128, "truncated": 0,
                      "truncated_share": 0.0, "tokens": 3000, "distinct_words": 10},
        "first_token": first,
        "pooling": {"mode": "mean", "modes": ["mean"], "source": "1_Pooling/config.json"},
        "provenance": {"dataset": "embedded:demo-fr", "declared": True, "text": "Written for this project.",
                       "source": "layerwise/resources/demo_fr/DATASHEET.md"},
        "overlap": caveats.split_overlap(["a b c d e f", "a b c d e g", "x"], ["train", "test", "probe"])}}


def test_caveat_sentences_from_a_synthetic_manifest():
    study = SimpleNamespace(params=SimpleNamespace(display_name="Tiny"), manifest=_manifest())
    said = caveat_sentences(study)
    assert list(said) == list(ORDER)
    assert said["tokenizer"] == ("The tokenizer splits a word into 2.04 subwords on average; 0.1% of tokens are "
                                 "unknown; 0 of 630 sentences were cut at 128 tokens.")
    assert said["first_token"] == ("Where the first token barely varies between sentences (mean cosine between "
                                   "sentences ≥ 0.99), its statistics describe one nearly fixed vector. Such layers, "
                                   "per model: pretrained: layers 0–2; fine-tuned seeds 1 and 2: layers 0, 1.")
    assert said["pooling"] == ("The model declares mean pooling (sentence-transformers 1_Pooling/config.json): its "
                               "first token was not trained as a sentence summary.")
    assert said["provenance"] == ("How the corpus was made is declared in its datasheet "
                                  "(layerwise/resources/demo_fr/DATASHEET.md). Written for this project.")
    assert said["overlap"] == ("No sentence is repeated within a part or shared between the fine-tuning, probe and "
                               "test parts. Of the test part's 5-word sequences, 50% also occur in the fine-tuning "
                               "part (100% of test sentences hold at least one).")
    assert caveat_list(study) == [said[t] for t in ORDER]
    named = _manifest()
    named["caveats"]["tokenizer"].update(tokenizer_class="BertTokenizerFast", vocab_size=30522, lowercase=True)
    said = caveat_sentences(SimpleNamespace(params=SimpleNamespace(display_name="Tiny"), manifest=named))
    assert said["tokenizer"].startswith("The tokenizer (BertTokenizerFast, 30,522 entries, lower-cased) splits a "
                                        "word into 2.04 subwords")


def test_a_missing_caveat_gives_no_sentence():
    assert caveat_sentences(SimpleNamespace(manifest={})) == {} and caveat_list(SimpleNamespace(manifest={})) == []
    manifest = _manifest()
    manifest["caveats"].update(pooling=None, tokenizer=None)
    assert set(caveat_sentences(SimpleNamespace(manifest=manifest))) == {"first_token", "provenance", "overlap"}
    flat = {"pretrained": [{"layer": 0, "value": 0.3}]}
    said = caveat_sentences(SimpleNamespace(manifest={"caveats": {"first_token": flat}}))
    assert said["first_token"].startswith("The first token varies between sentences at every layer")
    undeclared = {"dataset": "tblard/allocine", "declared": False, "text": None, "source": None}
    said = caveat_sentences(SimpleNamespace(manifest={"caveats": {"provenance": undeclared}}))
    assert "not declared" in said["provenance"]


def test_percentages_for_prose():
    assert [pct(v) for v in (0.0, 0.0004, 0.032, 0.13, 1.0)] == ["0%", "<0.1%", "3.2%", "13%", "100%"]
