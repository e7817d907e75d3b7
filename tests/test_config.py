"""Params validation: every malformed file gives one message naming the file, the field and the fix."""

from pathlib import Path

import pytest
import yaml

from layerwise.inputs.config import load_params, parse_params
from layerwise.core.errors import LayerwiseError

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "model": {"id": "embedded:minilm"}, "dataset": {"source": "embedded:demo-fr"}}


def write(tmp_path, data, name="p.yml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("name", ["demo", "camembert", "flaubert"])
def test_shipped_params_are_valid(name):
    p = load_params(ROOT / "params" / f"{name}.yml")
    assert p.name == name
    assert p.finetune.seed == 42


def test_defaults_follow_the_seed_study():
    p = parse_params(BASE)
    assert (p.finetune.num_train, p.finetune.num_test, p.finetune.epochs) == (5000, 1000, 1.0)
    assert p.analysis.states == ["pretrained", "finetuned", "random"]
    assert p.model.kind == "embedded" and p.dataset.kind == "embedded"
    assert parse_params({**BASE, "model": {"id": "camembert-base"}}).model.kind == "hub"
    assert parse_params({**BASE, "dataset": {"source": "tblard/allocine"}}).dataset.kind == "hub"


def test_random_draws_a_list_or_a_count_default_three_from_the_analysis_seed():
    """``analysis.random_draws``: init seeds of the random state, declared like ``finetune.seeds`` (a list),
    or a count N read as [seed, ..., seed + N - 1]; default three draws from ``analysis.seed``."""
    assert parse_params(BASE).analysis.draws == [0, 1, 2]
    assert parse_params({**BASE, "analysis": {"seed": 7}}).analysis.draws == [7, 8, 9]
    assert parse_params({**BASE, "analysis": {"seed": 7, "random_draws": 1}}).analysis.draws == [7]
    assert parse_params({**BASE, "analysis": {"random_draws": [11, 3]}}).analysis.draws == [11, 3]
    for bad in (0, [], [2, 2]):
        with pytest.raises(LayerwiseError, match="analysis.random_draws"):
            parse_params({**BASE, "analysis": {"random_draws": bad}})


@pytest.mark.parametrize("mutate, field, fix_word", [
    (lambda d: d["finetune"].update(num_train="many"), "finetune.num_train", "correct"),
    (lambda d: d.update(colour="blue"), "colour", "remove"),
    (lambda d: d["finetune"].update(epoch=2), "finetune.epoch", "epochs"),
    (lambda d: d["finetune"].update(num_test=-3), "finetune.num_test", "correct"),
    (lambda d: d.pop("model"), "model", "add"),
    (lambda d: d["analysis"].update(states=["pretrained", "banana"]), "analysis.states", "correct"),
])
def test_malformed_params_name_file_field_and_fix(tmp_path, mutate, field, fix_word):
    data = {**BASE, "finetune": {}, "analysis": {}}
    mutate(data)
    p = write(tmp_path, data)
    with pytest.raises(LayerwiseError) as exc:
        load_params(p)
    msg = str(exc.value)
    assert str(p) in msg and f"'{field}" in msg and "Fix:" in msg and fix_word in msg
    assert "\n" not in msg


def test_missing_local_paths_are_errors(tmp_path):
    p = write(tmp_path, {**BASE, "dataset": {"source": "./nope/reviews.csv"}})
    with pytest.raises(LayerwiseError, match=r"dataset.source.*does not exist"):
        load_params(p)
    p = write(tmp_path, {**BASE, "model": {"id": "./no-such-model"}})
    with pytest.raises(LayerwiseError, match=r"model.id.*does not exist"):
        load_params(p)
    p = write(tmp_path, {**BASE, "dataset": {"data_files": {"train": "a.csv", "test": "b.csv"}}})
    with pytest.raises(LayerwiseError, match=r"data_files\.(train|test).*does not exist"):
        load_params(p)


def test_not_yaml_and_not_mapping(tmp_path):
    with pytest.raises(LayerwiseError, match="not valid YAML at line"):
        load_params(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(LayerwiseError, match="YAML mapping"):
        load_params(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(LayerwiseError, match="not found"):
        load_params(tmp_path / "absent.yml")


def test_relative_paths_resolve_from_params_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text('{"text": "a", "label": 0}\n')
    p = load_params(write(tmp_path, {**BASE, "dataset": {"source": "data/x.jsonl"}}))
    assert p.resolve_path("data/x.jsonl") == tmp_path / "data" / "x.jsonl"


def test_dataset_encoding_field(tmp_path):
    assert parse_params(BASE).dataset.encoding == "utf-8"
    assert parse_params({**BASE, "dataset": {"source": "embedded:demo-fr", "encoding": "latin-1"}}).dataset.encoding \
        == "latin-1"
    with pytest.raises(LayerwiseError, match=r"dataset.encoding.*unknown text encoding 'klingon'"):
        parse_params({**BASE, "dataset": {"source": "embedded:demo-fr", "encoding": "klingon"}})
    # the default encoding stays out of the data key (entries cached before the field still match)
    default = parse_params(BASE).data_payload()
    assert "encoding" not in default["dataset"]
    other = parse_params({**BASE, "dataset": {"source": "embedded:demo-fr", "encoding": "cp1252"}}).data_payload()
    assert other["dataset"]["encoding"] == "cp1252"


@pytest.mark.parametrize("raw, words", [
    (b"name: t\nmodel: {id: \xff\xfe}\n", "not UTF-8 text: byte 0xff at line 2"),
    (b"name: t\nwhen: 2024-13-45\n", "not valid YAML"),
    (b"[" * 5000 + b"]" * 5000, "not valid YAML"),
    (b"name: t\nmodel: {id: './" + b"a" * 5000 + b"'}\ndataset: {source: embedded:demo-fr}\n", "model.id"),
    (b"name: t\nmodel: {id: ~nosuchuser_zz/x}\ndataset: {source: embedded:demo-fr}\n", "model.id"),
    (b"name: t\nmodel: {id: embedded:minilm}\ndataset: {source: embedded:demo-fr}\n'a\\nb': 1\n", "unknown key"),
])
def test_any_bytes_give_one_line(tmp_path, raw, words):
    p = tmp_path / "p.yml"
    p.write_bytes(raw)
    with pytest.raises(LayerwiseError) as exc:
        load_params(p)
    msg = str(exc.value)
    assert words in msg and str(p) in msg and "\n" not in msg and len(msg) < 600


def test_the_analysis_settings_are_partitioned_between_the_keys():
    """Every AnalysisSpec field is declared in exactly one part (geometry only, probes only, shared by both
    keys, or in no key), no part names an unknown field, and the two keys are made of those parts."""
    from layerwise.inputs import config

    parts = {"geometry": config.GEOMETRY_ONLY_FIELDS, "probe": config.PROBE_ONLY_FIELDS,
             "shared": config.SHARED_FIELDS, "unkeyed": config.UNKEYED_FIELDS}
    declared = [f for fields in parts.values() for f in fields]
    assert sorted(declared) == sorted(config.AnalysisSpec.model_fields), "a field is in no part, twice or unknown"
    assert len(set(declared)) == len(declared)
    assert set(config.GEOMETRY_FIELDS) == set(parts["geometry"]) | set(parts["shared"])
    assert set(config.PROBE_FIELDS) == set(parts["probe"]) | set(parts["shared"])
    spec = config.AnalysisSpec()
    assert set(spec.geometry_payload()) & set(spec.probe_payload()) == set(parts["shared"])
