"""Parallel studies (``layerwise run -j N``): GPU pinning and thread split with mocked device lists,
and -j 2 writing the same study directories as -j 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from layerwise.core.parallel import Slot, plan_slots, run_parallel, visible_gpus


def test_visible_gpus_from_the_environment_or_the_count():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({}, count=lambda: 3) == ["0", "1", "2"]
    assert visible_gpus({}, count=lambda: 0) == []


def test_one_gpu_per_worker_when_several_are_visible():
    slots = plan_slots(3, ["0", "1", "2", "3"], cores=16)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "2"]
    assert all(s.threads == 5 for s in slots)
    wrapped = plan_slots(3, ["4", "7"], cores=16)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in wrapped] == ["4", "7", "4"]


def test_cpu_threads_split_without_gpus():
    assert plan_slots(2, [], cores=16) == [Slot(0, 8), Slot(1, 8)]
    assert [s.threads for s in plan_slots(4, [], cores=2)] == [1, 1, 1, 1]
    assert plan_slots(0, [], cores=4) == [Slot(0, 4)]


def _where(tag: str) -> tuple[str, str, int]:
    import os

    return tag, os.environ.get("CUDA_VISIBLE_DEVICES", ""), int(os.environ["OMP_NUM_THREADS"])


def test_workers_are_pinned_and_threaded():
    out = run_parallel(_where, [("a",), ("b",), ("c",)], 2, gpus=["3", "6"], cores=4)
    assert [o[0] for o in out] == ["a", "b", "c"]                   # results in call order
    assert {o[1] for o in out} <= {"3", "6"} and all(o[2] == 2 for o in out)


def _fail(x):
    raise ValueError(f"bad {x}")


def test_worker_errors_reach_the_caller():
    with pytest.raises(ValueError, match="bad 1"):
        run_parallel(_fail, [(1,), (2,)], 2, gpus=[], cores=2)


def test_run_jobs_2_writes_the_same_studies_as_jobs_1(tmp_path):
    from report_fakes import load_fake_study, write_params

    from layerwise.book.report import study_dir, write_studies
    from layerwise.inputs.config import load_params

    params = [load_params(write_params(tmp_path, name)) for name in ("alpha", "beta")]
    one = write_studies(params, tmp_path / "j1", load_fake_study, False, jobs=1)
    two = write_studies(params, tmp_path / "j2", load_fake_study, False, jobs=2)
    assert one[0] == two[0]
    for p in params:
        a, b = study_dir(tmp_path / "j1", p.name), study_dir(tmp_path / "j2", p.name)
        files = sorted(f.relative_to(a) for f in a.rglob("*") if f.is_file() and f.name != "DONE.json")
        assert files == sorted(f.relative_to(b) for f in b.rglob("*") if f.is_file() and f.name != "DONE.json")
        for f in files:
            if f.suffix == ".parquet":
                pd.testing.assert_frame_equal(pd.read_parquet(a / f), pd.read_parquet(b / f))
            else:
                assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_cli_run_has_jobs():
    from layerwise.cli import build_parser

    assert build_parser().parse_args(["run", "-j", "3"]).jobs == 3
    assert build_parser().parse_args(["run"]).jobs == 1
    assert "-j $(JOBS)" in (Path(__file__).parents[1] / "Makefile").read_text()
