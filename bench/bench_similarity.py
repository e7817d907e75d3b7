"""Cost of the similarity floors (issue #12) on the demo's sizes: 180 test sentences, 7 hidden states
(MiniLM-L6), 384 dims, 3 states, 2 poolings, one BLAS thread. Synthetic anisotropic embeddings
(a shared offset, a few rogue dimensions, a fine-tuned state close to pretrained); the cost does not
depend on the values. Prints a Markdown section for bench/RESULTS.md.

Usage: ``python bench/bench_similarity.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from layerwise.measure import similarity


def demo_embeddings(n=180, layers=7, d=384, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.ones(d)
    scale[:3] = 20.0                                           # rogue dimensions
    pre = rng.standard_normal((n, layers, d)) * scale + 5.0
    pre[:, 0] = pre[0, 0]                                      # constant first token at layer 0
    ft = pre + rng.standard_normal((n, layers, d)) * np.linspace(0.1, 2.0, layers)[None, :, None]
    ran = rng.standard_normal((n, layers, d)) + 3.0
    out = {}
    for state, a in (("pretrained", pre), ("finetuned", ft), ("random", ran)):
        out[state] = {"cls": a.astype(np.float16), "mean": (a + rng.standard_normal(a.shape)).astype(np.float16)}
    return out


def timed(fn, repeats):
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), float(np.median(wall)), min(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    emb = demo_embeddings()
    fit = demo_embeddings(n=450, seed=1)
    runs = [
        ("biased CKA only (the code before this issue: `cka` table + `cka_*_vs_pretrained`)",
         lambda: _biased_only(emb)),
        ("+ observed debiased CKA, standardised CKA, Procrustes, mutual 10-NN (no nulls: n_permutations=1, "
         "procrustes_permutations=0)", lambda: similarity.cka_between_states(emb, "b", n_permutations=1,
                                                                              procrustes_permutations=0)),
        ("+ Gram-based nulls, 200 permutations (CKA, debiased CKA, mutual k-NN), no Procrustes null",
         lambda: similarity.cka_between_states(emb, "b", procrustes_permutations=0)),
        ("**default**: + Procrustes null, 100 permutations",
         lambda: similarity.cka_between_states(emb, "b")),
        ("Procrustes null with 200 permutations (procrustes_permutations=200)",
         lambda: similarity.cka_between_states(emb, "b", procrustes_permutations=200)),
        ("default + held-out Procrustes fitted on 450 probe-pool sentences (fit_embeddings)",
         lambda: similarity.cka_between_states(emb, "b", fit_embeddings=fit)),
        ("`similarity_matrices` (layer x layer, 4 measures, 6 state pairs, 2 poolings; not in the pipeline)",
         lambda: similarity.similarity_matrices(emb, "b")),
    ]
    load = os.getloadavg()
    print("## similarity floors\n")
    print(f"`python bench/bench_similarity.py --repeats {args.repeats}` on {platform.machine()}, "
          f"{os.cpu_count()} CPU cores (shared), one BLAS thread; load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; date {time.strftime('%Y-%m-%d %H:%M')}. Demo sizes: 180 "
          "test sentences, 7 hidden states, 384 dims, 3 states (2 compared with pretrained), 2 poolings; "
          "synthetic anisotropic float16 embeddings.\n")
    print("| what `cka_between_states` computes | wall, best of runs (s) | wall, median (s) | CPU time, best (s) |")
    print("|---|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        for label, fn in runs:
            best, median, cpu = timed(fn, args.repeats)
            print(f"| {label} | {best:.2f} | {median:.2f} | {cpu:.2f} |")
    load = os.getloadavg()
    print(f"\nLoad average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.")


def _biased_only(emb):
    from layerwise.measure import metrics

    states = list(emb)
    for pooling in ("cls", "mean"):
        grams, _ = similarity._centred_grams(emb, states, pooling)
        for i, a in enumerate(states):
            for b in states[i:]:
                metrics.cka_from_grams(grams[a], grams[b])


if __name__ == "__main__":
    main()
