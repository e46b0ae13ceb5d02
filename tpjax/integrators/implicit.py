"""Implicit midpoint rule for an arbitrary vector field z' = f(z) (canonical, Lie-Poisson or generic).

z1 = z + dt f((z + z1) / 2) is solved for the increment d = z1 - z, by Newton's method (dense Jacobian
from jax.jacfwd, for the small per-system states of Hamiltonian models) or by fixed-point iteration,
inside lax.while_loop. The solve is wrapped in lax.custom_root, so derivatives (jvp, vjp, jax.grad) come
from the implicit function theorem and never differentiate through the loop.
Batches: the step treats z as ONE system; vmap it for ensembles (the loop then runs until every member
has converged, each one's result is its own converged solve).

Reference: E. Hairer, C. Lubich, G. Wanner, "Geometric Numerical Integration", 2nd ed., Springer (2006),
sec. II.1 (midpoint rule), IV.2 (quadratic invariants), VI.4 (symplecticity), VIII.6 (implementation).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

Array = jax.Array

SOLVERS = ("newton", "fixed_point")


class MidpointInfo(NamedTuple):
    """Solver diagnostics of one implicit step (arrays, so they work under jit/vmap)."""

    converged: Array  # bool: final residual <= tol
    iterations: Array  # int32: iterations taken
    residual: Array  # max-norm of the residual z1 - z - dt f((z + z1) / 2) (fixed_point: at the
    # previous iterate, an upper bound for the returned one)


class ConvergenceError(RuntimeError):
    """Raised (by the caller, e.g. tpjax.integrate) when an implicit solve did not converge."""

    TEMPLATE = (
        "implicit midpoint did not converge at dt={dt}: residual {residual} after {iterations} "
        "iterations (tolerance {tol}). Use a smaller dt, a larger max_iter, or solver='newton' "
        "if you used 'fixed_point'."
    )

    def __init__(self, dt, iterations="max_iter", residual="unknown", tol="default"):
        self.dt, self.iterations, self.residual, self.tol = dt, iterations, residual, tol
        super().__init__(self.TEMPLATE.format(dt=dt, iterations=iterations, residual=residual, tol=tol))


def _max_norm(x: Array) -> Array:
    return jnp.max(jnp.abs(x), initial=0.0)


def implicit_midpoint_step(
    f: Callable,
    z,
    dt,
    *,
    tol: float | None = None,
    max_iter: int = 50,
    solver: str = "newton",
):
    """One step of the implicit midpoint rule z1 = z + dt f((z + z1) / 2).

    Properties: order 2; symmetric (step(-dt) o step(dt) = id to solver tolerance); symplectic for
    canonical systems; preserves every quadratic invariant (|L|^2 on so(3)*, Gamma.Gamma and L.Gamma on
    se(3)*, for any H) up to solver tolerance and roundoff; on Lie-Poisson systems it is not a Poisson map
    in general, but it is reversible for reversible problems. Differentiable by the implicit function theorem.
    Arguments:
      f: vector field, pytree -> pytree of the same structure (e.g. so3_flow(jax.grad(H))).
      z: state of ONE system: an array or a pytree of floating arrays (flattened with ravel_pytree).
      dt: scalar time step (may be traced or negative).
      tol: convergence tolerance on the max-norm of the residual; default 10 * eps(dtype) * scale with
        scale = max(|z|_inf, |dt f(z)|_inf).
      max_iter: maximum iterations (static).
      solver: "newton" (dense jacobian, quadratic convergence, n jvps per iteration) or "fixed_point"
        (one f evaluation per iteration, converges when dt * Lip(f) / 2 < 1).
    Returns: (z1, info): z1 like z; info a MidpointInfo (converged, iterations, residual).
    """
    if solver not in SOLVERS:
        raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
    x, unravel = ravel_pytree(z)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"`z` must hold floating-point arrays; got dtype {x.dtype}.")
    dt = jnp.asarray(dt, x.dtype)

    def F(y):
        return ravel_pytree(f(unravel(y)))[0].astype(x.dtype)

    def residual(d):
        return d - dt * F(x + 0.5 * d)

    d0 = dt * F(x)
    if tol is None:
        scale = lax.stop_gradient(jnp.maximum(_max_norm(x), _max_norm(d0)))
        tol_ = 10 * jnp.finfo(x.dtype).eps * scale
    else:
        tol_ = jnp.asarray(tol, x.dtype)

    def solve(g, d_init):
        def cond(c):
            _, r, it = c
            return (_max_norm(r) > tol_) & (it < max_iter)

        def body(c):
            d, r, it = c
            if solver == "newton":
                step = jnp.linalg.solve(jax.jacfwd(g)(d), r)
            else:  # g(d) = d - phi(d) with phi the fixed-point map: d - g(d) = phi(d)
                step = r
            d = d - step
            return d, g(d), it + 1

        d, r, it = lax.while_loop(cond, body, (d_init, g(d_init), jnp.zeros((), jnp.int32)))
        res = _max_norm(r)
        if solver == "fixed_point":  # d - r = phi(d) is already computed: a free extra iteration
            d = d - r
        return d, MidpointInfo(res <= tol_, it, res)

    def tangent_solve(g, y):
        return jnp.linalg.solve(jax.jacfwd(g)(y), y)

    d, info = lax.custom_root(residual, lax.stop_gradient(d0), solve, tangent_solve, has_aux=True)
    return unravel(x + d), info
