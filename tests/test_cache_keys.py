"""Exact cache keys (issue 21, item 4): each step's key covers the code that computes it, never the reader's text.
The registry's labels and descriptions (layerwise.core.schema) sit outside every compute key, so editing a label
changes no step key and keeps the fine-tuning guard green; editing a step's code changes its key. Checked on a
copy of the package, edited, hashed in a child process (known answers, not the hash function against itself)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.core import schema, tables
from layerwise.core.repro import import_closure

SRC = Path(__file__).resolve().parents[1] / "src"
#: the module sets whose code hash keys a cached step (study/pipeline.py, study/caveat_step.py) and the
#: training path the fine-tuning guard hashes (tests/test_finetune.py TRAINING_PATH)
STEPS = {"geometry": ("measure.extract", "measure.similarity", "model.models", "measure.seeds"),
         "probes": ("measure.probe_study", "measure.comparisons", "measure.stats"),
         "caveats": ("study.caveat_step",),
         "beyond": ("study.beyond", "model.trajectory"),
         "training": ("model.finetune", "model.trainer", "model.prepared")}


def test_the_steps_listed_here_are_the_ones_the_pipeline_hashes():
    text = "".join((SRC / "layerwise/study" / f).read_text(encoding="utf-8") for f in ("pipeline.py", "caveat_step.py"))
    found = {tuple(re.findall(r'"([\w.]+)"', call)) for call in re.findall(r"code_hash\(([^)]*)\)", text)}
    assert found == {STEPS["geometry"], STEPS["probes"], STEPS["caveats"], STEPS["beyond"]}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_no_compute_key_holds_reader_text(step):
    closure = import_closure(*STEPS[step])
    assert "core.schema" not in closure, f"{step}: the registry's reader text is in its key"
    assert not [m for m in closure if m.startswith(("words.", "book."))], closure


def _hashes(root: Path) -> dict[str, str]:
    code = ("import json; from layerwise.core.repro import code_hash; "
            f"print(json.dumps({{k: code_hash(*v) for k, v in {STEPS!r}.items()}}))")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(SRC / "layerwise", root / "layerwise", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_label_edit_changes_no_key_and_a_code_edit_changes_its_own(tmp_path):
    before = _hashes(_copy(tmp_path, "same"))
    labelled = _copy(tmp_path, "label")
    path = labelled / "layerwise/core/schema.py"
    text = path.read_text(encoding="utf-8")
    assert 'label="debiased CKA"' in text
    path.write_text(text.replace('label="debiased CKA"', 'label="debiased CKA, renamed"'), encoding="utf-8")
    assert _hashes(labelled) == before                     # every step key and the training guard unchanged
    coded = _copy(tmp_path, "code")
    sim = coded / "layerwise/measure/similarity.py"
    sim.write_text(sim.read_text(encoding="utf-8") + "\n# an edit of the geometry step's code\n", encoding="utf-8")
    after = _hashes(coded)
    assert after["geometry"] != before["geometry"]
    assert after["training"] == before["training"] and after["caveats"] == before["caveats"]


def test_the_contract_structure_agrees_with_the_registry():
    for name, suffixes in tables._SUFFIXES.items():
        assert schema.lookup(name).name == name and schema.lookup(name).suffixes == suffixes, name
    assert set(tables._SUFFIXES) == set(tables.RANGES) | set(tables.P_VALUES)
