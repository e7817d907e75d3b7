"""Verified cache entries: DONE.json records sizes and hashes, damage is moved aside (never used,
never deleted), replacement never leaves a moment without an entry, stale temp folders are swept."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from layerwise.core import repro
from layerwise.core.errors import LayerwiseError
from layerwise.core.repro import DONE, atomic_dir, is_done, sweep_stale, verify_entry


def make_entry(path: Path, files: dict[str, bytes]) -> Path:
    with atomic_dir(path) as tmp:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
    return path


def fresh_process_view():
    """Forget which entries this process has hashed (as if a new process read them)."""
    repro._VERIFIED.clear()


def test_done_json_records_size_and_hash(tmp_path):
    entry = make_entry(tmp_path / "e", {"a.bin": b"abc", "sub/b.txt": b"hello"})
    record = json.loads((entry / DONE).read_text())
    assert record["files"]["a.bin"]["size"] == 3
    assert record["files"]["sub/b.txt"]["sha256"] == repro._sha256(entry / "sub" / "b.txt")
    assert DONE not in record["files"]
    assert is_done(entry) and verify_entry(entry).state == "ok"
    assert verify_entry(tmp_path / "nothing").state == "absent" and not is_done(tmp_path / "nothing")


@pytest.mark.parametrize("damage, reason", [
    (lambda e: (e / "a.bin").write_bytes(b"ab"), "2 bytes, 3 expected"),                 # truncated
    (lambda e: (e / "a.bin").write_bytes(b"abd"), "SHA-256"),                            # same size, other bytes
    (lambda e: (e / "sub" / "b.txt").unlink(), "missing"),                               # a file gone
    (lambda e: (e / DONE).write_text("{not json"), "DONE.json is unreadable"),          # marker damaged
])
def test_damaged_entry_is_moved_aside_with_one_warning(tmp_path, caplog, damage, reason):
    entry = make_entry(tmp_path / "e", {"a.bin": b"abc", "sub/b.txt": b"hello"})
    damage(entry)
    fresh_process_view()
    with caplog.at_level(logging.WARNING, logger="layerwise.core.repro"):
        assert not is_done(entry)
    assert not entry.exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("e.damaged-")]
    assert len(aside) == 1 and (aside[0] / DONE).exists(), "moved aside, not deleted"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(entry) in warnings[0] and reason in warnings[0]
    make_entry(entry, {"a.bin": b"abc"})  # recomputed
    assert is_done(entry)


def test_hashes_checked_once_per_process_sizes_always(tmp_path):
    entry = make_entry(tmp_path / "e", {"a.bin": b"abc"})
    fresh_process_view()
    assert is_done(entry)
    (entry / "a.bin").write_bytes(b"abd")  # same size: only a hash sees it
    assert is_done(entry), "hashed once already in this process: sizes only"
    (entry / "a.bin").write_bytes(b"abdd")
    assert verify_entry(entry).state == "damaged"
    fresh_process_view()
    (entry / "a.bin").write_bytes(b"abd")
    assert verify_entry(entry).state == "damaged"


def test_legacy_entry_without_file_records_is_trusted(tmp_path):
    entry = tmp_path / "old"
    entry.mkdir()
    (entry / "x").write_text("1")
    (entry / DONE).write_text(json.dumps({"finished": "2024"}))
    assert is_done(entry)


def test_replacing_an_entry_never_leaves_a_moment_without_one(tmp_path):
    entry = make_entry(tmp_path / "e", {"v": b"0"})
    stop = threading.Event()
    missing = []

    def watch():
        while not stop.is_set():
            if not (entry / DONE).is_file():
                missing.append(time.perf_counter())

    t = threading.Thread(target=watch)
    t.start()
    try:
        for i in range(1, 40):
            make_entry(entry, {"v": str(i).encode()})
    finally:
        stop.set()
        t.join()
    assert (entry / "v").read_bytes() == b"39" and is_done(entry)
    if sys.platform.startswith("linux"):
        assert missing == [], "the entry vanished while being replaced"
    assert [p.name for p in tmp_path.iterdir()] == ["e"], "no temp or old folder left"


def test_failed_write_leaves_no_temp_and_keeps_the_old_entry(tmp_path):
    entry = make_entry(tmp_path / "e", {"v": b"old"})
    with pytest.raises(RuntimeError):
        with atomic_dir(entry) as tmp:
            (tmp / "v").write_bytes(b"new")
            raise RuntimeError("boom")
    assert (entry / "v").read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["e"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_folders_of_dead_processes_are_swept(tmp_path):
    host = repro._host()
    mine = repro.owned_mkdtemp(tmp_path, ".e.tmp-")                       # this live process: kept
    dead = tmp_path / f".e.tmp-{host}.{_dead_pid()}.123-abcd1234"          # owner gone: swept
    reused = tmp_path / f".f.tmp-{host}.{os.getpid()}.1-abcd1234"          # pid reused (other start): swept
    other_host = tmp_path / f".e.tmp-elsewhere.1.1-abcd1234"               # another machine: kept
    legacy_new = tmp_path / ".e.tmp-k2j3h4g5"                              # no owner tag, recent: kept
    legacy_old = tmp_path / ".g.tmp-a1b2c3d4"                              # no owner tag, a day old: swept
    for d in (dead, reused, other_host, legacy_new, legacy_old):
        d.mkdir()
        (d / "partial.npz").write_bytes(b"x")
    old = time.time() - repro.LEGACY_TEMP_TTL_S - 60
    os.utime(legacy_old, (old, old))
    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, reused.name, legacy_old.name])
    assert mine.exists() and other_host.exists() and legacy_new.exists()


def test_atomic_dir_and_cache_root_sweep_at_start(tmp_path, monkeypatch):
    stale = tmp_path / "results" / f".x.tmp-{repro._host()}.{_dead_pid()}.5-abcd1234"
    stale.mkdir(parents=True)
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path))
    assert repro.cache_root() == tmp_path and not stale.exists()
    stale.mkdir()
    make_entry(tmp_path / "results" / "y", {"a": b"1"})
    assert not stale.exists()


def test_hashing_a_large_entry_once_is_fast(tmp_path):
    entry = make_entry(tmp_path / "big", {"model.safetensors": os.urandom(90 * 1024 * 1024)})
    fresh_process_view()
    t0 = time.perf_counter()
    assert is_done(entry)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert is_done(entry)
    again = time.perf_counter() - t0
    print(f"90 MiB entry: first verification {first:.3f} s, later ones {again * 1000:.2f} ms")
    assert first < 5 and again < 0.05


def test_damaged_entry_that_cannot_move_is_one_clear_error(tmp_path, monkeypatch):
    entry = make_entry(tmp_path / "e", {"a": b"abc"})
    (entry / "a").write_bytes(b"ab")

    def read_only(src, dst):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(repro.os, "rename", read_only)
    with pytest.raises(LayerwiseError, match=r"cannot be moved aside.*rm -r") as exc:
        is_done(entry)
    assert str(entry) in str(exc.value) and "\n" not in str(exc.value)


def test_import_scan_equals_the_parser_on_every_module():
    """The code-hash import scan reads the source text (no ``ast.parse``, which is not thread-safe in
    CPython 3.11); on every module of the package it finds exactly what the parser finds, and it reads
    parenthesised, aliased and function-local imports."""
    import ast

    from layerwise.core import repro

    from importlib.util import resolve_name

    def parsed(module):
        found = set()
        package = "layerwise." + module.rpartition(".")[0] if "." in module else "layerwise"
        for node in ast.walk(ast.parse(repro.module_path(module).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("layerwise")):
                base = resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
                found |= repro.package_modules(base.removeprefix("layerwise").lstrip("."),
                                               [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("layerwise.") for a in node.names if a.name.startswith("layerwise.")}
        return found

    modules = sorted(".".join(p.relative_to(repro.PACKAGE_DIR).with_suffix("").parts)
                     for p in repro.PACKAGE_DIR.rglob("*.py") if p.stem != "__init__" and "resources" not in p.parts)
    assert len(modules) > 30
    for module in modules:
        assert repro._package_imports(module) == parsed(module), module
    assert repro._names("(a,\n    b as c,  # why\n    d)") == ["a", "b", "d"]
