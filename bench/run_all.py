"""Run every benchmark of bench/ (each writes bench/RESULTS-<name>.md), then gather them into
bench/RESULTS.md. Usage: `make bench` or `python bench/run_all.py [name ...]`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ("cold", "beyond", "beyond-parts", "step", "overhead", "finetune", "geometry", "geometry-bf16", "probes",
         "similarity", "report", "precision", "roofline", "variants")
#: benchmarks that are one script with arguments: name -> (script, arguments)
VARIANTS = {"geometry-bf16": ("geometry", ["--precision", "bf16", "--skip", "memory"]),
            # issue 27's budget: the cold run before the analyses beyond the end points (6797c54) and with them
            "beyond": ("cold", ["--before", "6797c54", "--name", "beyond", "--budget", "1.25"]),
            "beyond-parts": ("beyond", [])}


def gather() -> Path:
    sys.path.insert(0, str(HERE))
    from machine import header, header_markdown

    parts = ["# Benchmark results\n", header_markdown(header()) + " (when gathered; each section names its own.)\n",
             "Each section is written by `bench/bench_<name>.py`; every comparison is measured side by side "
             "in one run on the same machine. `make bench` re-runs them all.\n"]
    for name in ORDER:
        f = HERE / f"RESULTS-{name}.md"
        if f.is_file():
            parts.append(f.read_text(encoding="utf-8").strip() + "\n")
        else:
            base, extra = VARIANTS.get(name, (name, []))
            parts.append(f"## {name}\n\nNot measured yet (`python bench/bench_{base}.py {' '.join(extra)}`).\n")
    for f in sorted(HERE.glob("RESULTS-compare-*.md")):  # bench/compare_studies.py: two runs of a study compared
        parts.append(f.read_text(encoding="utf-8").strip() + "\n")
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    names = argv or list(ORDER)
    status = 0
    for name in names:
        base, extra = VARIANTS.get(name, (name, []))
        script = HERE / f"bench_{base}.py"
        if not script.is_file():
            print(f"skip {name}: {script} not found")
            continue
        t0 = time.perf_counter()
        print(f"== {script.name}", flush=True)
        rc = subprocess.call([sys.executable, str(script), *extra])
        print(f"== {script.name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        status = status or rc
    print(f"wrote {gather()}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
