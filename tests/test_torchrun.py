"""Data-parallel fine-tuning through the CLI entry point (issue #13, item 3): ``torchrun
--nproc_per_node 2 -m layerwise.cli finetune`` on CPU (gloo backend) with the tiny BERT. The two
processes split every batch, so the run takes ceil(n_train / (2 x batch_size)) optimizer steps, and
they write one cache entry. Marked ``torchrun`` (``-m 'not torchrun'`` deselects it); ``make test``
runs it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layerwise.model.testing import tiny_model_dir, write_tiny_jsonl

TRAIN, TEST, BATCH = 32, 8, 8


@pytest.mark.torchrun
def test_torchrun_two_cpu_processes_fine_tune_one_entry(tmp_path):
    data = write_tiny_jsonl(tmp_path / "reviews.jsonl", 60, seed=3)
    params = tmp_path / "tiny.yml"
    params.write_text(yaml.safe_dump({
        "name": "tiny-ddp", "model": {"id": str(tiny_model_dir("bert")), "label": "tiny"},
        "dataset": {"source": str(data)},
        "finetune": {"num_train": TRAIN, "num_probe": 10, "num_test": TEST, "epochs": 1, "batch_size": BATCH,
                     "learning_rate": 3e-3, "precision": "fp32"}}, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, LAYERWISE_CACHE=str(tmp_path / "cache"), LAYERWISE_DEVICE="cpu", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "layerwise.cli", "finetune", str(params), "-n", "1"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    entries = [p for p in (tmp_path / "cache" / "finetune").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1, entries
    metrics = json.loads((entries[0] / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_train"] == TRAIN
    assert metrics["global_step"] == math.ceil(TRAIN / (2 * BATCH))   # each process saw half of every batch
    # the trajectory: written once, by the main process, at the default fractions between the ends (0.1, 0.25,
    # 0.5) of the 2 steps
    from layerwise.model.trajectory import load_trajectory

    traj = load_trajectory(entries[0])
    assert traj["steps"] == [0, 0, 1] and traj["parts"] == {"probe": 10, "test": TEST}
    assert all(a.shape[0] == 10 + TEST for by in traj["embeddings"].values() for a in by.values())
