"""Reproducibility helpers: content hashes, atomic writes, provenance records."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import socket
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Literal, NamedTuple

from . import disk
from .errors import LayerwiseError

log = logging.getLogger(__name__)
#: how a disk fault in the cache is fixed besides freeing the disk (:func:`layerwise.core.disk.fault`)
CACHE_ELSEWHERE = "set LAYERWISE_CACHE to a writable folder on a disk with space"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
DONE = "DONE.json"
_SWEPT: set[str] = set()
#: damaged entries moved aside by this process (entry -> where it went), for :func:`damage_outcomes`
_MOVED: dict[str, Path] = {}
DAMAGED_MARK = disk.DAMAGED_MARK
_TRACKED = ("torch", "transformers", "datasets", "numpy", "scipy", "scikit-learn", "pandas",
            "altair", "papermill", "tokenizers", "accelerate", "layerwise")


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj)
    return obj


def content_hash(obj: Any, length: int = 16) -> str:
    """SHA-256 of the canonical JSON form of ``obj`` (sorted keys), truncated to ``length`` hex chars."""
    blob = json.dumps(_canonical(obj), sort_keys=True, ensure_ascii=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    """SHA-256 of a file's bytes (streamed), or of every file under a directory (sorted paths)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def cache_root() -> Path:
    """Root of every cache: ``$LAYERWISE_CACHE`` or ``<project>/.cache/layerwise``, created when missing
    (a path that cannot be a folder is one :class:`LayerwiseError`). The first call of a process sweeps the
    temp folders that dead processes left in it (:func:`sweep_stale`) and the damaged entries moved aside
    more than :data:`layerwise.core.disk.DAMAGED_KEEP_DAYS` days ago."""
    root = Path(os.environ.get("LAYERWISE_CACHE", PROJECT_ROOT / ".cache" / "layerwise"))
    what = "the cache folder" + (" (LAYERWISE_CACHE)" if "LAYERWISE_CACHE" in os.environ else "")
    with disk.writing(what, root, CACHE_ELSEWHERE):
        root.mkdir(parents=True, exist_ok=True)
    if str(root) not in _SWEPT:
        _SWEPT.add(str(root))
        for folder in [root, *_subdirs(root)]:
            sweep_stale(folder)
        disk.sweep_damaged(root)
    return root


def is_done(entry: str | os.PathLike) -> bool:
    """A cache entry is complete iff its ``DONE.json`` marker exists and the files it lists are intact
    (see :func:`verify_entry`). A damaged or unreadable entry is moved aside (never deleted) with one
    warning line naming it, and ``False`` is returned, so the caller recomputes it."""
    verdict = verify_entry(entry)
    if verdict.state == "damaged":
        move_aside(entry, verdict.reason)
    return verdict.state == "ok"


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Write a directory atomically: yield a temp dir beside ``final``; on success record every file's
    size and SHA-256 in ``DONE.json`` and put the directory at ``final`` (the new entry is swapped in
    before the old one goes, so a reader always finds one); on error remove it. Readers only trust
    directories whose ``DONE.json`` matches their files (:func:`is_done`). Temp folders left by dead
    processes beside ``final`` are swept first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final.parent)
    tmp = owned_mkdtemp(final.parent, f".{final.name}.tmp-")
    try:
        yield tmp
        atomic_write_json(tmp / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "files": _file_records(tmp)})
        _swap_in(tmp, final)
        _remember_verified(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read and served
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def git_commit() -> str | None:
    """The project's git commit (with ``+dirty`` when the work tree has changes), or None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance() -> dict[str, Any]:
    """What a result needs to be reproduced: library versions, git commit, platform, time."""
    return {
        "versions": library_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ==================================================================================================
# Verified cache entries: file records in DONE.json, verification, moving damaged entries aside,
# swapping a new entry in, sweeping the temp folders of dead processes
# ==================================================================================================

#: ``(entry, DONE.json inode, DONE.json mtime)`` of the entries this process has hashed
_VERIFIED: set[tuple[str, int, int]] = set()
#: temp folders without an owner tag (written before tags existed) are swept after this many seconds
LEGACY_TEMP_TTL_S = 24 * 3600


class EntryCheck(NamedTuple):
    """``state``: ``ok`` (complete and intact), ``absent`` (no ``DONE.json``: not finished) or
    ``damaged`` (``reason`` says what is wrong)."""

    state: Literal["ok", "absent", "damaged"]
    reason: str = ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_records(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {size, sha256}}`` of every file under ``root`` except ``DONE.json``."""
    out: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel != DONE:
                out[rel] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return out


def _done_key(entry: Path) -> tuple[str, int, int]:
    st = os.stat(entry / DONE)
    return str(entry.resolve()), st.st_ino, st.st_mtime_ns


def _remember_verified(entry: Path) -> None:
    with contextlib.suppress(OSError):
        _VERIFIED.add(_done_key(entry))


def _check_files(entry: Path, files: Any, hashes: bool) -> str:
    """What is wrong with the files ``DONE.json`` lists ("" when nothing)."""
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return f"{DONE} has no valid file list"
    for rel, rec in files.items():
        path = entry / rel
        try:
            size = path.stat().st_size
        except OSError as exc:
            return f"{rel} is missing or unreadable ({exc.strerror or type(exc).__name__})"
        if size != rec.get("size"):
            return f"{rel} has {size} bytes, {rec.get('size')} expected"
    for rel, rec in files.items() if hashes else ():
        try:
            digest = _sha256(entry / rel)
        except OSError as exc:
            return f"{rel} is unreadable ({exc.strerror or type(exc).__name__})"
        if digest != rec.get("sha256"):
            return f"{rel} does not match its recorded SHA-256"
    return ""


def _verdict(entry: Path, hashes: bool | None) -> EntryCheck:
    done = entry / DONE
    if not done.is_file():
        return EntryCheck("absent")
    try:
        record = json.loads(done.read_bytes().decode("utf-8"))
        key = _done_key(entry)
    except (OSError, ValueError) as exc:
        return EntryCheck("damaged", f"{DONE} is unreadable ({type(exc).__name__})")
    if not isinstance(record, dict):
        return EntryCheck("damaged", f"{DONE} is not a JSON object")
    if "files" not in record:  # written before file records existed: trusted as before
        return EntryCheck("ok")
    full = key not in _VERIFIED if hashes is None else hashes
    problem = _check_files(entry, record["files"], full)
    if problem:
        return EntryCheck("damaged", problem)
    if full:
        _VERIFIED.add(key)
    return EntryCheck("ok")


def verify_entry(entry: str | os.PathLike, *, hashes: bool | None = None) -> EntryCheck:
    """Check the cache entry at ``entry`` against its ``DONE.json``: every listed file present with its
    recorded size (always), and its SHA-256 (``hashes=True``; by default the first time this process
    sees the entry). Changes nothing on disk. A verdict of ``damaged`` is confirmed only when the
    entry was not replaced by a writer while it was being read."""
    entry = Path(entry)
    for _ in range(3):
        before = _inode(entry)
        verdict = _verdict(entry, hashes)
        if verdict.state != "damaged" or _inode(entry) == before:
            return verdict
    return verdict


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def move_aside(entry: str | os.PathLike, reason: str) -> Path | None:
    """Rename a damaged entry to ``<entry>.damaged-<time>-<pid>`` (kept for inspection
    :data:`layerwise.core.disk.DAMAGED_KEEP_DAYS` days, then swept; ``layerwise clean`` sweeps it sooner) and log
    one warning line naming both; :func:`damage_outcomes` later says whether it was recomputed. Returns
    the new path (None when another process moved it first). Raises :class:`LayerwiseError` when the
    entry cannot be moved (a read-only cache)."""
    entry = Path(entry)
    aside = entry.with_name(f"{entry.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.rename(entry, aside)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LayerwiseError(f"damaged cache entry ({reason}) cannot be moved aside ({exc.strerror})",
                             str(entry), f"remove it by hand (rm -r '{entry}') and run again") from None
    log.warning("damaged cache entry %s (%s): moved aside to %s (kept %d days; `layerwise clean` removes it)",
                entry, reason, aside.name, disk.DAMAGED_KEEP_DAYS)
    _MOVED[str(entry)] = aside
    return aside


def damage_outcomes() -> list[str]:
    """What became of the damaged entries this process moved aside since the last call: one warning line
    each, logged and returned: recomputed (a complete entry of the same key is there now), or not
    recomputed because nothing this command ran needed it."""
    lines = []
    for entry, aside in sorted(_MOVED.items()):
        path = Path(entry)
        key = path.name.rpartition("-")[2]
        done = [p for p in path.parent.glob(f"*{key}") if p.name == key or p.name.endswith(f"-{key}")]
        done = [p for p in done if p.is_dir() and is_done(p)]
        lines.append(f"damaged cache entry {path.name}: " + ("recomputed" if done else
                     "not recomputed: nothing this command ran needed it (a later step that needs it "
                     "recomputes it)") + f"; the damaged copy is {aside}")
        log.warning(lines[-1])
    _MOVED.clear()
    return lines


def _swap_in(new: Path, final: Path) -> None:
    """Put the finished directory ``new`` at ``final``. An existing entry is exchanged atomically where
    the OS can (Linux ``renameat2``), so a reader always finds an entry, then removed; elsewhere it is
    renamed aside just before the new one comes in."""
    if not os.path.lexists(final):
        try:
            os.rename(new, final)
            return
        except OSError:
            if not os.path.lexists(final):
                raise
    if not _exchange(new, final):
        old = final.with_name(f".{final.name}.old-{_owner_tag()}-{os.urandom(4).hex()}")
        os.rename(final, old)
        os.rename(new, final)
        new = old
    if new.is_dir() and not new.is_symlink():
        shutil.rmtree(new, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            new.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _proc_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot on Linux, "?" where unknown), or None
    when there is no such process."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").is_file():
        try:
            return stat.read_text().rpartition(")")[2].split()[19]
        except (OSError, IndexError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        pass
    return "?"


def _owner_tag() -> str:
    """``host.pid.start`` of this process, the owner tag of its temp folders."""
    return f"{_host()}.{os.getpid()}.{_proc_start(os.getpid()) or '?'}"


def owned_mkdtemp(parent: str | os.PathLike, prefix: str) -> Path:
    """A new temp folder ``<prefix><host>.<pid>.<start>-<random>`` in ``parent``: the owner tag lets
    :func:`sweep_stale` remove it once its process is gone."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner_tag()}-", dir=parent))


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def _owner_gone(tag: str) -> bool | None:
    """Whether the process that made a temp folder tagged ``tag`` (``host.pid.start-random``) is gone;
    None when the tag is not one (a folder from before owner tags)."""
    parts = tag.rpartition("-")[0].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, start = parts
    if host != _host():
        return False  # another machine's folder (a shared cache): never ours to judge
    now = _proc_start(int(pid))
    return now is None or (start != "?" and now != "?" and now != start)


def sweep_stale(parent: str | os.PathLike, markers: tuple[str, ...] = (".tmp-", ".old-")) -> list[Path]:
    """Remove the temp folders in ``parent`` (hidden names holding one of ``markers``) whose owner
    process is gone (same host, pid not running or reused); untagged ones only when older than
    :data:`LEGACY_TEMP_TTL_S`. Folders of live processes and of other hosts are kept. Returns what
    was removed; errors (a read-only cache) are ignored."""
    removed = []
    try:
        children = list(os.scandir(parent))
    except OSError:
        return removed
    for child in children:
        marker = next((m for m in markers if m in child.name), None)
        if not child.name.startswith(".") or marker is None:
            continue
        gone = _owner_gone(child.name.rpartition(marker)[2])
        if gone is None:
            with contextlib.suppress(OSError):
                gone = time.time() - child.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_TTL_S
        if gone:
            shutil.rmtree(child.path, ignore_errors=True)
            if not os.path.lexists(child.path):
                removed.append(Path(child.path))
                log.info("removed stale temp folder %s (its process is gone)", child.path)
    return removed


def _subdirs(root: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)
                and not e.name.startswith(".")]
    except OSError:
        return []


# ==================================================================================================
# Code hashes derived from the imports (cache keys follow the code a step actually runs)
# ==================================================================================================

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: import statements of the package's own modules, matched in the source text (``ast.parse`` is not
#: thread-safe in CPython 3.11: "AST constructor recursion depth mismatch" when another thread compiles or
#: imports at the same time, so the scan uses no parser). A match inside a string only adds a module to a
#: closure: the hash then covers more code than needed, never less.
_FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.+[\w.]*|layerwise(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)
_PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.M)


def _names(clause: str) -> list[str]:
    """``a, b as c`` or ``(a,\n b)`` (comments removed) -> ``["a", "b"]``."""
    clause = re.sub(r"#[^\n]*", "", clause).strip("() \t\n\\")
    return [part.split()[0] for part in clause.replace("\\\n", " ").split(",") if part.split()]


def module_path(module: str) -> Path:
    """The source file of package module ``module``, a dotted name inside the package (``core.repro``)."""
    return PACKAGE_DIR.joinpath(*module.split(".")).with_suffix(".py")


def package_modules(base: str, names: list[str]) -> set[str]:
    """The package modules that ``from <base> import <names>`` names (``base`` dotted inside the
    package, ``""`` for the package itself): ``base`` when it is a module, else its modules among ``names``."""
    if base and module_path(base).is_file():
        return {base}
    return {m for m in (f"{base}.{n}" if base else n for n in names) if module_path(m).is_file()}


def _package_imports(module: str) -> set[str]:
    """The package modules ``module`` imports anywhere in its code (top level or inside functions):
    ``from . import x``, ``from .x import y``, ``from ..folder.x import y``, ``from layerwise.folder.x import
    y``, ``import layerwise.folder.x``; each as its dotted name inside the package (``measure.stats``)."""
    source = module_path(module).read_text(encoding="utf-8")
    here = module.split(".")[:-1]
    found: set[str] = set()
    for base, clause in _FROM_IMPORT.findall(source):
        if base.startswith("."):
            rest = base.lstrip(".")
            up = len(base) - len(rest) - 1
            parts = (here[:len(here) - up] if up else here) + ([rest] if rest else [])
            base = ".".join(parts)
        else:
            base = base.removeprefix("layerwise").lstrip(".")
        found |= package_modules(base, _names(clause))
    for clause in _PLAIN_IMPORT.findall(source):
        found |= {n.removeprefix("layerwise.") for n in _names(clause) if n.startswith("layerwise.")
                  and module_path(n.removeprefix("layerwise.")).is_file()}
    return found


def import_closure(*modules: str) -> list[str]:
    """``modules`` and every package module they import, transitively (sorted dotted names inside the
    package, ``measure.extract``)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_package_imports(m) - seen)
    return sorted(seen)


def code_hash(*modules: str) -> str:
    """Hash of the source of ``modules`` and of every package module they import (their import
    closure, computed from the code): an edit to any of them changes the hash, an edit to a module
    outside the closure (the prose, the charts) does not."""
    return content_hash({m: file_hash(module_path(m)) for m in import_closure(*modules)})
