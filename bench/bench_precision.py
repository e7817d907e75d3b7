"""fp32 vs bf16 analysis on the demo study: does bf16 change any result of the report?

For each state (default: pretrained and random; ``--states pretrained finetuned random`` trains or
reads the demo's fine-tuned entry) the geometry engine (``extract.run_state``, the demo's analysis
settings) runs once in fp32 and once in bf16, interleaved, in one process. Then:

* every tidy row: ``|bf16 - fp32|`` against the row's CI half-width (``(ci_high - ci_low) / 2`` of the
  fp32 row) where the row has a CI, else the relative deviation ``|bf16 - fp32| / max(|fp32|, 1e-12)``;
* raw orderings, for information: trend direction first -> last layer, the layer of the maximum and
  minimum per state and metric, the sign of the difference between states per layer, the layer where
  two states differ most (these flip on exact or near ties, e.g. random-weight norms equal at every
  layer, without any sentence of the report changing);
* the report's verdicts (unless ``--no-study``): the whole demo study (pretrained, random and every
  fine-tuned seed, whose checkpoints come from the fine-tuning cache; similarities, probes, the state
  comparisons) is computed through the caches (``pipeline.load_study``) once with ``analysis.precision:
  fp32`` and once with ``bf16``; every tidy row of both (``Study.tidy_all``: aggregate and per-seed) is
  compared as above, and every verdict the report prints (``report_verdicts.py``: the claims' change,
  seed-floor, best-layer, lexical, chance and similarity-floor verdicts, and the Findings list);
* the decision (the rule of issue #13): ``auto`` may use bf16 for the analysis iff no row with a CI
  moved by more than its half-width, no row without a CI moved by more than ``--rel-tol`` relative AND
  ``--abs-tol`` absolute (a histogram quantile near 0 moving by one bin, 6e-5, is not a change) and no
  verdict of the report changed. The rows and verdicts that decided it are listed.
  ``layerwise.core.precision.AUTO_ANALYSIS_BF16`` records the decision. With ``--no-study`` the rule is
  applied to the engine's rows and the raw orderings of ``--states`` (stricter, no probes).

Also timed side by side: the engine's full pass per precision, and the forward pass alone.

Run:  python bench/bench_precision.py [--threads 2] [--states pretrained random] [--quick]
Writes bench/RESULTS-precision.md (``--no-write`` to only print).
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
import pandas as pd  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parent
KEYS = ["model", "state", "layer", "metric"]


def demo_inputs(params_path: Path, quick: bool):
    from layerwise.inputs.config import load_params
    from layerwise.study.pipeline import _selection_texts, resolve_inputs

    params = load_params(params_path)
    inputs = resolve_inputs(params)
    texts, _, split, _ = _selection_texts(inputs.splits)
    geometry = np.zeros(len(texts), bool)
    geometry[np.flatnonzero(split == "test")[: params.analysis.num_sentences]] = True
    if quick:
        keep = np.r_[np.flatnonzero(geometry)[:40], np.flatnonzero(~geometry)[:24]]
        texts, geometry = [texts[i] for i in keep], geometry[keep]
    return params, inputs, texts, geometry


def load_state(params, inputs, state: str, progress: bool):
    from layerwise.model.models import load_model, pick_device
    from layerwise.study.pipeline import finetuned

    path = str(finetuned(params, progress, inputs=inputs).path) if state == "finetuned" else inputs.source.path
    return load_model(path, inputs.splits.num_labels, state=state, seed=params.analysis.seed, device=pick_device())


def run_both(params, inputs, texts, geometry, states, reps: int):
    """tidy frames per precision, and the timings (engine, forward-only) per precision."""
    from layerwise.measure import extract

    tidy = {"fp32": [], "bf16": []}
    times = {k: [] for k in ("engine_fp32", "engine_bf16", "forward_fp32", "forward_bf16")}
    for state in states:
        model, tok = load_state(params, inputs, state, progress=False)
        for rep in range(reps):
            for prec in ("fp32", "bf16"):
                settings = params.analysis.model_copy(update={"precision": prec})
                t0 = time.perf_counter()
                res = extract.run_state(model, tok, texts, state=state, model_name=params.name, geometry_mask=geometry,
                                        settings=settings, progress=False)
                times[f"engine_{prec}"].append(time.perf_counter() - t0)
                if rep == 0:
                    tidy[prec].append(res.tidy)
                t0 = time.perf_counter()
                for _ in extract.forward_batches(model, tok, texts, batch_size=settings.batch_size,
                                                 max_length=settings.max_length, precision=prec):
                    pass
                times[f"forward_{prec}"].append(time.perf_counter() - t0)
    return {p: pd.concat(v, ignore_index=True) for p, v in tidy.items()}, times


def deviations(a: pd.DataFrame, b: pd.DataFrame, keys: list[str] = KEYS) -> pd.DataFrame:
    """One row per tidy row: fp32 value, bf16 value, the CI half-width, deviation / half-width or the
    relative deviation."""
    # rows that share their keys (between-seed rows carry the pair's first seed) pair up in order
    a, b = (x.assign(_nth=x.groupby(keys, dropna=False).cumcount()) for x in (a, b))
    m = a.merge(b, on=[*keys, "_nth"], suffixes=("_32", "_16"))
    m["dev"] = (m["value_16"] - m["value_32"]).abs()
    m["half"] = (m["ci_high_32"] - m["ci_low_32"]) / 2
    m["has_ci"] = np.isfinite(m["half"]) & (m["half"] > 0)
    m["dev_over_half"] = np.where(m["has_ci"], m["dev"] / m["half"].where(m["has_ci"], 1), np.nan)
    m["rel_dev"] = m["dev"] / m["value_32"].abs().clip(lower=1e-12)
    both_nan = m["value_32"].isna() & m["value_16"].isna()
    m.loc[both_nan, ["dev", "dev_over_half", "rel_dev"]] = 0.0
    return m


def verdicts(tidy: pd.DataFrame) -> dict[str, str]:
    """The sign/ordering-based verdicts of the report's prose, by a readable key."""
    from layerwise.words import prose_format

    out: dict[str, str] = {}
    per_layer = tidy[tidy["layer"] >= 0]
    for metric in sorted(per_layer["metric"].unique()):
        states = sorted(per_layer.loc[per_layer["metric"] == metric, "state"].unique())
        by_state = {s: prose_format.series(per_layer, metric, s) for s in states}
        for s, df in by_state.items():
            v = df["value"].to_numpy()
            if len(v) < 2 or not np.isfinite(v).all():
                continue
            a, b = prose_format.fmt(v[0]), prose_format.fmt(v[-1])
            out[f"{metric}/{s}/trend"] = "equal" if a == b else ("rises" if v[-1] > v[0] else "falls")
            out[f"{metric}/{s}/argmax"] = str(int(df["layer"].iloc[int(np.argmax(v))]))
            out[f"{metric}/{s}/argmin"] = str(int(df["layer"].iloc[int(np.argmin(v))]))
            for kind, i in (("printed-max", int(np.argmax(v))), ("printed-min", int(np.argmin(v)))):
                shown = prose_format.fmt(v[i])   # the trend words name it only when it is neither end, as shown
                stated = i not in (0, len(v) - 1) and shown not in (a, b)
                out[f"{metric}/{s}/{kind}"] = f"layer {int(df['layer'].iloc[i])}" if stated else "not stated"
        for i, s in enumerate(states):
            for t in states[i + 1:]:
                m = by_state[s].merge(by_state[t], on="layer")
                d = (m["value_y"] - m["value_x"]).to_numpy()
                if len(d) and np.isfinite(d).all():
                    out[f"{metric}/{t}-{s}/sign"] = "".join("+" if x > 0 else "-" if x < 0 else "0" for x in d)
                    out[f"{metric}/{t}-{s}/most"] = str(int(m["layer"].iloc[int(np.argmax(np.abs(d)))]))
    return out


def study_verdicts(params_path: Path) -> tuple[pd.DataFrame, dict, dict, dict]:
    """The demo study computed through the caches with fp32 and with bf16 analysis (fine-tuning as the
    params say): the deviation of every tidy row, the report's verdicts of each, and the wall times."""
    from report_verdicts import report_verdicts

    from layerwise.study import pipeline
    from layerwise.inputs.config import load_params

    params = load_params(params_path)
    studies, seconds = {}, {}
    for prec in ("fp32", "bf16"):
        one = params.model_copy(update={"analysis": params.analysis.model_copy(update={"precision": prec})})
        t0 = time.perf_counter()
        studies[prec] = pipeline.load_study(one, progress=False)
        seconds[prec] = time.perf_counter() - t0
    keys = [*KEYS, "seed"]
    a, b = (studies[p].tidy_all.astype({"seed": "float64"}) for p in ("fp32", "bf16"))
    dev = deviations(a, b, keys)
    return dev, report_verdicts(studies["fp32"]), report_verdicts(studies["bf16"]), seconds


def decide(dev: pd.DataFrame, changed: list[str], rel_tol: float, abs_tol: float) -> tuple[bool, pd.DataFrame]:
    over_ci = dev["has_ci"] & (dev["dev_over_half"] > 1)
    over_rel = ~dev["has_ci"] & (dev["rel_dev"] > rel_tol) & (dev["dev"] > abs_tol)
    deciding = dev[over_ci | over_rel]
    return deciding.empty and not changed, deciding


def _table(df: pd.DataFrame, cols: list[str], limit: int) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.head(limit).iterrows():
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return lines


def changed_table(changed: list[str], v32: dict, v16: dict, fp32: pd.DataFrame) -> list[str]:
    """Each changed verdict, both readings, and for a layer choice the fp32 gap between the two layers
    (a near-tie when it is small against the metric's scale)."""
    lines = ["| verdict | fp32 | bf16 | fp32 values at the two layers |", "|---|---|---|---|"]
    for key in changed:
        metric, state, kind = key.split("/")
        if kind.startswith("printed-"):
            lines.append(f"| {key} | {v32[key]} | {v16.get(key)} | |")
            continue
        note = ""
        if kind in ("argmax", "argmin") and "-" not in state:
            s = fp32[(fp32["metric"] == metric) & (fp32["state"] == state)].set_index("layer")["value"]
            a, b = s.get(int(v32[key])), s.get(int(v16.get(key, -1)))
            note = f"{a:.6g} vs {b:.6g}" if a is not None and b is not None else ""
        lines.append(f"| {key} | {v32[key]} | {v16.get(key)} | {note} |")
    return lines


def _rows_line(dev: pd.DataFrame, args) -> str:
    ci, no_ci = dev[dev["has_ci"]], dev[~dev["has_ci"]]
    return (f"Tidy rows compared: {len(dev)} ({len(ci)} with a CI, {len(no_ci)} without). "
            f"With a CI: median |bf16 - fp32| / half-width {ci['dev_over_half'].median():.3g}, max "
            f"{ci['dev_over_half'].max():.3g}, {int((ci['dev_over_half'] > 1).sum())} above 1. "
            f"Without a CI: median relative deviation {no_ci['rel_dev'].median():.3g}, max {no_ci['rel_dev'].max():.3g}, "
            f"{int(((no_ci['rel_dev'] > args.rel_tol) & (no_ci['dev'] > args.abs_tol)).sum())} above {args.rel_tol:g} "
            f"relative and {args.abs_tol:g} absolute.")


def _study_lines(args) -> list[str]:
    """The whole-study part: rows of both studies, the report's verdicts by kind, those that changed."""
    from collections import Counter

    if args.study is None:
        return ["Report verdicts: not compared (`--no-study`); the decision rests on the engine's rows and the "
                "raw orderings above.", ""]
    dev, r32, r16, seconds = args.study
    kinds = Counter(k.split("/")[0] for k in r32)
    changed = sorted(k for k in set(r32) | set(r16) if r32.get(k) != r16.get(k))
    lines = [f"**Whole demo study** (`pipeline.load_study` through the caches, every state and fine-tuned seed, "
             f"similarities, probes, state comparisons; fp32 {seconds['fp32']:.0f} s, bf16 {seconds['bf16']:.0f} s "
             "wall, cache hits when an entry existed). " + _rows_line(dev, args), "",
             f"Report verdicts compared (as the chapters print them, from `claims`, `prose_outcomes` and "
             f"`findings`): {len(r32)} ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}); "
             f"**changed: {len(changed)}**.", ""]
    if changed:
        lines += ["| report verdict | fp32 | bf16 |", "|---|---|---|"]
        lines += [f"| {k} | {r32.get(k, '(absent)')} | {r16.get(k, '(absent)')} |" for k in changed] + [""]
    return lines


def report(args, header: str, dev, changed, ok, deciding, times, n_texts) -> str:
    med = {k: float(np.median(v)) for k, v in times.items()}
    lines = ["## precision (fp32 vs bf16 analysis)", "", header, "",
             f"`python bench/bench_precision.py --threads {args.threads} --states {' '.join(args.states)}"
             f"{' --quick' if args.quick else ''}{' --no-study' if args.study is None else ''}`: {n_texts} sentences, "
             f"states {', '.join(args.states)}, {args.reps} repetition(s) interleaved.", "",
             "| pass | fp32 (s) | bf16 (s) | fp32 / bf16 |", "|---|---|---|---|",
             f"| engine (run_state, every statistic) | {med['engine_fp32']:.2f} | {med['engine_bf16']:.2f} | "
             f"{med['engine_fp32'] / med['engine_bf16']:.2f}x |",
             f"| forward pass only (forward_batches) | {med['forward_fp32']:.2f} | {med['forward_bf16']:.2f} | "
             f"{med['forward_fp32'] / med['forward_bf16']:.2f}x |", "",
             f"Engine rows of these states: " + _rows_line(args.engine_dev, args), "",
             f"Raw orderings (for information, not verdicts of the report): {args.n_verdicts} compared; "
             f"{len(changed)} changed" + (f" ({', '.join(changed[:20])})" if changed else "") + f"; of them "
             f"{len(args.printed_changed)} as the prose prints them (trend direction, signs between states, the "
             f"maximum / minimum that the trend words name at 2 digits)"
             + (f" ({', '.join(args.printed_changed[:20])})" if args.printed_changed else "") + ".", ""]
    if changed:
        lines += ["Raw orderings that changed:", "", *changed_table(changed, args.v32, args.v16, args.fp32_tidy), ""]
    lines += _study_lines(args)
    chosen = ("bf16 where the device computes it natively (CPU with avx512_bf16 or AMX, CUDA with bf16)"
              if ok else "fp32")
    why = ("no row moved beyond its half-width (or tolerance) and no verdict of the report changed" if ok
           else "decided by the rows and verdicts listed")
    lines += [f"**Decision: `auto` analysis uses {chosen}** (layerwise.core.precision.AUTO_ANALYSIS_BF16 = {ok}): {why}; "
              f"load average at the end {[round(x, 2) for x in os.getloadavg()]}.", ""]
    if not deciding.empty:
        top = deciding.assign(score=deciding["dev_over_half"].fillna(deciding["rel_dev"])).sort_values(
            "score", ascending=False)
        lines += [f"Rows that decided it ({len(deciding)}; the 25 largest):", ""]
        lines += _table(top, ["state", "layer", "metric", "value_32", "value_16", "half", "dev_over_half", "rel_dev"], 25)
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "demo.yml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--states", nargs="+", default=["pretrained", "random"])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--rel-tol", type=float, default=0.01, help="relative deviation allowed for rows without a CI")
    ap.add_argument("--abs-tol", type=float, default=1e-3, help="absolute deviation allowed for rows without a CI")
    ap.add_argument("--quick", action="store_true", help="64 sentences, no whole study (smoke run)")
    ap.add_argument("--no-study", action="store_true", help="compare the engine's rows only (no report verdicts)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from machine import header, header_markdown

    torch.set_num_threads(args.threads)
    params, inputs, texts, geometry = demo_inputs(Path(args.params), args.quick)
    head = header_markdown(header())
    print(head, flush=True)
    tidy, times = run_both(params, inputs, texts, geometry, args.states, args.reps)
    args.engine_dev = deviations(tidy["fp32"], tidy["bf16"])
    v32, v16 = verdicts(tidy["fp32"]), verdicts(tidy["bf16"])
    args.n_verdicts, args.v32, args.v16, args.fp32_tidy = len(v32), v32, v16, tidy["fp32"]
    changed = sorted(k for k in v32 if v16.get(k) != v32[k])
    args.printed_changed = [k for k in changed if "/printed-" in k or k.endswith(("/trend", "/sign"))]
    args.study = None if (args.no_study or args.quick) else study_verdicts(Path(args.params))
    if args.study is None:   # the engine's rows and every raw ordering decide
        ok, deciding = decide(args.engine_dev, changed, args.rel_tol, args.abs_tol)
    else:                    # every row of the whole study and the report's verdicts decide
        dev, r32, r16, _ = args.study
        report_changed = sorted(k for k in set(r32) | set(r16) if r32.get(k) != r16.get(k))
        ok, deciding = decide(dev, report_changed, args.rel_tol, args.abs_tol)
    text = report(args, head, args.engine_dev, changed, ok, deciding, times, len(texts))
    print(text)
    if not args.no_write:
        (HERE / "RESULTS-precision.md").write_text(text + "\n", encoding="utf-8")
        print(f"wrote {HERE / 'RESULTS-precision.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
