"""Lie-Poisson structures: so(3)* (free rigid body), se(3)* (heavy top) and a generic J(z).

A Poisson system is z' = J(z) grad H(z) with J skew-symmetric (and satisfying the Jacobi identity).
For the dual of a Lie algebra J depends linearly on z and is degenerate: its Casimirs C (functions with
J grad C = 0) are conserved by *every* Hamiltonian. On so(3)* J(L) = [L]x (the "hat" matrix), so
L' = L x grad H(L) and |L|^2 is the Casimir. Everything here is pure jax.numpy: jit/vmap/grad friendly,
leading batch dimensions broadcast.

Reference: J. E. Marsden, T. S. Ratiu, "Introduction to Mechanics and Symmetry", 2nd ed., Springer (1999),
ch. 13-15; E. Hairer, C. Lubich, G. Wanner, "Geometric Numerical Integration", 2nd ed. (2006), ch. VII.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Array = jax.Array


def hat(v: Array) -> Array:
    """The skew matrix [v]x with [v]x w = v x w.

    Arguments: v: (..., 3).
    Returns: (..., 3, 3), exactly skew-symmetric (entries are v_i, -v_i and 0).
    Reference: Marsden & Ratiu (1999), sec. 9.2 (the hat map so(3) <-> R^3).
    """
    v = jnp.asarray(v)
    if v.shape[-1:] != (3,):
        raise ValueError(f"hat: argument `v` must have shape (..., 3); got {v.shape}.")
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = jnp.zeros_like(x)
    rows = (jnp.stack([o, -z, y], -1), jnp.stack([z, o, -x], -1), jnp.stack([-y, x, o], -1))
    return jnp.stack(rows, -2)


def so3_flow(grad_H: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Lie-Poisson vector field on so(3)*: f(L) = L x grad_H(L) = [L]x grad_H(L).

    Properties: |L|^2 is a Casimir (f(L) . L = 0) for every H; H itself is conserved by the exact flow.
    The cross product is the LIE_CROSS form (6 mul + 3 sub) of POISSON_J(LIE).
    Arguments: grad_H: (..., 3) -> (..., 3), the gradient of the Hamiltonian (e.g. jax.grad(H)).
    Returns: f: (..., 3) -> (..., 3).
    Reference: Marsden & Ratiu (1999), sec. 15.3 (Euler's equations of the free rigid body).
    """

    def f(L):
        return jnp.cross(L, grad_H(L))

    return f


def heavy_top_flow(grad_H: Callable[[Array, Array], tuple[Array, Array]]):
    """Lie-Poisson vector field on se(3)* (heavy top), state z = (L, Gamma).

    L' = L x dH/dL + Gamma x dH/dGamma,   Gamma' = Gamma x dH/dL.
    For H = sum_i L_i^2 / (2 I_i) + mg Gamma . chi this is the heavy top in the body frame
    (Gamma = direction of gravity in body coordinates, chi = centre of mass).
    Properties: Casimirs Gamma . Gamma and L . Gamma are conserved for every H (both quadratic, so also by
    implicit midpoint); H is conserved by the exact flow.
    Arguments: grad_H: (L, Gamma) -> (dH/dL, dH/dGamma), each (..., 3); e.g. jax.grad(H, argnums=(0, 1)).
    Returns: f: (L, Gamma) tuple -> (L', Gamma') tuple, each (..., 3).
    Reference: Marsden & Ratiu (1999), sec. 15.8 (heavy top); Hairer, Lubich & Wanner (2006), sec. VII.5.
    """

    def f(z):
        L, G = z
        gL, gG = grad_H(L, G)
        return jnp.cross(L, gL) + jnp.cross(G, gG), jnp.cross(G, gL)

    return f


def so3_casimir(L: Array) -> Array:
    """The so(3)* Casimir |L|^2. Arguments: L: (..., 3). Returns: (...,)."""
    return jnp.sum(L * L, axis=-1)


def heavy_top_casimirs(L: Array, Gamma: Array) -> tuple[Array, Array]:
    """The se(3)* Casimirs (Gamma . Gamma, L . Gamma).

    Arguments: L, Gamma: (..., 3). Returns: two arrays of shape (...,).
    Reference: Marsden & Ratiu (1999), sec. 15.8.
    """
    return jnp.sum(Gamma * Gamma, axis=-1), jnp.sum(L * Gamma, axis=-1)


def check_skew(J_fn: Callable, z, name: str = "J", rtol: float | None = None) -> Array:
    """Evaluate J at z and check it is a square, skew-symmetric (n, n) matrix, n = size of the state.

    The value check needs concrete values: when z or J(z) is traced (inside jit) only the shape is
    checked. The tolerance is max|J + J^T| <= rtol * max(1, max|J|), rtol = 100 * eps(dtype) by default.
    Arguments: J_fn: z -> (n, n); z: array or pytree of arrays for ONE system (n = total size);
      name: the argument name used in error messages; rtol: relative tolerance.
    Returns: J(z), shape (n, n).
    Raises: ValueError naming `name`, with the measured asymmetry and the fix.
    """
    flat, _ = ravel_pytree(z)
    n = flat.shape[0]
    J = jnp.asarray(J_fn(z))
    if J.shape != (n, n):
        raise ValueError(
            f"`{name}` must return a square ({n}, {n}) matrix for a state of {n} components; got shape "
            f"{J.shape}. Return the Poisson tensor acting on the flattened state (ravel_pytree order)."
        )
    if isinstance(J, jax.core.Tracer):
        return J
    if rtol is None:
        dtype = J.dtype if jnp.issubdtype(J.dtype, jnp.inexact) else jnp.float32
        rtol = 100 * float(jnp.finfo(dtype).eps)
    Jn = np.asarray(J)  # concrete here: check in numpy (jnp ops would be traced inside an outer jit)
    asym = float(np.max(np.abs(Jn + Jn.T)))
    scale = max(1.0, float(np.max(np.abs(Jn))))
    if not asym <= rtol * scale:
        raise ValueError(
            f"`{name}` is not skew-symmetric: max |{name} + {name}^T| = {asym:.3e} at the given state "
            f"(tolerance {rtol * scale:.1e}). A Poisson tensor must satisfy {name}^T = -{name}; "
            f"build it as (A - A^T) / 2 or from hat(v), or use structure='canonical' for "
            f"J = [[0, I], [-I, 0]]."
        )
    return J


def generic_flow(J_fn: Callable, grad_H: Callable) -> Callable:
    """Poisson vector field f(z) = J(z) grad_H(z) for a user-supplied Poisson tensor.

    Properties: conserves H when J is skew (check it with check_skew); Casimirs of J are conserved.
    Arguments: J_fn: z -> (n, n) acting on the flattened state; grad_H: z -> pytree like z.
      z is ONE system: an array or a pytree of arrays (vmap for batches).
    Returns: f: z -> pytree like z.
    """

    def f(z):
        g, unravel = ravel_pytree(grad_H(z))
        return unravel(jnp.asarray(J_fn(z)) @ g)

    return f
