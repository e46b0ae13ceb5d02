"""The implicit midpoint method as an integrator object (the solve itself is in ``implicit.py``)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .base import AbstractIntegrator
from .flow import schedule_flow
from .stepper import Stepper, flow_function


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
        from .implicit import implicit_midpoint_step

        def step(params, z, dt):
            z1, info = implicit_midpoint_step(flow_function(comp, params), z, dt, tol=self.tol,
                                              max_iter=self.max_iter, solver=self.solver)  # fmt: skip
            return tuple(jnp.where(info.converged, a, jnp.nan) for a in z1)

        return Stepper(step, tuple(comp.consts), lambda params, parts: tuple(parts), len(comp.structure.ptrs),
                       self._check_converged)  # fmt: skip

    def _check_converged(self, z, dt) -> None:
        if any(isinstance(a, jax.core.Tracer) for a in z) or isinstance(dt, jax.core.Tracer):
            return
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in z):
            from .implicit import ConvergenceError

            raise ConvergenceError(float(dt), self.max_iter)


IMPLICIT_MIDPOINT = ImplicitMidpoint()
