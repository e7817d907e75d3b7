"""The ``layerwise`` command: check, prepare, finetune, analyze, probe, export, run, prerender, preview, clean.

Every :class:`~layerwise.core.errors.LayerwiseError` becomes one ``error: ... Fix: ...`` line on stderr and
exit status 2; Ctrl-C prints ``interrupted`` and exits 130 (a rerun resumes). ``prerender`` is
Quarto's pre-render step (``chapters/prerender.py`` calls it). Library chatter goes to a log file
(:mod:`layerwise.core.logs`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .core.errors import LayerwiseError

DEFAULT_PARAMS = "params/demo.yml"


def _params(path: str):
    from .inputs.config import load_params

    return load_params(path)


def cmd_check(args: argparse.Namespace) -> int:
    import yaml

    from .study.preflight import run_checks
    from .inputs.duplicates import DuplicateReport

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
        print(f"# duplicates: {DuplicateReport.from_dict(splits.selection.get('duplicates') or {}).sentence()}")
        print(f"# cache: {report.space()}")
        for note in report.notes:
            print(f"# model: {note}")
        print(f"# poolings: {', '.join(report.poolings)} (the first is the study's primary pooling)")
        for warning in report.warnings:
            print(f"# warning: {warning}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from .core.disk import damaged_copies, human, sweep_damaged
    from .core.repro import cache_root

    root = cache_root()
    removed = sweep_damaged(root, keep_days=args.keep_days, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path, size in removed:
        print(f"{verb} {path} ({human(size)})")
    gone = {path for path, _ in removed}
    kept = [path for path, _, _ in damaged_copies(root) if path not in gone]
    print(f"{verb} {len(removed)} damaged cache copies ({human(sum(n for _, n in removed))}); {len(kept)} kept; "
          f"cache {root}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .model.prepared import prepare

    out = prepare(_params(args.params), args.out, num_train=args.num_train, num_test=args.num_test,
                  checkpoint=args.checkpoint)
    print(f"prepared data written to {out}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .model.finetune import finetune

    params = _params(args.params)
    seeds = params.finetune.seeds
    if args.save and len(seeds) > 1:
        raise LayerwiseError(f"-s/--save copies one model, the params have {len(seeds)} fine-tuning seeds",
                             params.where, "set `finetune.seeds: [N]` for this run, or drop -s")
    for seed in seeds:  # each seed is its own cache entry, trained and resumable on its own
        res = finetune(params.for_seed(seed), num_train=args.num_train, num_test=args.num_test,
                       epochs=args.num_epochs, save=args.save, data=args.data, checkpoint=args.checkpoint,
                       progress=not args.quiet)
        _print_finetune(res, seed if len(seeds) > 1 else None)
    return 0


def _print_finetune(res, seed: int | None) -> None:
    m = res.metrics
    state = "cached" if res.cached else "trained"
    acc = m.get("accuracy")
    ci = m.get("accuracy_ci") or [None, None]
    print(f"{state}{'' if seed is None else f' (seed {seed})'}: {res.path}")
    if acc is not None:
        print(f"test accuracy {acc:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), macro-F1 {m.get('macro_f1', float('nan')):.3f}, "
              f"majority baseline {m.get('majority_baseline', float('nan')):.3f}, "
              f"binomial p = {m.get('binomial_p', float('nan')):.2g}")


def cmd_analyze(args: argparse.Namespace) -> int:
    from .study.pipeline import analyze

    entry = analyze(_params(args.params), progress=not args.quiet)
    print(f"geometry results: {entry}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .study.pipeline import probe

    entry = probe(_params(args.params), progress=not args.quiet)
    print(f"probe results: {entry}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .study.pipeline import export_tables, load_study

    written = export_tables(load_study(args.params, progress=not args.quiet), args.out)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .book.report import run

    params = [Path(p) for p in (args.params or [DEFAULT_PARAMS])]
    run(params, out_dir=Path(args.out), force=args.force, preview=not args.no_preview, progress=not args.quiet,
        jobs=args.jobs)
    return 0


def cmd_prerender(args: argparse.Namespace) -> int:
    """Quarto's pre-render: ``layerwise run`` for the params files of the active profile(s)
    (``QUARTO_PROFILE``), without the preview."""
    from .book.report import quarto_prerender

    quarto_prerender(Path(args.project_dir) if args.project_dir else None)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .book.preview import build_preview, quarto_hint

    index = build_preview(Path(args.report_dir))
    print(f"preview: {index}")
    print(quarto_hint(), file=sys.stderr)
    return 0


DESCRIPTION = """Layer-by-layer statistics of BERT-like encoders, before and after fine-tuning.

commands: check, prepare, finetune, analyze, probe, export, run, prerender, preview, clean
(`layerwise COMMAND --help` for each)."""

EPILOG = """examples:
  layerwise check params/demo.yml          validate a params file (no heavy work)
  layerwise run --params params/demo.yml   the whole report (cached steps, chapters, preview)
  layerwise preview report                 rebuild the HTML preview

environment:
  LAYERWISE_CACHE    cache folder (default: <project>/.cache/layerwise); entries are found by content
                     hash, so renaming a study reuses its work
  LAYERWISE_DEVICE   cpu, cuda or mps (default: the best available)
  HF_HUB_OFFLINE=1   never contact the Hugging Face Hub

Library messages (transformers, datasets, the Trainer's metrics) go to a log file:
report/_layerwise/layerwise.log for `run`, else $LAYERWISE_CACHE/layerwise.log.
exit status: 0 ok, 2 a problem with the input (one `error: ... Fix: ...` line), 130 interrupted."""

#: (name, one-line help, description) of every subcommand
COMMANDS = {
    "check": ("validate params files and print the resolved configuration",
              "Validate each params file, its data and its model (cheap checks only: nothing is trained "
              "or computed) and print the resolved configuration."),
    "prepare": ("tokenize the selected train/test data and save it (seed step 1)",
                "Tokenize the params' train/test selection and save it to a folder (for `finetune -d`)."),
    "finetune": ("fine-tune the params' model for sequence classification (seed step 2)",
                 "Fine-tune the params' model (cached by content hash; an interrupted run resumes from its "
                 "last checkpoint) and print the test accuracy."),
    "analyze": ("geometry statistics of every state and layer",
                "Run the geometry engine for every state (cached; fine-tunes first when needed)."),
    "probe": ("probes, class geometry and statistical tests",
              "Probes, class geometry and statistical tests on the stored embeddings (cached)."),
    "export": ("write a study's tidy tables (Parquet + CSV) to a folder",
               "Compute (or read from the cache) a study and write its tables as Parquet and CSV."),
    "run": ("execute the report chapters for every params file, then the preview",
            "Compute every study through the caches, execute the chapters that changed and build the HTML "
            "preview. A rerun with nothing changed executes nothing."),
    "prerender": ("Quarto's pre-render step: `run` for the params files of the active profile(s)",
                  "Quarto's pre-render step: `run` (without the preview) for the params files named by the "
                  "active profile(s) (QUARTO_PROFILE)."),
    "clean": ("remove the damaged cache entries kept aside for inspection, with their sizes",
              "Remove the damaged cache entries that were moved aside (<entry>.damaged-<time>-<pid>; kept "
              "7 days, then swept at the next start) and print each one's size and the total."),
    "preview": ("build the pip-only HTML preview of executed chapters",
                "Convert the executed chapters of a report folder into self-contained HTML pages."),
}


#: an example command line per subcommand (shown under its --help)
EXAMPLES = {
    "check": "layerwise check params/demo.yml params/flue.yml",
    "prepare": "layerwise prepare params/demo.yml data/prepared -a 100 -b 50",
    "finetune": "layerwise finetune params/demo.yml -n 1 -s models/demo-finetuned",
    "analyze": "layerwise analyze params/demo.yml -v",
    "probe": "layerwise probe params/demo.yml",
    "export": "layerwise export params/demo.yml tables/",
    "run": "layerwise run --params params/demo.yml --out report",
    "prerender": "quarto render --profile demo   (runs `layerwise prerender` through chapters/prerender.py)",
    "preview": "layerwise preview report   (then open report/preview/index.html)",
    "clean": "layerwise clean --dry-run",
}


def _version() -> str:
    from . import __version__

    try:
        from importlib.metadata import version

        return f"layerwise {version('layerwise')}"
    except Exception:  # not installed (a source checkout on PYTHONPATH)
        return f"layerwise {__version__}"


def _common() -> argparse.ArgumentParser:
    """-v/-q, accepted after the subcommand too (SUPPRESS: not given there = the top level's value)."""
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="also print layerwise's info lines and library messages")
    c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars; print errors only")
    return c


def _sub(sub, name: str, func) -> argparse.ArgumentParser:
    help_, description = COMMANDS[name]
    s = sub.add_parser(name, help=help_, description=description, parents=[_common()],
                       epilog=f"example: {EXAMPLES[name]}")
    s.set_defaults(func=func)
    return s


def _add_study_commands(sub) -> None:
    params_help = "params file (YAML), e.g. params/demo.yml"
    s = _sub(sub, "check", cmd_check)
    s.add_argument("params", nargs="+", help="params files (YAML) to check")
    s = _sub(sub, "prepare", cmd_prepare)
    s.add_argument("params", help=params_help)
    s.add_argument("out", help="folder to write the tokenized data to")
    s.add_argument("-a", "--num-train", type=int, help="training examples (default: the params')")
    s.add_argument("-b", "--num-test", type=int, help="test examples (default: the params')")
    s.add_argument("-c", "--checkpoint", help="tokenizer checkpoint (default: the params' model)")
    s = _sub(sub, "finetune", cmd_finetune)
    s.add_argument("params", help=params_help)
    s.add_argument("-a", "--num-train", type=int, help="training examples")
    s.add_argument("-b", "--num-test", type=int, help="test examples")
    s.add_argument("-n", "--num-epochs", type=float, help="epochs")
    s.add_argument("-s", "--save", help="also copy the fine-tuned model to this directory")
    s.add_argument("-d", "--data", help="a directory written by `layerwise prepare`")
    s.add_argument("-c", "--checkpoint", help="model checkpoint (Hub id or directory) instead of the params' model")
    for name, func in (("analyze", cmd_analyze), ("probe", cmd_probe)):
        _sub(sub, name, func).add_argument("params", help=params_help)
    s = _sub(sub, "export", cmd_export)
    s.add_argument("params", help=params_help)
    s.add_argument("out", help="folder to write the tables to (created when missing)")


def _add_report_commands(sub) -> None:
    s = _sub(sub, "run", cmd_run)
    s.add_argument("--params", nargs="+", help=f"params files (default: {DEFAULT_PARAMS})")
    s.add_argument("--out", default="report", help="the report folder (default: report)")
    s.add_argument("--force", action="store_true", help="re-execute notebooks even when unchanged")
    s.add_argument("--no-preview", action="store_true", help="skip the nbconvert HTML preview")
    s.add_argument("-j", "--jobs", type=int, default=1, help="studies computed at once, in worker processes "
                   "(one GPU each when several are visible, else a share of the CPU cores)")
    s = _sub(sub, "prerender", cmd_prerender)
    s.add_argument("--project-dir", help="the Quarto project (default: the current directory)")
    s = _sub(sub, "clean", cmd_clean)
    s.add_argument("--keep-days", type=float, default=0, help="keep the copies moved aside in the last N days "
                   "(default 0: remove them all)")
    s.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    s = _sub(sub, "preview", cmd_preview)
    s.add_argument("report_dir", nargs="?", default="report",
                   help="the report folder written by `layerwise run` (default: report)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layerwise", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="also print layerwise's info lines and library messages")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars; print errors only")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_study_commands(sub)
    _add_report_commands(sub)
    return p


def _log_file(args: argparse.Namespace) -> Path:
    """Where library chatter goes: the report's ``_layerwise/layerwise.log`` for run/prerender, else
    ``$LAYERWISE_CACHE/layerwise.log``."""
    from .core.repro import PROJECT_ROOT

    if args.command == "run":
        return Path(args.out) / "_layerwise" / "layerwise.log"
    if args.command == "prerender":
        return Path(args.project_dir or ".") / "report" / "_layerwise" / "layerwise.log"
    return Path(os.environ.get("LAYERWISE_CACHE") or PROJECT_ROOT / ".cache" / "layerwise") / "layerwise.log"


def main(argv: list[str] | None = None) -> int:
    from .core import logs

    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logs.setup(verbose=args.verbose, quiet=args.quiet, log_file=_log_file(args), libraries=args.command != "preview")
    try:
        status = args.func(args)
        from .core.repro import damage_outcomes

        damage_outcomes()  # whether each damaged entry moved aside was recomputed (warnings)
        return status
    except LayerwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk fault outside the writes that explain their own (a library's cache)
        from .core.disk import fault

        err = fault(exc, "this file", exc.filename or ".", "point the cache of the tool that wrote it (HF_HOME, "
                    "LAYERWISE_CACHE) at a writable disk with space", verb="read or write")
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        logs.teardown()


if __name__ == "__main__":
    sys.exit(main())
