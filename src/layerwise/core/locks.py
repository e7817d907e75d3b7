"""Cache entries found by key, and a lock per entry.

An entry's folder is ``<name>-<key>``: the study name is a label for people browsing the cache, the
key (a content hash of what the result depends on) is what identifies it. :func:`find_entry` looks an
entry up by its key alone, so renaming ``name:`` in a params file finds the work already done under
the old name; :func:`entry_path` gives the existing entry or the folder a new one gets.

:func:`entry_lock` is an exclusive lock per key (``fcntl.flock`` on ``<parent>/.<key>.lock``,
released by the OS even when the process is killed): two runs that need the same entry at once
compute it once; the second prints one line, waits, then finds the finished entry. Usage::

    entry = find_entry(parent, key)
    if entry is None:
        with entry_lock(parent, key, what="geometry results"):
            entry = find_entry(parent, key) or compute(entry_path(parent, name, key))
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from . import disk
from .repro import CACHE_ELSEWHERE, is_done

log = logging.getLogger(__name__)


def find_entry(parent: str | os.PathLike, key: str) -> Path | None:
    """The complete entry of ``key`` in ``parent`` (folder ``<any name>-<key>`` or ``<key>``), or None.
    Damaged entries are moved aside by :func:`layerwise.core.repro.is_done` and not returned."""
    parent = Path(parent)
    try:
        names = sorted(e.name for e in os.scandir(parent) if e.is_dir() and not e.name.startswith(".")
                       and (e.name == key or e.name.endswith(f"-{key}")))
    except OSError:
        return None
    for name in names:
        if is_done(parent / name):
            return parent / name
    return None


def entry_path(parent: str | os.PathLike, name: str, key: str) -> Path:
    """The entry of ``key``: the complete one already there (whatever its name), else ``<name>-<key>``."""
    return find_entry(parent, key) or Path(parent) / f"{name}-{key}"


def entry_key(entry: str | os.PathLike) -> str:
    """The key of an entry folder named ``<name>-<key>`` (or ``<key>``)."""
    return Path(entry).name.rpartition("-")[2]


@contextlib.contextmanager
def entry_lock(parent: str | os.PathLike, key: str, *, what: str = "this entry", progress: bool = True,
               enabled: bool = True) -> Iterator[None]:
    """Hold the exclusive lock of entry ``key`` in ``parent``. When another process holds it, print one
    line (``another run is computing <what> (<key>): waiting for it``) and wait. Where no lock can be
    taken (a read-only cache, no ``fcntl``) the body runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        fcntl = None
    if not enabled or fcntl is None:
        yield
        return
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fh = open(parent / f".{key}.lock", "a")
    except OSError:
        yield
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            msg = f"another run is computing {what} ({parent / key}): waiting for it"
            log.info(msg)
            if progress:
                print(msg, file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def cached_entry(parent: str | os.PathLike, name: str, key: str, compute, *, what: str,
                 progress: bool = True, enabled: bool = True) -> Path:
    """The complete entry of ``key`` in ``parent``; computed once by ``compute(entry)`` (which writes
    ``entry`` with :func:`layerwise.core.repro.atomic_dir`) under :func:`entry_lock` when there is none. A disk
    fault while it is written is one :class:`LayerwiseError` naming the entry and ``what``
    (:func:`layerwise.core.disk.writing`)."""
    found = find_entry(parent, key)
    if found is not None:
        return found
    with entry_lock(parent, key, what=what, progress=progress, enabled=enabled):
        found = find_entry(parent, key)
        if found is not None:
            return found
        entry = Path(parent) / f"{name}-{key}"
        with disk.writing(what, entry, CACHE_ELSEWHERE):  # (atomic_dir removes the half-written entry)
            compute(entry)
        return entry
