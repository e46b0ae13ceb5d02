"""Point vortices in the plane: Kirchhoff's equations as a Poisson structure."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractStructure, like, state_array


@dataclasses.dataclass(frozen=True, init=False)
class PointVortices(AbstractStructure):
    """n point vortices of circulations Gamma_i at positions r_i = (x_i, y_i):

        Gamma_i x_i' = +dH/dy_i,   Gamma_i y_i' = -dH/dx_i,

    i.e. J = diag(1/Gamma) (x) [[0, 1], [-1, 0]] (POISSON_J type MATRIX with one 2x2 block per vortex).
    H is the user's, e.g. the planar interaction -(1/4 pi) sum_{i<j} Gamma_i Gamma_j log |r_i - r_j|^2.
    State: ``r`` of shape (n, 2). Casimirs (conserved by every translation- and rotation-invariant H, and
    kept exactly by implicit midpoint since they are linear / quadratic): the impulse sum_i Gamma_i r_i
    (two components) and the angular impulse sum_i Gamma_i |r_i|^2; ``trajectory`` reports them as
    ``(impulse_x, impulse_y, angular_impulse)``.
    Reference: P. K. Newton, The N-Vortex Problem (Springer, 2001), ch. 2.

    Args: circulations: n nonzero numbers (concrete; they define the structure, not a differentiable input).
    """

    circulations: tuple[float, ...]
    name: str = "point_vortices"
    parts: tuple[str, ...] = ("r",)

    def __init__(self, circulations):
        g = np.asarray(circulations, dtype=np.float64)
        if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)) or np.any(g == 0):
            raise ValueError(f"PointVortices: circulations must be a non-empty vector of finite nonzero numbers, "
                             f"got {circulations!r}")  # fmt: skip
        object.__setattr__(self, "circulations", tuple(float(x) for x in g))

    def check_state(self, state) -> tuple:
        r = state_array(state, "r")
        n = len(self.circulations)
        if r.shape != (n, 2):
            raise ValueError(f"state r must have shape ({n}, 2) for PointVortices with {n} circulations, "
                             f"got {r.shape}; vmap for ensembles")  # fmt: skip
        return (r,)

    def emit_flow(self, b, tr, grads, regs):
        from ..ir.ops import Op

        ref = like(b, regs[0])
        dtype = tr.avals[0].dtype
        inv = 1.0 / np.asarray(self.circulations)
        J = jnp.asarray(np.einsum("i,jk->ijk", inv, [[0.0, 1.0], [-1.0, 0.0]]), dtype=dtype)
        Jreg = b.const(J, jax.ShapeDtypeStruct(J.shape, J.dtype))
        return [b.emit(Op.POISSON_J, b.fresh("F"), (grads[0], Jreg), (("type", "MATRIX"),), dtype=ref.dtype,
                       shape=ref.shape, comment="Gamma_i r_i' = [[0, 1], [-1, 0]] dH/dr_i")]  # fmt: skip

    def casimirs(self, parts):
        r = parts[0]
        g = jnp.asarray(self.circulations, r.dtype)
        impulse = jnp.einsum("i,...ij->j...", g, r)
        return (impulse[0], impulse[1], jnp.einsum("i,...i->...", g, jnp.sum(r * r, axis=-1)))
