"""A roofline of the engine's forward pass and of a fine-tuning step, and what limits them.

1. peak: square matmuls (``--matmul 2048``) per precision (fp32, bf16; fp16 on CUDA) and per thread
   count: the machine's attainable GFLOP/s;
2. achieved: the engine's forward pass (``extract.forward_batches``, the demo's 630 reviews, length-sorted
   batches, all hidden states) and one fine-tuning step (batch 16, max_length 128, AdamW, as
   params/demo.yml), fp32 and bf16 autocast side by side. FLOPs counted as 2 x non-embedding parameters
   x tokens computed (padded) for a forward pass and 6 x for a training step (the attention's T^2 terms
   are left out: a lower bound); the ratio to the peak of the same precision and threads;
3. profile: ``torch.profiler`` of one forward batch and one training step, the operators with the largest
   self CPU time, grouped (matmul, attention softmax, layer norm, GELU, optimizer, copies / memory...);
4. variants, side by side: attention ``sdpa`` vs ``eager``, ``torch.compile``, thread counts, batch sizes.

Run:  python bench/bench_roofline.py [--threads 1 2] [--quick] [--no-compile]
Writes bench/RESULTS-roofline.md (``--no-write`` to only print). Runs on CUDA when present
(``LAYERWISE_DEVICE`` overrides).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parent
PRECISIONS = ("fp32", "bf16")


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(n: int, precision: str, dev, reps: int) -> float:
    """GFLOP/s of an ``n x n`` matmul (best of ``reps``)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def load(attn: str = "sdpa", dev=None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from layerwise.model.models import embedded_minilm_dir

    path = str(embedded_minilm_dir())
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation=attn)
    return model.eval().to(dev), AutoTokenizer.from_pretrained(path)


def non_embedding_params(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def forward_pass(model, tok, texts, precision: str, batch_size: int, dev) -> tuple[float, int]:
    """Seconds of the engine's forward loop and the tokens it computed (padding included)."""
    from layerwise.measure import extract

    tokens = 0
    _sync(dev)
    t0 = time.perf_counter()
    for _, inputs, _, hidden in extract.forward_batches(model, tok, texts, batch_size=batch_size, max_length=128,
                                                        device=dev, precision=precision):
        tokens += int(inputs["input_ids"].numel())
    _sync(dev)
    return time.perf_counter() - t0, tokens


def train_batches(tok, texts, labels, batch_size: int, dev, n: int):
    enc = tok(texts[: batch_size * n], truncation=True, max_length=128, padding=True, return_tensors="pt")
    import torch

    y = torch.as_tensor(labels[: batch_size * n])
    for i in range(n):
        sl = slice(i * batch_size, (i + 1) * batch_size)
        yield {k: v[sl].to(dev) for k, v in enc.items()} | {"labels": y[sl].to(dev)}


def train_steps(model, batches, precision: str, dev, opt=None, profile=None) -> tuple[float, int, int]:
    """Seconds per step (median, after one warm-up step), tokens per step."""
    import torch

    from layerwise.core.precision import autocast

    model.train()
    opt = opt or torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, tokens = [], 0
    for i, batch in enumerate(batches):
        _sync(dev)
        t0 = time.perf_counter()
        with autocast(precision, dev):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        if i:
            times.append(time.perf_counter() - t0)
        tokens = int(batch["input_ids"].numel())
    model.eval()
    return float(np.median(times)), tokens, len(times)


def demo(quick: bool):
    import json

    from layerwise.inputs.data import demo_corpus_files

    rows = []
    for f in demo_corpus_files():
        rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    labels = [int(r["label"]) for r in rows]
    return (texts[:96], labels[:96]) if quick else (texts, labels)


def profile_table(fn, top: int = 12) -> list[tuple[str, float, float]]:
    """``(operator, self CPU ms, share)`` of the ``top`` operators of ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total) for e in events[:top]]


GROUPS = (("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "mkldnn", "onednn")),
          ("attention", ("attention", "softmax", "sdpa", "flash")),
          ("layer norm", ("layer_norm",)), ("GELU", ("gelu",)),
          ("optimizer (AdamW, elementwise over the parameters)", ("adam", "foreach", "_fused", "optimizer", "lerp",
                                                                  "addcdiv", "addcmul", "sqrt")),
          ("dropout", ("bernoulli", "dropout")),
          ("copies / memory", ("copy_", "to", "clone", "contiguous", "cat", "empty", "fill_", "zero_", "index")))


def group_of(op: str) -> str:
    low = op.lower()
    for name, keys in GROUPS:
        if any(k in low for k in keys):
            return name
    return "other (elementwise, Python, dispatch)"


def measure(args, dev) -> dict:
    """Every number of the report, side by side in this process."""
    import torch

    texts, labels = demo(args.quick)
    out: dict = {"peak": {}, "forward": {}, "train": {}, "variants": [], "profile": {}}
    precisions = PRECISIONS + (("fp16",) if dev.type == "cuda" else ())
    for threads in args.threads:
        torch.set_num_threads(threads)
        for prec in precisions:
            out["peak"][(prec, threads)] = matmul_peak(args.matmul, prec, dev, 3 if args.quick else 5)
    torch.set_num_threads(max(args.threads))
    model, tok = load("sdpa", dev)
    out["n_params"] = non_embedding_params(model)
    forward_pass(model, tok, texts[:32], "bf16", 32, dev)  # warm-up
    for prec in precisions:
        out["forward"][prec] = forward_pass(model, tok, texts, prec, 32, dev)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for prec in precisions:
        model.load_state_dict(state)
        out["train"][prec] = train_steps(model, train_batches(tok, texts, labels, 16, dev, args.steps + 1), prec, dev)
    model.load_state_dict(state)
    best = min(("fp32", "bf16"), key=lambda p: out["forward"][p][0])
    out["profile"]["forward"] = profile_table(lambda: forward_pass(model, tok, texts[:64], best, 32, dev))
    out["profile"]["train"] = profile_table(
        lambda: train_steps(model, train_batches(tok, texts, labels, 16, dev, 2), best, dev))
    model.load_state_dict(state)
    out["variants"] = variants(args, model, tok, texts, dev, best)
    return out


def variants(args, model, tok, texts, dev, prec: str) -> list[tuple[str, float]]:
    """Seconds of the forward pass over the texts per variant (same process, same texts)."""
    import torch

    rows = [(f"sdpa, batch 32, {max(args.threads)} threads, {prec}", forward_pass(model, tok, texts, prec, 32, dev)[0])]
    eager, _ = load("eager", dev)
    rows.append((f"eager attention, batch 32, {prec}", forward_pass(eager, tok, texts, prec, 32, dev)[0]))
    del eager
    for bs in (16, 64, 128):
        rows.append((f"sdpa, batch {bs}, {prec}", forward_pass(model, tok, texts, prec, bs, dev)[0]))
    for threads in sorted(set(args.threads) - {max(args.threads)}):
        torch.set_num_threads(threads)
        rows.append((f"sdpa, batch 32, {threads} thread(s), {prec}", forward_pass(model, tok, texts, prec, 32, dev)[0]))
    torch.set_num_threads(max(args.threads))
    if not args.no_compile:
        try:
            compiled = torch.compile(model, dynamic=True)
            t0 = time.perf_counter()
            forward_pass(compiled, tok, texts[:64], prec, 32, dev)
            rows.append((f"torch.compile: compilation + first 64 sentences, {prec}", time.perf_counter() - t0))
            rows.append((f"torch.compile (dynamic shapes), batch 32, {prec}",
                         forward_pass(compiled, tok, texts, prec, 32, dev)[0]))
        except Exception as exc:  # noqa: BLE001 - the benchmark reports what failed
            rows.append((f"torch.compile failed: {type(exc).__name__}: {str(exc)[:120]}", float("nan")))
    return rows


def report(args, head: str, r: dict) -> str:
    n = r["n_params"]
    lines = ["## roofline (matmul peak, achieved FLOP/s, profile, variants)", "", head, "",
             f"`python bench/bench_roofline.py --threads {' '.join(map(str, args.threads))}"
             f"{' --quick' if args.quick else ''}`; MiniLM-L6 non-embedding parameters: {n / 1e6:.2f} M; FLOPs = "
             "2 x that x tokens (padded) for a forward pass, 6 x for a training step (attention T^2 terms left out).",
             "", f"Peak: {args.matmul}^2 matmul, GFLOP/s (best of repetitions).", "",
             "| precision | " + " | ".join(f"{t} thread(s)" for t in args.threads) + " |",
             "|---|" + "---|" * len(args.threads)]
    for prec in sorted({p for p, _ in r["peak"]}, key=["fp32", "bf16", "fp16"].index):
        lines.append(f"| {prec} | " + " | ".join(f"{r['peak'][(prec, t)]:.0f}" for t in args.threads) + " |")
    top = max(args.threads)
    lines += ["", f"Achieved ({top} threads):", "",
              "| workload | precision | time | tokens | GFLOP/s | share of the matmul peak | speed-up vs fp32 |",
              "|---|---|---|---|---|---|---|"]
    for prec, (sec, tokens) in r["forward"].items():
        g = 2 * n * tokens / sec / 1e9
        lines.append(f"| engine forward pass ({len(demo(args.quick)[0])} sentences) | {prec} | {sec:.2f} s | {tokens} | "
                     f"{g:.0f} | {g / r['peak'][(prec, top)]:.0%} | {r['forward']['fp32'][0] / sec:.2f}x |")
    for prec, (sec, tokens, steps) in r["train"].items():
        g = 6 * n * tokens / sec / 1e9
        lines.append(f"| fine-tuning step (batch 16, median of {steps}) | {prec} | {sec:.3f} s | {tokens} | {g:.0f} | "
                     f"{g / r['peak'][(prec, top)]:.0%} | {r['train']['fp32'][0] / sec:.2f}x |")
    for what, table in r["profile"].items():
        groups: dict[str, float] = {}
        for op, _, share in table:
            groups[group_of(op)] = groups.get(group_of(op), 0) + share
        lines += ["", f"Profile, {what} (torch.profiler, self CPU time of the top operators):", "",
                  "| operator | self CPU (ms) | share |", "|---|---|---|"]
        lines += [f"| `{op}` | {ms:.1f} | {share:.0%} |" for op, ms, share in table]
        lines += ["", "By group: " + ", ".join(f"{g} {v:.0%}" for g, v in sorted(groups.items(), key=lambda x: -x[1]))
                  + "."]
    lines += ["", f"Load average at the end: {[round(x, 2) for x in os.getloadavg()]}."]
    base = r["variants"][0][1]
    lines += ["", "Variants of the forward pass (same texts, same process):", "",
              "| variant | time (s) | vs the first row |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.2f} | {base / sec:.2f}x |" for name, sec in r["variants"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--matmul", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=5, help="fine-tuning steps timed per precision")
    ap.add_argument("--quick", action="store_true", help="96 sentences, 1024^2 matmul (smoke run)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.matmul, args.steps = min(args.matmul, 1024), min(args.steps, 2)

    import torch

    from layerwise.model.models import pick_device
    from machine import header, header_markdown

    dev = pick_device()
    torch.set_num_threads(max(args.threads))
    head = header_markdown(header(dev))
    print(head, flush=True)
    text = report(args, head, measure(args, dev))
    print(text)
    if not args.no_write:
        (HERE / "RESULTS-roofline.md").write_text(text, encoding="utf-8")
        print(f"wrote {HERE / 'RESULTS-roofline.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
