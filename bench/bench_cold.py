"""The cold `make report`, before and after (issue 25): main at ``--before`` (default a39f1b5, three seeds)
against this tree (params/demo.yml as it is now), on the same machine, one after the other.

Each run is ``layerwise run --params params/demo.yml`` (what `make report` runs, preview included) in a
fresh, empty cache (``LAYERWISE_CACHE``) and output folder, in a subprocess. *Before* runs in a
temporary ``git worktree`` of ``--before`` (its own code, chapters and params; the same virtual
environment); *after* runs in this tree. ``--rounds N`` repeats the pair, interleaved (before, after,
before, after...). Each run records the wall time of its phases (``report/_layerwise/phases.json``:
fine-tuning per seed, the engine per state, similarities, probes, chapters, preview, other); the
benchmark prints them side by side.

Target (issue 25): after, with five seeds, <= before, with three. Run:
    python bench/bench_cold.py [--before a39f1b5] [--rounds 1]
Writes bench/RESULTS-cold.md (``--no-write`` to only print).
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

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

BEFORE = "a39f1b5"


def seeds_of(tree: Path) -> int:
    """The number of fine-tuning seeds of ``tree``'s params/demo.yml."""
    ft = yaml.safe_load((tree / "params" / "demo.yml").read_text(encoding="utf-8"))["finetune"]
    return len(ft.get("seeds", [ft.get("seed", 42)]))


def cold_run(tree: Path, tmp: Path, label: str) -> dict:
    """One cold ``layerwise run`` of ``tree``'s params/demo.yml with ``tree``'s code."""
    cache, out = tmp / f"cache-{label}", tmp / f"report-{label}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", LAYERWISE_CACHE=str(cache),
               PYTHONPATH=str(tree / "src"))
    cmd = [sys.executable, "-m", "layerwise.cli", "run", "--out", str(out), "--params", "params/demo.yml"]
    load = os.getloadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    record = out / "_layerwise" / "phases.json"
    phases = json.loads(record.read_text(encoding="utf-8"))["phases"] if record.is_file() else []
    status = "ok" if res.returncode == 0 else f"FAILED: {(res.stderr.strip().splitlines() or [''])[-1]}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "status": status, "phases": phases, "seeds": seeds_of(tree), "load": load,
            "date": time.strftime("%Y-%m-%d %H:%M %z")}


def grouped(phases: list[dict]) -> dict[str, float]:
    """Seconds per kind of phase (the seeds' fine-tunings together, the engine's states together...)."""
    out: dict[str, float] = {}
    for p in phases:
        name = p["phase"]
        kind = ("fine-tuning" if name.startswith("fine-tuning") else "engine passes" if name.startswith("engine")
                else "chapters" if name.startswith("chapter") else name)
        out[kind] = out.get(kind, 0.0) + float(p["seconds"])
    return out


def report(head: str, before_rev: str, runs: list[tuple[dict, dict]], argv: list[str]) -> str:
    lines = ["## cold report: main at " + before_rev + " against this tree", "", head, "",
             f"`python bench/bench_cold.py {' '.join(argv)}`: `layerwise run --params params/demo.yml` (what `make "
             "report` runs, preview included; the install is not timed) in an empty cache and output folder; "
             f"*before* in a git worktree of {before_rev}, *after* in this tree, interleaved.", "",
             "| round | before: seeds | before: wall | after: seeds | after: wall | after / before | load (1 min) at "
             "the starts | dates |", "|---|---|---|---|---|---|---|---|"]
    for i, (b, a) in enumerate(runs, 1):
        lines.append(f"| {i} | {b['seeds']} | {b['wall']:.1f} s ({b['status']}) | {a['seeds']} | {a['wall']:.1f} s "
                     f"({a['status']}) | {a['wall'] / b['wall']:.2f} | {b['load'][0]:.2f}, {a['load'][0]:.2f} | "
                     f"{b['date']}, {a['date']} |")
    best_b, best_a = min(r[0]["wall"] for r in runs), min(r[1]["wall"] for r in runs)
    target = "met" if best_a <= best_b else "MISSED"
    lines += ["", f"Target, after (its seeds) <= before (its seeds): **{best_a:.1f} s against {best_b:.1f} s, "
              f"{target}** (best of each).", "",
              "Phases of the last round (each run's own record, `_layerwise/phases.json`; fine-tunings, engine "
              "passes and chapters summed over seeds, states and chapters; `other`: loading inputs and models, "
              "reading caches, bookkeeping):", "", "| phase | before (s) | after (s) |", "|---|---:|---:|"]
    gb, ga = grouped(runs[-1][0]["phases"]), grouped(runs[-1][1]["phases"])
    for k in sorted(set(gb) | set(ga), key=lambda k: -(gb.get(k, 0) + ga.get(k, 0))):
        lines.append(f"| {k} | {gb.get(k, 0):.1f} | {ga.get(k, 0):.1f} |")
    lines.append(f"| run (sum of phases) | {sum(gb.values()):.1f} | {sum(ga.values()):.1f} |")
    lines += ["", "Every phase of the last round's *after* run:", "", "| phase | seconds |", "|---|---:|"]
    lines += [f"| {p['phase']} | {float(p['seconds']):.1f} |" for p in runs[-1][1]["phases"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help="the git revision of the *before* run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from machine import header, header_markdown

    head = header_markdown(header())
    print(head, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="lw-cold-"))
    wt = tmp / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(wt), args.before], cwd=ROOT, check=True,
                   capture_output=True)
    runs = []
    try:
        for r in range(args.rounds):
            b = cold_run(wt, tmp, f"before{r}")
            print(f"  round {r + 1} before ({b['seeds']} seeds): {b['wall']:.1f} s {b['status']}", flush=True)
            a = cold_run(ROOT, tmp, f"after{r}")
            print(f"  round {r + 1} after ({a['seeds']} seeds): {a['wall']:.1f} s {a['status']}", flush=True)
            runs.append((b, a))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(head, args.before, runs, sys.argv[1:] if argv is None else argv)
    print(text)
    if not args.no_write:
        (HERE / "RESULTS-cold.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
