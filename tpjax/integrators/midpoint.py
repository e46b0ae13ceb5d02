"""The implicit midpoint method as an integrator object (the solve itself is in ``implicit.py``)."""

from __future__ import annotations

import dataclasses

from .base import AbstractIntegrator
from .flow import schedule_flow
from .stepper import Stepper, implicit_stepper


@dataclasses.dataclass(frozen=True)
class ImplicitMidpoint(AbstractIntegrator):
    """Implicit midpoint rule z1 = z0 + dt f((z0 + z1)/2) on the TP-IR flow.

    Properties: order 2, symmetric; symplectic for canonical H; for Lie-Poisson and other Poisson
    structures it keeps quadratic Casimirs (|L|^2; Gamma.Gamma, L.Gamma; the vortex impulses) to solver
    tolerance but is NOT a Poisson map in general (its one-step Poisson defect is O(dt^3)). Any H,
    separable or not. A solve that does not converge yields NaN (and ``integrate`` raises
    ConvergenceError outside jit).
    Reference: Hairer, Lubich, Wanner, Geometric Numerical Integration, sec. II.1, IV.2, VI.4, VII.4.
    """

    name: str = "implicit_midpoint"
    order: int = 2
    symmetric: bool = True
    structures: tuple[str, ...] = ("flow",)
    solver: str = "newton"
    max_iter: int = 50
    tol: float | None = None

    def schedule(self, b, tr, regs, const_regs):
        schedule_flow(b, tr, regs, const_regs)

    def stepper(self, comp) -> Stepper:
        from .implicit import ConvergenceError, implicit_midpoint_step

        def solve(flow, z, dt):
            return implicit_midpoint_step(flow, z, dt, tol=self.tol, max_iter=self.max_iter, solver=self.solver)

        return implicit_stepper(comp, solve, ConvergenceError, self.max_iter)


IMPLICIT_MIDPOINT = ImplicitMidpoint()
