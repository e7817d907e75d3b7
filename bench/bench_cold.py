"""The cold `make report` target of issue #13: precision `auto` with N fine-tuning seeds vs fp32 with one.

Each variant runs ``layerwise run`` on a copy of params/demo.yml in a fresh, empty cache and output
folder (cold), in a subprocess:

* baseline: ``finetune.precision: fp32``, ``analysis.precision: fp32``, one seed;
* target: ``precision: auto`` for both and ``--seeds N`` fine-tuning seeds (``finetune.seeds``:
  42, 43, ...; the pretrained and random states are computed once). ``--jobs`` is passed to
  ``layerwise run -j`` (it parallelises studies, not the seeds of one study).

Each run records the wall time of its phases (``report/_layerwise/phases.json``, :mod:`layerwise.core.phases`:
fine-tuning per seed, the engine per state, similarities, probes, chapters, other); the benchmark
prints them for each variant with their share of the run.

Target: target / baseline <= 2. Run:  python bench/bench_cold.py [--seeds 3] [--jobs 1]
Writes bench/RESULTS-cold.md (``--no-write`` to only print). ``--base PARAMS`` replaces params/demo.yml
(a smoke run on a tiny model: ``--base tiny.yml --no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from layerwise.core.phases import markdown as phase_table

HERE = Path(__file__).parent
ROOT = HERE.parent


def variant_params(tmp: Path, precision: str, seeds: int, base_file: Path = ROOT / "params" / "demo.yml"
                   ) -> list[Path]:
    """params/demo.yml (or ``base_file``) with ``precision`` for fine-tuning and analysis and ``seeds`` fine-tuning seeds
    (42, 43, ...), as one params file (the seeds of one study share the pretrained and random states)."""
    base = yaml.safe_load(base_file.read_text(encoding="utf-8"))
    p = {**base, "name": f"demo-{precision}-{seeds}s"}
    finetune = {k: v for k, v in base["finetune"].items() if k not in ("seed", "seeds")}
    p["finetune"] = {**finetune, "precision": precision, "seeds": [42 + k for k in range(seeds)]}
    p["analysis"] = {**base.get("analysis", {}), "precision": precision}
    path = tmp / f"{p['name']}.yml"
    path.write_text(yaml.safe_dump(p, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return [path]


def cold_run(precision: str, seeds: int, jobs: int, base_file: Path) -> tuple[float, str, list[dict]]:
    """One cold ``layerwise run``: its wall time, status and recorded phases."""
    tmp = Path(tempfile.mkdtemp(prefix="lw-cold-"))
    try:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", LAYERWISE_CACHE=str(tmp / "cache"))
        params = variant_params(tmp, precision, seeds, base_file)
        cmd = [sys.executable, "-m", "layerwise.cli", "run", "--no-preview", "--out", str(tmp / "report"),
               "-j", str(jobs), "--params", *map(str, params)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        record = tmp / "report" / "_layerwise" / "phases.json"
        found = json.loads(record.read_text(encoding="utf-8"))["phases"] if record.is_file() else []
        return dt, "ok" if res.returncode == 0 else f"FAILED: {res.stderr.strip().splitlines()[-1:]}", found
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--base", type=Path, default=ROOT / "params" / "demo.yml", help="params file to copy")
    args = ap.parse_args(argv)
    from machine import header, header_markdown

    head = header_markdown(header())
    print(head, flush=True)
    base, s1, p1 = cold_run("fp32", 1, 1, args.base)
    target, s2, p2 = cold_run("auto", args.seeds, args.jobs, args.base)
    text = "\n".join([
        "## cold report (precision auto, N seeds vs fp32, one seed)", "", head, "",
        f"`python bench/bench_cold.py --seeds {args.seeds} --jobs {args.jobs}`: `layerwise run` on copies of {args.base.name} "
        "copies, each in an empty cache (the seeds in `finetune.seeds` of one params file).", "",
        "| variant | cold time | status |", "|---|---|---|",
        f"| fp32, 1 seed | {base:.0f} s | {s1} |",
        f"| auto, {args.seeds} seeds, -j {args.jobs} | {target:.0f} s | {s2} |", "",
        f"Ratio {target / base:.2f} (target <= 2).", "",
        "Each phase's wall time and share of the run (`layerwise run`'s own record, `_layerwise/phases.json`; "
        "`other`: loading inputs and models, reading the caches, the run's bookkeeping):", "",
        "fp32, 1 seed:", "", *phase_table(p1), "", f"auto, {args.seeds} seeds:", "", *phase_table(p2), ""])
    print(text)
    if not args.no_write:
        (HERE / "RESULTS-cold.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
