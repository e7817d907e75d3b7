"""How the executed chapters read: words, sentences, the longest sentence, sentences over
:data:`LONG_SENTENCE` words and nested parentheses, per chapter notebook (issue 24).

``python -m layerwise.book.prose_stats report/demo/*.ipynb`` prints one row per chapter.

What counts as prose: the markdown cells and the ``text/markdown`` outputs of an executed notebook.
Left out: fenced code blocks (```` ``` ```` ... ```` ``` ````, which holds every chart's HTML), raw HTML
lines (``<...>``), images (``![...](...)``), Quarto fences (``:::``), headings (``#``), pipe-table lines (``|``), table and figure
captions (``: ...`` lines), display and inline math (``$$...$$``, ``$...$``). An inline code span counts as
one word and its contents are not read.

Words: the whitespace-separated pieces that hold a letter or a digit.

Sentences, the splitting rule: each paragraph (text between blank lines) and each list item is split
after ``.``, ``!`` or ``?`` (a closing parenthesis, quote or ``*`` may follow it) where whitespace comes next
and then a capital letter, or a ``*``, ``(`` or quote before a capital letter. A full stop inside a number
(``0.72``) is never a boundary (no whitespace follows it), nor one that ends an abbreviation in
:data:`ABBREVIATIONS` (``e.g.``, ``i.e.``, ``et al.``, ``cf.``, ``vs.``, ``Fig.``, ``Eq.``). The end of a paragraph or
list item ends a sentence.

Nested parentheses: every ``(`` opened while another ``(`` is still open (counted over each paragraph).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

#: a sentence longer than this (in words) is counted as long
LONG_SENTENCE = 35
#: a full stop after one of these words is not a sentence boundary
ABBREVIATIONS = ("e.g.", "i.e.", "al.", "cf.", "vs.", "Fig.", "Eq.", "approx.", "resp.")

_BOUNDARY = re.compile(r"(?<=[.!?])([)\"'”*]*)\s+(?=[*(\"'“]*[A-Z])")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


@dataclass(frozen=True)
class ProseStats:
    """One chapter's counts."""

    chapter: str
    words: int
    sentences: int
    longest: int
    long_sentences: int
    nested_parentheses: int


def markdown_texts(notebook: dict) -> list[str]:
    """The markdown of a notebook as read: markdown cells and ``text/markdown`` outputs, in order."""
    out = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            out.append(_joined(cell.get("source", "")))
        for output in cell.get("outputs", []) or []:
            data = output.get("data", {}) or {}
            if "text/markdown" in data:
                out.append(_joined(data["text/markdown"]))
    return out


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else str(text)


def paragraphs(markdown: str) -> list[str]:
    """The prose blocks of one markdown text (paragraphs and list items), with what is not prose removed."""
    text = _MATH.sub(" ", markdown)
    blocks, current, fenced = [], [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            blocks.append(current)
            current = []
            continue
        if fenced:
            continue
        if not stripped or stripped.startswith(("#", "|", "<", ":::", ": ", "![")) or _ITEM.match(line):
            blocks.append(current)
            current = []
            if _ITEM.match(line):
                current = [_ITEM.sub("", line)]
            continue
        current.append(stripped)
    blocks.append(current)
    return [" ".join(b) for b in blocks if b and " ".join(b).strip()]


def sentences(paragraph: str) -> list[str]:
    """One paragraph split by the module's rule (see the module docstring)."""
    text = _INLINE_CODE.sub("CODE", paragraph).strip()
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        end = m.start() + len(m.group(1))
        before = text[start:m.start()].split()
        if before and before[-1].endswith(ABBREVIATIONS):
            continue
        out.append(text[start:end].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if words(s)]


def words(text: str) -> int:
    """The number of whitespace-separated pieces that hold a letter or a digit."""
    return sum(1 for w in _INLINE_CODE.sub("CODE", text).split() if any(ch.isalnum() for ch in w))


def nested_parentheses(text: str) -> int:
    """How many ``(`` open while another ``(`` is still open."""
    depth = nested = 0
    for ch in _INLINE_CODE.sub("CODE", text):
        if ch == "(":
            nested += depth >= 1
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
    return nested


def chapter_stats(notebook: dict, chapter: str = "") -> ProseStats:
    """The counts of one notebook (a dict as ``json.load`` reads it)."""
    blocks = [p for text in markdown_texts(notebook) for p in paragraphs(text)]
    lengths = [words(s) for p in blocks for s in sentences(p)]
    return ProseStats(chapter, sum(words(p) for p in blocks), len(lengths), max(lengths, default=0),
                      sum(n > LONG_SENTENCE for n in lengths), sum(nested_parentheses(p) for p in blocks))


def long_sentences(notebook: dict, limit: int = LONG_SENTENCE) -> list[str]:
    """The sentences of a notebook over ``limit`` words (to find what to rewrite)."""
    return [s for text in markdown_texts(notebook) for p in paragraphs(text) for s in sentences(p)
            if words(s) > limit]


def notebook_stats(path: str | Path) -> ProseStats:
    """The counts of one notebook file."""
    path = Path(path)
    return chapter_stats(json.loads(path.read_text(encoding="utf-8")), path.stem)


def table(stats: list[ProseStats]) -> str:
    """The counts as a Markdown table, one row per chapter."""
    head = "| chapter | words | sentences | longest sentence | sentences > 35 words | nested parentheses |"
    rows = [f"| {s.chapter} | {s.words} | {s.sentences} | {s.longest} | {s.long_sentences} | "
            f"{s.nested_parentheses} |" for s in stats]
    return "\n".join([head, "|---|---:|---:|---:|---:|---:|", *rows])


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m layerwise.book.prose_stats CHAPTER.ipynb [...]", file=sys.stderr)
        return 2
    if paths[0] == "--json":
        print(json.dumps([asdict(notebook_stats(p)) for p in paths[1:]], indent=1))
    else:
        print(table([notebook_stats(p) for p in paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
