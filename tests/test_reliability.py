"""Reliability (issue 28): repeated texts never cross splits; every disk fault (no space, read-only,
permission denied, a cache path that is a file) is one line naming the path, what was being written and
the fix, exit 2, nothing half-written left; ``check`` knows what ``run`` needs (a writable cache with room,
class names, ``num_sentences``, the delimiter); damaged entries say what became of them and their
moved-aside copies are swept."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from layerwise import cli
from layerwise.core import disk, locks, repro
from layerwise.inputs import duplicates
from layerwise.model import finetune
from layerwise.study import pipeline
from layerwise.book import report
from layerwise.inputs.config import load_params, parse_params
from layerwise.inputs.data import load_splits
from layerwise.core.errors import LayerwiseError
from layerwise.model.testing import tiny_dataset, tiny_model_dir

# --------------------------------------------------------------------------------------------------
# tiny data and params
# --------------------------------------------------------------------------------------------------

TINY_BERT = tiny_model_dir("bert")  # (in the session's test cache: the tests below each get a fresh one)
ANALYSIS = {"num_sentences": 10, "batch_size": 8, "max_length": 32, "token_sample": 32, "sample_sentences": 8,
            "baseline_pairs": 50, "cosine_sample": 50, "probe_seeds": 2, "bootstrap": 100, "seed_layers": [1]}


def _frame(n: int = 60, seed: int = 3) -> pd.DataFrame:
    texts, labels = tiny_dataset(n, seed=seed)
    return pd.DataFrame({"text": texts, "label": labels})


def _spec(source: str, **dataset) -> dict:
    return {"name": "rel", "model": {"id": str(TINY_BERT)}, "dataset": {"source": source, **dataset},
            "finetune": {"num_train": 24, "num_probe": 8, "num_test": 16, "epochs": 1, "batch_size": 8,
                         "learning_rate": 3e-3, "max_length": 32},
            "analysis": dict(ANALYSIS)}


def _params_file(root: Path, spec: dict, name: str = "rel.yml") -> Path:
    path = root / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture()
def cache(finetune_cache) -> Path:
    return finetune_cache


def _cli(capsys, *args) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def _error_line(err: str) -> str:
    """The one ``error:`` line of stderr (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------------------------------
# 1. repeated texts
# --------------------------------------------------------------------------------------------------

def _norm_set(part) -> set[str]:
    return {duplicates.normalise(t) for t in part["text"]}


def test_rows_repeated_three_times_never_cross_splits_and_check_says_how_many(tmp_path, cache, capsys):
    df = _frame(60)
    assert df["text"].nunique() == 60
    copies = pd.concat([df, df.assign(text=df["text"].str.upper()), df.assign(text="  " + df["text"] + " ")])
    copies.sample(frac=1, random_state=0).to_csv(tmp_path / "dup3.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "dup3.csv")))
    s = load_splits(load_params(params))
    train, probe, test = _norm_set(s.train), _norm_set(s.probe), _norm_set(s.test)
    assert not train & test and not probe & test and not train & probe
    assert len(train) == len(s.train) and len(test) == len(s.test)  # no text twice inside a part either
    assert s.selection["duplicates"]["removed"] == 120 and s.selection["duplicates"]["groups"] == 60
    status, out, _ = _cli(capsys, "check", str(params))
    assert status == 0 and "# duplicates: 120 repeated rows removed (60 texts occur more than once" in out


def test_a_corpus_without_repeats_keeps_its_selection():
    """The plain shuffle, as before duplicates were looked for: selections and cache keys stay."""
    order = np.random.default_rng(42).permutation(50)
    kept, dropped = duplicates.first_copies(order, [f"t{i}" for i in range(50)])
    assert dropped == 0 and kept.tolist() == order.tolist()
    demo = load_splits(load_params(Path(repro.PROJECT_ROOT) / "params" / "demo.yml"))
    assert demo.selection["hash"] == "506a123601163c05" and demo.selection["duplicates"]["removed"] == 0


def test_a_test_split_file_sharing_texts_with_train_is_removed_from_train(tmp_path):
    df = _frame(80)
    df.iloc[:50].to_csv(tmp_path / "train.csv", index=False)
    pd.concat([df.iloc[50:], df.iloc[:10]]).to_csv(tmp_path / "test.csv", index=False)  # 10 leaked texts
    spec = _spec("", data_files={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")})
    spec["dataset"].pop("source")
    spec["finetune"].update(num_train=30, num_probe=0, num_test=40)
    s = load_splits(parse_params(spec))
    assert not _norm_set(s.train) & _norm_set(s.test) and s.selection["duplicates"]["removed"] == 10


def test_near_duplicates_are_counted_not_removed(tmp_path):
    df = _frame(60)
    variant = "Bref, " + df["text"]  # one word added to each text
    pd.concat([df, df.assign(text=variant)]).to_csv(tmp_path / "near.csv", index=False)
    spec = _spec(str(tmp_path / "near.csv"))
    spec["finetune"].update(num_train=60, num_probe=20, num_test=40)
    s = load_splits(parse_params(spec))
    assert s.selection["duplicates"]["removed"] == 0
    assert s.selection["duplicates"]["near_test"] > 0  # reported, all 120 texts kept
    assert duplicates.near_duplicates(["le film est bon"], ["un tout autre avis, sans rapport"]) == 0


# --------------------------------------------------------------------------------------------------
# 2. disk faults: one line, exit 2, nothing half-written
# --------------------------------------------------------------------------------------------------

def test_a_cache_path_that_is_a_file_is_one_line_for_check_and_run(tmp_path, monkeypatch, capsys):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "d.csv")))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for cache_path in (blocker, blocker / "sub"):
        monkeypatch.setenv("LAYERWISE_CACHE", str(cache_path))
        for args in (["check", str(params)], ["run", "--params", str(params), "--out", str(tmp_path / "rep"), "-q"]):
            status, _, err = _cli(capsys, *args)
            line = _error_line(err)
            assert status == 2 and str(blocker) in line and "is a file, not a folder" in line
            assert "LAYERWISE_CACHE" in line and "Fix:" in line


def _fail_under(monkeypatch, folder: Path, code: int) -> None:
    """Every file opened for writing under ``folder`` fails with ``code`` (read-only, permission denied)."""
    import builtins

    real_open, real_mkstemp, real_mkdtemp = builtins.open, repro.tempfile.mkstemp, repro.tempfile.mkdtemp

    def refuse(path):
        if str(Path(path).absolute()).startswith(str(folder.absolute())):
            raise OSError(code, os.strerror(code), str(path))

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike)):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_mkdtemp(*args, **kwargs):
        refuse(kwargs.get("dir") or ".")
        return real_mkdtemp(*args, **kwargs)

    def guarded_mkstemp(*args, **kwargs):
        refuse(kwargs.get("dir") or ".")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(repro.tempfile, "mkdtemp", guarded_mkdtemp)
    monkeypatch.setattr(repro.tempfile, "mkstemp", guarded_mkstemp)


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
                                          (errno.ENOSPC, "no space left")])
def test_a_cache_fault_in_a_run_names_the_cache_entry_not_the_report_folder(tmp_path, cache, monkeypatch, code,
                                                                              reason):
    def fake_study(params_path, progress=True):
        def compute(entry):
            with repro.atomic_dir(entry) as tmp:
                (tmp / "a.parquet").write_bytes(b"x")
        return locks.cached_entry(cache / "results", "rel", "k1", compute, what="the geometry results")

    cache.mkdir()
    _fail_under(monkeypatch, cache / "results", code)
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "d.csv")))
    with pytest.raises(LayerwiseError) as err:
        report.run([params], out_dir=tmp_path / "rep", load_study=fake_study, chapters=("geometry",),
                   comparison=False, progress=False, preview=False)
    text = str(err.value)
    assert "cannot write the geometry results" in text and reason in text and str(cache / "results") in text
    assert "report folder" not in text and "--out" not in text and "LAYERWISE_CACHE" in text and "\n" not in text
    assert [p.name for p in (cache / "results").iterdir()] in ([], [".k1.lock"])  # nothing half-written


def test_a_full_report_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    from report_fakes import load_fake_study, write_params

    params = write_params(tmp_path / "params", "alpha", "Alpha model")
    out = tmp_path / "rep"
    real = repro.os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(repro.os, "replace", full)
    with pytest.raises(LayerwiseError, match="cannot write to the report folder: no space left") as err:
        report.run([params], out_dir=out, load_study=load_fake_study, chapters=("geometry",), comparison=False,
                   progress=False, preview=False)
    assert "--out" in str(err.value) and str(out) in str(err.value)


def _torch_save_fails_after_the_first_checkpoint(monkeypatch):
    """``torch.save`` (optimizer, scheduler, RNG state of a checkpoint) writes a partial file then fails like
    a full disk (the RuntimeError seen in the wild) once the first checkpoint is written."""
    import torch

    real, first = torch.save, []

    def save(obj, f, *args, **kwargs):
        folder = Path(f).parent
        first.append(folder) if not first else None
        if folder == first[0]:
            return real(obj, f, *args, **kwargs)
        Path(f).write_bytes(b"\0" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 24640 vs 24532")

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_during_fine_tuning_is_one_line_and_leaves_no_half_written_checkpoint(tmp_path, cache,
                                                                                          monkeypatch, capsys):
    import torch

    torch.set_num_threads(1)
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    spec = _spec(str(tmp_path / "d.csv"))
    spec["finetune"].update(epochs=2, num_probe=0)
    params = _params_file(tmp_path, spec)
    monkeypatch.setenv("LAYERWISE_SAVE_EVERY_S", "0")  # a checkpoint after every step (the default: every 5 min)
    _torch_save_fails_after_the_first_checkpoint(monkeypatch)
    status, _, err = _cli(capsys, "finetune", str(params), "-q")
    line = _error_line(err)
    assert status == 2 and "cannot write the fine-tuning checkpoint: no space left on the device" in line
    assert ".work" in line and "LAYERWISE_CACHE" in line and "resumes from the last complete checkpoint" in line
    work = next((cache / "finetune").glob("*.work"))
    checkpoints = sorted(p.name for p in work.glob("checkpoint-*"))
    from layerwise.model.trainer import checkpoint_complete

    assert checkpoints and all(checkpoint_complete(work / c) for c in checkpoints), checkpoints
    assert not [p for p in (cache / "finetune").iterdir() if not p.name.endswith(".work")]  # no entry yet

    monkeypatch.undo()  # space again: the rerun resumes from the complete checkpoint
    monkeypatch.setenv("LAYERWISE_CACHE", str(cache))
    monkeypatch.setenv("LAYERWISE_SAVE_EVERY_S", "0")
    status, out, _ = _cli(capsys, "finetune", str(params), "-q")
    assert status == 0 and out.startswith("trained")


def test_a_full_disk_while_the_entry_is_written_leaves_no_temp_folder(tmp_path, cache, monkeypatch):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = load_params(_params_file(tmp_path, _spec(str(tmp_path / "d.csv"))))
    real = finetune.atomic_write_json

    def full(path, obj):
        if Path(path).name == "history.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(finetune, "atomic_write_json", full)
    with pytest.raises(LayerwiseError, match="cannot write the fine-tuned model's cache entry: no space left"):
        finetune.finetune(params.for_seed(42), progress=False)
    assert not [p.name for p in (cache / "finetune").iterdir() if p.name.startswith(".")]


def test_disk_faults_are_classified_and_other_errors_pass_through(tmp_path):
    assert disk.kind(OSError(errno.ENOSPC, "x")) == disk.kind(OSError(errno.EDQUOT, "x")) == "space"
    assert disk.kind(RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")) == "space"
    assert disk.kind(OSError(errno.EIO, "x")) is None and disk.kind(ValueError("no space left")) is None
    with pytest.raises(KeyError):
        with disk.writing("x", tmp_path, "elsewhere"):
            raise KeyError("a bug, not a disk fault")
    with pytest.raises(RuntimeError, match="CUDA"):
        with disk.writing("x", tmp_path, "elsewhere"):
            raise RuntimeError("CUDA out of memory")


# --------------------------------------------------------------------------------------------------
# 3. check knows what run needs
# --------------------------------------------------------------------------------------------------

def test_check_rejects_class_names_that_do_not_match_the_labels(tmp_path, cache, capsys):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "d.csv"), class_names=["only"]))
    status, _, err = _cli(capsys, "check", str(params))
    line = _error_line(err)
    assert status == 2 and "dataset.class_names" in line and "1 name" in line and "2 classes" in line


def test_check_warns_when_num_sentences_is_clamped(tmp_path, cache, capsys):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    spec = _spec(str(tmp_path / "d.csv"))
    spec["analysis"]["num_sentences"] = 500
    status, out, _ = _cli(capsys, "check", str(_params_file(tmp_path, spec)))
    assert status == 0 and "# warning:" in out and "analysis.num_sentences' asks for 500" in out
    assert "use 16" in out


@pytest.mark.parametrize("name, sep, hint", [("tab.csv", "\t", "rename it to .tsv"), ("semi.csv", ";", "commas"),
                                             ("comma.tsv", ",", "rename it to .csv")])
def test_a_delimiter_that_does_not_match_the_suffix_gets_a_hint(tmp_path, cache, capsys, name, sep, hint):
    _frame(60).to_csv(tmp_path / name, index=False, sep=sep)
    status, _, err = _cli(capsys, "check", str(_params_file(tmp_path, _spec(str(tmp_path / name)))))
    line = _error_line(err)
    assert status == 2 and name in line and "separated" in line and hint in line


def test_check_compares_free_space_with_the_runs_needs(tmp_path, cache, monkeypatch, capsys):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "d.csv")))
    status, out, _ = _cli(capsys, "check", str(params))
    assert status == 0 and f"# cache: {cache}:" in out and "this run writes about" in out
    monkeypatch.setattr(disk, "free_bytes", lambda path: 1000)
    status, _, err = _cli(capsys, "check", str(params))
    line = _error_line(err)
    assert status == 2 and "has 1000 B free but this run needs about" in line and str(cache) in line


def test_check_on_a_read_only_cache_is_one_line(tmp_path, cache, monkeypatch, capsys):
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    params = _params_file(tmp_path, _spec(str(tmp_path / "d.csv")))
    cache.mkdir()
    _fail_under(monkeypatch, cache, errno.EROFS)
    monkeypatch.setattr(repro.tempfile, "TemporaryFile", lambda dir=None: open(Path(dir) / "probe", "w"))
    status, _, err = _cli(capsys, "check", str(params))
    line = _error_line(err)
    assert status == 2 and "cannot write the cache folder: the file system is read-only" in line


# --------------------------------------------------------------------------------------------------
# 4. damaged entries: recomputed or reported; moved-aside copies swept
# --------------------------------------------------------------------------------------------------

def _entry(path: Path, payload: bytes = b"abc") -> Path:
    with repro.atomic_dir(path) as tmp:
        (tmp / "a.bin").write_bytes(payload)
    return path


def test_a_damaged_entry_is_reported_as_recomputed_or_not_needed(tmp_path, caplog):
    entry = _entry(tmp_path / "study-k1")
    (entry / "a.bin").write_bytes(b"ab")
    with caplog.at_level(logging.WARNING, logger="layerwise.core.repro"):
        assert not repro.is_done(entry)
        [line] = repro.damage_outcomes()
        assert "not recomputed: nothing this command ran needed it" in line
        _entry(tmp_path / "other-k2")
        (tmp_path / "other-k2" / "a.bin").write_bytes(b"ab")
        assert not repro.is_done(tmp_path / "other-k2")
        _entry(tmp_path / "renamed-k2")
        [line] = repro.damage_outcomes()
    assert "other-k2: recomputed" in line and not repro.damage_outcomes()
    assert "it will be recomputed" not in caplog.text


def test_a_damaged_fine_tuning_with_cached_results_is_recomputed_by_the_run(tmp_path, cache, monkeypatch, caplog):
    import torch

    torch.set_num_threads(1)
    _frame(60).to_csv(tmp_path / "d.csv", index=False)
    spec = _spec(str(tmp_path / "d.csv"))
    spec["analysis"]["states"] = ["pretrained", "finetuned"]
    params = load_params(_params_file(tmp_path, spec))
    pipeline.load_study(params, progress=False)
    [entry] = [p for p in (cache / "finetune").iterdir() if not p.name.startswith(".")]
    (entry / "metrics.json").write_text("{}")
    repro._VERIFIED.clear()
    with caplog.at_level(logging.WARNING):
        study = pipeline.load_study(params, progress=False)
    assert study.finetune["accuracy"] is not None and repro.is_done(entry)
    assert f"{entry.name}: recomputed" in caplog.text


def test_moved_aside_copies_are_swept_after_the_kept_days_and_by_clean(tmp_path, cache, monkeypatch, capsys):
    old = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() - (disk.DAMAGED_KEEP_DAYS + 1) * 86400))
    new = time.strftime("%Y%m%d-%H%M%S")
    for name, stamp in (("a-k1", old), ("b-k2", new)):
        copy = cache / "results" / f"{name}.damaged-{stamp}-123"
        copy.mkdir(parents=True)
        (copy / "emb.npz").write_bytes(b"\0" * 2048)
    monkeypatch.setattr(repro, "_SWEPT", set())
    repro.cache_root()  # the first call of a process sweeps what is older than the kept days
    assert [p.name for p in (cache / "results").iterdir()] == [f"b-k2.damaged-{new}-123"]
    status, out, _ = _cli(capsys, "clean", "--dry-run")
    assert status == 0 and "would remove 1 damaged cache copies (2.0 kB)" in out
    assert (cache / "results" / f"b-k2.damaged-{new}-123").exists()
    status, out, _ = _cli(capsys, "clean")
    assert status == 0 and "removed 1 damaged cache copies (2.0 kB); 0 kept" in out
    assert not list((cache / "results").iterdir())
    assert json.loads(json.dumps(disk.damaged_copies(cache))) == []
