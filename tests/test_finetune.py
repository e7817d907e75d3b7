"""Fine-tuning: end to end on the tiny BERT, CamemBERT and FlauBERT fixtures, the cache (hits,
keys), the seed's overrides, prepared data, resumption after a SIGKILL, and the format version that
guards the training code."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from layerwise.inputs import data as data_module
from layerwise.model import finetune as ft
from layerwise.model import prepared, trainer
from layerwise.measure import stats
from layerwise.inputs.config import load_params, parse_params
from layerwise.inputs.data import load_splits
from layerwise.core.errors import LayerwiseError
from layerwise.model.models import model_source
from layerwise.core.repro import code_hash, import_closure, is_done
from layerwise.model.testing import write_tiny_jsonl

METRIC_KEYS = {"accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "majority_baseline", "majority_class",
               "binomial_p", "n_test", "n_train", "train_seconds", "global_step", "history", "eval_loss"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh fine-tuning cache per test (the tiny models stay in the session's test cache)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LAYERWISE_CACHE", str(root))
    monkeypatch.setattr(ft, "BOOTSTRAP", 200)  # fewer bootstrap draws: the CI code is tested in test_stats
    return root


def _data_file(tmp_path: Path, n: int = 60, seed: int = 1) -> Path:
    return write_tiny_jsonl(tmp_path / "reviews.jsonl", n, seed)


def _params(model_dir: Path, data: Path, **finetune):
    spec = {"num_train": 40, "num_test": 20, "epochs": 2, "batch_size": 8, "learning_rate": 3e-3,
            "logging_steps": 2, **finetune}
    return parse_params({"name": "tiny", "model": {"id": str(model_dir)}, "dataset": {"source": str(data)},
                         "finetune": spec})


def _load(path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


# --------------------------------------------------------------------------------------------------
# known answers of the final statistics
# --------------------------------------------------------------------------------------------------

def test_classification_metrics_known_answers():
    y_true = np.array([0] * 6 + [1] * 4)
    y_pred = y_true.copy()
    m = stats.classification_metrics(y_true, y_pred, n_boot=200)
    assert m["accuracy"] == 1.0 and m["majority_class"] == 0 and m["majority_baseline"] == pytest.approx(0.6)
    # P(X >= 10), X ~ Binomial(10, 0.6) = 0.6 ** 10
    assert m["binomial_p"] == pytest.approx(0.6 ** 10)
    # Wilson lower bound for 10/10: n / (n + z^2)
    z2 = 1.959963984540054 ** 2
    assert m["accuracy_ci"][0] == pytest.approx(10 / (10 + z2)) and m["accuracy_ci"][1] == pytest.approx(1.0)
    assert m["macro_f1"] == 1.0 and m["macro_f1_ci"] == [1.0, 1.0]

    y_pred = np.array([0] * 10)  # the majority classifier: F1 = (2*6/(12+4) + 0) / 2 = 0.375
    m = stats.classification_metrics(y_true, y_pred, n_boot=200)
    assert m["accuracy"] == pytest.approx(0.6) and m["macro_f1"] == pytest.approx(0.375)
    assert m["binomial_p"] > 0.5  # no evidence of beating the baseline it is equal to


def test_majority_baseline_is_the_best_constant_predictor():
    assert stats.majority_baseline(np.array([2, 2, 1, 0, 2])) == (2, pytest.approx(0.6))


# --------------------------------------------------------------------------------------------------
# end to end on the three tiny architectures
# --------------------------------------------------------------------------------------------------

def test_finetune_tiny_model_end_to_end(tiny_model, tmp_path, cache):
    arch, model_dir = tiny_model
    epochs = 2
    params = _params(model_dir, _data_file(tmp_path), epochs=epochs)
    res = ft.finetune(params, progress=False)
    assert not res.cached and is_done(res.path)
    assert res.path.parent == cache / "finetune" and res.path.name.startswith("tiny-")
    assert not res.path.with_suffix(".work").exists()
    m = res.metrics
    assert METRIC_KEYS <= set(m)
    assert m["n_train"] == 40 and m["n_test"] == 20 and m["global_step"] == math.ceil(40 / 8) * epochs
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    assert m["macro_f1_ci"][0] <= m["macro_f1"] <= m["macro_f1_ci"][1]
    test = load_splits(params).test
    labels = np.array(test["label"])
    assert m["majority_baseline"] == pytest.approx(np.bincount(labels).max() / len(labels))
    history = m["history"]
    assert any("loss" in h for h in history) and any("eval_accuracy" in h for h in history)
    assert all(math.isfinite(h.get("loss", 0.0)) for h in history)
    assert history[-1]["step"] == m["global_step"] and history[-1]["eval_accuracy"] == pytest.approx(m["accuracy"])

    # the saved model is the trained one (weights moved) and the one that was evaluated: its
    # predictions on the test texts give exactly the recorded accuracy
    import torch
    from safetensors.torch import load_file

    model, tok = _load(res.path)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "0", 1: "1"}
    assert model.config.output_hidden_states is False
    before, after = load_file(model_dir / "model.safetensors"), load_file(res.path / "model.safetensors")
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2
    model.eval()
    with torch.no_grad():
        enc = tok(list(test["text"]), truncation=True, max_length=params.finetune.max_length, padding=True,
                  return_tensors="pt")
        preds = model(**enc).logits.argmax(-1).numpy()
    assert np.mean(preds == labels) == pytest.approx(m["accuracy"])
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["cache_key"] == m["cache_key"] and manifest["selection"]["hash"]
    assert manifest["versions"]["transformers"] and "git_commit" in manifest
    assert ft.load_finetune_metrics(res.path)["accuracy"] == m["accuracy"]

    t0 = time.perf_counter()
    again = ft.finetune(params, progress=False)
    assert time.perf_counter() - t0 < 1.0
    assert again.cached and again.path == res.path and again.metrics["accuracy"] == m["accuracy"]
    assert again.metrics["history"] == json.loads(json.dumps(history))


# --------------------------------------------------------------------------------------------------
# cache keys and overrides
# --------------------------------------------------------------------------------------------------

def test_cache_key_follows_every_input(tiny_dirs, tmp_path, cache):
    data = _data_file(tmp_path)
    base = ft.finetune_entry(_params(tiny_dirs["bert"], data))
    assert base == ft.finetune_entry(_params(tiny_dirs["bert"], data))
    changed = {
        "learning rate": ft.finetune_entry(_params(tiny_dirs["bert"], data, learning_rate=1e-3)),
        "batch size": ft.finetune_entry(_params(tiny_dirs["bert"], data, batch_size=4)),
        "seed": ft.finetune_entry(_params(tiny_dirs["bert"], data, seed=7)),
        "-n": ft.finetune_entry(_params(tiny_dirs["bert"], data), epochs=3),
        "-a": ft.finetune_entry(_params(tiny_dirs["bert"], data), num_train=30),
        "-b": ft.finetune_entry(_params(tiny_dirs["bert"], data), num_test=10),
        "model": ft.finetune_entry(_params(tiny_dirs["camembert"], data)),
        "-c": ft.finetune_entry(_params(tiny_dirs["bert"], data), checkpoint=str(tiny_dirs["flaubert"])),
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed)
    # the key is about content, not paths: the same model files elsewhere hit the same entry
    import shutil

    copy = shutil.copytree(tiny_dirs["bert"], tmp_path / "elsewhere" / "bert")
    assert ft.finetune_entry(_params(copy, data, epochs=2.0)) == base


def test_splits_and_source_from_the_caller_are_used_as_they_are(tiny_dirs, tmp_path, cache, monkeypatch):
    """The pipeline hands in the selection and the model it resolved: the same entry as when
    fine-tuning loads them itself, and no second load of the data."""
    params = _params(tiny_dirs["bert"], _data_file(tmp_path))
    splits, source = load_splits(params), model_source(params)
    loads = []
    with monkeypatch.context() as m:
        m.setattr(data_module, "load_raw", lambda *a, **k: loads.append(1))
        handed = ft.finetune_entry(params, splits=splits, source=source)
    assert loads == []
    assert handed == ft.finetune_entry(params)
    with pytest.raises(ValueError, match="splits="):
        ft.finetune_entry(params, splits=splits, num_train=10)
    with pytest.raises(ValueError, match="source="):
        ft.finetune_entry(params, source=source, checkpoint=str(tiny_dirs["flaubert"]))


def test_overrides_select_the_asked_numbers_of_examples(tiny_dirs, tmp_path, cache):
    params = _params(tiny_dirs["bert"], _data_file(tmp_path), epochs=2)
    res = ft.finetune(params, num_train=24, num_test=12, epochs=1, progress=False)
    assert (res.metrics["n_train"], res.metrics["n_test"]) == (24, 12)
    assert res.metrics["global_step"] == math.ceil(24 / 8) and res.metrics["epochs"] == 1.0
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert len(manifest["selection"]["train_index"]) == 24 and manifest["hyper_parameters"]["num_train"] == 24
    with pytest.raises(LayerwiseError, match="num_train"):
        ft.finetune(params, num_train=500, progress=False)
    with pytest.raises(LayerwiseError, match="epochs"):
        ft.finetune(params, epochs=0, progress=False)


def test_save_copies_the_model_and_never_overwrites_a_foreign_directory(tiny_dirs, tmp_path, cache):
    params = _params(tiny_dirs["bert"], _data_file(tmp_path), epochs=1)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(LayerwiseError, match="not written by layerwise"):
        ft.finetune(params, save=foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not (cache / "finetune").exists() or not any((cache / "finetune").iterdir())  # nothing trained

    out = tmp_path / "saved"
    res = ft.finetune(params, save=out, progress=False)
    assert is_done(out) and (out / "metrics.json").is_file()
    _load(out)
    again = ft.finetune(params, save=out, progress=False)  # cached; replacing our own copy is fine
    assert again.cached and json.loads((out / "manifest.json").read_text())["cache_key"] == res.metrics["cache_key"]


def test_incomplete_entry_is_never_taken_as_done(tiny_dirs, tmp_path, cache):
    params = _params(tiny_dirs["bert"], _data_file(tmp_path), epochs=1)
    entry = ft.finetune_entry(params)
    entry.mkdir(parents=True)
    (entry / "metrics.json").write_text(json.dumps({"accuracy": 1.0}))  # a half-written result
    with pytest.raises(LayerwiseError, match="not a finished"):
        ft.load_finetune_metrics(entry)
    res = ft.finetune(params, progress=False)
    assert not res.cached and res.path == entry and is_done(entry)
    assert ft.load_finetune_metrics(entry)["n_train"] == 40  # the real result replaced the half-written one


# --------------------------------------------------------------------------------------------------
# prepare and -d
# --------------------------------------------------------------------------------------------------

def test_prepare_then_finetune_from_prepared_data(tiny_dirs, tmp_path, cache):
    import datasets

    params = _params(tiny_dirs["camembert"], _data_file(tmp_path), epochs=1, max_length=12)
    out = prepared.prepare(params, tmp_path / "prepared")
    assert is_done(out)
    dd = datasets.load_from_disk(str(out))
    assert (len(dd["train"]), len(dd["test"])) == (40, 20)
    lengths = [len(ids) for ids in dd["train"]["input_ids"]]
    assert max(lengths) <= 12 and len(set(lengths)) > 1  # truncated, not padded
    info = json.loads((out / prepared.PREPARED_INFO).read_text())
    assert info["selection"]["hash"] and info["tokenizer_fingerprint"] and info["versions"]

    # -d: trains on the prepared rows, with its own cache key; -a/-b take the first rows
    res = ft.finetune(params, data=out, num_train=16, num_test=10, progress=False)
    assert (res.metrics["n_train"], res.metrics["n_test"]) == (16, 10)
    assert res.path != ft.finetune_entry(params, num_train=16, num_test=10)
    assert ft.finetune(params, data=out, num_train=16, num_test=10, progress=False).cached
    with pytest.raises(LayerwiseError, match="holds 40"):
        ft.finetune(params, data=out, num_train=41, progress=False)

    # data prepared for another tokenizer is refused; so is a directory prepare did not finish
    other = _params(tiny_dirs["flaubert"], _data_file(tmp_path), epochs=1)
    with pytest.raises(LayerwiseError, match="tokenized for"):
        ft.finetune(other, data=out, progress=False)
    with pytest.raises(LayerwiseError, match="not a complete prepared"):
        ft.finetune(params, data=tmp_path, progress=False)
    # prepare never replaces a directory it did not write, and replaces its own
    with pytest.raises(LayerwiseError, match="not written by layerwise"):
        prepared.prepare(params, tmp_path)
    assert prepared.prepare(params, out, num_train=12, num_test=10) == out
    assert len(datasets.load_from_disk(str(out))["train"]) == 12


# --------------------------------------------------------------------------------------------------
# SIGKILL and resumption
# --------------------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from transformers import Trainer
    from layerwise.inputs.config import load_params
    from layerwise.model.finetune import finetune

    step = Trainer.training_step
    def slow_step(self, *args, **kwargs):  # a slow run, so that the kill lands in the middle
        time.sleep(0.1)
        return step(self, *args, **kwargs)
    Trainer.training_step = slow_step
    finetune(load_params(sys.argv[1]), save_steps=3, progress=False)
    print("FINISHED")
""")


def test_sigkill_then_resume_from_checkpoint(tiny_dirs, tmp_path, cache):
    data = _data_file(tmp_path)
    spec = {"name": "tiny", "model": {"id": str(tiny_dirs["bert"])}, "dataset": {"source": str(data)},
            "finetune": {"num_train": 40, "num_test": 20, "epochs": 3, "batch_size": 4, "logging_steps": 2,
                         "learning_rate": 3e-3}}
    params_file = tmp_path / "tiny.yml"
    params_file.write_text(yaml.safe_dump(spec))
    params = load_params(params_file)
    entry = ft.finetune_entry(params)
    work = entry.with_suffix(".work")

    env = {**os.environ, "LAYERWISE_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(params_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(trainer.checkpoint_complete(d) for d in work.glob("checkpoint-*")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert b"FINISHED" not in proc.stdout.read()
    # nothing looks finished: no entry, no DONE.json; the checkpoint is in the work directory
    assert not entry.exists() and not is_done(entry)
    assert not list(entry.parent.glob(f".{entry.name}.tmp-*"))
    killed_at = trainer.last_checkpoint(work)
    assert killed_at is not None
    with pytest.raises(LayerwiseError):
        ft.load_finetune_metrics(entry)

    res = ft.finetune(params, progress=False)
    assert not res.cached and res.path == entry and is_done(entry)
    assert res.metrics["resumed_from_step"] >= int(killed_at.name.split("-")[1]) > 0
    assert res.metrics["global_step"] == math.ceil(40 / 4) * 3
    steps = [h["step"] for h in res.metrics["history"] if "loss" in h]
    assert steps[0] == 2 and steps == sorted(steps)  # the history before the kill was kept
    assert not work.exists()
    _load(entry)
    assert ft.finetune(params, progress=False).cached


def test_crash_while_writing_the_entry_leaves_nothing_done(tiny_dirs, tmp_path, cache, monkeypatch):
    params = _params(tiny_dirs["bert"], _data_file(tmp_path), epochs=1)
    entry = ft.finetune_entry(params)

    def broken_write(path, obj):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(ft, "atomic_write_json", broken_write)  # fails inside the entry being written
        with pytest.raises(OSError, match="disk full"):
            ft.finetune(params, save_steps=5, progress=False)  # 5 steps: the last checkpoint is at the end
    assert not entry.exists() and not list(entry.parent.glob(f".{entry.name}.tmp-*"))
    res = ft.finetune(params, progress=False)  # resumes at the last step and evaluates again
    assert res.metrics["resumed_from_step"] == 5 == res.metrics["global_step"] and is_done(entry)
    assert res.metrics["history"][-1]["eval_accuracy"] == pytest.approx(res.metrics["accuracy"])


def test_a_second_run_of_the_same_entry_waits_for_the_first(tiny_dirs, tmp_path, cache):
    import fcntl
    import threading

    params = _params(tiny_dirs["bert"], _data_file(tmp_path), epochs=1)
    entry = ft.finetune_entry(params)
    work = entry.with_suffix(".work")
    work.mkdir(parents=True)
    results = []
    with open(work / ".lock", "w") as held:  # another run holds the entry
        fcntl.flock(held, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: results.append(ft.finetune(params, progress=False)))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and not is_done(entry)  # waiting, not training beside it
    thread.join(timeout=120)
    assert not thread.is_alive() and is_done(results[0].path)


# --------------------------------------------------------------------------------------------------
# the format version guards the training code
# --------------------------------------------------------------------------------------------------

#: ``repro.code_hash`` of the training path (finetune, trainer, prepared and every package module
#: they import), recorded per ``FINETUNE_FORMAT``.
TRAINING_CODE_HASHES = {3: "63f9b13d77c69b27", 4: "586acc4a524371b5", 5: "c1a6074dea224b3a"}  # format 3: precision in the key; re-recorded for issue 28 (disk faults explained, repeated texts removed before the split: a corpus without repeats has the same selection, one with repeats a new selection hash, hence a new key; no weight, metric or layout change); re-recorded for issue 22 (stats gained the seed-and-sentence interval's new form, BCa and range helpers; the training path uses only stats.classification_metrics, unchanged: no weight, metric or layout change); re-recorded for issue 21 (modules moved into subpackages, module names in the hash and import lines changed; merged with issue 22: the training path is unchanged, no weight, metric or layout change); re-recorded for issue 24 (core.schema, imported by inputs.config for ORIGINAL_LAYERS, gained each measure's unit and range and new chart labels: presentation only, no weight, metric or layout change); re-recorded for issue 21 item 4 (the table contract moved from core.schema to core.tables, which the training path now imports instead: the registry's reader text left every compute key; no weight, metric or layout change); re-recorded for issue 21 items 4-6 (inputs.config lists the settings partition; the device is picked once per plan and passed to the Trainer, whose precision the plan resolved; readers verify entries without moving them; stats lost bootstrap_ci and gained t_interval; core.tables.original_layers renamed grid_layers: no weight, metric or layout change); re-recorded for issue 22 item 6 (inputs.config gained analysis.random_draws, an analysis setting the fine-tuning never reads: no weight, metric or layout change); re-recorded for issue 26 (core.tables declares the poolings, inputs.config gained analysis.poolings, inputs.caveats names the declared poolings by their stored names, model.models loads GPT-2-class decoders: a padding token is set only when the tokenizer or config has none, which no supported encoder lacks: no weight, metric or layout change for an encoder); format 4 for issue 25 item 2 (fused AdamW, dropout masks drawn in bulk on CPU: another random stream; checkpoints by time), [4] re-recorded for LAYERWISE_SAVE_EVERY_S (the checkpoint interval from the environment: no weight, metric or layout change; LayerwiseError imported at the module top in the review pass); format 5 for issue 27 item 1 (the entry keeps the pooled embeddings at finetune.checkpoints in trajectory/, model.trajectory; the training path now imports measure.extract and measure.pooling, whose code makes those embeddings)
TRAINING_PATH = ("model.finetune", "model.trainer", "model.prepared")


def test_finetune_format_version_guards_training_code():
    """The fine-tuning cache key holds ``FINETUNE_FORMAT``, not the code: a change to the training
    path must come with a version bump (or, for a change that provably alters no weight and no
    metric, a new recorded hash under the same version)."""
    now = code_hash(*TRAINING_PATH)
    version = ft.FINETUNE_FORMAT
    recorded = TRAINING_CODE_HASHES.get(version)
    assert recorded == now, (
        f"the code of the fine-tuning path changed ({', '.join(import_closure(*TRAINING_PATH))}): its hash is "
        f"{now!r}, recorded for FINETUNE_FORMAT {version}: {recorded!r}. Bump FINETUNE_FORMAT in "
        f"src/layerwise/model/finetune.py (to {version + 1}) so that older cache entries are retrained, and record "
        f"the new hash in tests/test_finetune.py: TRAINING_CODE_HASHES[{version + 1}] = {now!r}. "
        "Only when the change provably alters no weight, metric or entry layout (comments, renames), "
        f"update TRAINING_CODE_HASHES[{version}] instead.")
    assert set(import_closure(*TRAINING_PATH)) >= {"model.finetune", "model.trainer", "model.prepared", "measure.stats", "model.models",
                                                 "inputs.data"}


def test_timed_saves_ask_for_a_checkpoint_after_the_interval_only():
    """The default checkpoint policy (``trainer._timed_saves``): a checkpoint once the interval has
    passed, none at the last step (the final model is saved apart), none before the interval."""
    from types import SimpleNamespace

    from layerwise.model.trainer import _timed_saves

    def step(cb, global_step):
        control = SimpleNamespace(should_save=False)
        cb.on_step_end(None, SimpleNamespace(global_step=global_step, max_steps=10), control)
        return control.should_save

    soon, never = _timed_saves(0.0), _timed_saves(1e9)
    for cb in (soon, never):
        cb.on_train_begin(None, None, None)
    assert step(soon, 3) and not step(soon, 10)
    assert not step(never, 3) and not step(never, 9)


def test_the_checkpoint_interval_comes_from_the_environment(monkeypatch):
    from layerwise.core.errors import LayerwiseError
    from layerwise.model.trainer import SAVE_EVERY_S, save_every_s

    monkeypatch.delenv("LAYERWISE_SAVE_EVERY_S", raising=False)
    assert save_every_s() == SAVE_EVERY_S
    monkeypatch.setenv("LAYERWISE_SAVE_EVERY_S", "0")
    assert save_every_s() == 0.0
    for bad in ("soon", "-5", "nan"):
        monkeypatch.setenv("LAYERWISE_SAVE_EVERY_S", bad)
        with pytest.raises(LayerwiseError, match="LAYERWISE_SAVE_EVERY_S"):
            save_every_s()
