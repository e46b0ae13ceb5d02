"""``SaveAt``: which steps of a run ``tpjax.trajectory`` saves, and what it saves there.

Saves happen on the step grid ``t_start + n * dt`` (n = 0 .. steps). ``plan`` turns a SaveAt into the
sorted step indices and into *groups* of equal gaps, so the executor runs one loop per group (a
``lax.scan`` over save blocks) instead of one per saved time.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class SaveAt:
    """Where a trajectory saves, and what.

    Args:
      t0: save the initial state (step 0).
      t1: save the final state (step ``steps``).
      ts: times to save at (a static 1-d sequence, numpy under jit). Each must lie on the step grid
        ``t_start + n * dt`` to within 1e-6 of a step (or the state dtype's rounding of dt, for
        float32 states); an off-grid time is refused with an
        error naming the two nearest grid times (tpjax never rounds silently). Needs a concrete ``dt``.
      steps: save every ``steps``-th step (k, 2k, ...; ``save_every=k`` is ``SaveAt(t0=True, steps=k)``).
      fn: ``fn(t, state) -> pytree`` saved instead of the state (an energy, a Casimir, any pytree). The
        state is never stored: each save block runs, then ``fn`` reduces the state. The leading axis of
        each saved leaf is time (after any vmap axis).
    """

    t0: bool = False
    t1: bool = False
    ts: object = None
    steps: int | None = None
    fn: Callable | None = None

    def __post_init__(self):
        for name in ("t0", "t1"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"SaveAt({name}=...) must be True or False, got {getattr(self, name)!r}")
        k = self.steps
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
            raise ValueError(f"SaveAt(steps=...) must be a positive int (save every k steps), got {k!r}")
        if self.fn is not None and not callable(self.fn):
            raise TypeError(f"SaveAt(fn=...) must be a callable fn(t, state), got {type(self.fn).__name__}")
        if self.ts is not None and isinstance(self.ts, jax.core.Tracer):
            raise TypeError("SaveAt(ts=...) must be static (a numpy array or list), not a traced array: the save "
                            "times fix the loop structure; close over them, do not pass them through jit")  # fmt: skip
        if not (self.t0 or self.t1 or self.ts is not None or k is not None):
            raise ValueError("SaveAt saves nothing; set t0=True, t1=True, ts=[...] or steps=k")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sorted save indices (step numbers) and the loop groups: ``(count, length, saves)`` each runs
    ``count`` blocks of ``length`` steps, saving after each block when ``saves``."""

    indices: np.ndarray
    groups: tuple
    with_initial: bool


def from_save_every(k: int) -> SaveAt:
    return SaveAt(t0=True, steps=int(k))


def _grid_indices(ts, dt, t_start, steps: int, eps: float) -> list[int]:
    if isinstance(dt, jax.core.Tracer) or isinstance(t_start, jax.core.Tracer):
        raise TypeError("SaveAt(ts=...) needs a concrete dt and start time to map times to steps; under jax.jit "
                        "close over dt (or mark it static), or save with SaveAt(steps=k)")  # fmt: skip
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1:
        raise ValueError(f"SaveAt(ts=...) must be a 1-d sequence of times, got shape {ts.shape}")
    dt, t_start = float(np.asarray(dt)), float(np.asarray(t_start))
    out = []
    for t in ts:
        x = (t - t_start) / dt
        n = int(np.rint(x))
        if abs(x - n) > max(1e-6, 16 * eps * abs(x)):  # dt itself is rounded to the state's dtype
            lo, hi = int(np.floor(x)), int(np.ceil(x))
            raise ValueError(f"SaveAt(ts=...): t={t:.10g} is not on the step grid t_start + n*dt (t_start="
                             f"{t_start:.10g}, dt={dt:.10g}); the nearest grid times are {t_start + lo * dt:.10g} "
                             f"(n={lo}) and {t_start + hi * dt:.10g} (n={hi}); pass one of those")  # fmt: skip
        if not 0 <= n <= steps:
            raise ValueError(f"SaveAt(ts=...): t={t:.10g} is step {n}, outside the run's steps 0..{steps} "
                             f"(times {t_start:.10g} .. {t_start + steps * dt:.10g})")  # fmt: skip
        out.append(n)
    return out


def plan(saveat: SaveAt, steps: int, dt, t_start, dtype=np.float64) -> Plan:
    """The save indices and loop groups of ``saveat`` for a run of ``steps`` steps."""
    idx = set()
    if saveat.t0:
        idx.add(0)
    if saveat.t1:
        idx.add(steps)
    if saveat.steps is not None:
        if steps % saveat.steps:
            raise ValueError(f"SaveAt(steps={saveat.steps}) (or save_every) must divide steps={steps}; e.g. "
                             f"steps={steps - steps % saveat.steps or saveat.steps}")  # fmt: skip
        idx.update(range(saveat.steps, steps + 1, saveat.steps))
    if saveat.ts is not None:
        idx.update(_grid_indices(saveat.ts, dt, t_start, steps, float(np.finfo(dtype).eps)))
    indices = np.array(sorted(idx), dtype=np.int64)
    groups, last = [], 0
    for n in indices[indices > 0]:
        gap = int(n) - last
        if groups and groups[-1][1] == gap:
            groups[-1][0] += 1
        else:
            groups.append([1, gap, True])
        last = int(n)
    if steps > last:
        groups.append([1, steps - last, False])
    return Plan(indices, tuple(tuple(g) for g in groups), bool(indices.size and indices[0] == 0))
