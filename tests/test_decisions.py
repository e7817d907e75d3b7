"""Each decision of a run made once (issue 21, item 5): the device is picked once per run and handed to
every fine-tuning plan (whose precision is resolved for it) and to the engine; readers of cache entries
move nothing (only the writers move a damaged entry aside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from layerwise.core.errors import LayerwiseError
from layerwise.core.repro import atomic_dir
from layerwise.model import finetune, models, prepared, trainer
from layerwise.model.testing import tiny_model_dir, write_tiny_jsonl
from layerwise.inputs.config import load_params
from layerwise.study import pipeline


def _params(tmp_path: Path):
    data = tmp_path / "reviews.jsonl"
    write_tiny_jsonl(data, 60, seed=5)
    spec = {"name": "once", "model": {"id": str(tiny_model_dir("bert"))}, "dataset": {"source": str(data)},
            "finetune": {"num_train": 24, "num_test": 16, "epochs": 1, "batch_size": 8, "seeds": [1, 2, 3]},
            "analysis": {"num_sentences": 10, "max_length": 32}}
    path = tmp_path / "once.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_params(path)


def test_the_device_is_picked_once_per_run_and_handed_to_every_plan(tmp_path, monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return models.pick_device(*args, **kwargs)

    for module in (pipeline, finetune, trainer):
        monkeypatch.setattr(module, "pick_device", counted)
    params = _params(tmp_path)
    inputs = pipeline.resolve_inputs(params)
    plans = [inputs.plan(params, s) for s in params.finetune.seeds]
    assert len(calls) == 1
    assert all(p.device is inputs.device for p in plans)
    assert {p.hyper["precision"] for p in plans} <= {"fp32", "bf16", "fp16"}  # resolved, never `auto`
    # a plan made alone (``layerwise finetune``) picks its own device, once
    alone = finetune.plan_finetune(params.for_seed(1))
    assert len(calls) == 2 and alone.key == plans[0].key


def _damaged_entry(root: Path, files: dict[str, str]) -> Path:
    entry = root / "entry"
    with atomic_dir(entry) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)
    first = next(iter(files))
    (entry / first).write_text((entry / first).read_text() + " damaged")  # a size its DONE.json does not record
    return entry


def test_readers_move_no_damaged_entry(tmp_path):
    entry = _damaged_entry(tmp_path / "ft", {"metrics.json": json.dumps({"accuracy": 1.0})})
    with pytest.raises(LayerwiseError, match="not a finished"):
        finetune.load_finetune_metrics(entry)
    assert entry.is_dir() and not list(entry.parent.glob("*.damaged-*"))
    data = _damaged_entry(tmp_path / "prep", {prepared.PREPARED_INFO: "{}"})
    with pytest.raises(LayerwiseError, match="not a complete prepared"):
        prepared.load_prepared(data, None, None, tokenizer=None)
    assert data.is_dir() and not list(data.parent.glob("*.damaged-*"))
