"""Parallel studies: ``layerwise run -j N`` computes the studies (one per params file) in N worker
processes, then the chapters run in the parent once every study is written.

Workers are spawned (``ProcessPoolExecutor`` with the ``spawn`` context: no CUDA state or thread pool
is inherited) and each takes a *slot* from a shared queue for the time of one study. With GPUs
visible (``CUDA_VISIBLE_DEVICES``, else ``torch.cuda.device_count()``), slot ``k`` pins its study to
GPU ``k mod #GPUs`` through ``CUDA_VISIBLE_DEVICES`` (set before torch touches CUDA: each study runs
in a fresh process, ``max_tasks_per_child=1``); without GPUs the CPU cores are split,
``max(1, cores // N)`` threads per worker (``OMP_NUM_THREADS`` before torch is imported,
``torch.set_num_threads`` after). A study's results do not depend on where
it ran: -j N gives the same study directories as -j 1 with the same threads per job.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its environment overrides and its CPU threads."""

    index: int
    threads: int
    env: dict[str, str] = field(default_factory=dict)


def visible_gpus(environ: dict[str, str] | None = None, count: Callable[[], int] | None = None) -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set (empty or ``-1``: none), else
    ``0 .. count()-1`` (``count`` defaults to ``torch.cuda.device_count``)."""
    environ = os.environ if environ is None else environ
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        ids = [v.strip() for v in value.split(",") if v.strip()]
        return [] if ids in ([], ["-1"]) else ids
    if count is None:
        try:
            import torch

            count = torch.cuda.device_count
        except ImportError:  # pragma: no cover
            return []
    return [str(i) for i in range(count())]


def plan_slots(jobs: int, gpus: Sequence[str], cores: int | None) -> list[Slot]:
    """One :class:`Slot` per worker: GPU ``k mod len(gpus)`` when there are GPUs, the CPU cores
    split evenly either way."""
    jobs = max(1, int(jobs))
    threads = max(1, (cores or 1) // jobs)
    if gpus:
        return [Slot(k, threads, {"CUDA_VISIBLE_DEVICES": str(gpus[k % len(gpus)])}) for k in range(jobs)]
    return [Slot(k, threads) for k in range(jobs)]


def _in_slot(slots, fn: Callable, args: tuple) -> Any:
    """Run ``fn(*args)`` in a worker, inside a free slot (returned to the queue afterwards)."""
    slot: Slot = slots.get()
    try:
        os.environ.update(slot.env)
        # before torch starts its thread pool (read at import), and directly when it is already imported
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(slot.threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(slot.threads)
        return fn(*args)
    finally:
        slots.put(slot)


def run_parallel(fn: Callable, calls: Sequence[tuple], jobs: int, *, gpus: Sequence[str] | None = None,
                 cores: int | None = None) -> list[Any]:
    """``[fn(*args) for args in calls]`` in ``jobs`` spawned worker processes, each call in its own
    process and slot (:func:`plan_slots`); results in the order of ``calls``; the first error is
    raised after every call has finished. ``fn`` must be importable (a module-level function)."""
    slots_plan = plan_slots(min(jobs, len(calls)) or 1, visible_gpus() if gpus is None else gpus,
                            os.cpu_count() if cores is None else cores)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        slots = manager.Queue()
        for slot in slots_plan:
            slots.put(slot)
        with ProcessPoolExecutor(len(slots_plan), mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = [pool.submit(_in_slot, slots, fn, tuple(args)) for args in calls]
            errors = [f.exception() for f in futures]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]
