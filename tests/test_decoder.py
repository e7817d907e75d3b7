"""A GPT-2-class decoder end to end (issue 26): a tiny random-init GPT-2 (its byte-level BPE tokenizer from
``layerwise.model.testing``'s learner) with ``poolings: [last, mean]`` through fine-tuning, the engine, the
probes and the chapters; and what ``layerwise check`` says of it."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from layerwise.book import report
from layerwise.core.repro import PROJECT_ROOT
from layerwise.model import models
from layerwise.model.testing import NUM_LAYERS, tiny_model_dir, write_tiny_jsonl
from layerwise.study import pipeline
from layerwise.study.preflight import run_checks
from layerwise.inputs.config import load_params

pytestmark = pytest.mark.slow


def _params(root: Path, poolings: list[str] | None) -> Path:
    """A params file for the tiny GPT-2 on a local JSONL corpus, small sizes (as tests/test_pipeline.py's)."""
    data = write_tiny_jsonl(root / "gpt2-reviews.jsonl", 80, seed=3)
    spec = {"name": "tiny-gpt2", "title": "Tiny GPT-2",
            "model": {"id": str(tiny_model_dir("gpt2")), "label": "tiny gpt2"},
            "dataset": {"source": str(data)},
            "finetune": {"num_train": 35, "num_probe": 15, "num_test": 30, "epochs": 2, "batch_size": 8, "max_length": 64,
                         "learning_rate": 3e-3},
            "analysis": {"num_sentences": 20, "batch_size": 8, "max_length": 64, "token_sample": 64,
                         "sample_sentences": 10, "baseline_pairs": 200, "cosine_sample": 200, "probe_seeds": 2,
                         "bootstrap": 100, "seed_layers": [1, 2], "random_draws": 1}}
    if poolings:
        spec["analysis"]["poolings"] = poolings
    path = root / "params" / "tiny-gpt2.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    """The tiny GPT-2's study with ``poolings: [last, mean]``, in a fresh cache, one thread."""
    import torch

    root = tmp_path_factory.mktemp("decoder")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
        path = _params(root, ["last", "mean"])
        yield root, path, pipeline.load_study(path, progress=False)
    torch.set_num_threads(threads)


def test_the_tiny_decoder_loads_with_a_padding_token_and_defaults_to_its_last_token(tmp_path):
    model, tok = models.load_model(str(tiny_model_dir("gpt2")), 2)
    assert model.config.model_type == "gpt2" and models.model_kind("gpt2") == "decoder" and "gpt2" in models.SUPPORTED
    assert tok.pad_token_id is not None and model.config.pad_token_id == tok.pad_token_id
    params = load_params(_params(tmp_path, None))
    assert models.resolve_poolings(params, models.model_source(params)) == ["last", "mean"]


def test_fine_tuning_engine_and_probes_run_on_the_last_token(decoder):
    _, _, study = decoder
    assert study.poolings == ["last", "mean"] and study.primary_pooling == "last"
    tidy = study.tidy
    metrics = set(tidy.metric)
    for m in ("probe_acc_last", "probe_acc_mean", "silhouette_last", "mdl_compression_last", "probe_acc_seen_last",
              "cka_last_vs_pretrained", "cka_debiased_mean_vs_pretrained", "control_acc_last"):
        assert m in metrics, m
    assert not any(m.endswith("_cls") or "_cls_" in m for m in metrics)   # no first-token output asked for
    acc = tidy[(tidy.metric == "probe_acc_last") & (tidy.state == "finetuned")].sort_values("layer")
    assert list(acc.layer) == list(range(NUM_LAYERS + 1)) and acc.value.between(0, 1).all()
    assert set(study.cka.pooling) == {"last", "mean"} and len(study.cones) > 0
    assert study.finetune["n_train"] == 35 and np.isfinite(study.finetune["accuracy"])
    assert study.manifest["caveats"]["first_token"] == {}            # no first-token embeddings stored


def test_the_decoder_chapters_execute(decoder, tmp_path):
    root, path, _ = decoder
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
            report.run([path], out_dir=tmp_path / "report", preview=False, progress=False,
                       chapters_dir=PROJECT_ROOT / "chapters")
    finally:
        os.chdir(old)
    texts = []
    for chapter in ("geometry", "probing"):
        nb = nbformat.read(tmp_path / "report" / "tiny-gpt2" / f"{chapter}.ipynb", as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", f"{chapter}: {out.get('ename')}: {out.get('evalue')}"
                texts.append(out.get("data", {}).get("text/markdown", ""))
    text = "\n".join(texts)
    assert "Poolings: last token and mean pooling, as the params set them" in text
    assert "last-token" in text and "first-token probe" not in text


def test_check_says_what_a_decoders_params_need(tmp_path):
    report_ = run_checks(load_params(_params(tmp_path, ["mean", "cls"])))
    assert report_.poolings == ["mean", "cls"]
    assert any("decoder (causal attention" in n and "last non-padding token" in n and "end-of-text" in n
               for n in report_.notes)
    assert any("lacks 'last'" in w for w in report_.warnings) and any("holds 'cls'" in w for w in report_.warnings)
    assert run_checks(load_params(_params(tmp_path, None))).poolings == ["last", "mean"]
