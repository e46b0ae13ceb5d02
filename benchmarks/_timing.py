"""Timing and result files shared by the GPU benchmarks: a median of timed runs after warm-ups, in ms, and a
result text printed and written to ``$OUT/<name>`` when OUT is set (the device tool's output folder)."""

from __future__ import annotations

import os
import statistics
import time

import jax


def median_ms(fn, *args, reps: int, warmups: int = 2) -> float:
    """Median wall time of ``fn(*args)`` over ``reps`` runs after ``warmups`` (compile included there), ms."""
    for _ in range(warmups):
        jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def report(name: str, text: str) -> None:
    """Print ``text`` and write it to ``$OUT/name`` when OUT is set."""
    print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], name), "w") as fh:
            fh.write(text + "\n")
