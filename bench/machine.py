"""What every benchmark prints and writes first: CPU model, bf16 flags, torch's CPU capability,
threads, the device, the load average (a busy machine makes every absolute time noisy; ratios measured
side by side in one process are more robust)."""

from __future__ import annotations

import os


def header(device=None, precision: str | None = None) -> dict:
    from layerwise.model.models import pick_device
    from layerwise.core.precision import machine

    m = machine(device if device is not None else pick_device(), precision)
    m["loadavg"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return m


def header_markdown(m: dict) -> str:
    flags = ", ".join(m.get("cpu_bf16_flags") or []) or "none"
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"Machine: {m['cpu']} ({m['cores']} cores), bf16 CPU flags: {flags}, torch CPU capability "
            f"{m['cpu_capability']}, torch {m['torch']}, {m['threads']} threads, device {m.get('device')}{gpu}; "
            f"load average {m.get('loadavg')} (1, 5, 15 min) when measured.")


def load_line() -> str:
    """The load average now, as the benchmarks end their sections."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def publish(text: str, name: str, write: bool = True) -> None:
    """Print a benchmark's section and, unless ``write`` is False (``--no-write``), write it to
    ``bench/RESULTS-<name>.md`` (``run_all.py`` gathers those into bench/RESULTS.md)."""
    from pathlib import Path

    print(text)
    if write:
        (Path(__file__).parent / f"RESULTS-{name}.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    print(header_markdown(header()))
