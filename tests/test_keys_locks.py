"""Cache keys that keep work, and one computation per entry (issue #14, item 4).

Entries are found by their content hash alone: renaming ``name:`` retrains nothing and recomputes
nothing; a probe-only setting leaves the geometry entry alone; ``analysis.batch_size`` (the engine is
batch-size invariant, tests/test_extract.py) is in no key. Two runs that need the same entry at once
compute it once: the second prints one line, waits and reuses the finished entry."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from layerwise.measure import extract
from layerwise.model import finetune
from layerwise.core import locks
from layerwise.study import pipeline
from layerwise.inputs.config import GEOMETRY_FIELDS, PROBE_FIELDS, UNKEYED_FIELDS, load_params
from layerwise.core.repro import atomic_dir, is_done
from layerwise.model.testing import tiny_model_dir, write_tiny_jsonl


# --------------------------------------------------------------------------------------------------
# the lock and the lookup, on a fake step
# --------------------------------------------------------------------------------------------------

def _fake_step(counter: Counter, seconds: float = 0.3):
    def compute(entry: Path) -> None:
        counter["computed"] += 1
        with atomic_dir(entry) as tmp:
            time.sleep(seconds)
            (tmp / "result.txt").write_text("42")
    return compute


def test_an_entry_is_found_by_its_key_whatever_its_name(tmp_path):
    calls: Counter = Counter()
    first = locks.cached_entry(tmp_path, "old-name", "abc123", _fake_step(calls, 0), what="x", progress=False)
    again = locks.cached_entry(tmp_path, "new-name", "abc123", _fake_step(calls, 0), what="x", progress=False)
    assert first == again == tmp_path / "old-name-abc123" and calls["computed"] == 1
    assert locks.find_entry(tmp_path, "c123") is None  # a key suffix is not the key
    assert locks.entry_key(first) == "abc123"
    other = locks.cached_entry(tmp_path, "new-name", "def456", _fake_step(calls, 0), what="x", progress=False)
    assert other == tmp_path / "new-name-def456" and calls["computed"] == 2


def test_concurrent_threads_compute_an_entry_once(tmp_path, capsys):
    calls: Counter = Counter()
    found: list[Path] = []
    threads = [threading.Thread(target=lambda n=n: found.append(
        locks.cached_entry(tmp_path, f"run{n}", "k1", _fake_step(calls), what="the fake step"))) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert calls["computed"] == 1 and len(set(found)) == 1 and is_done(found[0])
    waiting = [ln for ln in capsys.readouterr().err.splitlines() if "waiting for it" in ln]
    assert 1 <= len(waiting) <= 2 and all(ln.startswith("another run is computing the fake step") for ln in waiting)


CHILD = """
import sys, time
from pathlib import Path
sys.path[:0] = sys.argv[3:]
from layerwise.core import locks
from layerwise.core.repro import atomic_dir

def compute(entry):
    with open(sys.argv[2], "a") as fh:
        fh.write("computed\\n")
    with atomic_dir(entry) as tmp:
        time.sleep(1.0)
        (tmp / "result.txt").write_text("42")

print(locks.cached_entry(Path(sys.argv[1]), "proc", "k2", compute, what="the fake step"))
"""


def test_two_processes_compute_an_entry_once(tmp_path):
    log = tmp_path / "computations.txt"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "cache"), str(log), *sys.path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert log.read_text().splitlines() == ["computed"]
    assert outs[0][0] == outs[1][0]  # both print the same entry
    assert sum("waiting for it" in err for _, err in outs) <= 1


def test_a_read_only_cache_is_read_without_a_lock(tmp_path, monkeypatch):
    calls: Counter = Counter()
    entry = locks.cached_entry(tmp_path, "n", "k3", _fake_step(calls, 0), what="x", progress=False)

    def no_open(*args, **kwargs):
        raise PermissionError("read-only")
    monkeypatch.setattr("builtins.open", no_open)
    assert locks.cached_entry(tmp_path, "m", "k3", _fake_step(calls, 0), what="x", progress=False) == entry
    assert calls["computed"] == 1


# --------------------------------------------------------------------------------------------------
# which settings feed which key
# --------------------------------------------------------------------------------------------------

def test_batch_size_is_in_no_key_and_probe_settings_not_in_the_geometry_key():
    assert "batch_size" in UNKEYED_FIELDS
    assert "batch_size" not in GEOMETRY_FIELDS and "batch_size" not in PROBE_FIELDS
    assert not {"probe_seeds", "bootstrap", "seed_layers"} & set(GEOMETRY_FIELDS)


def test_the_random_draws_feed_the_geometry_key_resolved():
    """``analysis.random_draws`` feeds the geometry key as the list of init seeds: a count and the list it
    stands for are one key, the default is three draws from ``analysis.seed``, another draw another key."""
    from layerwise.inputs.config import AnalysisSpec

    assert "random_draws" in GEOMETRY_FIELDS
    payload = AnalysisSpec(seed=4, random_draws=2).geometry_payload()
    assert payload["random_draws"] == [4, 5] == AnalysisSpec(seed=4, random_draws=[4, 5]).geometry_payload()["random_draws"]
    assert AnalysisSpec(seed=4).geometry_payload()["random_draws"] == [4, 5, 6]
    assert AnalysisSpec(seed=4, random_draws=1).geometry_payload() != payload


TINY_BERT = tiny_model_dir("bert")


def _params_file(root: Path, name: str, **analysis) -> Path:
    data = root / "reviews.jsonl"
    if not data.exists():
        write_tiny_jsonl(data, 60, seed=5)
    spec = {"name": name, "model": {"id": str(TINY_BERT)}, "dataset": {"source": str(data)},
            "finetune": {"num_train": 24, "num_test": 16, "epochs": 1, "batch_size": 8, "learning_rate": 3e-3},
            "analysis": {"num_sentences": 10, "batch_size": 8, "max_length": 32, "token_sample": 32,
                         "sample_sentences": 8, "baseline_pairs": 50, "cosine_sample": 50, "probe_seeds": 2,
                         "bootstrap": 100, "seed_layers": [1], "random_draws": 1, **analysis}}
    path = root / f"{name}-{len(list(root.glob('*.yml')))}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture()
def counted(monkeypatch, tmp_path):
    """A fresh cache, one torch thread; counts trainings, engine passes and probe computations."""
    import torch

    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    calls: Counter = Counter()
    for module, name in ((finetune, "_train"), (extract, "run_state"), (pipeline, "_write_probes")):
        def wrapper(*args, __f=getattr(module, name), __name=name, **kwargs):
            calls[__name] += 1
            return __f(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)
    yield calls
    torch.set_num_threads(threads)


def _run(path: Path) -> tuple[Path, Path]:
    params = load_params(path)
    a = pipeline.analyze(params, progress=False)
    return a, pipeline.probe(params, a, progress=False)


def test_renaming_a_study_or_changing_unkeyed_and_probe_settings_keeps_the_work(tmp_path, counted):
    a0, p0 = _run(_params_file(tmp_path, "tiny"))
    assert counted == Counter(_train=1, run_state=3, _write_probes=1)

    counted.clear()
    renamed = _params_file(tmp_path, "renamed")
    assert _run(renamed) == (a0, p0) and not counted  # nothing trained, nothing recomputed
    study = pipeline.load_study(renamed, progress=False)
    assert set(study.tidy["model"]) == {"renamed"} and set(study.cones["model"]) == {"renamed"}
    assert finetune.finetune(load_params(renamed), progress=False).cached

    assert _run(_params_file(tmp_path, "tiny", batch_size=3)) == (a0, p0) and not counted

    a3, p3 = _run(_params_file(tmp_path, "tiny", probe_seeds=3))
    assert a3 == a0 and p3 != p0 and counted == Counter(_write_probes=1)  # no forward pass again


def test_two_concurrent_runs_compute_the_geometry_once(tmp_path, counted, monkeypatch):
    # two runs are two processes in real use; as threads here (the code hashes read the source text:
    # no ast.parse, which is not thread-safe in CPython 3.11; serialising them is kept as a harmless guard)
    parse_lock = threading.Lock()

    def serial_code_hash(*modules, __f=pipeline.code_hash):
        with parse_lock:
            return __f(*modules)
    monkeypatch.setattr(pipeline, "code_hash", serial_code_hash)
    path = _params_file(tmp_path, "tiny")
    entries: list[tuple[Path, Path]] = []
    threads = [threading.Thread(target=lambda: entries.append(_run(path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(entries) == 2 and entries[0] == entries[1]
    assert counted == Counter(_train=1, run_state=3, _write_probes=1)
