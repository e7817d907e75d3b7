"""The fine-tuning step, before and after (issue 25 items 2 and 4), side by side in one process.

1. Step time: the demo's fine-tuning (params/demo.yml: batch 16, max_length 128, length-grouped batches,
   the transformers Trainer of ``layerwise.model.trainer.build_trainer``) for one epoch per way, the ways
   interleaved over ``--rounds`` rounds, in fp32 and in bf16 autocast:
   - *before*: torch's dropout masks (``aten::bernoulli_``, one element at a time) and AdamW one
     operator per tensor (``adamw_torch``), the training path of main at a39f1b5;
   - *fused AdamW* only; *bulk masks* only (``layerwise.model.dropout``);
   - *after*: both, what ``layerwise finetune`` runs now;
   - *after + torch.compile* (``dynamic=True``; its compile time reported apart), bf16 only unless
     ``--compile-all``; ``--no-compile`` skips it.
   The first step of each epoch is left out (warm-up). FLOPs of a step: 6 x non-embedding parameters x
   tokens computed (padding included; attention's T^2 terms left out, so a lower bound); the share of the
   matmul peak of the same precision and threads, measured in the same run (2048^2 matmul, best of 5).
2. Profile: ``torch.profiler`` of one bf16 step before and after, grouped (matmul, dropout, optimizer...).
3. Precision pin: the step time in fp32 and in bf16, on this CPU's native instruction set and with the
   bf16 instructions hidden (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``: the path a CPU
   without avx512_bf16 or AMX takes, where bf16 is emulated), each in a fresh process; then the demo's
   first seed fine-tuned in full in fp32 native and emulated (how far apart their weights end) and in
   bf16 native (an emulated bf16 run took over 18 minutes for 42 of its 68 steps here: not repeated).

Run:  python bench/bench_step.py [--rounds 3] [--no-compile] [--no-pin] [--no-write]
Writes bench/RESULTS-step.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_finetune import _step_timer  # noqa: E402
from bench_roofline import group_of, matmul_peak, non_embedding_params  # noqa: E402
from machine import header, header_markdown, load_line, publish  # noqa: E402

WAYS = {  # name -> (fused AdamW, bulk dropout masks)
    "before (torch masks, per-tensor AdamW)": (False, False),
    "fused AdamW": (True, False),
    "bulk masks": (False, True),
    "after (bulk masks, fused AdamW)": (True, True),
}
EMULATED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _setup(params):
    from layerwise.inputs.data import load_splits
    from layerwise.model.models import resolve_model

    return load_splits(params), resolve_model(params.model, params)


def one_epoch(params, splits, source, precision: str, fused: bool, bulk: bool, compile_: bool, out: Path,
              profile: bool = False, max_steps: int | None = None):
    """Step times of one epoch of the demo's fine-tuning in one way; with ``profile``, the profiler's
    table of the epoch's third step."""
    import torch
    from transformers import TrainerCallback, set_seed

    from layerwise.model.dropout import install
    from layerwise.model.models import load_model, quiet_transformers
    from layerwise.model.prepared import tokenize
    from layerwise.model.trainer import build_trainer

    spec = params.finetune
    set_seed(spec.seed)
    with quiet_transformers():
        model, tok = load_model(source, len(splits.label_names))
    train = tokenize(splits.train, tok, spec.max_length)
    test = tokenize(splits.test.select(range(8)), tok, spec.max_length)
    steps = min(math.ceil(len(train) / spec.batch_size), max_steps or 10 ** 9)
    compile_s = None
    if compile_:  # a fresh inductor cache, so that the compile time is a cold run's
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
        model.forward = torch.compile(model.forward, dynamic=True)
    trainer = build_trainer(model, tok, train, test, output_dir=out, epochs=1, learning_rate=spec.learning_rate,
                            batch_size=spec.batch_size, weight_decay=spec.weight_decay, seed=spec.seed,
                            save_steps=10 ** 9, max_steps=steps, progress=False, evaluate=False,
                            precision=precision, fused_optimizer=fused)
    timer = _step_timer()
    trainer.add_callback(timer)
    tokens: list[int] = []
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        tokens.append(int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting
    prof_rows = None
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        class Prof(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == 2:
                    self.p = torch_profile(activities=[ProfilerActivity.CPU])
                    self.p.__enter__()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 3 and hasattr(self, "p"):
                    self.p.__exit__(None, None, None)

        pc = Prof()
        trainer.add_callback(pc)
    with install(model, enabled=bulk):
        trainer.train()
    if compile_:
        compile_s = timer.times[0]
    if profile and hasattr(pc, "p"):
        ev = [e for e in pc.p.key_averages() if e.self_cpu_time_total > 0]
        total = sum(e.self_cpu_time_total for e in ev) or 1
        groups: dict[str, float] = {}
        for e in ev:
            groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + e.self_cpu_time_total / total
        prof_rows = sorted(groups.items(), key=lambda kv: -kv[1])
    n_params = non_embedding_params(model)
    del trainer, model
    return {"times": timer.times[1:], "tokens": tokens[1:len(timer.times)], "compile_s": compile_s,
            "params": n_params, "profile": prof_rows}


def step_times(params, rounds: int, compile_ways: list[str]) -> dict:
    import torch

    splits, source = _setup(params)
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        for r in range(rounds):
            for prec in ("fp32", "bf16"):
                for name, (fused, bulk) in WAYS.items():
                    got = one_epoch(params, splits, source, prec, fused, bulk, False, Path(tmp) / "w",
                                    profile=(r == 0 and prec == "bf16" and name in (list(WAYS)[0], list(WAYS)[-1])))
                    cell = res.setdefault((prec, name), {"times": [], "tokens": [], "profile": None})
                    cell["times"] += got["times"]
                    cell["tokens"] += got["tokens"]
                    cell["params"] = got["params"]
                    cell["profile"] = cell["profile"] or got["profile"]
                    print(f"  round {r + 1} {prec} {name}: median {statistics.median(got['times']):.3f} s/step",
                          flush=True)
        for prec in compile_ways:
            name = "after + torch.compile(dynamic=True)"
            got = one_epoch(params, splits, source, prec, True, True, True, Path(tmp) / "c")
            res[(prec, name)] = {"times": got["times"], "tokens": got["tokens"], "params": got["params"],
                                 "compile_s": got["compile_s"], "profile": None}
            print(f"  {prec} {name}: first step (compiling) {got['compile_s']:.1f} s, median "
                  f"{statistics.median(got['times']):.3f} s/step", flush=True)
    dev = torch.device("cpu")
    peaks = {p: max(matmul_peak(2048, p, dev, 5) for _ in range(2)) for p in ("fp32", "bf16")}
    return {"cells": res, "peaks": peaks, "steps_per_epoch": math.ceil(len(splits.train) / params.finetune.batch_size)}


def _child(args) -> int:
    """``--steps-child PRECISION``: the first steps of the demo's fine-tuning, as the library runs it now
    (printed as JSON; run in a fresh process, with or without the bf16 instructions hidden)."""
    import torch

    from layerwise.inputs.config import load_params

    params = load_params(args.params)
    splits, source = _setup(params)
    with tempfile.TemporaryDirectory(prefix="bench-step-child-") as tmp:
        got = one_epoch(params, splits, source, args.steps_child, True, True, False, Path(tmp), max_steps=args.steps)
    print(json.dumps({"median": statistics.median(got["times"]), "n": len(got["times"]),
                      "capability": torch.backends.cpu.get_cpu_capability()}))
    return 0


def _fresh(args: list[str], emulate: bool, env_extra: dict | None = None) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env_extra or {}))
    if emulate:
        env.update(EMULATED)
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, cwd=str(ROOT))
    if proc.returncode:
        raise RuntimeError(f"{args} (emulated={emulate}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pin_run(params_path: str, precision: str, emulate: bool, out: Path) -> dict:
    """Fine-tune the demo's first seed in ``precision`` in a fresh process (with bf16 instructions
    hidden when ``emulate``), into a fresh cache under ``out``; wall time, accuracy, weights."""
    code = (
        "import json, sys, time\n"
        "from layerwise.inputs.config import load_params\n"
        "from layerwise.model.finetune import finetune\n"
        "from layerwise.core.precision import machine\n"
        "p = load_params(sys.argv[1])\n"
        "p = p.for_seed(p.finetune.seeds[0])\n"
        "p = p.model_copy(update={'finetune': p.finetune.model_copy(update={'precision': sys.argv[2]})})\n"
        "t = time.perf_counter(); r = finetune(p, progress=False)\n"
        "print(json.dumps({'wall_s': time.perf_counter() - t, 'path': str(r.path), "
        "'accuracy': r.metrics['accuracy'], 'eval_loss': r.metrics['eval_loss'], "
        "'capability': machine()['cpu_capability']}))\n"
    )
    return _fresh(["-c", code, params_path, precision], emulate, {"LAYERWISE_CACHE": str(out / "cache")})


def weights_diff(a: str, b: str) -> float:
    """Largest absolute difference between two saved models' weights."""
    from safetensors.torch import load_file

    wa, wb = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def precision_pin(params_path: str, steps: int) -> dict:
    """Step times native and emulated in both precisions (fresh processes); the full fp32 fine-tuning
    native and emulated, and the full bf16 one native (an emulated bf16 run is too slow to repeat)."""
    out: dict = {"steps": {}, "runs": {}}
    for prec in ("fp32", "bf16"):
        for emulate in (False, True):
            got = _fresh([str(Path(__file__).resolve()), "--params", params_path, "--steps-child", prec,
                          "--steps", str(steps)], emulate)
            out["steps"][(prec, emulate)] = got
            print(f"  pin steps {prec} {'emulated' if emulate else 'native'} ({got['capability']}): "
                  f"median {got['median']:.3f} s/step", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-pin-") as tmp:
        for prec, emulate in (("fp32", False), ("fp32", True), ("bf16", False)):
            got = pin_run(params_path, prec, emulate, Path(tmp) / f"{prec}-{int(emulate)}")
            out["runs"][(prec, emulate)] = got
            print(f"  pin run {prec} {'emulated' if emulate else 'native'}: {got['wall_s']:.1f} s, accuracy "
                  f"{got['accuracy']:.3f}", flush=True)
        runs = out["runs"]
        out["diff_fp32"] = weights_diff(runs[("fp32", False)]["path"], runs[("fp32", True)]["path"])
        out["diff_precisions"] = weights_diff(runs[("fp32", False)]["path"], runs[("bf16", False)]["path"])
    return out


def report(head: dict, r: dict, pin: list[dict] | None, argv: list[str], started: str) -> str:
    peaks = r["peaks"]
    lines = ["## fine-tuning step (before and after: masks, optimizer, compile; the precision pin)", "",
             header_markdown(head), "",
             f"`python bench/bench_step.py {' '.join(argv)}`; date {started}. The demo's fine-tuning (batch 16, "
             f"max_length 128, length-grouped batches, the Trainer), one epoch ({r['steps_per_epoch']} steps, the "
             "first left out) per way and round, the ways interleaved. FLOPs = 6 x non-embedding parameters x "
             "tokens (padding included). Matmul peak (2048^2, this run): "
             + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peaks.items()) + ".", "",
             "| precision | way | median s/step | mean s/step | steps timed | GFLOP/s | share of the peak | vs before |",
             "|---|---|---|---|---|---|---|---|"]
    for prec in ("fp32", "bf16"):
        base = None
        for (p, name), cell in r["cells"].items():
            if p != prec:
                continue
            med, mean = statistics.median(cell["times"]), statistics.fmean(cell["times"])
            flops = 6 * cell["params"] * sum(cell["tokens"]) / sum(cell["times"][:len(cell["tokens"])])
            base = base or med
            extra = f" (compiling: first step {cell['compile_s']:.0f} s)" if cell.get("compile_s") else ""
            lines.append(f"| {prec} | {name}{extra} | {med:.3f} | {mean:.3f} | {len(cell['times'])} | "
                         f"{flops / 1e9:.0f} | {flops / 1e9 / peaks[prec]:.0%} | {med / base - 1:+.0%} |")
    lines += ["", "Profile of one bf16 step (torch.profiler, self CPU time by group):", "",
              "| group | before | after |", "|---|---|---|"]
    before = dict(r["cells"][("bf16", list(WAYS)[0])]["profile"] or [])
    after = dict(r["cells"][("bf16", list(WAYS)[-1])]["profile"] or [])
    for g in sorted(set(before) | set(after), key=lambda g: -before.get(g, 0)):
        lines.append(f"| {g} | {before.get(g, 0):.0%} | {after.get(g, 0):.0%} |")
    if pin:
        st, runs = pin["steps"], pin["runs"]
        hidden = ", ".join(f"`{k}={v}`" for k, v in EMULATED.items())
        lines += ["", "Precision pin. *Emulated*: the bf16 instructions hidden (" + hidden + "), the path of a CPU "
                  "without avx512_bf16 or AMX. Each figure from a fresh process.", "",
                  f"Step time (the first {pin['n_steps']} steps of the demo's fine-tuning as the library runs it now, "
                  "median after the first):", "",
                  "| precision | native s/step (capability) | emulated s/step (capability) | emulated / native |",
                  "|---|---|---|---|"]
        for prec in ("fp32", "bf16"):
            n, e = st[(prec, False)], st[(prec, True)]
            lines.append(f"| {prec} | {n['median']:.3f} ({n['capability']}) | {e['median']:.3f} ({e['capability']}) | "
                         f"{e['median'] / n['median']:.1f}x |")
        f_n, f_e, b_n = runs[("fp32", False)], runs[("fp32", True)], runs[("bf16", False)]
        lines += ["", "The demo's first seed fine-tuned in full (4 epochs, fresh cache):", "",
                  "| run | wall (s) | test accuracy | eval loss |", "|---|---|---|---|",
                  f"| fp32, native | {f_n['wall_s']:.1f} | {f_n['accuracy']:.4f} | {f_n['eval_loss']:.6f} |",
                  f"| fp32, emulated | {f_e['wall_s']:.1f} | {f_e['accuracy']:.4f} | {f_e['eval_loss']:.6f} |",
                  f"| bf16, native | {b_n['wall_s']:.1f} | {b_n['accuracy']:.4f} | {b_n['eval_loss']:.6f} |", "",
                  f"Largest weight difference: fp32 native vs fp32 emulated **{pin['diff_fp32']:.1e}**; fp32 native "
                  f"vs bf16 native {pin['diff_precisions']:.1e}."]
    lines += ["", f"Load average at the end: {load_line()}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "demo.yml"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-all", action="store_true", help="torch.compile in fp32 too")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--pin-steps", type=int, default=6, help="steps timed per precision pin child")
    ap.add_argument("--steps-child", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=6, help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.steps_child:
        return _child(args)
    from layerwise.inputs.config import load_params

    started = time.strftime("%Y-%m-%d %H:%M %z")
    head = header(precision=None)
    params = load_params(args.params)
    compile_ways = [] if args.no_compile else (["fp32", "bf16"] if args.compile_all else ["bf16"])
    r = step_times(params, args.rounds, compile_ways)
    pin = None if args.no_pin else {**precision_pin(args.params, args.pin_steps), "n_steps": args.pin_steps}
    publish(report(head, r, pin, sys.argv[1:] if argv is None else argv, started), "step", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
