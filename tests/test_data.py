"""Data loading: local files of every kind, deterministic selection, clear errors."""


import pandas as pd
import pytest

from layerwise.config import parse_params
from layerwise.data import load_splits
from layerwise.errors import LayerwiseError


def reviews(n=60, labels=("neg", "pos")):
    return pd.DataFrame({"review": [f"avis numéro {i} plutôt {'bon' if i % 2 else 'mauvais'}" for i in range(n)],
                         "polarity": [labels[i % len(labels)] for i in range(n)]})


def params_for(path, **ft):
    return parse_params({"name": "t", "model": {"id": "embedded:minilm"},
                         "dataset": {"source": str(path), "text_column": "review", "label_column": "polarity"},
                         "finetune": {"num_train": 30, "num_test": 10, **ft}})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_local_files_of_every_kind(tmp_path, suffix):
    df = reviews()
    path = tmp_path / f"r{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path)
    s = load_splits(params_for(path))
    assert len(s.train) == 30 and len(s.test) == 10
    assert s.label_names == ["neg", "pos"] and set(s.train["label"]) == {0, 1}
    assert not set(s.train["index"]) & set(s.test["index"]), "held-out test must not overlap train"
    assert s.train.column_names[:2] == ["text", "label"]


def test_selection_is_deterministic_and_seeded(tmp_path):
    path = tmp_path / "r.csv"
    reviews(200).to_csv(path, index=False)
    a, b = load_splits(params_for(path)), load_splits(params_for(path))
    assert a.train["index"] == b.train["index"] and a.selection["hash"] == b.selection["hash"]
    c = load_splits(params_for(path, seed=7))
    assert c.train["index"] != a.train["index"] and c.selection["hash"] != a.selection["hash"]


def test_separate_split_files_and_multiclass(tmp_path):
    reviews(50, ("a", "b", "c")).to_csv(tmp_path / "train.csv", index=False)
    reviews(20, ("a", "b", "c")).to_csv(tmp_path / "test.csv", index=False)
    p = parse_params({"name": "t", "model": {"id": "embedded:minilm"},
                      "dataset": {"data_files": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")},
                                  "text_column": "review", "label_column": "polarity"},
                      "finetune": {"num_train": 40, "num_test": 20}})
    s = load_splits(p)
    assert s.num_labels == 3 and len(s.test) == 20 and not s.selection["held_out_test"]


def test_errors(tmp_path):
    path = tmp_path / "r.csv"
    reviews().to_csv(path, index=False)
    bad = parse_params({"name": "t", "model": {"id": "embedded:minilm"},
                        "dataset": {"source": str(path), "text_column": "texte", "label_column": "polarity"},
                        "finetune": {"num_train": 30, "num_test": 10}})
    with pytest.raises(LayerwiseError, match=r"column 'texte' not found.*review, polarity"):
        load_splits(bad)
    with pytest.raises(LayerwiseError, match=r"finetune.num_train.*asks for 500.*at most 50"):
        load_splits(params_for(path, num_train=500))
    one = reviews(labels=("pos",))
    one.to_csv(path, index=False)
    with pytest.raises(LayerwiseError, match="single class"):
        load_splits(params_for(path))
    empty = reviews()
    empty.loc[:20, "review"] = ""
    empty.to_csv(path, index=False)
    with pytest.raises(LayerwiseError, match="empty"):
        load_splits(params_for(path))


def test_offline_hub_dataset_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    p = parse_params({"name": "t", "model": {"id": "embedded:minilm"}, "dataset": {"source": "tblard/allocine"}})
    with pytest.raises(LayerwiseError) as exc:
        load_splits(p)
    assert "tblard/allocine" in str(exc.value) and "Fix:" in str(exc.value)
