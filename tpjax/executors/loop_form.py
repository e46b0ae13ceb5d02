"""The XLA loop's form, chosen per program from measurement: how many steps one loop iteration runs.

A ``lax.scan`` of one small step pays a loop trip (and, on a GPU, a kernel launch and a round trip of the
state through memory) per step; unrolling runs several steps per trip. Measured side by side in
``benchmarks/bench_zoo.py`` (2026-12-01): on the 2-core CPU a user's unroll 10 was the fastest of 1/10/50 on
every case tried (Kepler 1000 steps: 76 / 17 / 83 ms); on the H200 unroll 10 was within 10% of the best of
10/50 on every XLA-path case (flat pendulum 5.6 vs 6.4 ms, FPU d = 32 6.5 vs 6.1 ms) and 2.7-3.6x faster
than unroll 1. Unrolling multiplies the compiled body, so large step programs and short runs keep 1.
"""

from __future__ import annotations

#: step programs up to this many TP-IR instructions are unrolled fully; larger ones less.
SMALL, MEDIUM = 64, 256
#: runs shorter than this keep unroll 1 (compile time would dominate the run).
MIN_STEPS = 100


def unroll_for(comp, steps: int) -> int:
    """Steps per loop iteration for running ``comp``'s step ``steps`` times in ``lax.scan``."""
    if steps < MIN_STEPS:
        return 1
    n = len(comp.step)
    return 10 if n <= SMALL else 4 if n <= MEDIUM else 1
