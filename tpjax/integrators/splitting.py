"""Splitting methods for separable canonical systems, as stage tables.

Each is symplectic (a composition of exact kick/drift flows) and explicit. The coefficients live in
:mod:`tpjax.integrators.tables` (with their references); this module turns them into methods.
Reference: Hairer, Lubich, Wanner, *Geometric Numerical Integration*, 2nd ed., ch. II.5, III.5 and V.3.
"""

from __future__ import annotations

from . import tables as T
from .base import Drift, Kick, Splitting
from .composition import Composition

#: symplectic Euler (order 1): q1 = q0 + dt dH/dp(p0), then p1 = p0 - dt dH/dq(q1).
SYMPLECTIC_EULER = Splitting("symplectic_euler", (Drift(1.0), Kick(1.0)), order=1, symmetric=False)

#: leapfrog / velocity Verlet (order 2, symmetric): kick(1/2) drift(1) kick(1/2).
LEAPFROG = Splitting("leapfrog", (Kick(0.5), Drift(1.0), Kick(0.5)), order=2, symmetric=True)

#: position Verlet (order 2, symmetric): drift(1/2) kick(1) drift(1/2).
POSITION_VERLET = Splitting("position_verlet", (Drift(0.5), Kick(1.0), Drift(0.5)), order=2, symmetric=True)


def _composed(name: str, gammas, order: int) -> Splitting:
    return Composition(LEAPFROG, gammas, name=name, order=order).splitting()


#: Symmetric compositions of leapfrog (kick first and last, so FSAL leaves len(gammas) forces per step).
YOSHIDA4 = _composed("yoshida4", T.YOSHIDA4, 4)  # 3 force evaluations per step
YOSHIDA6 = _composed("yoshida6", T.YOSHIDA6, 6)  # 7
YOSHIDA8 = _composed("yoshida8", T.YOSHIDA8, 8)  # 15
SUZUKI4 = _composed("suzuki4", T.SUZUKI4, 4)  # 5
KAHAN_LI6 = _composed("kahan_li6", T.KAHAN_LI6, 6)  # 9
KAHAN_LI8 = _composed("kahan_li8", T.KAHAN_LI8, 8)  # 17
SOFRONIOU_SPALETTA10 = _composed("sofroniou_spaletta10", T.SOFRONIOU_SPALETTA10, 10)  # 35

#: Splittings given by their (a, b) tables. "rkn": the order holds for T = |p|^2 / 2 (Runge-Kutta-Nystrom
#: problems); for a general T(p) it is lower (noted), since they use [B, [B, [B, A]]] = 0.
OMELYAN2 = Splitting("omelyan2", a=T.OMELYAN2[0], b=T.OMELYAN2[1], order=2)  # 2 forces (FSAL)
MCLACHLAN4 = Splitting("mclachlan4", a=T.MCLACHLAN4[0], b=T.MCLACHLAN4[1], order=4)  # 5 forces
BLANES_MOAN4 = Splitting("blanes_moan4", a=T.BLANES_MOAN4[0], b=T.BLANES_MOAN4[1], order=4)  # 6 forces (FSAL)
BLANES_MOAN6 = Splitting("blanes_moan6", a=T.BLANES_MOAN6[0], b=T.BLANES_MOAN6[1], order=6)  # rkn (4); 11 (FSAL)
CALVO_SANZ4 = Splitting("calvo_sanz4", a=T.CALVO_SANZ4[0], b=T.CALVO_SANZ4[1], order=4)  # rkn (3); 4 (FSAL)
