"""Gauss-Legendre collocation (implicit Runge-Kutta, s stages, order 2s) on the TP-IR flow.

The stage increments Z_i = dt sum_j a_ij f(z + Z_j) are solved together, (s * n) unknowns for a state of n
numbers, by Newton's method with the dense Jacobian from jax.jacfwd (fine for the small per-system states
of Hamiltonian models; vmap for ensembles) or by fixed-point iteration, inside lax.while_loop. The solve is
wrapped in lax.custom_root, so derivatives come from the implicit function theorem, never through the loop.
The new state is z1 = z + sum_i d_i Z_i with d = b A^-1 (no further evaluation of f; Hairer, Lubich,
Wanner, sec. VIII.6).

The Butcher tables are computed here, not typed in: the nodes c_i are the roots of the Legendre polynomial
P_s shifted to [0, 1], b_i the Gauss weights, and a_ij = int_0^{c_i} l_j(t) dt with l_j the Lagrange basis
polynomial on the nodes (the collocation conditions).

Reference: Hairer, Lubich, Wanner, Geometric Numerical Integration, 2nd ed. (2006), sec. II.1.3 (collocation),
IV.2.1 (quadratic invariants), VI.4 (symplecticity), VIII.6 (implementation); Butcher, Math. Comp. 18 (1964) 50.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from .base import AbstractIntegrator
from .flow import schedule_flow
from .implicit import SOLVERS, ConvergenceError, MidpointInfo
from .stepper import Stepper, implicit_stepper


@functools.cache
def butcher(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, b, c) of the s-stage Gauss-Legendre method (float64 numpy arrays; A is (s, s))."""
    if not isinstance(s, int) or s < 1:
        raise ValueError(f"stages must be a positive int, got {s!r}")
    x, w = np.polynomial.legendre.leggauss(s)  # roots of P_s on [-1, 1] and their Gauss weights
    c, b = (x + 1.0) / 2.0, w / 2.0
    A = np.empty((s, s))
    for j in range(s):
        others = np.delete(c, j)
        lj = np.polynomial.Polynomial([1.0])
        for ck in others:
            lj = lj * np.polynomial.Polynomial([-ck, 1.0]) / (c[j] - ck)
        Lj = lj.integ()  # antiderivative with Lj(0) = 0
        A[:, j] = Lj(c)
    return A, b, c


class GaussConvergenceError(ConvergenceError):
    """Raised (by the caller, e.g. tpjax.integrate) when a Gauss-Legendre stage solve did not converge."""

    TEMPLATE = (
        "Gauss-Legendre collocation did not converge at dt={dt}: residual {residual} after {iterations} "
        "iterations (tolerance {tol}). Use a smaller dt, a larger max_iter, or solver='newton' if you used "
        "'fixed_point'."
    )


def _max_norm(x):
    return jnp.max(jnp.abs(x), initial=0.0)


def gauss_step(f, z, dt, stages: int, *, tol=None, max_iter: int = 50, solver: str = "newton"):
    """One step of the ``stages``-stage Gauss-Legendre method for z' = f(z).

    Properties: order 2 * stages; symmetric; symplectic for canonical f; keeps every quadratic invariant
    to solver tolerance. Arguments as :func:`tpjax.integrators.implicit.implicit_midpoint_step` (``z`` is
    one system, an array or a pytree of floating arrays; ``dt`` scalar, may be traced or negative).
    Returns: (z1, info) with info a MidpointInfo (converged, iterations, residual).
    """
    if solver not in SOLVERS:
        raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
    x, unravel = ravel_pytree(z)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"`z` must hold floating-point arrays; got dtype {x.dtype}.")
    A_np, b_np, c_np = butcher(stages)
    A, c = jnp.asarray(A_np, x.dtype), jnp.asarray(c_np, x.dtype)
    d = jnp.asarray(np.linalg.solve(A_np.T, b_np), x.dtype)  # b^T A^-1
    n = x.size
    dt = jnp.asarray(dt, x.dtype)

    def F(y):
        return ravel_pytree(f(unravel(y)))[0].astype(x.dtype)

    def residual(Zf):
        Z = Zf.reshape(stages, n)
        FZ = jnp.stack([F(x + Z[i]) for i in range(stages)])
        return Zf - dt * (A @ FZ).reshape(-1)

    f0 = dt * F(x)
    Z0 = (c[:, None] * f0[None, :]).reshape(-1)  # explicit Euler prediction of each stage
    if tol is None:
        scale = lax.stop_gradient(jnp.maximum(_max_norm(x), _max_norm(f0)))
        tol_ = 10 * jnp.finfo(x.dtype).eps * scale
    else:
        tol_ = jnp.asarray(tol, x.dtype)

    def solve(g, Z_init):
        def cond(carry):
            _, r, it = carry
            return (_max_norm(r) > tol_) & (it < max_iter)

        def body(carry):
            Z, r, it = carry
            step = jnp.linalg.solve(jax.jacfwd(g)(Z), r) if solver == "newton" else r
            Z = Z - step
            return Z, g(Z), it + 1

        Z, r, it = lax.while_loop(cond, body, (Z_init, g(Z_init), jnp.zeros((), jnp.int32)))
        res = _max_norm(r)
        return Z, MidpointInfo(res <= tol_, it, res)

    def tangent_solve(g, y):
        return jnp.linalg.solve(jax.jacfwd(g)(y), y)

    Zf, info = lax.custom_root(residual, lax.stop_gradient(Z0), solve, tangent_solve, has_aux=True)
    return unravel(x + d @ Zf.reshape(stages, n)), info


@dataclasses.dataclass(frozen=True)
class GaussLegendre(AbstractIntegrator):
    """Gauss-Legendre collocation with ``stages`` = s stages: ``gauss4`` (s = 2), ``gauss6`` (s = 3),
    ``gauss8`` (s = 4); s = 1 is the implicit midpoint rule.

    Properties: order 2s (the highest of any s-stage Runge-Kutta method), implicit, symmetric; symplectic
    for canonical H (separable or not); keeps quadratic invariants (|L|^2 on so(3)*; Gamma.Gamma and
    L.Gamma on se(3)*) to solver tolerance for any structure with a flow; like implicit midpoint it is
    not a Poisson map on Lie-Poisson structures in general. Cost per step: Newton iterations on the s*n
    stage increments (dense Jacobian). A solve that does not converge yields NaN (and ``integrate`` raises
    GaussConvergenceError, a ConvergenceError, outside jit). Gradients: implicit function theorem; every
    adjoint ("reversible" is the default).
    Reference: Butcher, Math. Comp. 18 (1964) 50; Hairer, Lubich, Wanner, Geometric Numerical
    Integration, sec. II.1.3, IV.2, VI.4.
    """

    stages: int = 2
    solver: str = "newton"
    max_iter: int = 50
    tol: float | None = None
    name: str = ""
    order: int = 0
    symmetric: bool = True
    structures: tuple[str, ...] = ("flow",)

    def __post_init__(self):
        butcher(self.stages)  # checks stages
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        object.__setattr__(self, "order", 2 * self.stages)
        if not self.name:
            object.__setattr__(self, "name", f"gauss{2 * self.stages}")

    def schedule(self, b, tr, regs, const_regs):
        schedule_flow(b, tr, regs, const_regs)

    def stepper(self, comp) -> Stepper:
        def solve(flow, z, dt):
            return gauss_step(flow, z, dt, self.stages, tol=self.tol, max_iter=self.max_iter, solver=self.solver)

        return implicit_stepper(comp, solve, GaussConvergenceError, self.max_iter)


GAUSS4 = GaussLegendre(stages=2)
GAUSS6 = GaussLegendre(stages=3)
GAUSS8 = GaussLegendre(stages=4)
