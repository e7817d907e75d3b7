"""The wall time of each phase of a run (issue #13: each phase's share of the cold run).

The steps that do work record themselves here when they run (a cache hit records nothing):
fine-tuning per seed, the geometry engine per state, the similarities between states, the probes
of a study's states, each chapter notebook executed, the preview. ``report.run`` collects them
(from worker processes too: :func:`take` returns this process's records), adds ``other`` (the rest
of the run's wall time: loading inputs and models, reading and writing the study files), logs one
line and writes ``report/_layerwise/phases.json`` when the run did any work."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

_RECORDS: list[tuple[str, float]] = []


def record(name: str, seconds: float) -> None:
    """Record that phase ``name`` took ``seconds`` of wall time in this process."""
    _RECORDS.append((name, max(0.0, float(seconds))))


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Record the wall time of the ``with`` block as phase ``name`` (also when it raises)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - t0)


def take() -> list[tuple[str, float]]:
    """This process's records since the last call, in order (and forget them)."""
    out = list(_RECORDS)
    _RECORDS.clear()
    return out


def table(records: Sequence[tuple[str, float]], total: float) -> list[dict]:
    """One row per phase (``phase``, ``seconds``, ``share`` of ``total``), repeated names summed in
    order of first appearance, then ``other``: the part of ``total`` no phase recorded (never
    negative; the shares sum to 1 when the phases fit in ``total``)."""
    sums: dict[str, float] = {}
    for name, seconds in records:
        sums[name] = sums.get(name, 0.0) + seconds
    sums["other"] = max(0.0, total - sum(sums.values()))
    whole = sum(sums.values()) or 1.0
    return [{"phase": k, "seconds": round(v, 3), "share": round(v / whole, 4)} for k, v in sums.items()]


def line(rows: Sequence[dict]) -> str:
    """The log line: every phase with its seconds and share."""
    return "phases: " + "; ".join(f"{r['phase']} {r['seconds']:.1f} s ({100 * r['share']:.0f} %)" for r in rows)


def markdown(rows: Sequence[dict]) -> list[str]:
    """The phases as a Markdown table (bench_cold prints one per variant)."""
    return (["| phase | seconds | share |", "|---|---:|---:|"]
            + [f"| {r['phase']} | {r['seconds']:.1f} | {100 * r['share']:.1f} % |" for r in rows])
