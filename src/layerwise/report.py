"""The report: chapter notebooks executed per model with papermill, the chapter list Quarto needs,
the reproduce page (the sentences that state results are in :mod:`layerwise.prose`).

``run(params_paths)`` (the ``layerwise run`` command and Quarto's ``pre-render`` step):

1. loads every params file and runs the study steps through the caches (``pipeline.load_study``:
   fine-tuning, the geometry engine, the probes) and saves each study for the chapters
   (``report/_layerwise/studies/<model>.pickle``): a chapter shows exactly the results whose cache
   keys the run recorded, and its kernel computes nothing;
2. executes ``chapters/geometry.ipynb`` and ``chapters/probing.ipynb`` for each model into
   ``report/<model>/<chapter>.ipynb`` and ``chapters/comparison.ipynb`` once into
   ``report/comparison.ipynb``, with papermill (parameters ``params_path`` / ``params_paths``,
   ``snapshot`` / ``snapshots`` and ``loader`` injected), in the kernel of the running interpreter;
3. skips a notebook whose inputs did not change: the hash of the template, the params files, the
   layerwise source files and the result cache keys is stored in the notebook's metadata
   (``metadata.layerwise.input_hash``);
4. writes each notebook to a temporary file and renames it only when every cell succeeded; a failing
   cell raises :class:`LayerwiseError` naming the model, the chapter and the cell, and the failed
   notebook is kept in ``report/_layerwise/failed/`` for inspection (never where Quarto reads);
5. writes ``report/_layerwise/chapters.yml`` (the book's chapter list, read by ``_quarto.yml`` through
   ``metadata-files``), ``report/_layerwise/reproduce.md`` and ``report/_layerwise/report.json``;
6. builds the pip-only HTML preview (``layerwise.preview``) unless ``preview=False``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LayerwiseError
from .prose import fmt
from .repro import PROJECT_ROOT, atomic_write_bytes, atomic_write_json, atomic_write_text, content_hash, file_hash

PACKAGE_DIR = Path(__file__).resolve().parent
CHAPTERS_DIR = PROJECT_ROOT / "chapters"
MODEL_CHAPTERS = ("geometry", "probing")
COMPARISON = "comparison"
DEFAULT_LOADER = "layerwise.pipeline:load_study"
META_DIR = "_layerwise"
#: bump when the way notebooks are prepared changes (forces re-execution)
FORMAT_VERSION = 1
CHAPTER_TITLES = {"geometry": "Geometry", "probing": "Probing and class geometry",
                  "comparison": "Comparison across models"}


# ==================================================================================================
# loading studies (in the orchestrator and in the chapter notebooks)
# ==================================================================================================

def resolve_loader(spec: str | Callable) -> Callable:
    """``"package.module:function"`` -> the function (the study loader; default
    ``layerwise.pipeline:load_study``)."""
    if callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise LayerwiseError(f"loader {spec!r} is not of the form 'module:function'", "report.resolve_loader",
                             f"use {DEFAULT_LOADER!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise LayerwiseError(f"cannot import loader {spec!r}: {exc}", "report.resolve_loader",
                             f"use {DEFAULT_LOADER!r} or make the module importable") from None


def save_snapshot(study, path: Path) -> Path:
    """Write the study a run computed (every table, the params, the manifest) for its chapters."""
    import pickle

    atomic_write_bytes(path, pickle.dumps(study, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load(params_path: str | Path, loader: str | Callable = DEFAULT_LOADER, snapshot: str | Path | None = None,
         progress: bool = False):
    """The :class:`~layerwise.pipeline.Study` of one params file, as a chapter reads it.

    ``snapshot``: the study ``run`` computed and saved for this run's chapters (so a chapter shows
    exactly the results whose cache keys the run recorded, and its kernel never imports the model
    stack or recomputes anything); when empty or missing (a template opened by hand in Jupyter),
    ``loader`` computes or reads the study through the caches, quietly."""
    import pickle
    import warnings

    if snapshot and Path(snapshot).is_file():
        with open(snapshot, "rb") as fh:
            return pickle.load(fh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resolve_loader(loader)(params_path, progress=progress)


def load_all(params_paths: Sequence[str | Path], loader: str | Callable = DEFAULT_LOADER,
             snapshots: Sequence[str | Path] | None = None) -> list:
    """The studies of several params files (the comparison chapter)."""
    snapshots = list(snapshots or [])
    return [load(p, loader, snapshots[i] if i < len(snapshots) else None) for i, p in enumerate(params_paths)]


def combine(studies: Sequence, table: str = "tidy") -> pd.DataFrame:
    """One table (``tidy``, ``cka``, ...) of several studies, concatenated."""
    return pd.concat([getattr(s, table) for s in studies], ignore_index=True)


def study_key(study) -> str:
    """A hash naming the cached results a study was read from (its cache entries and keys)."""
    manifest = getattr(study, "manifest", {}) or {}
    entries = manifest.get("cache_entries") or {}
    paths = getattr(study, "paths", {}) or {}
    return content_hash({"entries": {k: Path(v).name for k, v in entries.items() if v},
                         "paths": {k: Path(v).name for k, v in paths.items() if v},
                         "cache_key": manifest.get("cache_key")})


# ==================================================================================================
# notebooks: kernel, template preparation, hashing, execution
# ==================================================================================================

def kernel_name() -> str:
    """A Jupyter kernel that runs this interpreter: ``python3`` when its spec launches this Python (or
    the generic ``python``, which jupyter_client maps to ``sys.executable``), else a ``layerwise``
    spec installed into this environment's prefix."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    for name in ("python3", "layerwise"):
        try:
            spec = ksm.get_kernel_spec(name)
        except NoSuchKernel:
            continue
        exe = spec.argv[0] if spec.argv else ""
        generic = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
        if exe in generic or (os.path.exists(exe) and os.path.realpath(exe) == os.path.realpath(sys.executable)):
            return name
    try:
        from ipykernel.kernelspec import install

        install(kernel_name="layerwise", display_name="Python (layerwise)", prefix=sys.prefix)
    except Exception as exc:  # permissions, missing ipykernel
        raise LayerwiseError(f"no Jupyter kernel for {sys.executable} and none could be installed ({exc})",
                             "report.kernel_name",
                             f"run `{sys.executable} -m ipykernel install --sys-prefix`") from None
    return "layerwise"


_LABEL_RE = re.compile(r"^(#\|\s*label:\s*)(fig|tbl|sec)-", re.M)
_REF_RE = re.compile(r"(?<![\w@])@(fig|tbl|sec)-")


def prepare_template(template: Path, *, title: str, label_prefix: str | None):
    """The template notebook made ready for one model: the front matter (first raw cell, YAML between
    ``---``) gets ``title``; cross-reference labels ``fig-x``/``tbl-x`` (and ``@fig-x`` references)
    become ``fig-<prefix>-x`` so that the labels stay unique across the book's chapters."""
    import nbformat
    import yaml

    nb = nbformat.read(template, as_version=4)
    front: dict[str, Any] = {}
    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.lstrip().startswith("---"):
        body = nb.cells[0].source.strip().strip("-").strip()
        front = yaml.safe_load(body) or {}
        nb.cells.pop(0)
    front["title"] = title
    fm = nbformat.v4.new_raw_cell("---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---")
    fm.id = "front-matter"
    nb.cells.insert(0, fm)
    if label_prefix:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = _LABEL_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}-{label_prefix}-", cell.source)
            elif cell.cell_type == "markdown":
                cell.source = _REF_RE.sub(lambda m: f"@{m.group(1)}-{label_prefix}-", cell.source)
    return nb


#: The code that runs inside a chapter on the result tables. The code that computes the tables
#: (data, models, fine-tuning, the geometry engine, metrics, probes, statistics) is already part of
#: the results' cache keys, which are inputs of every chapter too.
CHAPTER_CODE = ("charts", "prose", "report", "pipeline", "config", "errors", "repro")


def source_hash() -> str:
    """Hash of the layerwise code a chapter runs (:data:`CHAPTER_CODE`): changing it re-executes the
    chapters."""
    return content_hash({m: file_hash(PACKAGE_DIR / f"{m}.py") for m in CHAPTER_CODE})


def notebook_hash(path: Path) -> str | None:
    """The input hash stored in an executed notebook's metadata, or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh).get("metadata", {})
        return meta.get("layerwise", {}).get("input_hash")
    except (OSError, ValueError):
        return None


def error_outputs(nb) -> list[tuple[int, str]]:
    """(cell index, message) of every error output of a notebook (``nbformat`` node or dict)."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []) or []:
            if o.get("output_type") == "error":
                out.append((i, f"{o.get('ename')}: {o.get('evalue')}"))
    return out


@dataclass
class Job:
    """One notebook to produce."""

    chapter: str
    model: str | None
    template: Path
    output: Path
    parameters: dict[str, Any]
    title: str
    inputs: dict[str, Any]

    @property
    def label(self) -> str:
        """``model/chapter`` (or the chapter alone), for progress and messages."""
        return f"{self.model}/{self.chapter}" if self.model else self.chapter

    @property
    def input_hash(self) -> str:
        """Hash of everything the notebook depends on (see :func:`plan`)."""
        return content_hash(self.inputs)


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX separators), absolute when on another drive."""
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return path.resolve().as_posix()


def execute(job: Job, *, kernel: str, cwd: Path, failed_dir: Path, label_prefix: str | None = None) -> Path:
    """Execute one chapter with papermill into a temporary file, then rename it to ``job.output``;
    raise :class:`LayerwiseError` naming the model, chapter and cell on failure."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    job.output.parent.mkdir(parents=True, exist_ok=True)
    nb = prepare_template(job.template, title=job.title, label_prefix=label_prefix)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".lw-run-", dir=job.output.parent))
    src = tmp_dir / f"{job.chapter}.template.ipynb"
    out = tmp_dir / f"{job.chapter}.ipynb"
    nbformat.write(nb, src)
    where = f"{'model ' + job.model + ', ' if job.model else ''}chapter {job.chapter}"
    try:
        try:
            result = pm.execute_notebook(str(src), str(out), parameters=job.parameters, kernel_name=kernel,
                                         cwd=str(cwd), progress_bar=False, log_output=False,
                                         request_save_on_cell_execute=False, **_engine_kwargs())
        except PapermillExecutionError as exc:
            failed = _keep_failed(out, failed_dir, job)
            count = f" (execution count {exc.exec_count})" if exc.exec_count else ""
            first = (exc.source or "").strip().splitlines()
            first = [ln for ln in first if not ln.startswith("#|")]
            code = f" `{first[0][:80]}`" if first else ""
            raise LayerwiseError(f"cell {exc.cell_index}{count}{code} failed with {exc.ename}: {exc.evalue}",
                                 where, f"see the failed notebook {failed}" if failed else
                                 "run the chapter in Jupyter to debug it") from None
        except LayerwiseError:
            raise
        except Exception as exc:  # kernel died, could not start, timeout
            failed = _keep_failed(out, failed_dir, job)
            raise LayerwiseError(f"the notebook could not be executed: {type(exc).__name__}: {exc}", where,
                                 f"see {failed}" if failed else "check that ipykernel works in this environment"
                                 ) from None
        errors = error_outputs(result)
        if errors:  # cells tagged raises-exception would get here
            i, msg = errors[0]
            raise LayerwiseError(f"cell {i} has an error output ({msg})", where, "fix the chapter template")
        result.metadata["layerwise"] = {"input_hash": job.input_hash, "chapter": job.chapter, "model": job.model,
                                        "title": job.title, "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                        "format": FORMAT_VERSION}
        nbformat.validate(result)
        nbformat.write(result, out)
        os.replace(out, job.output)
        return job.output
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _engine_kwargs() -> dict[str, Any]:
    """Kernel options: ipykernel logs only errors (its warning about unencrypted localhost TCP would
    print once per chapter; the kernel listens on 127.0.0.1 only)."""
    return {"extra_arguments": ["--IPKernelApp.log_level=ERROR"]}


def _keep_failed(out: Path, failed_dir: Path, job: Job) -> Path | None:
    """Move a failed notebook out of the report (to ``failed_dir``) and return its new path."""
    if not out.exists():
        return None
    failed_dir.mkdir(parents=True, exist_ok=True)
    dest = failed_dir / (f"{job.model}-{job.chapter}.ipynb" if job.model else f"{job.chapter}.ipynb")
    shutil.move(str(out), dest)
    return dest


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


def snapshot_path(out_dir: Path, name: str) -> Path:
    """Where ``run`` saves the study of one model for the chapters."""
    return out_dir / META_DIR / "studies" / f"{name}.pickle"


def plan(params_list: Sequence, studies_keys: Mapping[str, str], out_dir: Path, *, loader: str,
         chapters: Sequence[str], comparison: bool, chapters_dir: Path, cwd: Path) -> list[Job]:
    """The notebooks of a run (per model chapters, then the comparison) with their input hashes
    (template, params file, result cache keys, layerwise source, parameters, title)."""
    src = source_hash()
    jobs = []
    for params in params_list:
        path = Path(params.path)
        rel = _relative(path, cwd)
        for chapter in chapters:
            template = chapters_dir / f"{chapter}.ipynb"
            title = f"{CHAPTER_TITLES.get(chapter, chapter.title())}: {params.display_name}"
            parameters = {"params_path": rel, "loader": loader,
                          "snapshot": _relative(snapshot_path(out_dir, params.name), cwd)}
            inputs = {"template": file_hash(template), "chapter": chapter, "params": file_hash(path),
                      "results": studies_keys[params.name], "source": src, "parameters": parameters,
                      "title": title, "format": FORMAT_VERSION}
            jobs.append(Job(chapter, params.name, template, out_dir / params.name / f"{chapter}.ipynb",
                            parameters, title, inputs))
    if comparison:
        template = chapters_dir / f"{COMPARISON}.ipynb"
        rels = [_relative(Path(p.path), cwd) for p in params_list]
        parameters = {"params_paths": rels, "loader": loader,
                      "snapshots": [_relative(snapshot_path(out_dir, p.name), cwd) for p in params_list]}
        inputs = {"template": file_hash(template), "chapter": COMPARISON,
                  "params": [file_hash(Path(p.path)) for p in params_list],
                  "results": [studies_keys[p.name] for p in params_list], "source": src,
                  "parameters": parameters, "format": FORMAT_VERSION}
        jobs.append(Job(COMPARISON, None, template, out_dir / f"{COMPARISON}.ipynb", parameters,
                        CHAPTER_TITLES[COMPARISON], inputs))
    return jobs


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
    atomic_write_text(path, text)
    return path


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
        sel = m.get("selection") or {}
        if sel:
            counts = [f"{len(sel[k])} {k.split('_')[0]}" for k in ("train_index", "test_index")
                      if isinstance(sel.get(k), list)]
            counts += [f"{sel[k]} {k.split('_')[1]}" for k in ("num_train", "num_test") if k in sel]
            rows.append(("data selection", f"`{sel.get('hash', '')}`" + (f" ({', '.join(counts)} examples)"
                                                                          if counts else "")))
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


def run(params_paths: Sequence[str | Path], out_dir: Path = Path("report"), force: bool = False,
        preview: bool = True, *, loader: str = DEFAULT_LOADER, chapters: Sequence[str] = MODEL_CHAPTERS,
        comparison: bool = True, chapters_dir: Path = CHAPTERS_DIR, progress: bool = True,
        profile: str | None = None) -> RunSummary:
    """Run the study for every params file and execute the report's chapters (see the module doc).
    ``loader`` is the ``module:function`` that returns a study (tests pass a synthetic one)."""
    from tqdm.auto import tqdm

    from .config import load_params

    t0 = time.perf_counter()
    if not params_paths:
        raise LayerwiseError("no params file given", "layerwise run", "pass --params params/demo.yml")
    cwd = Path.cwd()
    out_dir = Path(out_dir)
    out_dir = out_dir if out_dir.is_absolute() else cwd / out_dir
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
    load_fn = resolve_loader(loader)
    keys: dict[str, str] = {}
    manifests: dict[str, dict[str, Any]] = {}
    for params in params_list:
        if progress:
            print(f"layerwise: study {params.name} ({params.display_name}): computing or reading the cached results",
                  file=sys.stderr)
        study = load_fn(params.path, progress=progress)
        keys[params.name] = study_key(study)
        manifests[params.name] = dict(getattr(study, "manifest", {}) or {})
        save_snapshot(study, snapshot_path(out_dir, params.name))
        del study
    jobs = plan(params_list, keys, out_dir, loader=loader, chapters=chapters, comparison=comparison,
                chapters_dir=chapters_dir, cwd=cwd)
    summary = RunSummary()
    meta = out_dir / META_DIR
    kernel: str | None = None
    bar = tqdm(jobs, desc="chapters", unit="notebook", disable=not progress, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(job.label)
        if not force and job.output.exists() and notebook_hash(job.output) == job.input_hash:
            summary.skipped.append(job.output)
            continue
        kernel = kernel or kernel_name()
        execute(job, kernel=kernel, cwd=cwd, failed_dir=meta / "failed", label_prefix=job.model)
        summary.executed.append(job.output)
    bar.close()
    entries = book_chapters(params_list, out_dir, chapters, comparison, cwd)
    summary.chapters_yml = write_chapters_yml(meta / "chapters.yml", entries)
    summary.reproduce_md = meta / "reproduce.md"
    atomic_write_text(summary.reproduce_md, reproduce_markdown(params_list, manifests, profile=profile, cwd=cwd))
    summary.manifest = meta / "report.json"
    atomic_write_json(summary.manifest, {
        "models": [{"name": p.name, "title": p.display_name, "params": _relative(Path(p.path), cwd),
                    "chapters": [{"chapter": j.chapter, "title": j.title, "path": _relative(j.output, out_dir)}
                                 for j in jobs if j.model == p.name]} for p in params_list],
        "comparison": ({"chapter": COMPARISON, "title": CHAPTER_TITLES[COMPARISON],
                        "path": f"{COMPARISON}.ipynb"} if comparison else None),
        "profile": profile, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if preview:
        from .preview import build_preview, quarto_hint

        summary.preview = build_preview(out_dir)
        if progress:
            print(quarto_hint(), file=sys.stderr)
    summary.seconds = time.perf_counter() - t0
    if progress:
        print(f"layerwise: {summary}", file=sys.stderr)
    return summary


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


def quarto_prerender(project_dir: Path | None = None, env: Mapping[str, str] | None = None) -> RunSummary:
    """Quarto's ``pre-render`` step: the active profiles come from ``QUARTO_PROFILE`` (Quarto sets it
    to the resolved list, the default profile included), their params files from the profile files;
    then :func:`run` without the preview."""
    env = os.environ if env is None else env
    project_dir = Path(project_dir or Path.cwd())
    profiles = [p.strip() for p in env.get("QUARTO_PROFILE", "").split(",") if p.strip()]
    params = profile_params(project_dir, profiles)
    if not params:
        raise LayerwiseError(f"no params files for the Quarto profile(s) {profiles or '(none)'}",
                             "_quarto-<profile>.yml",
                             "render with --profile demo or --profile flue, or list params files under "
                             "`layerwise: params:` in the profile's _quarto-<profile>.yml")
    loader = env.get("LAYERWISE_LOADER", DEFAULT_LOADER)  # tests render the book on a synthetic study
    return run(params, out_dir=project_dir / "report", preview=False, profile=",".join(profiles) or None,
               loader=loader)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m layerwise.report [--quarto | PARAMS...]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m layerwise.report", description="execute the report chapters")
    ap.add_argument("params", nargs="*")
    ap.add_argument("--quarto", action="store_true", help="Quarto pre-render: params from the active profile(s)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--no-preview", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.quarto:
            quarto_prerender()
        else:
            run([Path(p) for p in (args.params or ["params/demo.yml"])], force=args.force,
                preview=not args.no_preview)
    except LayerwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
