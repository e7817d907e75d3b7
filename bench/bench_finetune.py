"""Benchmark of `layerwise finetune` on the demo params (embedded MiniLM, embedded French corpus).

1. Our fine-tuning, cold (fresh temporary cache): wall time, test accuracy with its Wilson 95 % CI,
   macro-F1 with its bootstrap CI, majority-class baseline, one-sided binomial p-value against it.
2. The same command again (cache hit): wall time in this process and as a fresh `layerwise finetune`
   process (Python start-up and imports included).
3. Side by side in one process, same model initialisation, data and hyper-parameters, the training
   step time of
   - the seed's way: every text padded to 512 tokens (tokenizer ``padding="max_length"``), random batches;
   - ours as run by `layerwise finetune`: truncation at ``finetune.max_length``, dynamic padding
     (``DataCollatorWithPadding``), length-grouped batches;
   - ours with the seed's truncation (512) and random batches: the effect of dynamic padding alone.
   Our two ways train one full epoch per round (every batch once: the mean step time is exact for
   the epoch, whatever the batch lengths); the pad-to-512 way, whose steps all have the same shape,
   trains ``--seed-steps`` steps per round. Rounds are interleaved, so that load from other
   processes hits every way alike; no step is left out (warm-up counts against every way). The mean
   step time is extrapolated to the full run (steps per epoch x epochs). Reported: the ratio of
   those means, and our measured cold run against the pad-to-512 training time alone.

Writes ``bench/RESULTS-finetune.md`` (or ``--out``). Usage:

    python bench/bench_finetune.py [--params params/demo.yml] [--seed-steps 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of every optimisation step (forward, backward, optimizer)."""

        def __init__(self):
            self.times: list[float] = []
            self._t0 = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t0)

    return StepTimer()


def side_by_side(params, seed_steps: int, rounds: int) -> dict:
    """Median training-step time of each way (see the module docstring)."""
    from transformers import set_seed

    from layerwise.inputs.data import load_splits
    from layerwise.model.models import load_model, quiet_transformers, resolve_model
    from layerwise.model.prepared import tokenize
    from layerwise.model.trainer import build_trainer

    spec = params.finetune
    splits = load_splits(params)
    source = resolve_model(params.model, params)
    epoch_steps = math.ceil(len(splits.train) / spec.batch_size)
    ways = {
        "seed: pad to 512, random batches": dict(max_length=512, padding="max_length", group=False, steps=seed_steps),
        f"ours: dynamic padding, max_length {spec.max_length}, length-grouped batches":
            dict(max_length=spec.max_length, padding=False, group=True, steps=epoch_steps),
        "ours, seed's truncation: dynamic padding, max_length 512, random batches":
            dict(max_length=512, padding=False, group=False, steps=epoch_steps),
    }
    times: dict[str, list[float]] = {w: [] for w in ways}
    tokens: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp, quiet_transformers():
        for r in range(rounds):
            for name, way in ways.items():
                set_seed(spec.seed)
                model, tok = load_model(source, len(splits.label_names))
                train = tokenize(splits.train, tok, way["max_length"], padding=way["padding"])
                test = tokenize(splits.test.select(range(8)), tok, way["max_length"], padding=way["padding"])
                tokens[name] = int(sum(len(x) for x in train["input_ids"]))
                trainer = build_trainer(model, tok, train, test, output_dir=Path(tmp) / f"r{r}",
                                        epochs=spec.epochs, learning_rate=spec.learning_rate,
                                        batch_size=spec.batch_size, weight_decay=spec.weight_decay,
                                        warmup_ratio=spec.warmup_ratio, logging_steps=spec.logging_steps,
                                        seed=spec.seed, save_steps=10 ** 9, max_steps=way["steps"],
                                        progress=False, evaluate=False, group_by_length=way["group"])
                timer = _step_timer()
                trainer.add_callback(timer)
                trainer.train()
                times[name] += timer.times
                print(f"  round {r + 1} {name}: {[round(t, 2) for t in timer.times]} s/step", flush=True)
                del trainer, model
    steps = math.ceil(epoch_steps * spec.epochs)
    out = {"steps_full_run": steps, "ways": {}}
    for name in ways:
        mean = statistics.fmean(times[name])
        out["ways"][name] = {"mean_step_s": mean, "median_step_s": statistics.median(times[name]),
                             "n_steps_timed": len(times[name]), "extrapolated_s": mean * steps,
                             "tokens": tokens[name]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "demo.yml"))
    ap.add_argument("--seed-steps", type=int, default=3, help="steps timed per round for the pad-to-512 way")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-finetune.md"))
    ap.add_argument("--skip-cold", action="store_true", help="only the side-by-side comparison")
    args = ap.parse_args()

    import torch

    from layerwise.inputs.config import load_params
    from layerwise.model.finetune import finetune

    cache = tempfile.mkdtemp(prefix="layerwise-bench-cache-")
    os.environ["LAYERWISE_CACHE"] = cache
    params = load_params(args.params)
    lines = [f"# Fine-tuning benchmark ({Path(args.params).name})", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
             f"- machine: {platform.platform()}, CPU {_cpu()}, {os.cpu_count()} cores visible, "
             f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
             f"CUDA {'yes' if torch.cuda.is_available() else 'no'}",
             f"- load average at start (1, 5, 15 min): {_load()} (the machine is shared with other processes)",
             "- command: `" + " ".join(["python", "bench/bench_finetune.py", *sys.argv[1:]]) + "`",
             f"- cold-run cache: fresh temporary `LAYERWISE_CACHE` ({cache})", ""]

    if not args.skip_cold:
        print("1. cold fine-tuning ...", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = finetune(params, progress=False)
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        load_after_cold = _load()
        m = res.metrics
        print(f"   {cold:.1f} s, accuracy {m['accuracy']:.3f}", flush=True)
        t0 = time.perf_counter()
        again = finetune(params, progress=False)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "layerwise.cli", "finetune", args.params, "-q"],
                             env={**os.environ, "LAYERWISE_CACHE": cache}, capture_output=True, text=True, cwd=ROOT)
        warm_cli = time.perf_counter() - t0
        assert again.cached and cli.returncode == 0 and cli.stdout.startswith("cached"), cli.stdout + cli.stderr
        ft = params.finetune
        lines += [
            "## 1. Our fine-tuning, cold", "",
            f"Settings: {m['n_train']} train / {m['n_test']} test examples, {m['epochs']:g} epochs, batch "
            f"{ft.batch_size}, learning rate {ft.learning_rate:g}, max_length {ft.max_length}, seed {ft.seed}; "
            f"device {m['device']}, {m['precision']}.", "",
            "| figure | value | target |", "|---|---|---|",
            f"| wall time, cold (data, model load, tokenize, train with 4 test evaluations (the last gives the final metrics) and checkpoints, save) | {cold:.1f} s | < 300 s |",
            f"| of which training loop with its evaluations (Trainer.train) | {m['train_seconds']:.1f} s | |",
            f"| CPU time of the process during the cold run (user + system, all threads) | {cold_cpu:.1f} s | |",
            f"| test accuracy (Wilson 95 % CI) | {m['accuracy']:.3f} ({m['accuracy_ci'][0]:.3f} to "
            f"{m['accuracy_ci'][1]:.3f}) | |",
            f"| macro-F1 (bootstrap 95 % CI) | {m['macro_f1']:.3f} ({m['macro_f1_ci'][0]:.3f} to "
            f"{m['macro_f1_ci'][1]:.3f}) | |",
            f"| majority-class baseline (test share of class {m['majority_class']}) | {m['majority_baseline']:.3f} | |",
            f"| one-sided binomial p, accuracy > baseline | {m['binomial_p']:.2g} | < 0.01 |", "",
            f"Load average right after the cold run: {load_after_cold}.", "",
            "Evaluation history (test split):", "",
            "| step | epoch | eval loss | eval accuracy |", "|---|---|---|---|",
            *[f"| {h['step']} | {h['epoch']:.2f} | {h['eval_loss']:.3f} | {h['eval_accuracy']:.3f} |"
              for h in m["history"] if "eval_accuracy" in h],
            "", "## 2. Second run, same params (cache hit)", "",
            "| figure | value | target |", "|---|---|---|",
            f"| `finetune(params)` again, in process | {warm:.2f} s | < 5 s |",
            f"| `python -m layerwise.cli finetune {Path(args.params).as_posix()} -q`, fresh process "
            f"(start-up and imports included) | {warm_cli:.2f} s | < 5 s |", ""]

    print("3. side by side ...", flush=True)
    sbs = side_by_side(params, args.seed_steps, args.rounds)
    names = list(sbs["ways"])
    seed_w, ours_w, ours512_w = (sbs["ways"][n] for n in names)
    speedup = seed_w["mean_step_s"] / ours_w["mean_step_s"]
    lines += [
        "## 3. Pad-to-512 (the seed's way) against ours, one run", "",
        f"Steps timed per round: {args.seed_steps} for pad-to-512 (every step has the same shape), one full "
        f"epoch ({sbs['ways'][names[1]]['n_steps_timed'] // args.rounds} steps) for each of our ways; "
        f"{args.rounds} interleaved rounds, no step left out. The mean step time is extrapolated to the full "
        f"run of {sbs['steps_full_run']} steps (training only: no evaluation or checkpoint in either).", "",
        "| way | mean s/step | median s/step | steps timed | extrapolated training time | tokens in the "
        "tokenized train split (before batch padding) |",
        "|---|---|---|---|---|---|",
        *[f"| {n} | {w['mean_step_s']:.2f} | {w['median_step_s']:.2f} | {w['n_steps_timed']} | "
          f"{w['extrapolated_s']:.0f} s | {w['tokens']} |" for n, w in sbs["ways"].items()], "",
        f"**Speed-up of ours over pad-to-512 (mean step time): {speedup:.1f}x** (target >= 3x). "
        f"Dynamic padding alone (same 512 truncation, random batches): "
        f"{seed_w['mean_step_s'] / ours512_w['mean_step_s']:.1f}x.", ""]
    if not args.skip_cold:
        lines += [f"Whole runs: our measured cold run ({cold:.0f} s, with 4 evaluations, checkpoints and "
                  f"saving) against the pad-to-512 training alone ({seed_w['extrapolated_s']:.0f} s, without its "
                  f"evaluations): {seed_w['extrapolated_s'] / cold:.1f}x.", ""]
    lines += [
        f"- load average at end: {_load()}", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    shutil.rmtree(cache, ignore_errors=True)  # the temporary cache holds a model and its checkpoints
    return 0


if __name__ == "__main__":
    sys.exit(main())
