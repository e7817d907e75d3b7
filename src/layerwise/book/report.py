"""The report: the run that writes each model's study and executes the chapters, the chapter list
Quarto needs, the reproduce page and Quarto's pre-render step. Notebook execution itself (kernel,
template preparation, hashing, papermill, failure triage) is :mod:`layerwise.book.notebooks`; the
sentences that state results are :mod:`layerwise.words.prose`.

``run(params_paths)`` (the ``layerwise run`` command and Quarto's ``pre-render`` step,
``layerwise prerender``):

1. loads every params file, runs the study steps through the caches (``pipeline.load_study``:
   fine-tuning, the geometry engine, the probes) and writes each study to
   ``report/_layerwise/studies/<model>/`` (:func:`layerwise.study.study.write_study`: Parquet tables and
   JSON). That directory is the contract with the chapters: a chapter reads it with one call
   (:func:`layerwise.study.study.read_study`), shows exactly the results whose cache keys the run recorded,
   and its kernel computes nothing;
2. executes ``chapters/geometry.ipynb`` and ``chapters/probing.ipynb`` for each model into
   ``report/<model>/<chapter>.ipynb`` and ``chapters/comparison.ipynb`` once into
   ``report/comparison.ipynb``, with papermill (parameter ``study_dir``, or ``study_dirs`` for the
   comparison), in the kernel of the running interpreter;
3. skips a notebook whose inputs did not change: the hash of the template, the params file, the
   study's key (its cache entries), the layerwise code the chapter imports
   (:func:`layerwise.book.notebooks.chapter_code_hash`), the parameters and the title is stored in the
   notebook's metadata (``metadata.layerwise.input_hash``);
4. writes each notebook atomically; a failing cell raises :class:`LayerwiseError` naming the model,
   the chapter and the cell, and the failed notebook is kept in ``report/_layerwise/failed/``;
5. writes ``report/_layerwise/chapters.yml`` (the book's chapter list, read by ``_quarto.yml`` through
   ``metadata-files``), ``report/_layerwise/reproduce.md`` and ``report/_layerwise/report.json``;
6. builds the pip-only HTML preview (``layerwise.book.preview``) unless ``preview=False``;
7. logs the wall time of each phase of the run (:mod:`layerwise.core.phases`: fine-tuning per seed, the
   engine per state, similarities, probes, each chapter executed, the preview, other) with its share,
   and, when the run did any of that work, writes them to ``report/_layerwise/phases.json``
   (``RunSummary.phases``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import disk
from ..core.errors import LayerwiseError
from ..core import phases as run_phases
from .notebooks import NOTEBOOK_FORMAT, Job, chapter_code_hash, execute, kernel_name
from ..study.pipeline import load_study as compute_study
from ..words.prose_format import fmt
from .files import same_text, write_if_changed
from .render import write_library
from ..core.repro import PROJECT_ROOT, atomic_write_json, code_hash, content_hash, file_hash, is_done
from ..study.study import Study, write_study

CHAPTERS_DIR = PROJECT_ROOT / "chapters"
MODEL_CHAPTERS = ("geometry", "probing", "beyond")
COMPARISON = "comparison"
META_DIR = "_layerwise"
CHAPTER_TITLES = {"geometry": "Geometry", "probing": "Probing and class geometry",
                  "beyond": "Beyond before and after", "comparison": "Comparison across models"}

#: What ``run`` calls to get one model's study: ``(params, progress=...) -> Study`` (the params parsed once, by ``run``).
#: :func:`layerwise.study.pipeline.load_study` by default; tests pass a synthetic one (a Python callable).
StudyLoader = Callable[..., Study]


# ==================================================================================================
# the run
# ==================================================================================================

@dataclass
class RunSummary:
    """What ``run`` did: notebooks executed and skipped (unchanged), the files Quarto and the preview
    read, and the time taken."""

    executed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    chapters_yml: Path | None = None
    reproduce_md: Path | None = None
    manifest: Path | None = None
    preview: Path | None = None
    seconds: float = 0.0
    #: each phase's wall time and share of ``seconds`` (:func:`layerwise.core.phases.table`)
    phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def notebooks(self) -> list[Path]:
        """Every notebook of the run, executed or skipped."""
        return self.executed + self.skipped

    def __str__(self) -> str:
        """One line for the terminal."""
        text = (f"{len(self.executed)} chapter(s) executed, {len(self.skipped)} unchanged, "
                f"in {self.seconds:.1f} s")
        if self.preview:
            text += f"; preview: {self.preview}"
        return text


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX separators), absolute when on another drive."""
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return path.resolve().as_posix()


def study_dir(out_dir: Path, name: str) -> Path:
    """Where ``run`` writes the study of one model for the chapters (``<out>/_layerwise/studies/<name>``)."""
    return out_dir / META_DIR / "studies" / name


def _write_one(load_study: StudyLoader, params, directory: Path, progress: bool
               ) -> tuple[str, dict[str, Any], list[tuple[str, float]]]:
    """Compute (or read) one study and write it to ``directory``: its key, manifest and the phases
    recorded while computing it (a module-level function: :mod:`layerwise.core.parallel` runs it in a
    worker process)."""
    run_phases.take()
    study = load_study(params, progress=progress)
    if not _study_current(directory, study):
        with run_phases.timed("study files"):
            write_study(study, directory)
    return study.key, dict(study.manifest), run_phases.take()


def write_studies(params_list: Sequence, out_dir: Path, load_study: StudyLoader, progress: bool, jobs: int = 1
                  ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Compute (or read from the caches) the study of every params file and write it to
    :func:`study_dir`; return the study keys and manifests by model name (for the input hashes and
    the reproduce page). One study is in memory at a time, or one per worker with ``jobs`` > 1
    (:func:`layerwise.core.parallel.run_parallel`: spawned processes, one GPU or a share of the cores each)."""
    if progress:
        for params in params_list:
            print(f"layerwise: study {params.name} ({params.display_name}): computing or reading the cached results",
                  file=sys.stderr)
    calls = [(load_study, params, study_dir(out_dir, params.name), progress) for params in params_list]  # parsed once
    if jobs > 1 and len(calls) > 1:
        from ..core.parallel import run_parallel

        results = run_parallel(_write_one, calls, jobs)
    else:
        results = [_write_one(*call) for call in calls]
    keys = {params.name: key for params, (key, _, _) in zip(params_list, results)}
    manifests = {params.name: manifest for params, (_, manifest, _) in zip(params_list, results)}
    for _, _, recorded in results:  # back in this process's records (run() collects them)
        for name, seconds in recorded:
            run_phases.record(name, seconds)
    return keys, manifests


def _study_current(directory: Path, study: Study) -> bool:
    """Whether ``directory`` already holds this study (same results, same params): then nothing is
    written, and a run with nothing to change writes nothing (a read-only report folder works)."""
    import json

    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        saved = json.loads((directory / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("study_key") == study.key and saved.get("params") == study.params.model_dump(mode="json")
            and saved.get("path") == (str(study.params.path) if study.params.path else None) and is_done(directory))


def chapter_jobs(params_list: Sequence, study_keys: Mapping[str, str], out_dir: Path, *,
                 chapters: Sequence[str], comparison: bool, chapters_dir: Path, cwd: Path) -> list[Job]:
    """The notebooks of a run (per model chapters, then the comparison) with their inputs: template,
    params file, study key, the layerwise code the chapter imports, parameters, title."""
    jobs = []
    for params in params_list:
        for chapter in chapters:
            template = chapters_dir / f"{chapter}.ipynb"
            title = f"{CHAPTER_TITLES.get(chapter, chapter.title())}: {params.display_name}"
            parameters = {"study_dir": _relative(study_dir(out_dir, params.name), cwd)}
            inputs = {"template": file_hash(template), "chapter": chapter, "params": file_hash(Path(params.path)),
                      "results": study_keys[params.name], "code": chapter_code_hash(template),
                      "parameters": parameters, "title": title, "format": NOTEBOOK_FORMAT}
            jobs.append(Job(chapter, params.name, template, out_dir / params.name / f"{chapter}.ipynb",
                            parameters, title, inputs))
    if comparison:
        template = chapters_dir / f"{COMPARISON}.ipynb"
        parameters = {"study_dirs": [_relative(study_dir(out_dir, p.name), cwd) for p in params_list]}
        inputs = {"template": file_hash(template), "chapter": COMPARISON,
                  "params": [file_hash(Path(p.path)) for p in params_list],
                  "results": [study_keys[p.name] for p in params_list], "code": chapter_code_hash(template),
                  "parameters": parameters, "format": NOTEBOOK_FORMAT}
        jobs.append(Job(COMPARISON, None, template, out_dir / f"{COMPARISON}.ipynb", parameters,
                        CHAPTER_TITLES[COMPARISON], inputs))
    return jobs


def execute_jobs(jobs: Sequence[Job], *, force: bool, cwd: Path, failed_dir: Path, progress: bool,
                 summary: RunSummary, library: Path | None = None) -> RunSummary:
    """Execute every job whose notebook is missing or out of date (all of them with ``force``),
    recording executed and skipped notebooks in ``summary``; the kernel is looked up only when a
    notebook has to run."""
    from tqdm.auto import tqdm

    kernel: str | None = None
    bar = tqdm(jobs, desc="chapters", unit="notebook", disable=not progress, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(job.label)
        if not force and job.is_current():
            summary.skipped.append(job.output)
            continue
        kernel = kernel or kernel_name()
        with run_phases.timed(f"chapter {job.label}"):
            execute(job, kernel=kernel, cwd=cwd, failed_dir=failed_dir, label_prefix=job.model, library=library)
        summary.executed.append(job.output)
    bar.close()
    return summary


def book_chapters(params_list: Sequence, out_dir: Path, chapters: Sequence[str], comparison: bool,
                  cwd: Path) -> list:
    """The ``book: chapters`` entries of the run: one part per model with its chapters, then the
    comparison (paths relative to the Quarto project directory ``cwd``)."""
    entries: list[Any] = []
    for params in params_list:
        files = [_relative(out_dir / params.name / f"{c}.ipynb", cwd) for c in chapters
                 if (out_dir / params.name / f"{c}.ipynb").exists()]
        if files:
            entries.append({"part": params.display_name, "chapters": files})
    if comparison and (out_dir / f"{COMPARISON}.ipynb").exists():
        entries.append(_relative(out_dir / f"{COMPARISON}.ipynb", cwd))
    return entries


def write_chapters_yml(path: Path, entries: list) -> Path:
    """The chapter list Quarto reads (``metadata-files`` of ``_quarto.yml``). Quarto checks that every
    chapter exists BEFORE it runs ``pre-render`` (quarto-cli issue 11567) and re-reads the
    configuration after it, so this file is written at the end of a successful run and lists only
    existing notebooks: a later ``quarto render`` starts from a valid list even on a fresh profile."""
    import yaml

    text = ("# Generated by layerwise (report.run): the chapters of the last successful run.\n"
            "# Merged into the book by `metadata-files` in _quarto.yml. Do not edit.\n"
            + yaml.safe_dump({"book": {"chapters": entries}}, sort_keys=False, allow_unicode=True))
    write_if_changed(path, text)
    return path


def _machine_rows(machine: Mapping[str, Any], finetune_precision: str | None) -> list[tuple[str, str]]:
    """The reproduce page's rows on the precision and the machine (the analysis manifest's ``machine``)."""
    rows = []
    if machine.get("precision"):
        rows.append(("analysis precision", f"`{machine['precision']}`"))
    if finetune_precision:
        rows.append(("fine-tuning precision", f"`{finetune_precision}`"))
    if machine.get("cpu"):
        flags = ", ".join(machine.get("cpu_bf16_flags") or []) or "none"
        rows.append(("CPU", f"{machine['cpu']} ({machine.get('threads', '?')} threads; bf16 flags: {flags}; "
                            f"torch capability {machine.get('cpu_capability', '?')})"))
    if machine.get("gpu"):
        rows.append(("GPU", str(machine["gpu"])))
    return rows


def _duplicate_rows(dup: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The Reproduce page's row on repeated texts (:mod:`layerwise.inputs.duplicates`): copies removed before the
    split, test sentences with a near-duplicate among the fine-tuning and probe sentences."""
    if not dup:
        return []
    text = (f"{dup.get('removed', 0)} repeated rows removed before the split ({dup.get('normalisation', '')}); "
            f"{dup.get('near_test', 0)} test sentences with a near-duplicate in fine-tuning or probe "
            f"(character {dup.get('shingle', 5)}-gram Jaccard >= {dup.get('near_threshold', '')}; kept)")
    return [("repeated texts", text)]


def reproduce_markdown(params_list: Sequence, manifests: Mapping[str, Mapping[str, Any]], *,
                       profile: str | None = None, cwd: Path) -> str:
    """The reproduce page's generated part: per model the params file, model, data selection, cache
    entries, library versions, git commit and the commands that rebuild the report."""
    import yaml

    lines = ["## Commands", "", "```bash",
             "make report            # the default (demo) study and the HTML preview, without Quarto"]
    params_args = " ".join(_relative(Path(p.path), cwd) for p in params_list)
    lines.append(f"layerwise run --params {params_args}   # this run's chapters")
    lines.append(f"quarto render{' --profile ' + profile if profile else ''}   # the book (HTML and PDF)")
    lines += ["```", ""]
    for params in params_list:
        m = manifests.get(params.name, {}) or {}
        lines += [f"## {params.display_name} (`{params.name}`)", ""]
        rows = [("params file", f"`{_relative(Path(params.path), cwd)}`"),
                ("model", f"`{params.model.id}`"
                 + (f" at revision `{params.model.revision}`" if params.model.revision else "")),
                ("git commit", f"`{m.get('git_commit') or 'n/a'}`"), ("device", f"`{m.get('device', 'n/a')}`"),
                ("platform", f"`{m.get('platform', 'n/a')}`"), ("created", f"{m.get('created', 'n/a')}")]
        rows += _machine_rows(m.get("machine") or {}, m.get("finetune_precision"))
        sel = m.get("selection") or {}
        if sel:
            counts = [f"{len(sel[k])} {k.split('_')[0]}" for k in ("train_index", "test_index")
                      if isinstance(sel.get(k), list)]
            counts += [f"{sel[k]} {k.split('_')[1]}" for k in ("num_train", "num_test") if k in sel]
            rows.append(("data selection", f"`{sel.get('hash', '')}`" + (f" ({', '.join(counts)} examples)"
                                                                          if counts else "")))
            rows += _duplicate_rows(sel.get("duplicates"))
        for k, v in (m.get("cache_entries") or {}).items():
            if v:
                rows.append((f"cache entry ({k})", f"`{Path(v).name}`"))
        timings = m.get("timings_s") or {}
        for k, v in timings.items():
            rows.append((f"geometry pass, {k} (s)", fmt(v, 1)))
        lines += ["| item | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows] + [""]
        versions = m.get("versions") or {}
        if versions:
            lines += ["Library versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
        lines += ["```yaml", yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False,
                                            allow_unicode=True).rstrip(), "```", ""]
    return "\n".join(lines)


def _load_all_params(params_paths: Sequence[str | Path], chapters: Sequence[str], comparison: bool,
                     chapters_dir: Path) -> list:
    """The validated params of the run; every chapter template must exist and every model have its
    own name (it names ``report/<name>/``)."""
    from ..inputs.config import load_params

    if not params_paths:
        raise LayerwiseError("no params file given", "layerwise run", "pass --params params/demo.yml")
    params_list = [load_params(p) for p in params_paths]
    names = [p.name for p in params_list]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LayerwiseError(f"several params files use the name {dupes[0]!r}", "layerwise run",
                             "give every params file its own `name:` (it names report/<name>/)")
    for chapter in (*chapters, *([COMPARISON] if comparison else [])):
        if not (chapters_dir / f"{chapter}.ipynb").is_file():
            raise LayerwiseError(f"chapter template {chapter}.ipynb not found", str(chapters_dir),
                                 "run from the project directory (where chapters/ is)")
    return params_list


def write_run_manifest(path: Path, params_list: Sequence, jobs: Sequence[Job], out_dir: Path, *, comparison: bool,
                       profile: str | None, cwd: Path) -> Path:
    """``report/_layerwise/report.json``: the run's models, their chapters and titles (the preview
    reads it to order its pages). Left as it is when only its ``created`` time would change."""
    import json

    record = {
        "models": [{"name": p.name, "title": p.display_name, "params": _relative(Path(p.path), cwd),
                    "chapters": [{"chapter": j.chapter, "title": j.title, "path": _relative(j.output, out_dir)}
                                 for j in jobs if j.model == p.name]} for p in params_list],
        "comparison": ({"chapter": COMPARISON, "title": CHAPTER_TITLES[COMPARISON],
                        "path": f"{COMPARISON}.ipynb"} if comparison else None),
        "profile": profile}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old, dict) and {k: v for k, v in old.items() if k != "created"} == record:
            return path
    except (OSError, ValueError):
        pass
    atomic_write_json(path, {**record, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return path


def run(params_paths: Sequence[str | Path], out_dir: Path = Path("report"), force: bool = False,
        preview: bool = True, *, load_study: StudyLoader | None = None, chapters: Sequence[str] = MODEL_CHAPTERS,
        comparison: bool = True, chapters_dir: Path = CHAPTERS_DIR, progress: bool = True,
        profile: str | None = None, jobs: int = 1) -> RunSummary:
    """Run the study for every params file, write it for the chapters and execute the report's
    chapters (see the module doc). ``load_study(params, progress=...)`` (the parsed params) returns one model's
    :class:`~layerwise.study.study.Study`: :func:`layerwise.study.pipeline.load_study` (through the caches) by
    default; tests pass a synthetic one. ``jobs``: studies computed at once in worker processes (the
    chapters run after every study is written). A run with nothing to change writes nothing (so it
    works on a read-only report folder); when a write to it fails (read-only, no permission, no space),
    one :class:`LayerwiseError` names the path (:func:`layerwise.core.disk.writing`)."""
    cwd = Path.cwd()
    out_dir = Path(out_dir)
    out_dir = out_dir if out_dir.is_absolute() else cwd / out_dir
    # (a fault of the cache is explained where it is written: only the report folder's are this one's)
    with disk.writing("to the report folder", out_dir, "write the report elsewhere: layerwise run --out DIR",
                      within=True):
        return _run(params_paths, out_dir, force, preview, load_study=load_study, chapters=chapters,
                    comparison=comparison, chapters_dir=chapters_dir, progress=progress, profile=profile, cwd=cwd,
                    jobs=jobs)


def _run(params_paths: Sequence[str | Path], out_dir: Path, force: bool, preview: bool, *,
         load_study: StudyLoader | None, chapters: Sequence[str], comparison: bool, chapters_dir: Path,
         progress: bool, profile: str | None, cwd: Path, jobs: int = 1) -> RunSummary:
    t0 = time.perf_counter()
    run_phases.take()  # records left by earlier calls in this process
    params_list = _load_all_params(params_paths, chapters, comparison, chapters_dir)
    keys, manifests = write_studies(params_list, out_dir, load_study or compute_study, progress, jobs)
    comparison = comparison and len(params_list) > 1  # one model: the comparison would repeat its chapters
    notebook_jobs = chapter_jobs(params_list, keys, out_dir, chapters=chapters, comparison=comparison,
                        chapters_dir=chapters_dir, cwd=cwd)
    meta = out_dir / META_DIR
    library = write_library(meta / "vega")
    summary = execute_jobs(notebook_jobs, force=force, cwd=cwd, failed_dir=meta / "failed", progress=progress,
                           summary=RunSummary(), library=library)
    entries = book_chapters(params_list, out_dir, chapters, comparison, cwd)
    summary.chapters_yml = write_chapters_yml(meta / "chapters.yml", entries)
    _write_summary(params_list, out_dir, manifests, cwd, [keys[p.name] for p in params_list])
    summary.reproduce_md = meta / "reproduce.md"
    write_if_changed(summary.reproduce_md, reproduce_markdown(params_list, manifests, profile=profile, cwd=cwd))
    summary.manifest = write_run_manifest(meta / "report.json", params_list, notebook_jobs, out_dir,
                                          comparison=comparison, profile=profile, cwd=cwd)
    if preview:
        summary.preview = _preview(out_dir, notebook_jobs, progress=progress)
    summary.seconds = time.perf_counter() - t0
    _record_phases(summary, meta / "phases.json", progress)
    if progress:
        print(f"layerwise: {summary}", file=sys.stderr)
    return summary


def _write_summary(params_list: Sequence, out_dir: Path, manifests: Mapping[str, Mapping[str, Any]],
                   cwd: Path, study_keys: Sequence[str] = ()) -> None:
    """Page 1, ``_layerwise/summary.md`` (:func:`layerwise.book.summary.summary_page`), and its figures; links
    relative to the project (``cwd``), where the book's index includes the page. It is kept when the one
    there was written from the same studies (their result keys), params, links and page code (recorded in
    ``_layerwise/summary.key``): judging every statistic again took most of an unchanged rerun."""
    from .summary import summary_page
    from ..study.study import read_study

    meta = out_dir / META_DIR
    link_base = _relative(out_dir, cwd)
    key = content_hash({"results": list(study_keys), "params": [p.model_dump(mode="json") for p in params_list],
                        "links": str(link_base), "code": code_hash("book.summary")}) + "\n"
    record = meta / "summary.key"
    if study_keys and (meta / "summary.md").is_file() and record.is_file() and record.read_text() == key:
        return
    studies = [read_study(study_dir(out_dir, p.name)) for p in params_list]
    text = summary_page(studies, meta, manifests, link_base=link_base)
    write_if_changed(meta / "summary.md", text)
    if study_keys:
        write_if_changed(record, key)


def _record_phases(summary: RunSummary, path: Path, progress: bool) -> None:
    """Put the run's phases in ``summary.phases``, log them in one line, and write them to ``path``
    (atomically) when the run did any work: a run with nothing to change writes nothing."""
    import logging

    recorded = run_phases.take()
    summary.phases = run_phases.table(recorded, summary.seconds)
    text = run_phases.line(summary.phases)
    logging.getLogger(__name__).info(text)
    if progress:
        print(f"layerwise: {text}", file=sys.stderr)
    if recorded:
        atomic_write_json(path, {"seconds": round(summary.seconds, 3), "phases": summary.phases,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _preview(out_dir: Path, jobs: Sequence[Job], *, progress: bool) -> Path:
    """Build the HTML preview unless the one there was built from the same notebooks, metadata files,
    book pages (Methods, Reproduce, introduction) and preview code (recorded in ``_layerwise/preview.key``); print the Quarto hint when built."""
    from .preview import PREVIEW_DIR, build_preview, quarto_hint, source_pages

    meta = out_dir / META_DIR
    stamp_file, index = meta / "preview.key", out_dir / PREVIEW_DIR / "index.html"
    files = [j.output for j in jobs] + [meta / "reproduce.md", meta / "report.json", meta / "chapters.yml",
                                      meta / "summary.md", *sorted((meta / "figures").glob("*.svg")), *source_pages()]
    stamp = content_hash({"files": [file_hash(f) if f.is_file() else None for f in files],
                          "code": code_hash("book.preview")}) + "\n"
    if index.is_file() and same_text(stamp_file, stamp):
        return index
    with run_phases.timed("preview"):
        index = build_preview(out_dir)
    write_if_changed(stamp_file, stamp)
    if progress:
        print(quarto_hint(), file=sys.stderr)
    return index


# ==================================================================================================
# Quarto pre-render
# ==================================================================================================

def profile_params(project_dir: Path, profiles: Sequence[str]) -> list[Path]:
    """The params files named by the active Quarto profiles: key ``layerwise: params:`` of each
    ``_quarto-<profile>.yml`` (in profile order, without duplicates)."""
    import yaml

    found: list[Path] = []
    for name in profiles:
        for ext in (".yml", ".yaml"):
            f = project_dir / f"_quarto-{name}{ext}"
            if f.is_file():
                data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
                for p in ((data.get("layerwise") or {}).get("params") or []):
                    path = Path(p)
                    if path not in found:
                        found.append(path)
                break
    return found


def quarto_prerender(project_dir: Path | None = None, env: Mapping[str, str] | None = None, *,
                     load_study: StudyLoader | None = None) -> RunSummary:
    """Quarto's ``pre-render`` step (``layerwise prerender``, run by ``chapters/prerender.py``): the
    active profiles come from ``QUARTO_PROFILE`` (Quarto sets it to the resolved list, the default
    profile included), their params files from the profile files; then :func:`run` without the
    preview (``load_study`` as in :func:`run`)."""
    env = os.environ if env is None else env
    project_dir = Path(project_dir or Path.cwd())
    profiles = [p.strip() for p in env.get("QUARTO_PROFILE", "").split(",") if p.strip()]
    params = profile_params(project_dir, profiles)
    if not params:
        raise LayerwiseError(f"no params files for the Quarto profile(s) {profiles or '(none)'}",
                             "_quarto-<profile>.yml",
                             "render with --profile demo or --profile flue, or list params files under "
                             "`layerwise: params:` in the profile's _quarto-<profile>.yml")
    return run(params, out_dir=project_dir / "report", preview=False, profile=",".join(profiles) or None,
               load_study=load_study)
