"""Interrupts and permissions (issue #14, item 6): Ctrl-C during a chapter prints one line and exits
130 (the kernel's own traceback goes to the log file), a rerun resumes; a run with nothing to change
writes nothing, so a read-only report folder works, and a refused write is one line with the fix;
the temp folders of killed runs are swept."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from layerwise.book import notebooks, report
from layerwise.core import repro
from layerwise.core.errors import LayerwiseError
from report_fakes import load_fake_study, write_params

TESTS = Path(__file__).resolve().parent


def _run(root: Path, params: Path, **kw):
    old = os.getcwd()
    os.chdir(root)
    try:
        return report.run([params], out_dir=Path("report"), load_study=load_fake_study, chapters=("geometry",),
                          comparison=False, progress=False, **kw)
    finally:
        os.chdir(old)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{path: (inode, mtime)}`` of everything under ``root`` but the log file."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if name != notebooks.KERNEL_LOG:
                st = p.stat()
                out[str(p.relative_to(root))] = (st.st_ino, st.st_mtime_ns)
    return out


def _read_only(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Make every way layerwise writes under ``root`` fail with EROFS (root ignores chmod)."""
    def refuse(path) -> None:
        if str(Path(path).resolve()).startswith(str(root.resolve())):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    for module, name, arg in ((os, "replace", 1), (os, "rename", 1), (os, "mkdir", 0), (tempfile, "mkdtemp", "dir"),
                              (tempfile, "mkstemp", "dir")):
        def guarded(*args, __f=getattr(module, name), __arg=arg, **kwargs):
            target = kwargs.get(__arg) if isinstance(__arg, str) else (args[__arg] if len(args) > __arg else None)
            if target is not None:
                refuse(target)
            return __f(*args, **kwargs)
        mp.setattr(module, name, guarded)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ro")
    params = write_params(root / "params", "alpha", "Alpha model")
    _run(root, params, preview=True)
    return root, params


def test_a_rerun_with_nothing_to_change_writes_nothing(built):
    root, params = built
    before = _snapshot(root / "report")
    summary = _run(root, params, preview=True)
    assert not summary.executed and _snapshot(root / "report") == before


def test_a_read_only_report_folder_with_nothing_to_change_succeeds(built):
    root, params = built
    with pytest.MonkeyPatch.context() as mp:
        _read_only(mp, root / "report")
        summary = _run(root, params, preview=True)
    assert not summary.executed and len(summary.skipped) == 1


def test_a_read_only_report_folder_with_changes_is_one_line_with_the_fix(built):
    root, params = built
    changed = write_params(root / "params2", "alpha", "Alpha model, renamed label")
    with pytest.MonkeyPatch.context() as mp:
        _read_only(mp, root / "report")
        with pytest.raises(LayerwiseError, match="cannot write to the report folder") as err:
            _run(root, changed, preview=True)
    assert "\n" not in str(err.value) and "--out" in str(err.value) and "report" in str(err.value)


def test_temp_folders_of_dead_runs_are_swept(built):
    root, params = built
    chapter_dir = root / "report" / "alpha"
    dead = chapter_dir / f"{notebooks.TEMP_PREFIX}{repro._host()}.4194301.12345-abcd1234"
    dead.mkdir()
    (dead / "geometry.ipynb").write_text("{}")
    live = repro.owned_mkdtemp(chapter_dir, notebooks.TEMP_PREFIX)
    summary = _run(root, params, preview=False, force=True)
    assert summary.executed and not dead.exists() and live.exists()
    live.rmdir()


CHILD = """
import sys
from pathlib import Path
sys.path[:0] = sys.argv[2:]
from layerwise import cli
from layerwise.book import notebooks

def cmd(args):
    job = notebooks.Job("nap", None, Path("nap.ipynb"), Path("report/nap.ipynb"), {}, "Nap", {})
    notebooks.execute(job, kernel=notebooks.kernel_name(), cwd=Path("."), failed_dir=Path("report/_layerwise/failed"))
    return 0

cli.cmd_preview = cmd
sys.exit(cli.main(["preview", sys.argv[1]]))
"""


def test_ctrl_c_during_a_chapter_prints_one_line_and_a_rerun_resumes(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, pathlib, time\npathlib.Path('started').touch()\n"
                                          "time.sleep(float(os.environ.get('NAP', '60')))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nap.ipynb")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "report", *sys.path], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip() == "interrupted", err
    assert (tmp_path / "report/_layerwise/layerwise.log").is_file()  # the kernel's own output went there
    assert not (tmp_path / "report/nap.ipynb").exists() and not list((tmp_path / "report").glob(".lw-run-*"))
    rerun = subprocess.run([sys.executable, "-c", CHILD, "report", *sys.path], cwd=tmp_path, text=True,
                           capture_output=True, timeout=120, env={**os.environ, "NAP": "0"})
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "report/nap.ipynb").is_file()
