"""Splitting methods for separable canonical systems, as stage tables.

Each is symplectic (a composition of exact kick/drift flows) and explicit.
Reference: Hairer, Lubich, Wanner, *Geometric Numerical Integration*, 2nd ed., ch. II.5 and V.3.
"""

from __future__ import annotations

from .base import Drift, Kick, Splitting

#: symplectic Euler (order 1): q1 = q0 + dt dH/dp(p0), then p1 = p0 - dt dH/dq(q1).
SYMPLECTIC_EULER = Splitting("symplectic_euler", (Drift(1.0), Kick(1.0)), order=1, symmetric=False)

#: leapfrog / velocity Verlet (order 2, symmetric): kick(1/2) drift(1) kick(1/2).
LEAPFROG = Splitting("leapfrog", (Kick(0.5), Drift(1.0), Kick(0.5)), order=2, symmetric=True)

#: position Verlet (order 2, symmetric): drift(1/2) kick(1) drift(1/2).
POSITION_VERLET = Splitting("position_verlet", (Drift(0.5), Kick(1.0), Drift(0.5)), order=2, symmetric=True)


def _triple_jump(name: str, base: Splitting) -> Splitting:
    """Yoshida's order-raising composition base(w1 dt) base(w0 dt) base(w1 dt) of a symmetric method."""
    w1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
    w0 = 1.0 - 2.0 * w1
    stages: list = []
    for w in (w1, w0, w1):
        for s in base.stages:
            t = type(s)(s.c * w)
            if stages and type(stages[-1]) is t.__class__:
                stages[-1] = t.__class__(stages[-1].c + t.c)  # merge adjacent kicks
            else:
                stages.append(t)
    return Splitting(name, tuple(stages), order=base.order + 2, symmetric=True)


#: Yoshida's 4th-order composition of leapfrog (7 stages, 3 force evaluations per step with FSAL).
YOSHIDA4 = _triple_jump("yoshida4", LEAPFROG)
