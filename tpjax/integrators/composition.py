"""Splittings from coefficients, and symmetric compositions of a symmetric splitting.

Coefficient convention of ``Splitting(a=..., b=...)`` (drift first, alternating, in time order)::

    step(dt) = drift(a_1 dt), kick(b_1 dt), drift(a_2 dt), kick(b_2 dt), ...

``drift(c dt)`` is q <- q + c dt dH/dp and ``kick(c dt)`` is p <- p - c dt dH/dq (the exact flows of the two
parts of a separable H = T(p) + V(q)). ``len(a) == len(b) + 1`` ends the step with a drift, ``len(a) ==
len(b)`` ends it with a kick. A step that starts with a kick has ``a_1 = 0``: leapfrog (kick-drift-kick) is
``a=(0, 1), b=(1/2, 1/2)``, position Verlet is ``a=(1/2, 1/2), b=(1,)``. Zero coefficients are dropped and
neighbours of one kind are merged, so a table becomes the shortest equivalent stage sequence.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from .base import Drift, Kick, Splitting

TOL = 1e-12  # consistency (sum = 1) and symmetry tolerance; tables are typed to ~17 digits


def _floats(values, arg: str) -> tuple[float, ...]:
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise TypeError(f"{arg} must be a sequence of numbers, got {type(values).__name__}; e.g. {arg}=(0.5, 0.5)")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{arg} must hold finite real numbers, got {v!r}")
        out.append(float(v))
    return tuple(out)


def merge(stages) -> tuple[Kick | Drift, ...]:
    """Drop zero stages and merge neighbouring stages of one kind (their flows commute)."""
    out: list = []
    for s in stages:
        if s.c == 0.0:
            continue
        if out and type(out[-1]) is type(s):
            out[-1] = type(s)(out[-1].c + s.c)
            if out[-1].c == 0.0:  # e.g. kick(x) kick(-x): the drifts around it now touch
                out.pop()
        else:
            out.append(s)
    return tuple(out)


def stages_from_coefficients(a, b) -> tuple[Kick | Drift, ...]:
    """The stage table drift(a_1) kick(b_1) drift(a_2) ... (see the module docstring), zeros removed."""
    a, b = _floats(a, "a"), _floats(b, "b")
    if len(a) not in (len(b), len(b) + 1):
        raise ValueError(f"Splitting: len(a) = {len(a)} and len(b) = {len(b)}; the table alternates drift(a_i), "
                         "kick(b_i) starting with a drift, so len(a) must be len(b) (ends with a kick) or "
                         "len(b) + 1 (ends with a drift); pad with a_1 = 0 to start with a kick")  # fmt: skip
    stages = []
    for i, ai in enumerate(a):
        stages.append(Drift(ai))
        if i < len(b):
            stages.append(Kick(b[i]))
    return merge(stages)


def is_palindrome(stages, tol: float = TOL) -> bool:
    """The table reads the same backward: then step(-dt) inverts step(dt) (the method is symmetric)."""
    return all(type(s) is type(t) and abs(s.c - t.c) <= tol * max(1.0, abs(s.c))
               for s, t in zip(stages, reversed(stages), strict=True))  # fmt: skip


def check(split: Splitting, arg: str) -> None:
    """Refuse an inconsistent table: empty, sums != 1, or symmetric=True for a non-palindromic table."""
    if not split.stages or not all(isinstance(s, Kick | Drift) for s in split.stages):
        raise ValueError(f"{split.name}: {arg} must be a non-empty sequence of Kick/Drift stages")
    for cls, coef in ((Drift, "a" if arg == "a/b" else "Drift"), (Kick, "b" if arg == "a/b" else "Kick")):
        total = math.fsum(s.c for s in split.stages if isinstance(s, cls))
        if abs(total - 1.0) > TOL:
            raise ValueError(f"{split.name}: the {coef} coefficients sum to {total!r}, not 1 (consistency); "
                             f"rescale them (divide by {total!r}) or fix the table")  # fmt: skip
    if split.symmetric and not is_palindrome(split.stages):
        raise ValueError(f"{split.name}: symmetric=True but the stage table is not a palindrome, so step(-dt) "
                         "does not undo step(dt); pass symmetric=False (or omit it) or fix the table")  # fmt: skip
    if isinstance(split.order, bool) or not isinstance(split.order, int) or split.order < 1:
        raise ValueError(f"{split.name}: order must be a positive int (the global order you claim), "
                         f"got {split.order!r}")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Composition:
    """A symmetric composition base(g_1 dt) o base(g_2 dt) o ... o base(g_s dt) of a symmetric method.

    Properties: symmetric (the gammas are a palindrome) and symplectic when ``base`` is. With sum(g) = 1
    the order is at least ``base.order``; it rises (to 4, 6, 8, 10) when the gammas solve the order
    conditions of symmetric compositions (Hairer, Lubich, Wanner, *Geometric Numerical Integration*, V.3).
    ``order`` is the order you claim; it defaults to ``base.order`` (the guaranteed one).

    Args:
      base: a symmetric :class:`Splitting` (e.g. leapfrog). Other methods may be composed later.
      gammas: the sub-step weights g_i, a palindrome summing to 1 (e.g. the triple jump).
      name, order: of the resulting method.
    """

    base: Splitting
    gammas: tuple[float, ...]
    name: str = "composition"
    order: int | None = None

    def __post_init__(self):
        if not isinstance(self.base, Splitting):
            raise TypeError(f"Composition: base must be a tpjax.Splitting (for now), got {type(self.base).__name__}")
        if not self.base.symmetric:
            raise ValueError(f"Composition: base={self.base.name!r} is not symmetric; symmetric compositions "
                             "raise the order only of symmetric methods: compose e.g. leapfrog")  # fmt: skip
        g = _floats(self.gammas, "gammas")
        object.__setattr__(self, "gammas", g)
        if not g:
            raise ValueError("Composition: gammas must not be empty; e.g. gammas=(1.0,) is the base method")
        if abs(math.fsum(g) - 1.0) > TOL:
            raise ValueError(f"Composition: gammas sum to {math.fsum(g)!r}, not 1; rescale them")
        if any(abs(x - y) > TOL * max(1.0, abs(x)) for x, y in zip(g, reversed(g), strict=True)):
            raise ValueError("Composition: gammas must be a palindrome (g_i = g_{s+1-i}) for a symmetric "
                             "composition; e.g. (w1, w0, w1)")  # fmt: skip

    def stages(self) -> tuple[Kick | Drift, ...]:
        """The merged stage table: each sub-step's stages scaled by its gamma, touching kicks/drifts summed."""
        return merge(type(s)(s.c * w) for w in self.gammas for s in self.base.stages)

    def splitting(self) -> Splitting:
        """The composition as a Splitting (what tpjax compiles): FSAL applies if it starts and ends with a kick."""
        order = self.base.order if self.order is None else self.order
        return Splitting(self.name, self.stages(), order=order, symmetric=True, structures=self.base.structures)
