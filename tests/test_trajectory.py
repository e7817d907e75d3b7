"""The pooled embeddings kept at checkpoints during fine-tuning (:mod:`layerwise.model.trajectory`): the
fractions' validation and key, the steps and shapes written, the two ends equal to the pretrained and the
fine-tuned models, a training unchanged by the capture, and resumption after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from layerwise.core.errors import LayerwiseError
from layerwise.inputs.config import FinetuneSpec, parse_params
from layerwise.inputs.data import load_splits
from layerwise.model import finetune as ft
from layerwise.core.precision import paired
from layerwise.model import trajectory
from layerwise.model.testing import NUM_LAYERS, HIDDEN_SIZE, tiny_model_dir, write_tiny_jsonl

#: 20 training examples in batches of 4, one epoch: 5 steps. The ends (0 and 1) are the pretrained and the
#: fine-tuned model, which the engine embeds: only the fractions between them are kept. These fall on steps
#: 0 (0.05 and 0.1), 1 (0.25), 2 (0.5) and 5 (0.95): the first and the last step, to compare with the two models.
STEPS = 5
CHECKPOINTS = [0.0, 0.05, 0.1, 0.25, 0.5, 0.95, 1.0]
EXPECTED_STEPS = {0.05: 0, 0.1: 0, 0.25: 1, 0.5: 2, 0.95: 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def cache(finetune_cache) -> Path:
    return finetune_cache


@pytest.fixture(scope="module")
def bert_dir() -> Path:
    return tiny_model_dir("bert")


def _params(model_dir: Path, data: Path, **finetune):
    spec = {"num_train": 20, "num_test": 8, "num_probe": 6, "epochs": 1, "batch_size": 4, "learning_rate": 3e-3,
            "logging_steps": 2, "precision": "fp32", "checkpoints": CHECKPOINTS, **finetune}
    return parse_params({"name": "tiny", "model": {"id": str(model_dir)}, "dataset": {"source": str(data)},
                         "finetune": spec, "analysis": {"batch_size": 5, "max_length": 64,
                                                        "poolings": ["mean", "cls"], "precision": "fp32"}})


def torch_cpu():
    import torch

    return torch.device("cpu")


def _data(tmp_path: Path) -> Path:
    return write_tiny_jsonl(tmp_path / "reviews.jsonl", 60, 1)


# --------------------------------------------------------------------------------------------------
# the setting and the key
# --------------------------------------------------------------------------------------------------

def test_checkpoints_are_validated_fractions():
    assert FinetuneSpec().checkpoints == [0.0, 0.1, 0.25, 0.5, 1.0]
    assert FinetuneSpec(checkpoints=[]).checkpoints == []
    assert FinetuneSpec(checkpoints=[0, 1]).checkpoints == [0.0, 1.0]
    for bad, match in (([0.5, 1.5], r"in \[0, 1\]"), ([-0.1], r"in \[0, 1\]"), ([float("nan")], r"in \[0, 1\]"),
                       ([0.5, 0.25], "ascending"), ([0.5, 0.5], "ascending")):
        with pytest.raises(ValidationError, match=match):
            FinetuneSpec(checkpoints=bad)
    with pytest.raises(LayerwiseError, match="finetune.checkpoints"):
        parse_params({"name": "x", "model": {"id": "embedded:minilm"}, "dataset": {"source": "embedded:demo-fr"},
                      "finetune": {"checkpoints": [1, 0]}})


def test_the_key_holds_the_trajectory_only_when_it_is_kept(bert_dir, tmp_path, cache):
    data = _data(tmp_path)
    on = ft.plan_finetune(_params(bert_dir, data))
    off = ft.plan_finetune(_params(bert_dir, data, checkpoints=[]))
    assert "checkpoints" not in on.hyper and on.hyper == off.hyper
    assert "trajectory" not in off.payload and off.trajectory is None
    assert on.payload["trajectory"] == {"fractions": list(EXPECTED_STEPS), "poolings": ["cls", "mean"],
                                        "max_length": 64, "precision": paired(torch_cpu())}
    assert {k: v for k, v in on.payload.items() if k != "trajectory"} == off.payload and on.key != off.key
    # the texts: the probe pool, then the test sentences; the poolings given, else the study's
    splits = load_splits(_params(bert_dir, data))
    assert on.trajectory.texts == list(splits.probe["text"]) + list(splits.test["text"])
    assert on.trajectory_parts == {"probe": 6, "test": 8}
    assert (on.trajectory.batch_size, on.trajectory.max_length) == (5, 64)
    given = ft.plan_finetune(_params(bert_dir, data), poolings=["last"])
    assert given.trajectory.poolings == ("last",) and given.key != on.key
    assert ft.plan_finetune(_params(bert_dir, data), poolings=["cls", "mean"]).key == on.key
    other = ft.plan_finetune(_params(bert_dir, data, checkpoints=[0.0, 0.5, 1.0]))
    assert other.key != on.key
    ends = ft.plan_finetune(_params(bert_dir, data, checkpoints=[0.0, 1.0]))   # nothing between the ends to keep
    assert ends.trajectory is None and ends.key == off.key
    no_probe = ft.plan_finetune(_params(bert_dir, data, num_probe=0))
    assert no_probe.trajectory_parts == {"probe": 0, "test": 8} and len(no_probe.trajectory.texts) == 8


def test_fraction_steps_round_and_share():
    assert trajectory.fraction_steps(list(EXPECTED_STEPS), STEPS) == EXPECTED_STEPS
    assert trajectory.fraction_steps([0.3], 10) == {0.3: 3}


# --------------------------------------------------------------------------------------------------
# end to end: steps, shapes, the two ends, the training unchanged
# --------------------------------------------------------------------------------------------------

def _pooled(model_dir: Path, spec: trajectory.TrajectorySpec) -> dict[str, np.ndarray]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return trajectory.capture(model, AutoTokenizer.from_pretrained(model_dir), spec)


def test_trajectory_steps_shapes_ends_and_unchanged_training(bert_dir, tmp_path, cache):
    from safetensors.torch import load_file

    data = _data(tmp_path)
    params = _params(bert_dir, data)
    plan = ft.plan_finetune(params)
    res = ft.finetune(params, progress=False, plan=plan)
    assert res.metrics["global_step"] == STEPS
    folder = res.path / trajectory.FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [trajectory.INDEX] + [trajectory.step_file(s) for s in set(EXPECTED_STEPS.values())])
    index = json.loads((folder / trajectory.INDEX).read_text())
    assert index["parts"] == {"probe": 6, "test": 8} and index["n_texts"] == 14
    assert {float(f): s for f, s in index["steps"].items()} == EXPECTED_STEPS

    traj = trajectory.load_trajectory(res.path)
    assert traj["fractions"] == list(EXPECTED_STEPS) and traj["steps"] == list(EXPECTED_STEPS.values())
    assert traj["poolings"] == ["cls", "mean"] and traj["parts"] == {"probe": 6, "test": 8}
    for f, by_pooling in traj["embeddings"].items():
        assert set(by_pooling) == {"cls", "mean"}
        for arr in by_pooling.values():
            assert arr.dtype == np.float16 and arr.shape == (14, NUM_LAYERS + 1, HIDDEN_SIZE)
    with np.load(folder / trajectory.step_file(0)) as npz:
        assert int(npz["step"]) == 0 and list(npz["fraction"]) == [0.05, 0.1]
    # the first step is the pretrained model, the last the fine-tuned one; the middle moved
    start, end = _pooled(bert_dir, plan.trajectory), _pooled(res.path, plan.trajectory)
    for p in ("cls", "mean"):
        np.testing.assert_allclose(traj["embeddings"][0.05][p].astype(np.float32), start[p].astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(traj["embeddings"][0.95][p].astype(np.float32), end[p].astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
        assert not np.allclose(traj["embeddings"][0.5][p][:, -1], start[p][:, -1], atol=1e-2)

    # the same training without the capture: the same weights, bit for bit
    off = ft.finetune(_params(bert_dir, data, checkpoints=[]), progress=False)
    assert off.path != res.path and trajectory.load_trajectory(off.path) is None
    with_it, without = load_file(res.path / "model.safetensors"), load_file(off.path / "model.safetensors")
    assert with_it.keys() == without.keys()
    assert all(np.array_equal(with_it[k].numpy(), without[k].numpy()) for k in with_it)
    assert off.metrics["accuracy"] == res.metrics["accuracy"]


# --------------------------------------------------------------------------------------------------
# resumption and the reader's errors
# --------------------------------------------------------------------------------------------------

class Interrupted(RuntimeError):
    pass


def test_an_interrupted_run_keeps_its_step_files_and_writes_only_the_missing(bert_dir, tmp_path, cache,
                                                                             monkeypatch):
    from transformers import TrainerCallback

    params = _params(bert_dir, _data(tmp_path))
    plan = ft.plan_finetune(params)
    work = plan.work / trajectory.FOLDER

    class StopAt3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Interrupted("killed at step 3")

    build = ft.build_trainer
    with monkeypatch.context() as m:
        m.setattr(ft, "build_trainer", lambda *a, **k: build(*a, **{**k, "callbacks": [*k["callbacks"], StopAt3()]}))
        with pytest.raises(Interrupted):
            ft.finetune(params, progress=False, save_steps=1, plan=plan)
    assert not plan.entry.exists()
    before = sorted(p.name for p in work.glob("step-*.npz"))
    assert before == ["step-0.npz", "step-1.npz", "step-2.npz"]
    # a marker: a file the rerun rewrote would lose it
    with np.load(work / "step-1.npz") as npz:
        arrays = dict(npz)
    trajectory.write_step(work, 1, arrays["fraction"], {k: v for k, v in arrays.items()
                                                          if k not in ("step", "fraction")} | {"marker": np.ones(1)})
    stamp = (work / "step-0.npz").stat().st_mtime_ns

    res = ft.finetune(params, progress=False, save_steps=1, plan=plan)
    assert res.metrics["resumed_from_step"] == 2 and res.metrics["global_step"] == STEPS
    folder = res.path / trajectory.FOLDER
    assert sorted(p.name for p in folder.glob("step-*.npz")) == ["step-0.npz", "step-1.npz", "step-2.npz",
                                                                  "step-5.npz"]
    with np.load(folder / "step-1.npz") as npz:
        assert "marker" in npz.files
    assert (folder / "step-0.npz").stat().st_mtime_ns == stamp
    assert not plan.work.exists()
    traj = trajectory.load_trajectory(res.path)
    assert traj["steps"] == list(EXPECTED_STEPS.values())

    # a listed step file missing: one clear error
    (folder / "step-2.npz").unlink()
    with pytest.raises(LayerwiseError, match="step 2 are missing"):
        trajectory.load_trajectory(res.path)


def test_the_preflight_counts_the_kept_embeddings(bert_dir, tmp_path, cache):
    """``layerwise check``'s disk estimate holds the trajectory: 2 bytes x poolings x kept fractions x (probe +
    test sentences) x layers x width per seed to train; none with ``checkpoints: []``."""
    from transformers import AutoConfig

    from layerwise.study.preflight import space_needed

    params = _params(bert_dir, _data(tmp_path))
    splits = load_splits(params)
    config = AutoConfig.from_pretrained(bert_dir)
    need = space_needed(params, config, splits, to_train=2, poolings=2)
    kept = len(EXPECTED_STEPS)
    assert need["trajectory"] == 2 * 2 * 2 * kept * (6 + 8) * (NUM_LAYERS + 1) * HIDDEN_SIZE
    off = space_needed(_params(bert_dir, _data(tmp_path), checkpoints=[]), config, splits, to_train=2)
    assert off["trajectory"] == 0
