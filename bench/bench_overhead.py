"""What the statistics cost over the forward pass, in the demo's configuration (issue 25 item 3).

One engine pass as the study runs it (``layerwise.study.pipeline``): params/demo.yml's selection (the
fine-tuning, probe-pool and test sentences, the first ``analysis.num_sentences`` test sentences feeding
the token statistics), its analysis settings (max_length 128, batch size, samples), the embedded
MiniLM-L6 pretrained. Side by side, interleaved over ``--reps`` repetitions, in fp32 and in bf16:

* forward only: the engine's own batch loop (``extract.forward_batches``: the same tokenization,
  batches, padding and hidden states) and nothing else;
* the engine: ``extract.run_state``, every statistic.

The overhead is the median over repetitions of engine / forward - 1 (target: at most +15%).

Run:  python bench/bench_overhead.py [--reps 5] [--threads N]
Writes bench/RESULTS-overhead.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
TARGET = 0.15


def demo_inputs(params_path: Path):
    """The demo study's engine inputs: params, texts, geometry mask, model and tokenizer."""
    from layerwise.inputs.config import load_params
    from layerwise.inputs.data import load_splits
    from layerwise.model.models import load_model, resolve_model
    from layerwise.study.pipeline import _selection_texts

    params = load_params(params_path)
    splits = load_splits(params)
    texts, _, split, _ = _selection_texts(splits)
    geometry = np.zeros(len(texts), dtype=bool)
    geometry[np.flatnonzero(split == "test")[: params.analysis.num_sentences]] = True
    model, tok = load_model(resolve_model(params.model, params), splits.num_labels)
    return params, texts, geometry, model, tok


def forward_only(model, tok, texts, geometry, settings, precision: str) -> float:
    from layerwise.measure import extract

    t0 = time.perf_counter()
    for _ in extract.forward_batches(model, tok, texts, batch_size=settings.batch_size, max_length=settings.max_length,
                                     geometry_mask=geometry, precision=precision):
        pass
    return time.perf_counter() - t0


def engine(model, tok, texts, geometry, settings, precision: str) -> float:
    from layerwise.measure import extract

    t0 = time.perf_counter()
    extract.run_state(model, tok, texts, state="pretrained", model_name="bench", geometry_mask=geometry,
                      settings=settings, progress=False, precision=precision)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "demo.yml")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.reps < 3:
        ap.error("--reps must be at least 3")
    import torch

    from machine import header, header_markdown, load_line, publish

    if args.threads:
        torch.set_num_threads(args.threads)
    head = header_markdown(header())
    started = time.strftime("%Y-%m-%d %H:%M %z")
    params, texts, geometry, model, tok = demo_inputs(args.params)
    settings = params.analysis
    res: dict[str, dict[str, list[float]]] = {p: {"forward": [], "engine": []} for p in ("fp32", "bf16")}
    for p in res:  # warm-up
        engine(model, tok, texts[:64], geometry[:64] | True, settings, p)
    for r in range(args.reps):
        for p in res:
            res[p]["forward"].append(forward_only(model, tok, texts, geometry, settings, p))
            res[p]["engine"].append(engine(model, tok, texts, geometry, settings, p))
            print(f"  rep {r + 1} {p}: forward {res[p]['forward'][-1]:.2f} s, engine {res[p]['engine'][-1]:.2f} s",
                  flush=True)
    lines = ["## statistics over the forward pass (the demo's configuration)", "", head, "",
             f"`python bench/bench_overhead.py {' '.join(sys.argv[1:] if argv is None else argv)}`; date {started}. "
             f"One engine pass as the demo study runs it: {len(texts)} sentences embedded, {int(geometry.sum())} "
             f"feeding the token statistics, max_length {settings.max_length}, batch {settings.batch_size}, "
             "params/demo.yml's samples; the embedded MiniLM-L6 pretrained. Forward only (the engine's batch "
             f"loop alone) and the engine (every statistic), interleaved, {args.reps} repetitions per precision.", "",
             "| precision | forward only, median (s) | engine, median (s) | overhead per repetition | overhead, "
             "median | target <= +15% |", "|---|---|---|---|---|---|"]
    for p, v in res.items():
        ratios = [e / f - 1 for f, e in zip(v["forward"], v["engine"])]
        med = statistics.median(ratios)
        lines.append(f"| {p} | {statistics.median(v['forward']):.2f} | {statistics.median(v['engine']):.2f} | "
                     + ", ".join(f"{100 * x:+.1f}%" for x in ratios)
                     + f" | **{100 * med:+.1f}%** | {'met' if med <= TARGET else 'MISSED'} |")
    lines += ["", f"Load average at the end: {load_line()}."]
    publish("\n".join(lines) + "\n", "overhead", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
