"""`layerwise check` catches, before any work, what would fail later: max_length beyond the model,
states the chapters cannot use, missing or single labels, sizes, encodings and empty files, each as
one line naming the file and the field (or line) at fault."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from layerwise import cli
from layerwise.inputs.checks import position_limit
from layerwise.study.preflight import run_checks
from layerwise.inputs.config import load_params

BASE = {"name": "t", "model": {"id": "embedded:minilm"},
        "finetune": {"num_train": 30, "num_test": 10, "max_length": 64}, "analysis": {"max_length": 64}}


def corpus(n=40) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"avis numéro {i} plutôt {'bon' if i % 2 else 'mauvais'}" for i in range(n)],
                         "label": [i % 2 for i in range(n)]})


def params_file(tmp_path: Path, data: str = "data.csv", **sections) -> Path:
    body = {**BASE, "dataset": {"source": data}}
    for section, values in sections.items():
        body[section] = {**body.get(section, {}), **values}
    p = tmp_path / "p.yml"
    p.write_text(yaml.safe_dump(body))
    return p


def run_check(path: Path, capsys) -> tuple[int, str, str]:
    rc = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *parts: str):
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def test_valid_study_prints_the_label_mapping_and_positions(tmp_path, capsys):
    df = corpus()
    df["label"] = ["négatif" if y == 0 else "positif" for y in df["label"]]
    df.to_csv(tmp_path / "data.csv", index=False)
    rc, out, err = run_check(params_file(tmp_path), capsys)
    assert rc == 0, err
    assert "# label mapping: 'négatif' -> 0, 'positif' -> 1" in out
    assert "(512 positions)" in out and "30 train / 10 test" in out


def test_max_length_beyond_the_model(tmp_path, capsys):
    corpus().to_csv(tmp_path / "data.csv", index=False)
    p = params_file(tmp_path, finetune={"max_length": 4096})
    rc, _, err = run_check(p, capsys)
    assert_one_line_error(rc, err, str(p), "finetune.max_length", "4096", "512 positions", "at most 512")
    p = params_file(tmp_path, analysis={"max_length": 1000})
    rc, _, err = run_check(p, capsys)
    assert_one_line_error(rc, err, "analysis.max_length", "at most 512")


def test_position_limit_of_roberta_like_models():
    class Cfg:
        max_position_embeddings = 514
        model_type = "camembert"
        pad_token_id = 1

    assert position_limit(Cfg()) == 512
    Cfg.model_type = "bert"
    assert position_limit(Cfg()) == 514
    assert position_limit(object()) is None


def test_states_without_pretrained(tmp_path, capsys):
    corpus().to_csv(tmp_path / "data.csv", index=False)
    rc, _, err = run_check(params_file(tmp_path, analysis={"states": ["finetuned"]}), capsys)
    assert_one_line_error(rc, err, "analysis.states", "pretrained", "chapters")


def test_missing_labels_name_the_rows(tmp_path, capsys):
    df = corpus().astype({"label": "object"})
    df.loc[[3, 7, 11], "label"] = None
    df.to_csv(tmp_path / "data.csv", index=False)
    rc, _, err = run_check(params_file(tmp_path), capsys)
    line = assert_one_line_error(rc, err, "data.csv", "dataset.label_column", "3 of 40", "rows 3, 7, 11")
    assert "KeyError" not in line


def test_single_class(tmp_path, capsys):
    df = corpus()
    df["label"] = 1
    df.to_csv(tmp_path / "data.csv", index=False)
    rc, _, err = run_check(params_file(tmp_path), capsys)
    assert_one_line_error(rc, err, "dataset.label_column", "single class")


def test_num_test_too_large_blames_num_test(tmp_path, capsys):
    corpus().to_csv(tmp_path / "data.csv", index=False)
    rc, _, err = run_check(params_file(tmp_path, finetune={"num_test": 39}), capsys)
    line = assert_one_line_error(rc, err, "finetune.num_test", "39", "at most 10")
    assert "field 'finetune.num_train'" not in line


def test_num_train_too_large_blames_num_train(tmp_path, capsys):
    corpus().to_csv(tmp_path / "data.csv", index=False)
    rc, _, err = run_check(params_file(tmp_path, finetune={"num_train": 500}), capsys)
    assert_one_line_error(rc, err, "field 'finetune.num_train'", "500", "at most 30")


def test_latin1_file_names_the_file_and_the_encoding_setting(tmp_path, capsys):
    corpus().to_csv(tmp_path / "data.csv", index=False, encoding="latin-1")
    rc, _, err = run_check(params_file(tmp_path), capsys)
    line = assert_one_line_error(rc, err, "data.csv", "utf-8", "dataset.encoding", "line 2")
    assert "network" not in line
    rc, out, err = run_check(params_file(tmp_path, dataset={"encoding": "latin-1"}), capsys)
    assert rc == 0, err


@pytest.mark.parametrize("content, words", [
    ("", "empty (0 bytes)"),
    ("text,label\n", "header line but no data rows"),
    ("\n\n  \n", "only blank lines"),
])
def test_empty_and_header_only_files(tmp_path, capsys, content, words):
    (tmp_path / "data.csv").write_text(content)
    rc, _, err = run_check(params_file(tmp_path), capsys)
    line = assert_one_line_error(rc, err, "data.csv", "dataset.source", words)
    assert "network" not in line


def test_bad_json_line_is_named(tmp_path, capsys):
    (tmp_path / "data.jsonl").write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": oops}\n')
    rc, _, err = run_check(params_file(tmp_path, data="data.jsonl"), capsys)
    line = assert_one_line_error(rc, err, "data.jsonl", "line 3")
    assert "network" not in line


def test_malformed_csv_names_the_file_not_the_network(tmp_path, capsys):
    rows = "\n".join(f"t{i},{i % 2}" for i in range(40))
    (tmp_path / "data.csv").write_text(f"text,label\n{rows}\na,b,c,d,e\n")
    rc, _, err = run_check(params_file(tmp_path), capsys)
    line = assert_one_line_error(rc, err, "data.csv")
    assert "network" not in line and "line 42" in line


def test_run_checks_returns_the_selection(tmp_path):
    corpus().to_csv(tmp_path / "data.csv", index=False)
    report = run_checks(load_params(params_file(tmp_path)))
    assert report.positions == 512 and len(report.splits.train) == 30
    assert report.label_mapping() == "'0' -> 0, '1' -> 1"
