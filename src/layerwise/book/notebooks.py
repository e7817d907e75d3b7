"""Chapter notebooks executed with papermill: the Jupyter kernel, the template made ready for one
model, the code a chapter runs, the input hash stored in an executed notebook, and the execution
itself with failure triage.

This module knows nothing about studies or params: :mod:`layerwise.book.report` decides which notebooks
a run needs (:class:`Job`: template, output, papermill parameters, inputs) and this module produces
them. A notebook is written to a temporary file and renamed only when every cell succeeded; a failing
cell raises :class:`LayerwiseError` naming the model, the chapter and the cell, and the failed
notebook is kept in a separate folder for inspection (never where Quarto reads).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import LayerwiseError
from ..core.repro import code_hash, content_hash, module_path, owned_mkdtemp, package_modules, sweep_stale

#: Version of the way notebooks are prepared and of the ``metadata.layerwise`` record they carry:
#: bump it to force every chapter to re-execute (distinct from ``finetune.FORMAT_VERSION``).
NOTEBOOK_FORMAT = 2


# ==================================================================================================
# kernel
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
                             "notebooks.kernel_name",
                             f"run `{sys.executable} -m ipykernel install --sys-prefix`") from None
    return "layerwise"


# ==================================================================================================
# templates: preparation and the code they run
# ==================================================================================================

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


def chapter_modules(template: Path) -> list[str]:
    """The layerwise modules a chapter template imports (``from layerwise.book import charts``,
    ``from layerwise.study.study import read_study``, ``import layerwise.x``), read from its code cells."""
    import nbformat

    found: set[str] = set()
    for cell in nbformat.read(template, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("layerwise"):
                base = node.module.removeprefix("layerwise").lstrip(".")
                found |= package_modules(base, [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("layerwise.") for a in node.names if a.name.startswith("layerwise.")
                          and module_path(a.name.removeprefix("layerwise.")).is_file()}
    return sorted(found)


def chapter_code_hash(template: Path) -> str:
    """Hash of the layerwise code an executed chapter depends on: the modules its template imports
    and their import closure (:func:`layerwise.core.repro.code_hash`), plus this module (which prepares the
    notebook). Derived from the code, so a new import or a split module is followed without a list to
    maintain; the code that computes the tables is covered by the results' cache keys instead."""
    return code_hash(*chapter_modules(template), "book.notebooks")


# ==================================================================================================
# executed notebooks
# ==================================================================================================

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
    """One notebook to produce: the template, where the executed notebook goes, the papermill
    parameters, its title and everything its content depends on (``inputs``, hashed)."""

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
    def where(self) -> str:
        """``model m, chapter c`` (or the chapter alone): the *where* of an error."""
        return f"{'model ' + self.model + ', ' if self.model else ''}chapter {self.chapter}"

    @property
    def input_hash(self) -> str:
        """Hash of everything the notebook depends on."""
        return content_hash(self.inputs)

    def is_current(self) -> bool:
        """The executed notebook exists and was produced from the same inputs."""
        return self.output.exists() and notebook_hash(self.output) == self.input_hash


# ==================================================================================================
# execution
# ==================================================================================================

#: prefix of the temp folders a chapter is executed in (beside its notebook)
TEMP_PREFIX = ".lw-run-"
#: the file (in the report's ``_layerwise`` folder, beside ``failed/``) that gets the kernels' own output
KERNEL_LOG = "layerwise.log"


def hide_silent_cells(nb) -> int:
    """Give every code cell without visible output ``#| echo: false`` (else Quarto shows an empty
    "Code" fold for it: the parameters, the injected parameters, setup). Returns the cells changed."""
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or re.search(r"^#\|\s*echo:", cell.source, flags=re.M):
            continue
        visible = [o for o in cell.get("outputs", []) or [] if o.get("output_type") != "stream"]
        if not visible:
            cell.source = "#| echo: false\n" + cell.source
            changed += 1
    return changed


@contextlib.contextmanager
def _figure_env(job: Job, library: Path | None):
    """The kernel's environment for the chart outputs (:mod:`layerwise.book.render`): where the SVGs go (the
    notebook's folder), the Vega bundle's URL relative to it and the file-name stem; the SVGs of an
    earlier execution of this chapter are removed first."""
    from .render import FIGURE_DIR_ENV, FIGURE_STEM_ENV, LIBRARY_URL_ENV

    folder = job.output.parent
    for old in folder.glob(f"{job.chapter}-lw-chart-*.svg"):
        old.unlink(missing_ok=True)
    values = {FIGURE_DIR_ENV: str(folder.resolve()), FIGURE_STEM_ENV: job.chapter}
    if library is not None:
        values[LIBRARY_URL_ENV] = Path(os.path.relpath(Path(library).resolve(), folder.resolve())).as_posix()
    saved = {k: os.environ.get(k) for k in (FIGURE_DIR_ENV, FIGURE_STEM_ENV, LIBRARY_URL_ENV)}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(job: Job, *, kernel: str, cwd: Path, failed_dir: Path, label_prefix: str | None = None,
            library: Path | None = None) -> Path:
    """Execute one chapter with papermill into a temporary file, then rename it to ``job.output``;
    raise :class:`LayerwiseError` naming the model, chapter and cell on failure (the failed notebook
    is moved to ``failed_dir``). The temp folder is owned by this process (``.lw-run-<owner>-*``);
    those of dead processes are swept first. The kernel's own stdout/stderr (its log, e.g. the
    traceback it prints when a Ctrl-C stops the run) go to ``failed_dir/../layerwise.log``."""
    import nbformat

    job.output.parent.mkdir(parents=True, exist_ok=True)
    nb = prepare_template(job.template, title=job.title, label_prefix=label_prefix)
    sweep_stale(job.output.parent, markers=(TEMP_PREFIX,))  # left by killed runs
    tmp_dir = owned_mkdtemp(job.output.parent, TEMP_PREFIX)
    src = tmp_dir / f"{job.chapter}.template.ipynb"
    out = tmp_dir / f"{job.chapter}.ipynb"
    nbformat.write(nb, src)
    try:
        with _kernel_output(failed_dir.parent / KERNEL_LOG) as sink, _figure_env(job, library):
            result = _papermill(job, src, out, kernel=kernel, cwd=cwd, failed_dir=failed_dir, sink=sink)
        hide_silent_cells(result)
        errors = error_outputs(result)
        if errors:  # cells tagged raises-exception would get here
            i, msg = errors[0]
            raise LayerwiseError(f"cell {i} has an error output ({msg})", job.where, "fix the chapter template")
        result.metadata["layerwise"] = {"input_hash": job.input_hash, "chapter": job.chapter, "model": job.model,
                                        "title": job.title, "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                        "format": NOTEBOOK_FORMAT}
        nbformat.validate(result)
        nbformat.write(result, out)
        os.replace(out, job.output)
        return job.output
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _papermill(job: Job, src: Path, out: Path, *, kernel: str, cwd: Path, failed_dir: Path, sink=None):
    """Run papermill on the prepared template ``src`` into ``out``; a failure becomes a
    :class:`LayerwiseError` (the failing cell's index, execution count, first code line and error),
    with the failed notebook kept in ``failed_dir``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    try:
        return pm.execute_notebook(str(src), str(out), parameters=job.parameters, kernel_name=kernel,
                                   cwd=str(cwd), progress_bar=False, log_output=False,
                                   request_save_on_cell_execute=False, **_engine_kwargs(sink))
    except PapermillExecutionError as exc:
        failed = _keep_failed(out, failed_dir, job)
        count = f" (execution count {exc.exec_count})" if exc.exec_count else ""
        first = [ln for ln in (exc.source or "").strip().splitlines() if not ln.startswith("#|")]
        code = f" `{first[0][:80]}`" if first else ""
        raise LayerwiseError(f"cell {exc.cell_index}{count}{code} failed with {exc.ename}: {exc.evalue}",
                             job.where, f"see the failed notebook {failed}" if failed else
                             "run the chapter in Jupyter to debug it") from None
    except Exception as exc:  # kernel died, could not start, timeout
        failed = _keep_failed(out, failed_dir, job)
        raise LayerwiseError(f"the notebook could not be executed: {type(exc).__name__}: {exc}", job.where,
                             f"see {failed}" if failed else "check that ipykernel works in this environment"
                             ) from None


def _engine_kwargs(sink=None) -> dict[str, Any]:
    """Kernel options: ipykernel logs only errors (its warning about unencrypted localhost TCP would
    print once per chapter; the kernel listens on 127.0.0.1 only), and its own output goes to the
    file object ``sink`` (when given) instead of the terminal."""
    kwargs: dict[str, Any] = {"extra_arguments": ["--IPKernelApp.log_level=ERROR"]}
    if sink is not None:
        kwargs["kernel_manager_class"] = _redirecting_manager(sink)
    return kwargs


def _redirecting_manager(sink):
    """A jupyter ``AsyncKernelManager`` whose kernel process writes its stdout/stderr to ``sink``."""
    from jupyter_client.manager import AsyncKernelManager

    class RedirectingKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.setdefault("stdout", sink)
            kw.setdefault("stderr", sink)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return RedirectingKernelManager


@contextlib.contextmanager
def _kernel_output(path: Path):
    """An append-mode file for the kernel's output at ``path`` (the null device where it cannot be
    written, e.g. a read-only report folder)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "ab")
    except OSError:
        fh = open(os.devnull, "wb")
    with fh:
        yield fh


def _keep_failed(out: Path, failed_dir: Path, job: Job) -> Path | None:
    """Move a failed notebook out of the report (to ``failed_dir``) and return its new path."""
    if not out.exists():
        return None
    failed_dir.mkdir(parents=True, exist_ok=True)
    dest = failed_dir / (f"{job.model}-{job.chapter}.ipynb" if job.model else f"{job.chapter}.ipynb")
    shutil.move(str(out), dest)
    return dest
