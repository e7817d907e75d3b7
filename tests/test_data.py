"""Data loading: local files of every kind, deterministic selection, clear errors."""


import pandas as pd
import pytest

from layerwise.inputs.config import parse_params
from layerwise.inputs.data import load_splits
from layerwise.core.errors import LayerwiseError


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
    test = reviews(20, ("a", "b", "c"))
    test["review"] = "test " + test["review"]  # (the same texts as train's would be removed from train)
    test.to_csv(tmp_path / "test.csv", index=False)
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


def test_index_is_the_source_row_after_dropping_empty_texts(tmp_path, caplog):
    df = reviews(60)
    df.loc[[0, 5], "review"] = ""  # 2 of 60: dropped with a warning
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    s = load_splits(params_for(path))
    for part in (s.train, s.test):
        for text, index in zip(part["text"], part["index"]):
            assert text == df.loc[index, "review"], f"index {index} does not point at its source row"
    assert not {0, 5} & set(list(s.train["index"]) + list(s.test["index"]))
    assert "dropping 2 empty texts" in caplog.text


def test_index_is_the_source_row_in_a_separate_test_file(tmp_path):
    train, test = reviews(50), reviews(20)
    test.loc[[3], "review"] = None
    test["review"] = [f"test {i}" if t else t for i, t in enumerate(test["review"])]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    p = parse_params({"name": "t", "model": {"id": "embedded:minilm"},
                      "dataset": {"data_files": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")},
                                  "text_column": "review", "label_column": "polarity"},
                      "finetune": {"num_train": 40, "num_test": 19}})
    s = load_splits(p)
    assert all(t == f"test {i}" for t, i in zip(s.test["text"], s.test["index"]))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_encoding_reaches_the_readers(tmp_path, suffix):
    df = reviews()
    path = tmp_path / f"r{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False, encoding="latin-1")
    else:
        path.write_bytes(df.to_json(orient="records", lines=True, force_ascii=False).encode("latin-1"))
    with pytest.raises(LayerwiseError, match=r"not valid utf-8 text: byte 0xe9 at line \d+.*dataset.encoding"):
        load_splits(params_for(path))
    p = parse_params({"name": "t", "model": {"id": "embedded:minilm"},
                      "dataset": {"source": str(path), "text_column": "review", "label_column": "polarity",
                                  "encoding": "latin-1"},
                      "finetune": {"num_train": 30, "num_test": 10}})
    s = load_splits(p)
    assert any("numéro" in t for t in s.train["text"])


def test_labels_that_are_not_scalars_are_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(f'{{"review": "t{i}", "polarity": [{i % 2}]}}' for i in range(60)) + "\n")
    with pytest.raises(LayerwiseError, match=r"labels of column 'polarity'.*strings or numbers; row 0 holds list"):
        load_splits(params_for(path))


def test_probe_pool_is_disjoint_from_fine_tuning_and_test(tmp_path):
    path = tmp_path / "r.csv"
    reviews().to_csv(path, index=False)
    base = load_splits(params_for(path))
    s = load_splits(params_for(path, num_probe=16))
    assert len(s.probe) == 16 and set(s.probe["label"]) == {0, 1}
    parts = [set(s.train["index"]), set(s.probe["index"]), set(s.test["index"])]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    # the probe pool adds rows: the fine-tuning and test selections stay the same
    assert list(s.train["index"]) == list(base.train["index"]) and list(s.test["index"]) == list(base.test["index"])
    assert s.selection["probe_index"] == list(s.probe["index"]) and s.selection["hash"] != base.selection["hash"]
    assert base.probe is not None and len(base.probe) == 0 and "probe_index" not in base.selection
    with pytest.raises(LayerwiseError, match="finetune.num_probe.*at most 20"):
        load_splits(params_for(path, num_probe=21))


def test_demo_params_split_the_corpus_in_three():
    from pathlib import Path

    from layerwise.inputs.config import load_params

    p = load_params(Path(__file__).parents[1] / "params" / "demo.yml")
    ft = p.finetune
    assert ft.num_probe > 0 and ft.num_train + ft.num_probe + ft.num_test <= 630
    assert p.data_payload()["num_probe"] == ft.num_probe
