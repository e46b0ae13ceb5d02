"""Integrators driven by the TP-IR *flow* program z' = J(z) grad H(z): Lie-Poisson and implicit methods.

For these methods the compiled program computes the flow (backward phase, then POISSON_J, which the
``lie_cross`` pass turns into LIE_CROSS on so(3)*) and STOREs it at ``ptr_flow<k>``; the method's step
is built around that program: an implicit midpoint solve, or the exact rigid-body rotations.
"""

from __future__ import annotations

import dataclasses

from ..frontend.trace import STATE_NAMES, emit_gradient
from ..ir.ops import Op
from .base import AbstractIntegrator


def schedule_flow(b, tr, regs, const_regs) -> None:
    """Emit f = J(z) grad H(z) for the structure of ``tr`` and STORE each part at ptr_flow<k>."""
    names = STATE_NAMES[tr.structure]
    grads = [emit_gradient(b, tr, k, regs, const_regs, f"flow: dH/d{n}") for k, n in enumerate(names)]
    b.phase, b.stage = "poisson", "flow"

    def pj(g, L, kind):
        ref = next(i for i in b.instrs if i.dst == (L,))
        return b.emit(Op.POISSON_J, b.fresh("F"), (g, L), (("type", kind),), dtype=ref.dtype, shape=ref.shape)

    if tr.structure == "canonical":  # qdot = +dH/dp, pdot = -dH/dq
        flows = [_pj_canonical(b, grads[1], regs[0], "PASS"), _pj_canonical(b, grads[0], regs[1], "NEGATE")]
    elif tr.structure == "poisson":  # zdot = J(z) dH/dz, J traced from the user's function
        from ..frontend.from_jaxpr import lower_jaxpr

        b.phase, b.stage = "forward", "flow: J(z)"
        (J,) = lower_jaxpr(b, tr.J.jaxpr, tr.J.consts, regs)
        b.phase, b.stage = "poisson", "flow"
        ref = next(i for i in b.instrs if i.dst == (regs[0],))
        flows = [b.emit(Op.POISSON_J, b.fresh("F"), (grads[0], J), (("type", "MATRIX"),), dtype=ref.dtype,
                        shape=ref.shape, comment="zdot = J(z) dH/dz")]  # fmt: skip
    elif tr.structure == "so3":  # Ldot = L x dH/dL
        flows = [pj(grads[0], regs[0], "LIE")]
    else:  # se(3)* heavy top: Ldot = L x dH/dL + G x dH/dG, Gdot = G x dH/dL
        L, G = regs
        a, c = pj(grads[0], L, "LIE"), pj(grads[1], G, "LIE")
        ref = b.instrs[-1]
        f0 = b.emit(Op.FMA, b.fresh("F"), (a, 1.0, c), dtype=ref.dtype, shape=ref.shape, comment="Ldot")
        flows = [f0, pj(grads[0], G, "LIE")]
    b.phase, b.stage = "integrate", ""
    for k, f in enumerate(flows):
        ref = next(i for i in b.instrs if i.dst == (f,))
        b.emit(Op.STORE, f"ptr_flow{k}", (f,), dtype=ref.dtype, shape=ref.shape, comment=f"d{names[k]}/dt")


def _pj_canonical(b, g, like, kind):
    ref = next(i for i in b.instrs if i.dst == (like,))
    what = "qdot = +dH/dp" if kind == "PASS" else "pdot = -dH/dq"
    return b.emit(Op.POISSON_J, b.fresh("F"), (g,), (("type", kind),), dtype=ref.dtype, shape=ref.shape,
                  comment=what)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ImplicitMidpoint(AbstractIntegrator):
    """Implicit midpoint rule z1 = z0 + dt f((z0 + z1)/2) on the TP-IR flow.

    Properties: order 2, symmetric, symplectic (canonical), Poisson for Lie-Poisson structures, keeps
    quadratic Casimirs (|L|^2; Gamma.Gamma, L.Gamma) to solver tolerance. Any H, separable or not.
    A solve that does not converge yields NaN (and ``integrate`` raises ConvergenceError outside jit).
    Reference: Hairer, Lubich, Wanner, Geometric Numerical Integration, sec. II.1, IV.2, VI.4.
    """

    name: str = "implicit_midpoint"
    order: int = 2
    symmetric: bool = True
    structures: tuple[str, ...] = ("canonical", "so3", "se3", "poisson")
    solver: str = "newton"
    max_iter: int = 50
    tol: float | None = None

    def schedule(self, b, tr, regs, const_regs):
        schedule_flow(b, tr, regs, const_regs)


@dataclasses.dataclass(frozen=True)
class RigidBodySplitting(AbstractIntegrator):
    """Free rigid body H = sum L_i^2 / (2 I_i): exact axis rotations, Strang-composed (order 2) or
    Yoshida-composed (order 4). Explicit, symmetric, Poisson; |L|^2 preserved to roundoff.
    I is read off H (and H is checked to be of this form). Reference: McLachlan, Phys. Rev. Lett. 71
    (1993) 3043; Hairer, Lubich, Wanner, sec. VII.5."""

    name: str = "rigid_body"
    order: int = 2
    symmetric: bool = True
    structures: tuple[str, ...] = ("so3",)

    def schedule(self, b, tr, regs, const_regs):
        schedule_flow(b, tr, regs, const_regs)


IMPLICIT_MIDPOINT = ImplicitMidpoint()
RIGID_BODY = RigidBodySplitting()
RIGID_BODY4 = RigidBodySplitting(name="rigid_body4", order=4)
