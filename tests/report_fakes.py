"""A synthetic, deterministic ``Study`` for the report tests (charts, chapters, preview, browser).

Every table of docs/architecture.md ("Result tables") with the documented columns and metric names,
small (a 4-layer model, a dozen sentences), with plausible values: the fine-tuned state's last layers
converge, the random state is flat. ``load_fake_study`` has the signature of
``layerwise.study.pipeline.load_study`` and is passed to ``report.run(..., load_study=load_fake_study)``
(a Python callable: the run writes the study directory, the chapters read only that directory);
``write_fake_study`` writes a study directory directly (``layerwise.study.study.write_study``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from layerwise.inputs.config import StudyParams, load_params, parse_params
from layerwise.measure.probe_study import default_cone_layers
from layerwise.study.study import Study, write_study
from layerwise.core.repro import content_hash

STATES = ("pretrained", "finetuned", "random")
PER_SENTENCE = ("token_cosine", "token_cosine_var", "intra_similarity", "cov_trace", "cov_trace_scaled")


def write_params(directory: Path, name: str = "tiny", label: str | None = None) -> Path:
    """A valid params file (embedded model and data, so it loads offline)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yml"
    path.write_text(
        f"name: {name}\n"
        f"title: Synthetic {name}\n"
        "model:\n  id: embedded:minilm\n"
        f"  label: {label or 'Tiny ' + name}\n"
        "dataset:\n  source: embedded:demo-fr\n"
        "analysis:\n  seed_layers: [1, 2, 3]\n", encoding="utf-8")
    return path


def _row(model, state, layer, metric, value, lo=np.nan, hi=np.nan, n=12):
    return {"model": model, "state": state, "layer": int(layer), "metric": metric, "value": float(value),
            "ci_low": float(lo), "ci_high": float(hi), "n": int(n)}


def fake_tables(model: str = "tiny", n_layers: int = 4, n_sentences: int = 12, seed: int = 0,
                states=STATES) -> dict:
    """Every result table of one synthetic study (see the module doc)."""
    rng = np.random.default_rng(seed)
    L = n_layers - 1
    layers = np.arange(n_layers)
    tidy, per_sentence, sample, rogue, cones, cka, correct = [], [], [], [], [], [], []
    base_cos = {"pretrained": 0.1 + 0.25 * layers / L,
                "finetuned": 0.1 + 0.25 * layers / L + 0.5 * (layers / L) ** 3,
                "random": np.full(n_layers, 0.05)}
    for state in states:
        cos = base_cos[state]
        for layer in layers:
            c = float(cos[layer])
            values = np.clip(c + 0.15 * rng.standard_normal(200), -1, 1)
            qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
            for variant, shift in (("", 0.0), ("_content", -0.02)):
                for q, v in zip(("q05", "q25", "q50", "q75", "q95"), qs):
                    tidy.append(_row(model, state, layer, f"token_cosine_{q}{variant}", v + shift))
                tidy.append(_row(model, state, layer, f"token_cosine_mean{variant}", values.mean() + shift,
                                 values.mean() + shift - 0.02, values.mean() + shift + 0.02))
                tidy.append(_row(model, state, layer, f"token_cosine_min{variant}", values.min() + shift))
                tidy.append(_row(model, state, layer, f"token_cosine_max{variant}", values.max() + shift))
                tidy.append(_row(model, state, layer, f"token_cosine_var_mean{variant}", values.var()))
                tidy.append(_row(model, state, layer, f"intra_similarity{variant}", c + 0.2, c + 0.18, c + 0.22))
            baseline = 0.6 * c
            tidy += [_row(model, state, layer, "anisotropy_baseline", baseline, baseline - 0.01, baseline + 0.01),
                     _row(model, state, layer, "token_cosine_adjusted", c - baseline),
                     _row(model, state, layer, "intra_similarity_adjusted", c + 0.2 - baseline),
                     _row(model, state, layer, "self_similarity", 0.9 - c / 2, 0.88 - c / 2, 0.92 - c / 2, 120),
                     _row(model, state, layer, "self_similarity_adjusted", 0.9 - c / 2 - baseline, n=120),
                     _row(model, state, layer, "cov_trace", 10 + 5 * layer, 9 + 5 * layer, 11 + 5 * layer),
                     _row(model, state, layer, "cov_trace_scaled", 0.8 - 0.1 * layer, 0.75 - 0.1 * layer,
                          0.85 - 0.1 * layer),
                     _row(model, state, layer, "norm_mean", 15 + 3 * layer - (8 if layer == L else 0)),
                     _row(model, state, layer, "erank", 20 - 2 * layer, 19 - 2 * layer, 21 - 2 * layer),
                     _row(model, state, layer, "erank_uncentred", 15 - 2 * layer),
                     _row(model, state, layer, "isoscore", 0.3 - 0.05 * layer),
                     _row(model, state, layer, "rogue_top3_share", 0.2 + 0.15 * layer),
                     _row(model, state, layer, "token_cosine_mean_std", 0.3 * c),
                     _row(model, state, layer, "anisotropy_baseline_std", 0.2 * baseline)]
            if state != "pretrained":
                for pool in ("cls", "mean"):
                    tidy.append(_row(model, state, layer, f"cka_{pool}_vs_pretrained",
                                     1 - 0.2 * layer / L if state == "finetuned" else 0.2))
            for s in range(n_sentences):
                for metric in PER_SENTENCE:
                    v = {"token_cosine": c, "token_cosine_var": 0.02, "intra_similarity": c + 0.2,
                         "cov_trace": 10 + 5 * layer, "cov_trace_scaled": 0.8 - 0.1 * layer}[metric]
                    per_sentence.append({"model": model, "state": state, "layer": int(layer), "sentence": s,
                                         "metric": metric, "value": float(v * (1 + 0.1 * rng.standard_normal()))})
            sample += [{"model": model, "state": state, "layer": int(layer), "value": float(v)}
                       for v in values[:60]]
            contrib = np.sort(rng.dirichlet(np.ones(30)))[::-1] * baseline
            rogue += [{"model": model, "state": state, "layer": int(layer), "rank": r + 1, "dim": int(d),
                       "contribution": float(contrib[r]), "share": float(contrib[r] / contrib.sum())}
                      for r, d in enumerate(rng.permutation(30)[:5])]
            # probes
            acc = {"pretrained": 0.6 + 0.1 * layer / L, "finetuned": 0.6 + 0.3 * layer / L, "random": 0.52}[state]
            for pool in ("cls", "mean"):
                tidy += [_row(model, state, layer, f"probe_acc_{pool}", acc, acc - 0.04, acc + 0.04, 40),
                         _row(model, state, layer, f"probe_chance_acc_{pool}", 0.5, 0.46, 0.54, 40),
                         _row(model, state, layer, f"control_acc_{pool}", 0.55, 0.4, 0.7, 12),
                         _row(model, state, layer, f"selectivity_{pool}", acc - 0.55, acc - 0.7, acc - 0.4, 12),
                         _row(model, state, layer, f"silhouette_{pool}", 0.02 + 0.1 * (acc - 0.5)),
                         _row(model, state, layer, f"silhouette_perm_{pool}", -0.003),
                         _row(model, state, layer, f"centroid_angle_{pool}", 5 + 60 * (acc - 0.5))]
            tidy += [_row(model, state, layer, "mlp_probe_acc_cls", acc + 0.01, acc - 0.03, acc + 0.05, 40),
                     _row(model, state, layer, "mdl_compression_cls", 1 + 2 * (acc - 0.5), 0.9, 1.9, n=48),
                     _row(model, state, layer, "mdl_compression_seen_cls", 1.5 + 2 * (acc - 0.5), 1.2, 2.5, n=48),
                     _row(model, state, layer, "probe_acc_seen_cls", acc - 0.01, acc - 0.05, acc + 0.03, 40)]
            for s in range(n_sentences):   # per-sentence correctness of the first-token probe
                correct.append({"model": model, "state": state, "metric": "probe_acc_cls", "layer": int(layer),
                                "sentence": s, "correct": float(rng.random() < acc)})
            if layer in default_cone_layers(L):   # the cone layers of probe_study: first, middle, last
                for s in range(n_sentences):
                    label = s % 2
                    sep = (acc - 0.5) * (1 if label else -1)
                    cones.append({"model": model, "state": state, "layer": int(layer), "sentence": s, "label": label,
                                  "cos_ref": float(0.5 + sep + 0.05 * rng.standard_normal()),
                                  "cos_own_centroid": float(0.7 + abs(sep) / 2 + 0.03 * rng.standard_normal()),
                                  "cos_other_centroid": float(0.7 - abs(sep) / 2 + 0.03 * rng.standard_normal())})
        tidy.append(_row(model, state, -1, "probe_majority_baseline", 0.5, 0.4, 0.6, 40))
        tidy.append(_row(model, state, -1, "control_coverage", 0.3, n=40))
        tidy.append(_row(model, state, -1, "lexical_probe_acc", 0.8, 0.7, 0.88, 40))
        tidy.append(_row(model, state, -1, "spearman_convergence_probe", 0.8, 0.1, 0.97, n_layers))
        tidy.append(_row(model, state, -1, "spearman_convergence_probe_p", 0.2, n=n_layers))
        if state != "pretrained":
            for metric in PER_SENTENCE:
                for layer in layers:
                    diff = float(base_cos[state][layer] - base_cos["pretrained"][layer])
                    p = 0.001 if abs(diff) > 0.05 else 0.4
                    tidy += [_row(model, state, layer, f"test_p_{metric}", p),
                             _row(model, state, layer, f"test_p_holm_{metric}", min(1.0, p * n_layers)),
                             _row(model, state, layer, f"effect_{metric}", diff, diff - 0.01, diff + 0.01),
                             _row(model, state, layer, f"rank_biserial_{metric}", np.sign(diff) * 0.5),
                             _row(model, state, layer, f"reference_sd_{metric}", 0.1)]
    for pool in ("cls", "mean"):
        for sa, sb in (("pretrained", "finetuned"), ("pretrained", "random")):
            if sa in states and sb in states:
                for la in layers:
                    for lb in layers:
                        v = (1 - 0.15 * abs(la - lb)) * (1 - 0.1 * max(la, lb) / L if sb == "finetuned" else 0.3)
                        cka.append({"model": model, "pooling": pool, "state_a": sa, "state_b": sb,
                                    "layer_a": int(la), "layer_b": int(lb), "value": float(max(v, 0))})
    history = [{"step": 5 * i, "epoch": i / 4, "loss": 0.7 - 0.05 * i} for i in range(1, 9)]
    history += [{"step": 20 * i, "epoch": float(i), "eval_loss": 0.6 - 0.05 * i, "eval_accuracy": 0.7 + 0.05 * i}
                for i in range(1, 3)]
    finetune = {"n_test": 40, "correct": 34, "accuracy": 0.85, "accuracy_ci": [0.71, 0.93], "macro_f1": 0.84,
                "macro_f1_ci": [0.72, 0.94], "majority_class": 1, "majority_baseline": 0.5, "binomial_p": 1e-5,
                "confidence": 0.95, "train_seconds": 12.5, "history": history}
    return {"tidy": pd.DataFrame(tidy), "per_sentence": pd.DataFrame(per_sentence),
            "cosine_sample": pd.DataFrame(sample), "rogue": pd.DataFrame(rogue), "cka": pd.DataFrame(cka),
            "cones": pd.DataFrame(cones), "probe_correct": pd.DataFrame(correct), "finetune": finetune}


def fake_beyond(model: str = "tiny", n_layers: int = 4, seeds=(1, 2, 3), n: int = 40) -> pd.DataFrame:
    """A synthetic ``beyond`` table: the top layer moves early and its single swap costs 20 points in every seed;
    the lower layers never move and their swaps cost exactly nothing; the word-presence probe loses 15 points at
    the top layer; two domains, "films" moving more than "books"."""
    from layerwise.core.tables import beyond_frame, beyond_row

    top = n_layers
    rows = []
    for s in seeds:
        for f in (0.0, 0.25, 0.5, 1.0):
            for layer in range(top + 1):
                moved = 0.6 * min(1.0, f / (0.25 if s != 3 else 0.75)) if layer == top else 0.0
                rows += [beyond_row(model, "trajectory", "", "finetuned", s, layer, "cka_debiased", 1 - moved, n=n,
                                    checkpoint=f),
                         beyond_row(model, "trajectory", "", "finetuned", s, layer, "probe_acc",
                                    0.6 + 0.3 * f * (layer == top), 0.5, 0.9, n=n, checkpoint=f)]
        rows.append(beyond_row(model, "swap", "none", "finetuned", s, -1, "accuracy", 0.85, 0.75, 0.93, n=n))
        for kind in ("single", "cumulative"):
            for layer in range(top + 1):
                cost = -0.2 - 0.01 * s if layer == top else 0.0
                half = 0.05 if layer == top else 0.0
                rows += [beyond_row(model, "swap", kind, "finetuned", s, layer, "accuracy", 0.85 + cost, n=n),
                         beyond_row(model, "swap", kind, "finetuned", s, layer, "accuracy_change", cost, cost - half,
                                    cost + half, n=n)]
        for task in ("length", "word", "bigram_shift"):
            for layer in range(top + 1):
                loss = -0.15 - 0.01 * s if task == "word" and layer == top else 0.0
                half = 0.04 if loss else 0.01
                rows += [beyond_row(model, "auxiliary", task, "finetuned", s, layer, "probe_acc", 0.8 + loss, n=n),
                         beyond_row(model, "auxiliary", task, "finetuned", s, layer, "control_acc", 0.5, n=n),
                         beyond_row(model, "auxiliary", task, "finetuned", s, layer, "probe_acc_change", loss,
                                    loss - half, loss + half, n=n)]
        for domain, k in (("books", 0.1), ("films", 0.4)):
            for layer in range(top + 1):
                rows += [beyond_row(model, "domain", domain, "finetuned", s, layer, "cka_debiased",
                                    1 - k * layer / top, n=n // 2),
                         beyond_row(model, "domain", domain, "finetuned", s, layer, "probe_acc", 0.8, n=n // 2),
                         beyond_row(model, "domain", domain, "finetuned", s, layer, "probe_acc_change", 0.0, -0.01,
                                    0.01, n=n // 2)]
    for task in ("length", "word", "bigram_shift"):
        for layer in range(top + 1):
            rows += [beyond_row(model, "auxiliary", task, "pretrained", None, layer, "probe_acc", 0.8, n=n),
                     beyond_row(model, "auxiliary", task, "pretrained", None, layer, "control_acc", 0.5, n=n)]
    for domain in ("books", "films"):
        for layer in range(top + 1):
            rows.append(beyond_row(model, "domain", domain, "pretrained", None, layer, "probe_acc", 0.8, n=n // 2))
    return beyond_frame(rows)


def fake_study(params=None, n_layers: int = 4, seed: int = 0) -> Study:
    """A synthetic :class:`layerwise.study.study.Study` (``params``: a StudyParams or None)."""
    if params is None:
        params = parse_params({"name": "tiny", "model": {"id": "embedded:minilm", "label": "Tiny"},
                               "dataset": {"source": "embedded:demo-fr"}})
    tables = fake_tables(params.name, n_layers=n_layers, seed=seed)
    key = content_hash({"name": params.name, "n_layers": n_layers, "seed": seed})
    manifest = {"cache_key": key, "cache_entries": {"analysis": f"/cache/results/{params.name}-{key}"},
                "git_commit": "0" * 40, "versions": {"python": "3.11"}, "device": "cpu",
                "selection": {"hash": "fake", "num_train": 60, "num_test": 40, "train_index": list(range(60)),
                              "probe_index": list(range(60, 108)), "test_index": list(range(108, 148))}}
    return Study(params=params, manifest=manifest, beyond=fake_beyond(params.name, n_layers), **tables)


def load_fake_study(params, progress: bool = False) -> Study:
    """Same signature as ``layerwise.study.pipeline.load_study`` (parsed params or a params file); the
    values depend on the params' name."""
    params = params if isinstance(params, StudyParams) else load_params(params)
    return fake_study(params, seed=sum(map(ord, params.name)) % 97)


def load_broken_study(params, progress: bool = False) -> Study:
    """A study whose tidy table lacks the token-cosine quantiles: the geometry chapter's first chart fails."""
    study = load_fake_study(params, progress)
    study.tidy = study.tidy[~study.tidy["metric"].str.startswith("token_cosine_q")].reset_index(drop=True)
    return study


def write_fake_study(directory: Path, params=None, n_layers: int = 4, seed: int = 0) -> Path:
    """A synthetic study written where ``layerwise run`` writes one (what a chapter reads)."""
    return write_study(fake_study(params, n_layers=n_layers, seed=seed), directory)
