"""fp32 forward-pass variants of the engine, interleaved A/B (issue #13: try what the roofline section
suggests for the fp32 path and keep what measures faster).

The engine's forward loop (``extract.forward_batches``: length-sorted batches, dynamic padding, every
layer's hidden states) over the 630 demo sentences at max_length 128 (demo.yml), fp32, for each variant:
SDPA (the transformers default) or eager attention, batch 16 or 32, 2 threads or 1. The variants run
in turn within each repetition (A, B, C, ... then again), so a load change hits them all alike; the
table gives the median per variant and its ratio to the default (SDPA, batch 32, all threads).

Run:  python bench/bench_variants.py [--reps 3] [--quick]
Writes bench/RESULTS-variants.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from machine import publish  # noqa: E402


def variants(threads: int) -> list[tuple[str, str, int, int]]:
    """(label, attention, batch size, threads); the first is the default."""
    out = [(f"sdpa, batch 32, {threads} threads (default)", "sdpa", 32, threads),
           (f"sdpa, batch 16, {threads} threads", "sdpa", 16, threads),
           (f"eager, batch 32, {threads} threads", "eager", 32, threads),
           (f"eager, batch 16, {threads} threads", "eager", 16, threads)]
    if threads > 1:
        out.append(("sdpa, batch 32, 1 thread", "sdpa", 32, 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="96 sentences, 1 repetition (smoke run)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from bench_roofline import demo, forward_pass, load
    from machine import header, header_markdown

    torch.set_num_threads(args.threads)
    dev = torch.device("cpu") if not torch.cuda.is_available() else torch.device("cuda")
    head = header_markdown(header(dev, "fp32"))
    print(head, flush=True)
    texts = demo(args.quick)[0]
    reps = 1 if args.quick else args.reps
    models = {attn: load(attn, dev)[0] for attn in ("sdpa", "eager")}
    tok = load("sdpa", dev)[1]
    plan = variants(args.threads)
    times: dict[str, list[float]] = {label: [] for label, *_ in plan}
    forward_pass(models["sdpa"], tok, texts[:32], "fp32", 32, dev)   # warm-up
    for _ in range(reps):
        for label, attn, bs, th in plan:
            torch.set_num_threads(th)
            times[label].append(forward_pass(models[attn], tok, texts, "fp32", bs, dev)[0])
    torch.set_num_threads(args.threads)
    base = float(np.median(times[plan[0][0]]))
    lines = ["## fp32 forward-pass variants (interleaved A/B)", "", head, "",
             f"`python bench/bench_variants.py --reps {reps}{' --quick' if args.quick else ''}`: the engine's "
             f"forward loop over {len(texts)} demo sentences, max_length 128, fp32, device {dev}; {reps} "
             "interleaved repetition(s), median.", "",
             "| variant | median (s) | runs (s) | default / variant |", "|---|---:|---|---:|"]
    for label, *_ in plan:
        med = float(np.median(times[label]))
        lines.append(f"| {label} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times[label])} | {base / med:.2f}x |")
    best = min(plan, key=lambda v: float(np.median(times[v[0]])))[0]
    lines += ["", f"Fastest: {best}; load average at the end {[round(x, 2) for x in os.getloadavg()]}.", ""]
    publish("\n".join(lines), "variants", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
