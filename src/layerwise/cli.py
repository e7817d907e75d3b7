"""The ``layerwise`` command: check, prepare, finetune, analyze, probe, export, run, prerender, preview.

Every :class:`~layerwise.errors.LayerwiseError` becomes one ``error: ... Fix: ...`` line on stderr and
exit status 2. ``prerender`` is Quarto's pre-render step (``chapters/prerender.py`` calls it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import LayerwiseError

DEFAULT_PARAMS = "params/demo.yml"


def _params(path: str):
    from .config import load_params

    return load_params(path)


def cmd_check(args: argparse.Namespace) -> int:
    import yaml

    from .checks import run_checks

    for path in args.params:
        report = run_checks(_params(path))
        splits = report.splits
        print(f"# {path}: valid")
        print(yaml.safe_dump(report.params.model_dump(mode="json"), sort_keys=False, allow_unicode=True).rstrip())
        limit = f" ({report.positions} positions)" if report.positions else ""
        print(f"# model source: {report.source}{limit}")
        pool = f"{len(splits.probe)} probe / " if splits.probe is not None and len(splits.probe) else ""
        print(f"# data: {len(splits.train)} train / {pool}{len(splits.test)} test examples, "
              f"labels {splits.label_names}, selection {splits.selection['hash']}")
        print(f"# label mapping: {report.label_mapping()}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepared import prepare

    out = prepare(_params(args.params), args.out, num_train=args.num_train, num_test=args.num_test,
                  checkpoint=args.checkpoint)
    print(f"prepared data written to {out}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .finetune import finetune

    res = finetune(_params(args.params), num_train=args.num_train, num_test=args.num_test, epochs=args.num_epochs,
                   save=args.save, data=args.data, checkpoint=args.checkpoint, progress=not args.quiet)
    m = res.metrics
    state = "cached" if res.cached else "trained"
    acc = m.get("accuracy")
    ci = m.get("accuracy_ci") or [None, None]
    print(f"{state}: {res.path}")
    if acc is not None:
        print(f"test accuracy {acc:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), macro-F1 {m.get('macro_f1', float('nan')):.3f}, "
              f"majority baseline {m.get('majority_baseline', float('nan')):.3f}, "
              f"binomial p = {m.get('binomial_p', float('nan')):.2g}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .pipeline import analyze

    entry = analyze(_params(args.params), progress=not args.quiet)
    print(f"geometry results: {entry}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .pipeline import probe

    entry = probe(_params(args.params), progress=not args.quiet)
    print(f"probe results: {entry}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .pipeline import export_tables, load_study

    written = export_tables(load_study(args.params, progress=not args.quiet), args.out)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .report import run

    params = [Path(p) for p in (args.params or [DEFAULT_PARAMS])]
    run(params, out_dir=Path(args.out), force=args.force, preview=not args.no_preview)
    return 0


def cmd_prerender(args: argparse.Namespace) -> int:
    """Quarto's pre-render: ``layerwise run`` for the params files of the active profile(s)
    (``QUARTO_PROFILE``), without the preview."""
    from .report import quarto_prerender

    quarto_prerender(Path(args.project_dir) if args.project_dir else None)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import build_preview, quarto_hint

    index = build_preview(Path(args.report_dir))
    print(f"preview: {index}")
    print(quarto_hint(), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layerwise", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("check", help="validate params files and print the resolved configuration")
    s.add_argument("params", nargs="+")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("prepare", help="tokenize the selected train/test data and save it (seed step 1)")
    s.add_argument("params")
    s.add_argument("out")
    s.add_argument("-a", "--num-train", type=int)
    s.add_argument("-b", "--num-test", type=int)
    s.add_argument("-c", "--checkpoint", help="tokenizer checkpoint (default: the params' model)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("finetune", help="fine-tune the params' model for sequence classification (seed step 2)")
    s.add_argument("params")
    s.add_argument("-a", "--num-train", type=int, help="training examples")
    s.add_argument("-b", "--num-test", type=int, help="test examples")
    s.add_argument("-n", "--num-epochs", type=float, help="epochs")
    s.add_argument("-s", "--save", help="also copy the fine-tuned model to this directory")
    s.add_argument("-d", "--data", help="a directory written by `layerwise prepare`")
    s.add_argument("-c", "--checkpoint", help="model checkpoint (Hub id or directory) instead of the params' model")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_finetune)

    for name, func, help_ in (("analyze", cmd_analyze, "geometry statistics of every state and layer"),
                              ("probe", cmd_probe, "probes, class geometry and statistical tests")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("params")
        s.add_argument("-q", "--quiet", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("export", help="write a study's tidy tables (Parquet + CSV) to a folder")
    s.add_argument("params")
    s.add_argument("out")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("run", help="execute the report chapters for every params file, then the preview")
    s.add_argument("--params", nargs="+", help=f"params files (default: {DEFAULT_PARAMS})")
    s.add_argument("--out", default="report")
    s.add_argument("--force", action="store_true", help="re-execute notebooks even when unchanged")
    s.add_argument("--no-preview", action="store_true", help="skip the nbconvert HTML preview")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("prerender", help="Quarto's pre-render step: `run` for the params files of the active "
                       "profile(s) (QUARTO_PROFILE), without the preview")
    s.add_argument("--project-dir", help="the Quarto project (default: the current directory)")
    s.set_defaults(func=cmd_prerender)

    s = sub.add_parser("preview", help="build the pip-only HTML preview of executed chapters")
    s.add_argument("report_dir", nargs="?", default="report")
    s.set_defaults(func=cmd_preview)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except LayerwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
