"""Precision resolution (mocked CPU flags and devices) and the autocast contexts."""

from __future__ import annotations

import pytest
import torch

from layerwise.core import precision as P
from layerwise.inputs.config import GEOMETRY_FIELDS, AnalysisSpec, FinetuneSpec
from layerwise.core.errors import LayerwiseError

CPUINFO = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n"
AMX = ["avx512f", "amx_bf16", "amx_tile"]
AVX512_BF16 = ["avx512f", "avx512_bf16"]
PLAIN = ["sse", "avx2"]


def test_cpuinfo_parsing():
    assert P.cpu_flags(CPUINFO) == ["fpu", "sse", "avx512f", "avx512_bf16", "amx_tile"]
    assert P.cpu_model(CPUINFO) == "Test CPU 9000"
    assert P.cpu_flags("") == []


@pytest.mark.parametrize("flags, expected", [(AMX, True), (AVX512_BF16, True), (PLAIN, False)])
def test_cpu_bf16_from_flags(flags, expected):
    assert P.cpu_bf16(flags) is expected


def test_cpu_bf16_without_flags_falls_back_to_torch_capability():
    assert P.cpu_bf16([], capability="AMX") is True
    assert P.cpu_bf16([], capability="AVX512") is False


@pytest.mark.parametrize("flags, expected", [(AMX, "bf16"), (AVX512_BF16, "bf16"), (PLAIN, "fp32")])
def test_auto_finetune_on_cpu(flags, expected):
    assert P.resolve("auto", torch.device("cpu"), purpose="finetune", flags=flags) == expected


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_finetune_on_cuda(supported, expected):
    assert P.resolve("auto", "cuda:1", purpose="finetune", cuda_supports_bf16=supported) == expected


def test_auto_analysis_follows_the_benchmark_decision(monkeypatch):
    monkeypatch.setattr(P, "AUTO_ANALYSIS_BF16", False)
    assert P.resolve("auto", "cpu", purpose="analysis", flags=AMX) == "fp32"
    monkeypatch.setattr(P, "AUTO_ANALYSIS_BF16", True)
    assert P.resolve("auto", "cpu", purpose="analysis", flags=AMX) == "bf16"
    assert P.resolve("auto", "cpu", purpose="analysis", flags=PLAIN) == "fp32"
    assert P.resolve("auto", "cuda", purpose="analysis", cuda_supports_bf16=False) == "fp32"
    assert P.resolve("auto", "mps", purpose="analysis") == "fp32"


def test_explicit_precisions_and_errors():
    assert P.resolve("bf16", "cpu", flags=PLAIN) == "bf16"   # asked for: emulated, slower, but allowed
    assert P.resolve("fp32", "cuda", cuda_supports_bf16=True) == "fp32"
    with pytest.raises(LayerwiseError, match="fp16 needs a CUDA device"):
        P.resolve("fp16", "cpu")
    with pytest.raises(LayerwiseError, match="unknown precision"):
        P.resolve("fp64", "cpu")


def test_trainer_flags():
    assert P.trainer_flags("bf16") == {"bf16": True}
    assert P.trainer_flags("fp16") == {"fp16": True}
    assert P.trainer_flags("fp32") == {}


def test_autocast_only_around_the_call():
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with P.autocast("bf16", "cpu"):
        assert lin(x).dtype == torch.bfloat16
    assert lin(x).dtype == torch.float32
    with P.autocast("fp32", "cpu"):
        assert lin(x).dtype == torch.float32


def test_precision_is_a_setting_and_in_the_geometry_key():
    assert FinetuneSpec().precision == "auto" and AnalysisSpec().precision == "auto"
    assert "precision" in GEOMETRY_FIELDS
    assert AnalysisSpec(precision="bf16").geometry_payload()["precision"] == "bf16"
    with pytest.raises(ValueError):
        AnalysisSpec(precision="fp8")


def test_machine_record():
    m = P.machine("cpu", "fp32")
    assert m["device"] == "cpu" and m["precision"] == "fp32" and m["threads"] >= 1 and "cpu" in m


def test_engine_in_bf16_upcasts_and_stays_close_to_fp32():
    """bf16 changes only the model's matrix products: every statistic is computed from float32 hidden
    states (float64 sums), finite, and close to the fp32 run; autocast does not leak out of the forward."""
    import numpy as np

    from layerwise.measure import extract
    from layerwise.model.models import load_model
    from layerwise.model.testing import tiny_model_dir, tiny_texts

    torch.set_num_threads(1)
    model, tok = load_model(str(tiny_model_dir("bert")), 2)
    texts = tiny_texts(12, seed=3)
    kw = dict(token_sample=40, sample_sentences=100, baseline_pairs=300, cosine_sample=200, seed=7, batch_size=4,
              max_length=64, pool_tokens=1000)
    out = {p: extract.run_state(model, tok, texts, state="pretrained", model_name="tiny", progress=False,
                                settings=AnalysisSpec(precision=p, **kw)) for p in ("fp32", "bf16")}
    assert not torch.is_autocast_enabled("cpu")
    a, b = (out[p].tidy.set_index(["layer", "metric"])["value"] for p in ("fp32", "bf16"))
    assert a.index.equals(b.index) and np.isfinite(b.dropna()).all()
    cos = out["bf16"].tidy.query("metric == 'cosine_mean'")["value"].to_numpy()
    assert np.allclose(cos, out["fp32"].tidy.query("metric == 'cosine_mean'")["value"].to_numpy(), atol=0.02)
    last = {p: next(extract.forward_batches(model, tok, texts, batch_size=4, max_length=64, precision=p))[3][-1]
            for p in ("fp32", "bf16")}
    assert not torch.equal(last["fp32"], last["bf16"])   # autocast ran (LayerNorm outputs stay float32)
    assert torch.allclose(last["fp32"], last["bf16"].float(), atol=0.2)


def test_reproduce_page_names_precision_device_and_cpu_flags(tmp_path):
    from report_fakes import write_params

    from layerwise.inputs.config import load_params
    from layerwise.book.report import reproduce_markdown

    params = load_params(write_params(tmp_path, "alpha"))
    manifest = {"device": "cpu", "finetune_precision": "bf16",
                "machine": {"precision": "fp32", "cpu": "Test CPU", "cpu_bf16_flags": ["avx512_bf16"], "threads": 2,
                            "cpu_capability": "AVX512", "device": "cpu"}}
    page = reproduce_markdown([params], {"alpha": manifest}, cwd=tmp_path)
    assert "| analysis precision | `fp32` |" in page and "| fine-tuning precision | `bf16` |" in page
    assert "Test CPU" in page and "avx512_bf16" in page and "| device | `cpu` |" in page


def test_statistics_are_computed_from_upcast_hidden_states(monkeypatch):
    """Whatever the model computes in, the engine's kernels receive float32 hidden states (upcast in
    :mod:`layerwise.measure.extract`) and return float sums the host accumulates in float64: a model whose
    weights are bf16 (hidden states in bf16) still feeds the statistics float32."""
    import numpy as np

    from layerwise.measure import extract, kernels
    from layerwise.model.models import load_model
    from layerwise.model.testing import tiny_model_dir, tiny_texts

    torch.set_num_threads(1)
    model, tok = load_model(str(tiny_model_dir("bert")), 2)
    model = model.to(torch.bfloat16)
    seen = []
    for name in ("layer_statistics", "word_vectors"):
        def spy(h, *args, __f=getattr(kernels, name), __name=name, **kwargs):
            seen.append((__name, h.dtype))
            return __f(h, *args, **kwargs)
        monkeypatch.setattr(kernels, name, spy)
    raw = next(extract.forward_batches(model, tok, tiny_texts(4, seed=1), batch_size=4, max_length=32,
                                       precision="bf16"))[3]
    assert raw[-1].dtype == torch.bfloat16                 # the model's own hidden states are bf16
    res = extract.run_state(model, tok, tiny_texts(8, seed=3), state="pretrained", model_name="tiny", progress=False,
                            settings=AnalysisSpec(precision="bf16", token_sample=20, sample_sentences=8,
                                                  baseline_pairs=50, cosine_sample=50, batch_size=4, max_length=32))
    assert {n for n, _ in seen} == {"layer_statistics", "word_vectors"}
    assert all(dtype == torch.float32 for _, dtype in seen), seen
    assert res.tidy["value"].dtype == np.float64 and np.isfinite(res.tidy["value"].dropna()).all()


def test_auto_analysis_is_the_decision_the_benchmark_wrote():
    """``AUTO_ANALYSIS_BF16`` is what bench/bench_precision.py decided from the report's verdicts
    (bench/RESULTS-precision.md names the value); changing one without the other fails here."""
    from layerwise.core.repro import PROJECT_ROOT

    text = (PROJECT_ROOT / "bench" / "RESULTS-precision.md").read_text(encoding="utf-8")
    assert f"layerwise.core.precision.AUTO_ANALYSIS_BF16 = {P.AUTO_ANALYSIS_BF16}" in text
    assert ("Report verdicts compared" in text) or "--no-study" in text
