"""Reproducibility helpers: content hashes, atomic writes, provenance records."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DONE = "DONE.json"
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
    """Root of every cache: ``$LAYERWISE_CACHE`` or ``<project>/.cache/layerwise``."""
    root = Path(os.environ.get("LAYERWISE_CACHE", PROJECT_ROOT / ".cache" / "layerwise"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def is_done(entry: str | os.PathLike) -> bool:
    """A cache entry is complete iff its ``DONE.json`` marker exists."""
    return (Path(entry) / DONE).is_file()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Write a directory atomically: yield a temp dir beside ``final``; on success mark it done
    (``DONE.json``) and rename it to ``final``; on error remove it. Readers only trust directories
    holding ``DONE.json``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        atomic_write_json(tmp / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
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
# Code hashes derived from the imports (cache keys follow the code a step actually runs)
# ==================================================================================================

PACKAGE_DIR = Path(__file__).resolve().parent


def _package_imports(module: str) -> set[str]:
    """The sibling modules ``module`` imports anywhere in its code (top level or inside functions):
    ``from . import x``, ``from .x import y``, ``from layerwise.x import y``, ``import layerwise.x``."""
    import ast

    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base == "layerwise" or base.startswith("layerwise."):
                base = base.removeprefix("layerwise").lstrip(".") if node.level == 0 else base
                if base:
                    found.add(base.split(".")[0])
                else:
                    found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("layerwise."))
    return {m for m in found if (PACKAGE_DIR / f"{m}.py").is_file()}


def import_closure(*modules: str) -> list[str]:
    """``modules`` and every package module they import, transitively (sorted names)."""
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
    return content_hash({m: file_hash(PACKAGE_DIR / f"{m}.py") for m in import_closure(*modules)})
