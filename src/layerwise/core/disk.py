"""Disk faults and disk space: a failed write becomes one line naming the path, what was being written
and the fix (:func:`writing`, :func:`fault`), free space (:func:`free_bytes`), and the sweep of the
damaged cache entries that :func:`layerwise.core.repro.move_aside` keeps for inspection
(:func:`sweep_damaged`, ``layerwise clean``).

A write fails for a reason a person can act on: no space left (``ENOSPC``, ``EDQUOT``; also the
``RuntimeError`` that ``torch.save`` raises, "unexpected pos" or "file write failed", and the
safetensors error "os error 28"), a read-only file system (``EROFS``), permission denied (``EACCES``,
``EPERM``), or a file where a folder is needed (``EEXIST``, ``ENOTDIR``). :func:`writing` wraps the code
that writes one thing (the fine-tuning checkpoints, a result entry, the report folder): such a failure
runs the caller's clean-up (nothing half-written is left) and is raised as a
:class:`~layerwise.core.errors.LayerwiseError` (the CLI prints one line and exits 2); any other error passes
through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import LayerwiseError

log = logging.getLogger(__name__)

#: moved-aside damaged entries (``<entry>.damaged-<YYYYmmdd-HHMMSS>-<pid>``) are kept this many days,
#: then swept at the next start (``layerwise clean`` sweeps them at once)
DAMAGED_KEEP_DAYS = 7
DAMAGED_MARK = ".damaged-"
_DAMAGED_TIME = re.compile(r"\.damaged-(\d{8}-\d{6})-\d+$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = re.compile(r"unexpected pos|file write failed|no space left|os error 28|disk quota", re.I)
_MB = 1 << 20


def human(n: float) -> str:
    """A byte count for people: ``812 MB``, ``1.4 GB``."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", _MB), ("kB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), None if unknown."""
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        with contextlib.suppress(OSError):
            if candidate.exists():
                return shutil.disk_usage(candidate).free
    return None


def kind(exc: BaseException) -> str | None:
    """What a failed write means: ``space``, ``read-only``, ``permission``, ``file`` (a file in the way of a
    folder), or None when ``exc`` is not a disk fault."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return {errno.ENOSPC: "space", errno.EDQUOT: "space", errno.EROFS: "read-only", errno.EACCES: "permission",
                errno.EPERM: "permission", errno.EEXIST: "file", errno.ENOTDIR: "file"}.get(exc.errno)
    if isinstance(exc, (RuntimeError, OSError)) or type(exc).__name__ == "SafetensorError":
        return "space" if _NO_SPACE_TEXT.search(str(exc)) else None
    return None


def _blocking_file(path: Path) -> Path | None:
    """The existing file (not a folder) at ``path`` or at one of its parents."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate if not candidate.is_dir() else None
    return None


def _within(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False


def fault(exc: BaseException, what: str, path: str | os.PathLike, elsewhere: str, *, within: bool = False,
          verb: str = "write", then: str = "then run again") -> LayerwiseError | None:
    """The one-line error of a failed write of ``what`` (e.g. "the fine-tuning checkpoint") under ``path``:
    the file the system named (else ``path``), the reason, the fix (``elsewhere``: how to write somewhere
    else, e.g. "set LAYERWISE_CACHE to a folder on another disk"); None when ``exc`` is no disk fault, or,
    with ``within``, when the file the system named is not under ``path`` (someone else's fault). ``then``:
    what to do once there is space."""
    how = kind(exc)
    named = getattr(exc, "filename", None)
    if how is None or (within and named and not _within(Path(named), Path(path))):
        return None
    where = Path(named) if named else Path(path)
    if how == "space":
        free = free_bytes(where)
        shown = f", {human(free)} free" if free is not None else ""
        return LayerwiseError(f"cannot {verb} {what}: no space left on the device{shown}", str(where),
                              f"free some space on that disk, or {elsewhere}; {then}")
    if how == "file":
        blocker = _blocking_file(where)
        if blocker is None:
            return None
        named = "it is" if blocker == where else f"{blocker} is"
        return LayerwiseError(f"cannot {verb} {what}: {named} a file, not a folder", str(where),
                              f"remove or rename that file, or {elsewhere}")
    reason = "the file system is read-only" if how == "read-only" else "permission denied"
    return LayerwiseError(f"cannot {verb} {what}: {reason}", str(where),
                          f"make the folder writable for this user, or {elsewhere}")


@contextlib.contextmanager
def writing(what: str, path: str | os.PathLike, elsewhere: str, cleanup: Callable[[], None] | None = None, *,
            within: bool = False, then: str = "then run again") -> Iterator[None]:
    """Run the body, which writes ``what`` under ``path``; a disk fault in it runs ``cleanup`` (removes
    what is half-written) and becomes :func:`fault`'s one-line error (the original error goes to the log
    file); with ``within``, only faults of files under ``path``. Errors already explained
    (:class:`LayerwiseError`) and every other error pass through unchanged."""
    try:
        yield
    except LayerwiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - only disk faults are translated, the rest is re-raised
        err = fault(exc, what, path, elsewhere, within=within, then=then)
        if err is None:
            raise
        if cleanup is not None:
            with contextlib.suppress(Exception):
                cleanup()
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        log.info("%s (%s: %s)", err, type(exc).__name__, first)
        raise err from None


# ==================================================================================================
# damaged entries moved aside: kept DAMAGED_KEEP_DAYS days, then swept
# ==================================================================================================

def _age_days(name: str, now: float) -> float | None:
    match = _DAMAGED_TIME.search(name)
    if not match:
        return None
    try:
        return (now - time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))) / 86400
    except (ValueError, OverflowError):
        return None


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def damaged_copies(root: str | os.PathLike) -> list[tuple[Path, float, int]]:
    """``(path, age in days, bytes)`` of every moved-aside damaged entry in ``root``'s cache folders."""
    now, found = time.time(), []
    root = Path(root)
    try:
        folders = [root, *(Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False))]
    except OSError:
        return []
    for folder in folders:
        with contextlib.suppress(OSError):
            for e in os.scandir(folder):
                age = _age_days(e.name, now) if DAMAGED_MARK in e.name else None
                if age is not None and e.is_dir(follow_symlinks=False):
                    found.append((Path(e.path), age, _size(Path(e.path))))
    return sorted(found)


def sweep_damaged(root: str | os.PathLike, keep_days: float = DAMAGED_KEEP_DAYS,
                  dry_run: bool = False) -> list[tuple[Path, int]]:
    """Remove the moved-aside damaged entries under ``root`` older than ``keep_days`` days (all of them with
    0); ``(path, bytes)`` of each removed (or, with ``dry_run``, that would be). Errors are ignored (a
    read-only cache keeps them)."""
    removed = []
    for path, age, size in damaged_copies(root):
        if age < keep_days:
            continue
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                continue
            log.info("removed damaged cache copy %s (%s, %.1f days old)", path, human(size), age)
        removed.append((path, size))
    return removed
