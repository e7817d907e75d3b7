"""The parts of the analyses beyond the end points (issue 27), on the demo study as `make report` left it in the
cache: what the forward passes cost in fp32 and in the paired precision (`core.precision.paired`), how far the
paired precision moves the similarity (debiased CKA of the same model's pooled layers, bf16 against fp32), what the
layer swaps cost with and without starting at the first changed block, and how much the kept checkpoints weigh.

Run after `make report` (it reads the cached fine-tuned models): `python bench/bench_beyond.py`. Writes
bench/RESULTS-beyond-parts.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _timed(fn, repeat: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from layerwise.core.precision import paired
    from layerwise.inputs.config import load_params
    from layerwise.measure.extract import pooled_embeddings
    from layerwise.measure.similarity import permutations
    from layerwise.measure.trajectory import start_similarity
    from layerwise.model import swaps
    from layerwise.model.models import load_model
    from layerwise.study import pipeline
    from machine import header, header_markdown, publish

    params = load_params(ROOT / "params" / "demo.yml")
    inputs = pipeline.resolve_inputs(params)
    device = torch.device("cpu")
    fast = paired(device)
    splits = inputs.splits
    texts = list(splits.probe["text"]) + list(splits.test["text"])
    test, labels = list(splits.test["text"]), np.asarray(splits.test["label"])
    pre, tok = load_model(inputs.source.path, splits.num_labels, state="pretrained", device=device)
    lines = ["## the analyses beyond the end points: their parts", "", header_markdown(header()), "",
             "`python bench/bench_beyond.py` on the demo study (MiniLM-L6, 7 layers, 384 dims), the fine-tuned models "
             f"of the cache; the paired precision here is **{fast}**; best of 2 runs each.", ""]

    # 1. forward passes with hidden states: the kept checkpoints' and the re-embedded sentences' pass
    lines += ["### Pooled layers of the probe-pool and test sentences (360): one checkpoint's pass", "",
              "| precision | seconds | debiased CKA with fp32, per layer (min, max) |", "|---|---:|---|"]
    emb = {}
    for prec in ("fp32", fast) if fast != "fp32" else ("fp32",):
        seconds, out = _timed(lambda p=prec: pooled_embeddings(pre, tok, texts, ["mean"], max_length=128, precision=p))
        emb[prec] = out["mean"].astype(np.float32)
        cka, _ = start_similarity(emb["fp32"], emb[prec], permutations(len(texts), 5, 0))
        lines.append(f"| {prec} | {seconds:.2f} | {np.nanmin(cka):.6f}, {np.nanmax(cka):.6f} |")

    # 2. the swaps of one fine-tuned seed
    ft_entry = inputs.plan(params, params.finetune.seed).entry
    model, tok2 = load_model(str(ft_entry), splits.num_labels, state="finetuned", device=device)
    state = {k: v.detach().clone() for k, v in pre.state_dict().items()}
    lines += ["", f"### Layer swaps of one seed ({len(test)} test sentences, {2 * 7} configurations)", "",
              "| path | precision | seconds |", "|---|---|---:|"]
    results = {}
    for label, skip in (("from the first changed block", True), ("full forward passes", False)):
        for prec in dict.fromkeys(("fp32", fast)):
            original = swaps._skippable
            if not skip:
                swaps._skippable = lambda m: None
            try:
                seconds, table = _timed(lambda p=prec: swaps.swap_correct(model, state, tok2, test, labels,
                                                                          max_length=128, precision=p))
            finally:
                swaps._skippable = original
            results[(label, prec)] = table
            lines.append(f"| {label} | {prec} | {seconds:.2f} |")
    same = all(results[("from the first changed block", p)].equals(results[("full forward passes", p)])
               for p in dict.fromkeys(("fp32", fast)))
    lines.append(f"\nThe two paths give the same correctness sentence by sentence: **{same}**.")
    acc = {p: results[("full forward passes", p)].groupby(["kind", "layer"]).correct.mean()
           for p in dict.fromkeys(("fp32", fast))}
    if fast != "fp32":
        diff = (acc[fast] - acc["fp32"]).abs().max()
        lines.append(f"Largest accuracy difference between fp32 and {fast} over the 14 configurations: "
                     f"{100 * diff:.2f} points.")

    # 3. the kept checkpoints on disk
    sizes = []
    for seed in params.finetune.seeds:
        folder = inputs.plan(params, seed).entry / "trajectory"
        sizes.append(sum(f.stat().st_size for f in folder.glob("*")) if folder.is_dir() else 0)
    lines += ["", "### Kept checkpoints on disk", "",
              f"{len(sizes)} seeds: {', '.join(f'{s / 2**20:.1f} MiB' for s in sizes)}; in all "
              f"**{sum(sizes) / 2**20:.1f} MiB** (issue 27: under 200 MB for the demo)."]
    publish("\n".join(lines) + "\n", "beyond-parts", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
