"""Any bytes are safe: whatever params file or small data file a user passes, `layerwise check`
either accepts it (exit 0) or prints one line naming the file and what is wrong (exit 2): no
traceback, nothing written to the cache. Property-based (hypothesis), in-process, bounded sizes,
derandomized (the same examples every run; LAYERWISE_FUZZ_EXAMPLES raises the count locally)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from layerwise import cli  # noqa: E402

N = int(os.environ.get("LAYERWISE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(deadline=None, derandomize=not N, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
ELAPSED: dict[str, float] = {}
OUTCOMES: list[tuple[int, str]] = []

# --- values a YAML or JSON file can hold, bounded --------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | st.sampled_from(["", "embedded:minilm", "embedded:demo-fr", "data.csv",
                                                       "./nowhere", "~", "pretrained", "-1", "1e9", "\x00"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(["id", "source", "states", "text", "label"]), inner, max_size=4),
    max_leaves=12)
KEYS = {"": ["name", "title", "model", "dataset", "finetune", "analysis", "extra"],
        "model": ["id", "revision", "label"],
        "dataset": ["source", "config", "revision", "data_files", "train_split", "test_split", "text_column",
                    "label_column", "domain_column", "test_fraction", "encoding"],
        "finetune": ["num_train", "num_test", "epochs", "learning_rate", "batch_size", "max_length", "seed"],
        "analysis": ["states", "num_sentences", "max_length", "token_sample", "probe_seeds", "bootstrap",
                     "original_layers", "seed_layers", "pool_tokens", "seed"]}


def base_params() -> dict:
    return {"name": "fuzz", "model": {"id": "embedded:minilm"}, "dataset": {"source": "data.csv"},
            "finetune": {"num_train": 6, "num_test": 4, "max_length": 32},
            "analysis": {"max_length": 32, "states": ["pretrained", "finetuned"]}}


def good_rows(n=16) -> list[dict]:
    return [{"text": f"phrase numéro {i}", "label": ["neg", "pos"][i % 2]} for i in range(n)]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder with a valid data file, an empty study cache and a private datasets cache."""
    import datasets

    root = tmp_path_factory.mktemp("fuzz")
    (root / "cache").mkdir()
    with open(root / "data.csv", "w", encoding="utf-8") as fh:
        fh.write("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in good_rows()))
    old = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = root / "hf-datasets"
    mp = pytest.MonkeyPatch()
    mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
    mp.chdir(root)
    yield root
    mp.undo()
    datasets.config.HF_DATASETS_CACHE = old
    assert N or sum(ELAPSED.values()) < 60, f"the fuzz tests took {ELAPSED} s (limit: 60 s in total)"


def run_check(params_path: Path, *named: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["check", str(params_path)])  # a programming error propagates: the test fails
    text = err.getvalue()
    OUTCOMES.append((rc, text.strip().splitlines()[-1][:150] if text.strip() else ""))
    assert rc in (0, 2), text
    assert "Traceback" not in text
    if rc == 2:
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
        assert len(lines) == 1 and lines[0].startswith("error: "), text
        assert "\x00" not in lines[0], lines[0]
        assert any(p.name in lines[0] for p in (params_path, *named)), f"no file named in: {lines[0]}"
        assert "Fix:" in lines[0] or "not found" in lines[0], lines[0]
    return rc, text


def assert_cache_untouched(root: Path) -> None:
    assert not any((root / "cache").iterdir()), "check wrote into the study cache"


@st.composite
def mutated_params(draw) -> dict:
    data = base_params()
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(KEYS)))
        key = draw(st.sampled_from(KEYS[section]) | st.text(max_size=8))
        target = data if section == "" else data.setdefault(section, {})
        if not isinstance(target, dict):
            target = data
        if draw(st.booleans()) and key in target:
            target.pop(key)
        else:
            target[key] = draw(values)
    return data


params_files = (mutated_params().map(lambda d: ("yaml", d))
                | st.binary(max_size=300).map(lambda b: ("bytes", b)))


def _params_case(root: Path, case) -> None:
    kind, payload = case
    path = root / "p.yml"
    if kind == "yaml":
        try:
            path.write_text(yaml.safe_dump(payload, allow_unicode=True))
        except (yaml.YAMLError, UnicodeEncodeError):
            return  # not representable as YAML: nothing a user could pass
    else:
        path.write_bytes(payload)
    run_check(path, root / "data.csv")
    assert_cache_untouched(root)


def test_any_params_file_is_accepted_or_one_line(sandbox):
    t0 = time.perf_counter()
    settings(FUZZ, max_examples=N or 120)(given(case=params_files)(lambda case: _params_case(sandbox, case)))()
    ELAPSED["params"] = time.perf_counter() - t0


# --- data files ------------------------------------------------------------------------------------
cell = st.text(max_size=20) | st.sampled_from(["", " ", "neg", "pos", "0", "1", "1.5", '"', ",", "\n", "é"])
json_value = values


@st.composite
def data_files(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
    how = draw(st.sampled_from(["rows", "bytes", "mangled"]))
    rows = good_rows(draw(st.integers(0, 16)))
    for r in rows:
        if draw(st.integers(0, 3)) == 0:
            r[draw(st.sampled_from(["text", "label", "other"]))] = draw(json_value if suffix in (".jsonl", ".json")
                                                                       else cell)
    if suffix in (".jsonl", ".json"):
        blob = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        if suffix == ".json" and draw(st.booleans()):
            blob = json.dumps(rows, ensure_ascii=False)
    else:
        sep = "," if suffix == ".csv" else "\t"
        blob = f"text{sep}label\n" + "".join(f"{r.get('text', '')}{sep}{r.get('label', '')}\n" for r in rows)
    raw = blob.encode(draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"])), errors="replace")
    if how == "bytes":
        raw = draw(st.binary(max_size=400))
    elif how == "mangled" and raw:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=8)) + raw[at + draw(st.integers(0, 8)):]
    return suffix, raw


def _data_case(root: Path, suffix: str, raw: bytes, encoding: str | None) -> None:
    data = root / f"fuzz{suffix}"
    data.write_bytes(raw)
    params = base_params()
    params["dataset"] = {"source": data.name, **({"encoding": encoding} if encoding else {})}
    path = root / "pd.yml"
    path.write_text(yaml.safe_dump(params))
    rc, text = run_check(path, data)
    if rc == 2:
        assert "network" not in text, text
    assert_cache_untouched(root)


def test_any_small_data_file_is_accepted_or_one_line(sandbox):
    t0 = time.perf_counter()
    settings(FUZZ, max_examples=N or 120)(given(case=data_files(), encoding=st.sampled_from([None, "latin-1"]))(
        lambda case, encoding: _data_case(sandbox, case[0], case[1], encoding)))()
    ELAPSED["data"] = time.perf_counter() - t0
