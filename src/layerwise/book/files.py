"""The book's generated files written only when their text changes (so that an unchanged run touches nothing
and the stamps that watch these files stay valid), atomically."""

from __future__ import annotations

from pathlib import Path

from ..core.repro import atomic_write_text


def same_text(path: Path, text: str) -> bool:
    """Whether ``path`` already holds exactly ``text`` (False when it is missing or unreadable)."""
    try:
        return Path(path).read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (its folder created) atomically unless it already holds exactly that; True
    when written."""
    path = Path(path)
    if same_text(path, text):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return True
