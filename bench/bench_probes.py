"""Benchmark of ``layerwise.measure.probe_study.probe_study`` (and the statistics table builders) at the demo's size.

The demo study (params/demo.yml) stores, per state, first-token and mean-pooled embeddings of
450 train + 180 test sentences, MiniLM-L6 (7 hidden states of 384 dims), for 3 states.

Two inputs:
* default: SYNTHETIC arrays of exactly that shape and dtype (float16), so the benchmark runs anywhere: two
  classes whose centroid separation grows with the layer (most for "finetuned", barely for "random"), on
  top of a shared offset (the anisotropy of real embeddings); per-sentence and geometry tables are
  synthetic too;
* ``--npz-dir DIR``: a geometry-engine cache entry (``.cache/layerwise/results/demo-<hash>``) holding the
  real ``embeddings_<state>.npz``, ``per_sentence.parquet`` and ``tidy.parquet``.

Run:  python bench/bench_probes.py [--seeds 5] [--n-boot 1000] [--repeat 1] [--npz-dir DIR]
Results are recorded in bench/RESULTS-probes.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from layerwise.measure import comparisons, probe_study
from layerwise.core.schema import PER_SENTENCE_METRICS, POOLINGS, STATES, VARIANTS, tidy_row

SIGNAL = {"pretrained": 0.02, "finetuned": 0.04, "random": 0.005}   # class separation per layer step


def synthetic_embeddings(n_train=450, n_test=180, n_layers=7, dim=384, seed=0) -> dict[str, dict[str, np.ndarray]]:
    """Demo-shaped synthetic stored embeddings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    label = rng.integers(0, 2, size=n).astype(np.int64)
    split = np.array(["train"] * n_train + ["test"] * n_test)
    index = np.concatenate([np.arange(n_train), np.arange(n_test)]).astype(np.int64)
    direction = rng.standard_normal(dim) / np.sqrt(dim)
    offset = rng.standard_normal(dim)
    out = {}
    for state in STATES:
        arrs = {}
        for pool in POOLINGS:
            x = np.empty((n, n_layers, dim), dtype=np.float16)
            for layer in range(n_layers):
                sep = SIGNAL[state] * layer * np.sqrt(dim) * (1.0 if pool == "cls" else 0.8)
                noise = rng.standard_normal((n, dim))
                x[:, layer] = (noise + 2.0 * offset + np.outer(2 * label - 1, direction) * sep / 2).astype(np.float16)
            arrs[pool] = x
        out[state] = {**arrs, "label": label, "split": split, "index": index}
    return out


def load_npz_dir(d: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for s in STATES:
        p = d / f"embeddings_{s}.npz"
        if p.exists():
            with np.load(p) as z:
                out[s] = {k: z[k] for k in z.files}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--npz-dir", type=Path, default=None)
    ap.add_argument("--no-mlp", action="store_true")
    ap.add_argument("--show", action="store_true", help="print more result grids")
    ap.add_argument("--no-mdl", action="store_true")
    ap.add_argument("--mlp-poolings", default="cls", help="comma-separated, e.g. cls,mean")
    ap.add_argument("--mlp-solver", default="lbfgs", choices=["lbfgs", "adam"])
    ap.add_argument("--blas-threads", type=int, default=1, help="0: leave the BLAS thread pool as it is")
    args = ap.parse_args()
    emb = load_npz_dir(args.npz_dir) if args.npz_dir else synthetic_embeddings()
    first = next(iter(emb.values()))
    print(f"data: {'real ' + str(args.npz_dir) if args.npz_dir else 'SYNTHETIC'}; states {list(emb)}; "
          f"cls {first['cls'].shape} {first['cls'].dtype}; train {np.sum(first['split'] == 'train')}, "
          f"test {np.sum(first['split'] == 'test')}")
    print(f"options: {vars(args)}")
    print(f"machine: {platform.processor() or platform.machine()}, os.cpu_count={os.cpu_count()}, "
          f"affinity={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    for r in range(args.repeat):
        timings: dict = {}
        t0 = time.perf_counter()
        real = args.npz_dir is not None and (args.npz_dir / "per_sentence.parquet").exists()
        name = pd.read_parquet(args.npz_dir / "tidy.parquet")["model"].iloc[0] if real else "bench"
        settings = probe_study.ProbeSettings(seeds=args.seeds, n_boot=args.n_boot, mlp=not args.no_mlp,
                                        mdl=not args.no_mdl, seed=0, mlp_poolings=tuple(args.mlp_poolings.split(",")),
                                        mlp_solver=args.mlp_solver, blas_threads=args.blas_threads or None)
        tidy, cones, _ = probe_study.probe_study(emb, name, settings, timings=timings)
        t_probe = time.perf_counter() - t0
        # statistics: the real per-sentence and geometry tables next to real embeddings, else synthetic ones
        # of the demo's size (180 sentences x 7 layers x 10 metrics)
        rng = np.random.default_rng(r)
        metrics = tuple(f"{m}{v}" for v in VARIANTS for m in PER_SENTENCE_METRICS)
        n_layers = first["cls"].shape[1]
        if real:
            ps = pd.read_parquet(args.npz_dir / "per_sentence.parquet")
            geo = pd.read_parquet(args.npz_dir / "tidy.parquet")
        else:
            ps = pd.DataFrame([(s, layer, i, m, rng.normal(layer * 0.1 * (s == "finetuned")))
                               for s in STATES for layer in range(n_layers) for i in range(180) for m in metrics],
                              columns=["state", "layer", "sentence", "metric", "value"]).assign(model=name)
            geo = pd.DataFrame([tidy_row(name, s, layer, "token_cosine_mean", 0.1 * layer) for s in STATES
                                for layer in range(n_layers)])
        t1 = time.perf_counter()
        cmp_rows = comparisons.compare_states_per_sentence(ps, n_boot=args.n_boot, seed=0)
        corr = comparisons.convergence_correlation(pd.concat([geo, tidy], ignore_index=True))
        t_stats = time.perf_counter() - t1
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        print(f"run {r}: probe_study {t_probe:.1f} s  ({parts}); "
              f"compare_states_per_sentence + convergence_correlation {t_stats:.1f} s; "
              f"total {t_probe + t_stats:.1f} s; {len(tidy)} probe rows, {len(cmp_rows)} test rows, "
              f"{len(corr)} correlation rows, {len(cones)} cone rows")
    acc = tidy[tidy.metric == "probe_acc_cls"].pivot(index="state", columns="layer", values="value").round(3)
    print("probe_acc_cls (treillis):\n" + acc.to_string())
    if args.show:
        pd.set_option("display.width", 200)
        for m in ("probe_acc_mean", "probe_control_acc_cls", "selectivity_cls", "mlp_probe_acc_cls",
                  "mdl_compression_cls", "silhouette_cls", "silhouette_perm_cls", "centroid_angle_cls",
                  "centroid_margin_cls"):
            print(m + ":\n" + tidy[tidy.metric == m].pivot(index="state", columns="layer", values="value")
                  .round(3).to_string())
        ci = tidy[tidy.metric == "probe_acc_cls"].assign(ci=lambda d: d.ci_low.round(3).astype(str) + ".."
                                                          + d.ci_high.round(3).astype(str))
        print("probe_acc_cls 95 % CI:\n" + ci.pivot(index="state", columns="layer", values="ci").to_string())
        print(corr.to_string())
        sel = cmp_rows[cmp_rows.metric.isin(["test_p_holm_token_cosine", "effect_token_cosine"])]
        print(sel.pivot_table(index=["state", "layer"], columns="metric", values="value").round(4).to_string())


if __name__ == "__main__":
    main()
