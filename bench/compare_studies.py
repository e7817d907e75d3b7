"""Two runs of one study compared (issue 25: changes that alter the random stream, the precision pin,
five seeds): the per-seed test accuracy, the per-layer similarity to pretrained over the seeds, and
every verdict the report prints (``report_verdicts.py``), listing each one that changed.

Run:  python bench/compare_studies.py BEFORE AFTER --before-label TEXT --after-label TEXT [--name NAME]
where BEFORE and AFTER are study folders (``report/_layerwise/studies/<name>`` of each run).
Writes bench/RESULTS-compare-<name>.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

SIMILARITY = "cka_debiased_{pool}_vs_pretrained"


def seed_accuracy(folder: Path) -> dict[str, tuple[float, str]]:
    """``{seed: (test accuracy, precision)}`` of a study's fine-tunings."""
    f = json.loads((folder / "finetune.json").read_text(encoding="utf-8"))
    return {s: (float(v["accuracy"]), str(v.get("precision"))) for s, v in f.get("seeds", {}).items()}


def similarity(study, pool: str) -> dict[int, list[float]]:
    """Per layer, the fine-tuned seeds' similarity to pretrained."""
    t = study.tidy_all
    rows = t[(t["metric"] == SIMILARITY.format(pool=pool)) & (t["state"] == "finetuned") & t["seed"].notna()]
    return {int(layer): sorted(g["value"].astype(float)) for layer, g in rows.groupby("layer")}


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.3f} [{min(values):.3f}, {max(values):.3f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--before-label", default="before")
    ap.add_argument("--after-label", default="after")
    ap.add_argument("--name", default="study")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from layerwise.study.study import read_study

    from machine import publish
    from report_verdicts import report_verdicts

    studies = {k: read_study(p) for k, p in (("before", args.before), ("after", args.after))}
    acc = {k: seed_accuracy(p) for k, p in (("before", args.before), ("after", args.after))}
    lines = [f"## compared: {args.before_label} against {args.after_label}", "",
             f"`python bench/compare_studies.py {' '.join(sys.argv[1:] if argv is None else argv)}`; date "
             f"{time.strftime('%Y-%m-%d %H:%M %z')}.", "", "Per-seed test accuracy (fine-tuning precision):", "",
             "| run | seeds | accuracy per seed | mean | sd |", "|---|---|---|---|---|"]
    for k, label in (("before", args.before_label), ("after", args.after_label)):
        a = acc[k]
        vals = [v for v, _ in a.values()]
        lines.append(f"| {label} | {len(a)} | " + ", ".join(f"{s}: {v:.3f} ({p})" for s, (v, p) in a.items())
                     + f" | {statistics.fmean(vals):.3f} | {statistics.stdev(vals) if len(vals) > 1 else 0:.3f} |")
    for pool in ("cls", "mean"):
        sb, sa = similarity(studies["before"], pool), similarity(studies["after"], pool)
        lines += ["", f"Similarity to pretrained per layer (`{SIMILARITY.format(pool=pool)}`), mean over the seeds "
                  "[lowest, highest]:", "", f"| layer | {args.before_label} | {args.after_label} |", "|---|---|---|"]
        lines += [f"| {layer} | {_spread(sb.get(layer, []))} | {_spread(sa.get(layer, []))} |"
                  for layer in sorted(set(sb) | set(sa))]
    vb, va = report_verdicts(studies["before"]), report_verdicts(studies["after"])
    keys = sorted(set(vb) | set(va))
    changed = [k for k in keys if vb.get(k) != va.get(k)]
    lines += ["", f"Verdicts the report prints: {len(vb)} before, {len(va)} after; **{len(changed)} changed** "
              "(numbers masked; a verdict missing on one side shows as -):", ""]
    if changed:
        lines += [f"| verdict | {args.before_label} | {args.after_label} |", "|---|---|---|"]
        lines += [f"| {k} | {vb.get(k, '-')} | {va.get(k, '-')} |" for k in changed]
    publish("\n".join(lines) + "\n", f"compare-{args.name}", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
